"""`slipway score` end to end on the deploy spoke's real registry: a Parquet and a CSV file
with bad rows scored by the champion, the bad rows quarantined with their reasons, the
lineage on every row, the MLflow run and the audit entry; and a file past the rejected-share
limit refused with nothing published.

It lives beside the deploy tests to reuse their session spoke (two trained versions,
champion v1): building another costs a copier render and two trainings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from slipway.pipelines.config import load_config

from .conftest import Spoke, slipway

ROWS = 2_500  # more than one 1,000-row chunk, so chunking and row numbers are exercised


def _with_batch(spoke: Spoke, **settings: object) -> Spoke:
    """The spoke with [batch] settings of the test (id_columns, limits, chunk size)."""
    path = spoke.root / "slipway.toml"
    text = re.sub(r"\n\[batch\]\n(?:[^\[].*\n|\n)*", "\n", path.read_text())
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    path.write_text(f"{text}\n[batch]\n{lines}\n")
    return Spoke(spoke.root, load_config(spoke.root))


def feature_table(spoke: Spoke, rows: int = ROWS) -> pd.DataFrame:
    """The spoke's own feature rows, repeated to `rows`, with a customer id in front."""
    from slipway.pipelines.training.spoke_code import features, load_frame

    base = features(load_frame(spoke.root, spoke.config), spoke.config)
    table = pd.concat([base] * (rows // len(base) + 1), ignore_index=True).head(rows)
    table.insert(0, "customer_id", [f"c{i:05d}" for i in range(rows)])
    return table


def spoil(table: pd.DataFrame, spoke: Spoke) -> dict[int, str]:
    """Break three rows three ways; returns row -> the column at fault."""
    first, second = list(spoke.config.data.contract.columns)[:2]
    rule = spoke.config.data.contract.columns[second]
    assert rule.max is not None
    table.loc[7, first] = np.nan  # a null the contract forbids
    table.loc[1_234, second] = rule.max * 10  # above the contract's max
    table.loc[2_400, first] = -1.0  # below min 0
    return {7: first, 1_234: second, 2_400: first}


def test_a_parquet_file_is_scored_with_bad_rows_quarantined_and_lineage_on_every_row(
    spoke: Spoke, tmp_path: Path
):
    import mlflow.pyfunc

    from slipway.pipelines import registry
    from slipway.pipelines.governance import audit
    from slipway.pipelines.registry import fluent_registry

    spoke = _with_batch(
        spoke, id_columns=["customer_id"], max_rejected_fraction=0.01, chunk_rows=1_000
    )
    table = feature_table(spoke)
    bad = spoil(table, spoke)
    source = tmp_path / "customers.parquet"
    table.to_parquet(source, row_group_size=700)
    output = tmp_path / "out" / "scores.parquet"

    done = slipway(spoke.root, "score", str(source), "--output", str(output), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["rows_in"], report["scored"], report["quarantined"]) == (ROWS, ROWS - 3, 3)
    assert report["version"] == "1" and report["published"] is True
    assert "rows in" in done.stderr  # progress while it ran

    scores = pd.read_parquet(output)
    assert list(scores.columns) == [
        "customer_id",
        "row",
        "prediction",
        "model_name",
        "model_version",
        "model_run_id",
        "scored_at",
    ]
    assert set(scores["row"]) == set(range(ROWS)) - set(bad)
    assert scores["customer_id"].tolist() == [f"c{row:05d}" for row in scores["row"]]
    champion = registry.client(spoke.root).get_model_version(spoke.config.model_name, "1")
    assert set(scores["model_run_id"]) == {champion.run_id}
    assert set(scores["model_version"]) == {"1"}
    # The predictions are the model's own on the accepted rows.
    with fluent_registry(spoke.root):
        model = mlflow.pyfunc.load_model(f"models:/{spoke.config.model_name}/1")
    good = table.drop(index=list(bad))[list(spoke.config.data.contract.columns)]
    assert scores["prediction"].tolist() == list(model.predict(good.reset_index(drop=True)))

    quarantine = pd.read_parquet(tmp_path / "out" / "scores.quarantine.parquet")
    assert quarantine["row"].tolist() == sorted(bad)
    for row, reason in zip(quarantine["row"], quarantine["reason"], strict=True):
        assert f"column {bad[row]!r}, row {row}" in reason, reason
    assert not list((tmp_path / "out").glob("*.partial"))

    run = registry.client(spoke.root).get_run(report["run_id"])
    assert run.data.tags["slipway.kind"] == "batch"
    assert run.data.tags["slipway.batch.model_run_id"] == champion.run_id
    assert run.data.metrics["quarantined"] == 3
    assert 0 <= run.data.metrics["prediction_psi"] < 0.25  # the training data's own rows
    entry = audit.read(spoke.root)[-1]
    assert (entry["action"], entry["version"]) == ("score", "1")
    assert entry["details"]["run_id"] == report["run_id"]


def test_a_csv_with_text_in_a_number_column_quarantines_that_row(spoke: Spoke, tmp_path: Path):
    spoke = _with_batch(spoke, max_rejected_fraction=0.01, chunk_rows=1_000)
    table = feature_table(spoke, 1_500)
    first = next(iter(spoke.config.data.contract.columns))
    text = table.astype({first: "object"})
    text.loc[1_100, first] = "n/a"
    source = tmp_path / "customers.csv"
    text.to_csv(source, index=False)
    output = tmp_path / "scores.parquet"

    done = slipway(spoke.root, "score", str(source), "-o", str(output), "--version", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1,500 rows in, 1,499 scored, 1 quarantined (0.1%)" in done.stdout
    quarantine = pd.read_parquet(tmp_path / "scores.quarantine.parquet")
    assert quarantine["row"].tolist() == [1_100]
    assert "expected a number" in quarantine["reason"][0]
    assert set(pd.read_parquet(output)["model_version"]) == {"2"}


def test_past_the_rejected_share_nothing_is_published_and_the_job_exits_4(
    spoke: Spoke, tmp_path: Path
):
    from slipway.pipelines.governance import audit

    spoke = _with_batch(spoke, max_rejected_fraction=0.001, chunk_rows=1_000)
    table = feature_table(spoke)
    spoil(table, spoke)  # 3 of 2,500 rows: 0.12%, above 0.1%
    data = tmp_path / "data"
    data.mkdir()
    source = data / "customers.parquet"
    table.to_parquet(source)
    output = data / "scores.parquet"

    done = slipway(spoke.root, "score", str(source), "--output", str(output))
    assert done.returncode == 4, done.stdout + done.stderr
    assert "nothing was published" in done.stderr
    assert "max_rejected_fraction" in done.stderr
    assert sorted(p.name for p in data.iterdir()) == ["customers.parquet"]
    entry = audit.read(spoke.root)[-1]
    assert entry["action"] == "score" and entry["reason"].startswith("refused")


def test_the_kubeflow_batch_pipeline_on_kfp_local_scores_the_same_file_the_same_way(
    spoke: Spoke, tmp_path: Path
):
    """Shards scored in parallel by the batch pipeline (kfp.local, SubprocessRunner with
    this Python) give what `slipway score` gives for the same file: same rows, same
    predictions, same quarantine, one lineage."""
    from slipway.pipelines import registry
    from slipway.pipelines.batch.kubeflow import run_local
    from slipway.pipelines.governance import audit

    spoke = _with_batch(
        spoke, id_columns=["customer_id"], max_rejected_fraction=0.01, chunk_rows=1_000, shards=2
    )
    table = feature_table(spoke)
    bad = spoil(table, spoke)
    source = tmp_path / "customers.parquet"
    table.to_parquet(source, row_group_size=1_000)  # 3 row groups -> 2 shards
    local_out, kfp_out = tmp_path / "local.parquet", tmp_path / "kfp" / "scores.parquet"
    done = slipway(spoke.root, "score", str(source), "-o", str(local_out), "--version", "1")
    assert done.returncode == 0, done.stdout + done.stderr

    summary = run_local(spoke.root, spoke.config, str(source), str(kfp_out), alias="champion")

    assert (summary["rows_in"], summary["quarantined"], summary["version"]) == (ROWS, 3, "1")
    by_kfp, by_cli = pd.read_parquet(kfp_out), pd.read_parquet(local_out)
    columns = ["customer_id", "row", "prediction", "model_version", "model_run_id"]
    assert by_kfp[columns].equals(by_cli[columns])
    quarantine = pd.read_parquet(tmp_path / "kfp" / "scores.quarantine.parquet")
    assert quarantine["row"].tolist() == sorted(bad)
    assert sorted(p.name for p in (tmp_path / "kfp").iterdir()) == [
        "scores.parquet",
        "scores.quarantine.parquet",
    ]  # the shards' work directory is gone
    run = registry.client(spoke.root).get_run(summary["run_id"])
    assert run.data.tags["slipway.batch.where"] == "kubeflow"
    assert audit.read(spoke.root)[-1]["details"]["run_id"] == summary["run_id"]
