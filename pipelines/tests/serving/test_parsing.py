"""Scoring requests against the data contract: every bad input found in review is a
BadRequest (the gateway's 400) that names the field, never an exception that escapes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from slipway.pipelines.config import parse_config
from slipway.pipelines.serving.parsing import (
    MAX_ROWS_PER_REQUEST,
    BadRequest,
    parse_body,
    parse_csv,
    parse_rows,
)

CONFIG = (Path(__file__).parents[1] / "data" / "mixed_contract_spoke.toml").read_text()
CONTRACT = parse_config(CONFIG).data.contract
GOOD = {"tenure": 3, "score": 0.5, "visits": 2, "active": True, "plan": "a"}


def split(**overrides: object) -> bytes:
    row = {**GOOD, **overrides}
    return json.dumps({"dataframe_split": {"columns": list(row), "data": [list(row.values())]}})


def raw_split(column: str, literal: str) -> bytes:
    """A one-row dataframe_split with `literal` spliced in as the JSON text of `column`."""
    values = [literal if c == column else json.dumps(v) for c, v in GOOD.items()]
    columns = json.dumps(list(GOOD))
    data = ",".join(values)
    return f'{{"dataframe_split": {{"columns": {columns}, "data": [[{data}]]}}}}'.encode()


def test_a_good_row_comes_out_in_contract_order():
    assert parse_rows(split(), CONTRACT) == [(3, 0.5, 2, True, "a")]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        # Column names that are not strings (unhashable: a 500 before).
        (b'{"dataframe_split": {"columns": [["x"]], "data": [[1]]}}', "dataframe_split.columns[0]"),
        # A 5,000-digit integer (the JSON parser's own limit: a 500 before).
        (raw_split("tenure", "1" * 5000), "column 'tenure', row 0"),
        # A 400-digit number in a float column (float overflow: a 500 before).
        (raw_split("score", "9" * 400), "column 'score', row 0"),
        (raw_split("score", "9" * 400 + ".5"), "column 'score', row 0"),
        # 2**64 in an int column (outside int64: the frame failed, a 500 before).
        (raw_split("tenure", str(2**64)), "column 'tenure', row 0"),
        (raw_split("tenure", str(2**63)), "column 'tenure', row 0"),
        # null in a nullable int column (no missing int64 in pandas: a 500 before).
        (split(visits=None), "column 'visits', row 0"),
        # null in a nullable bool column (silently scored as False before).
        (split(active=None), "column 'active', row 0"),
    ],
)
def test_inputs_found_in_review_are_400s_that_name_the_field(body: bytes, names: str):
    with pytest.raises(BadRequest) as refused:
        parse_rows(body, CONTRACT)
    assert names in str(refused.value)
    assert len(str(refused.value)) < 400  # the message quotes the value, never all of it


def test_int64_bounds_are_inclusive():
    assert parse_rows(raw_split("tenure", str(2**63 - 1)), CONTRACT)[0][0] == 2**63 - 1
    assert parse_rows(raw_split("visits", str(-(2**63))), CONTRACT)[0][2] == -(2**63)


def test_the_row_cap_is_checked_before_any_row_is_looked_at():
    n = MAX_ROWS_PER_REQUEST + 1
    # Rows that would each fail validation: the cap must answer first, without walking them.
    body = json.dumps({"dataframe_split": {"columns": ["x"], "data": [["bad"]] * n}})
    with pytest.raises(BadRequest, match=f"holds {n} rows"):
        parse_rows(body.encode(), CONTRACT)
    with pytest.raises(BadRequest, match=f"holds {n} rows"):
        parse_rows(json.dumps({"instances": [0] * n}).encode(), CONTRACT)
    with pytest.raises(BadRequest, match=f"holds {n} rows"):
        parse_rows(json.dumps({"inputs": {"x": [0] * n}}).encode(), CONTRACT)


def test_nan_is_read_as_mlflow_reads_it():
    body = raw_split("score", "NaN")
    with pytest.raises(BadRequest, match="column 'score', row 0: value is missing"):
        parse_rows(body, CONTRACT)


def test_csv_with_and_without_a_header_row():
    header = ",".join(GOOD) + "\n"
    line = "3,0.5,2,true,a\n"
    assert parse_csv((header + line).encode(), CONTRACT) == [(3, 0.5, 2, True, "a")]
    assert parse_csv(line.encode(), CONTRACT) == [(3, 0.5, 2, True, "a")]
    assert parse_body(line.encode(), "text/csv; charset=utf-8", CONTRACT) == [
        (3, 0.5, 2, True, "a")
    ]


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("3,0.5,,true,a", "column 'visits', row 0: null cannot be scored"),
        ("3,0.5,2,,a", "column 'active', row 0: null cannot be scored"),
        ("3,large,2,true,a", "column 'score', row 0: expected a number"),
        (f"{2**64},0.5,2,true,a", "column 'tenure', row 0"),
        ("3,0.5,2,true", "CSV row 0 has 4 values"),
        ("3,0.5,2,maybe,a", "column 'active', row 0: expected true or false"),
    ],
)
def test_bad_csv_is_a_400_that_names_the_field(line: str, names: str):
    with pytest.raises(BadRequest) as refused:
        parse_csv(line.encode(), CONTRACT)
    assert names in str(refused.value)


NUMERIC = parse_config(
    CONFIG.replace(
        """visits = { dtype = "int", nullable = true }
active = { dtype = "bool", nullable = true }
plan = { dtype = "str", allowed = ["a", "b"] }""",
        'visits = { dtype = "int", max = 100 }',
    )
).data.contract


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("true", "expected a number (int), got True"),
        ('"7"', "expected a number (int), got '7'"),
        ("null", "value is missing"),
        ("101", "above the contract maximum 100"),
        ("2.5", "expected an integer, got 2.5"),
        (str(2**63), "out of the int64 range"),
        ("1" * 30, "is out of the int64 range"),
    ],
)
def test_the_vectorised_check_of_numeric_contracts_refuses_what_the_row_check_refuses(
    value: str, message: str
):
    row = {"tenure": 3, "score": 0.5, "visits": 2}
    good = json.dumps({"dataframe_records": [row, {**row, "visits": 100}]}).encode()
    assert parse_rows(good, NUMERIC) == [(3, 0.5, 2), (3, 0.5, 100)]
    columns = json.dumps(list(row))
    bad = (
        f'{{"dataframe_split": {{"columns": {columns}, "data": [[3, 0.5, 2], [3, 0.5, {value}]]}}}}'
    )
    with pytest.raises(BadRequest, match=f"column 'visits', row 1: .*{re.escape(message)}"):
        parse_rows(bad.encode(), NUMERIC)
