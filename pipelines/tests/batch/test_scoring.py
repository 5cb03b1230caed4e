"""The batch core on real files and a real fitted model: chunked reads, the gateway's
contract check per chunk, quarantine with reasons, publication only on success."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from slipway.pipelines.batch.files import BatchFileError, Sink, open_source
from slipway.pipelines.batch.scoring import (
    BatchInputError,
    BatchPlan,
    ModelRef,
    RejectedBatch,
    default_quarantine,
    score_file,
)
from slipway.pipelines.config import Batch, ColumnRule, DataContract, parse_config
from slipway.pipelines.serving import parsing

DATA = Path(__file__).resolve().parents[1] / "data"
NUMERIC = DataContract(
    columns={
        "age": ColumnRule(dtype="int", min=0, max=120),
        "income": ColumnRule(dtype="float", min=0),
        "score": ColumnRule(dtype="float", min=-1, max=1),
    }
)
REF = ModelRef("churn", "3", "run-abc", "models:/churn/3")


def _table(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer": [f"k{i}" for i in range(n)],
            "age": rng.integers(18, 90, n),
            "income": rng.uniform(0, 1e5, n),
            "score": rng.uniform(-1, 1, n),
        }
    )


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    frame = _table(500, seed=7)
    y = (frame["score"] > 0).astype(int)
    return LogisticRegression().fit(frame[["age", "income", "score"]], y)


def _plan(tmp_path: Path, source: Path, **settings: Any) -> BatchPlan:
    output = str(tmp_path / "scores.parquet")
    return BatchPlan(
        input=str(source),
        output=output,
        quarantine=default_quarantine(output),
        settings=Batch(**{"chunk_rows": 1_000, "id_columns": ["customer"], **settings}),
        contract=NUMERIC,
    )


def test_every_chunk_is_checked_scored_and_bad_rows_are_quarantined_with_the_gateways_words(
    tmp_path: Path, model: LogisticRegression
):
    table = _table(3_500)
    table.loc[10, "age"] = 130  # above max
    table.loc[1_999, "income"] = np.nan  # a null
    table.loc[3_001, "score"] = -5.0  # below min
    source = tmp_path / "in.parquet"
    table.to_parquet(source, row_group_size=900)
    seen: list[int] = []

    result = score_file(
        _plan(tmp_path, source), REF, model.predict, progress=lambda r: seen.append(r.rows_in)
    )

    assert (result.rows_in, result.scored, result.quarantined) == (3_500, 3_497, 3)
    assert seen == [1_000, 2_000, 3_000, 3_500]  # progress per chunk, never the whole file
    scores = pd.read_parquet(result.output)
    good = table.drop(index=[10, 1_999, 3_001])
    assert scores["row"].tolist() == good.index.tolist()
    assert scores["customer"].tolist() == good["customer"].tolist()
    expected = model.predict(good[["age", "income", "score"]])
    assert np.array_equal(scores["prediction"].to_numpy(), expected)
    assert set(scores["model_run_id"]) == {"run-abc"}
    bad = pd.read_parquet(result.quarantine)
    assert bad["row"].tolist() == [10, 1_999, 3_001]
    assert bad["reason"].tolist() == [
        "column 'age', row 10: 130 is above the contract maximum 120.0",
        "column 'income', row 1999: value is missing, and the data contract forbids nulls",
        "column 'score', row 3001: -5.0 is below the contract minimum -1.0",
    ]
    # The same rows the gateway would refuse: its own check on the same values agrees.
    for row in (10, 1_999, 3_001):
        record = {c: table.loc[row, c].item() for c in NUMERIC.columns}
        with pytest.raises(parsing.BadRequest):
            parsing.check_records([record], NUMERIC)


def test_a_refused_batch_publishes_nothing_not_even_a_partial_file(
    tmp_path: Path, model: LogisticRegression
):
    table = _table(2_000)
    table.loc[:30, "score"] = 9.0  # 31 of 2,000 rows: 1.55%, above 1%
    source = tmp_path / "in.parquet"
    table.to_parquet(source)

    with pytest.raises(RejectedBatch, match=r"31 of 2000 rows \(1.6%\).*nothing was published"):
        score_file(_plan(tmp_path, source, max_rejected_fraction=0.01), REF, model.predict)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_csv_fields_are_read_as_the_gateway_reads_text_csv(
    tmp_path: Path, model: LogisticRegression
):
    table = _table(1_200).astype({"age": "object"})
    table.loc[5, "age"] = "forty"
    table.loc[6, "age"] = "41.5"  # not an integer
    source = tmp_path / "in.csv"
    table.to_csv(source, index=False)

    result = score_file(_plan(tmp_path, source), REF, model.predict)

    bad = pd.read_parquet(result.quarantine)
    assert bad["row"].tolist() == [5, 6]
    assert "expected a number (int), got 'forty'" in bad["reason"][0]
    assert "expected an integer, got 41.5" in bad["reason"][1]
    scores = pd.read_parquet(result.output)
    assert scores["customer"].iloc[0] == "k0" and len(scores) == 1_198


def test_a_mixed_contract_is_checked_row_by_row_with_the_same_rules(tmp_path: Path):
    config = parse_config((DATA / "mixed_contract_spoke.toml").read_text())
    contract = config.data.contract
    frame = pd.DataFrame(
        {
            "tenure": [3, 4, 5],
            "score": [0.5, 0.1, 0.2],
            "visits": [1.0, None, 2.0],
            "active": [True, None, False],
            "plan": ["a", "b", "z"],
        }
    ).astype({"visits": "float64"})
    source = tmp_path / "mixed.parquet"
    frame.to_parquet(source)
    output = str(tmp_path / "out.parquet")
    plan = BatchPlan(str(source), output, default_quarantine(output), Batch(), contract)
    seen: list[pd.DataFrame] = []

    def predict(rows: pd.DataFrame) -> list[int]:
        seen.append(rows)
        return [1] * len(rows)

    with pytest.raises(RejectedBatch):  # 2 of 3 rows bad, far above the default 1%
        score_file(plan, REF, predict)
    plan = BatchPlan(
        str(source), output, default_quarantine(output), Batch(max_rejected_fraction=1), contract
    )
    result = score_file(plan, REF, predict)
    reasons = pd.read_parquet(result.quarantine)["reason"].tolist()
    assert reasons == [
        "column 'visits', row 1: null cannot be scored in a int column (a model takes int "
        "features without missing values); send a value, or declare the column as float in "
        "the data contract and retrain",
        "column 'plan', row 2: 'z' is not one of the allowed values ['a', 'b']",
    ]
    assert seen[-1].dtypes.astype(str).tolist() == ["int64", "float64", "int64", "bool", "object"]


def test_a_file_without_a_contract_or_id_column_is_refused_before_anything_is_written(
    tmp_path: Path, model: LogisticRegression
):
    source = tmp_path / "in.parquet"
    _table(1_000).drop(columns=["score", "customer"]).to_parquet(source)
    with pytest.raises(BatchInputError, match=r"contract columns \['score'\] and \[batch\] id"):
        score_file(_plan(tmp_path, source), REF, model.predict)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_unknown_formats_and_missing_files_say_what_to_do(tmp_path: Path):
    with pytest.raises(BatchFileError, match=r"name it \*.parquet or \*.csv"):
        open_source(str(tmp_path / "rows.xlsx"))
    with pytest.raises(BatchFileError, match="no such file"):
        open_source(str(tmp_path / "rows.parquet"))
    with pytest.raises(BatchFileError, match="outputs are Parquet"):
        Sink(str(tmp_path / "scores.csv"))


def test_batch_settings_are_validated_with_their_field_named():
    base = (DATA / "mixed_contract_spoke.toml").read_text()
    for section, wanted in (
        ('id_columns = ["a", "a"]', "names a column twice"),
        ("max_rejected_fraction = 1.5", "less than or equal to 1"),
        ("chunk_rows = 10", "greater than or equal to 1000"),
        ('id_columns = ["prediction"]', "a column `slipway score` writes itself"),
        ("shard = 3", "unknown key"),
    ):
        with pytest.raises(Exception, match="batch") as caught:
            parse_config(f"{base}\n[batch]\n{section}\n")
        assert wanted in str(caught.value)
