"""Batch Transform's line formats read with the gateway's rules: CSV without a header and
JSON Lines, one answer per line."""

from __future__ import annotations

import pytest

from slipway.pipelines.config import ColumnRule, DataContract
from slipway.pipelines.serving import parsing
from slipway.pipelines.serving.transform import check_lines, execution_parameters, split_lines

CONTRACT = DataContract(
    columns={"age": ColumnRule(dtype="int", min=0), "score": ColumnRule(dtype="float", max=1)}
)
COLUMNS = list(CONTRACT.columns)


def test_csv_lines_without_a_header_are_checked_one_answer_a_line():
    body = b"30,0.5\n41,2.0\nforty,0.1\n7\n\n12,0.25\n"
    records = split_lines(body, "text/csv", COLUMNS)
    rows, reasons = check_lines(records, CONTRACT, text=True)
    assert rows == [(30, 0.5), (12, 0.25)]
    assert reasons[0] is None and reasons[4] is None
    assert reasons[1] == "column 'score', row 1: 2.0 is above the contract maximum 1.0"
    assert reasons[2] == "column 'age', row 2: expected a number (int), got 'forty'"
    assert (
        reasons[3]
        == "line 3: 1 values; expected 2 in contract order (age, score...), without a header"
    )


def test_a_clean_mini_batch_takes_the_vectorised_path_and_keeps_ints_as_ints():
    records = split_lines(b"1,0.1\n2,0.2\n", "text/csv", COLUMNS)
    rows, reasons = check_lines(records, CONTRACT, text=True)
    assert rows == [(1, 0.1), (2, 0.2)] and reasons == [None, None]
    assert all(type(r[0]) is int for r in rows)


def test_json_lines_take_objects_with_extra_ids_or_lists_in_contract_order():
    body = b'{"id": "a", "age": 3, "score": 0.1}\n[4, 0.2]\n{"age": 5}\nnot json\n'
    records = split_lines(body, "application/jsonlines", COLUMNS)
    rows, reasons = check_lines(records, CONTRACT, text=False)
    assert rows == [(3, 0.1), (4, 0.2)]
    assert reasons[:2] == [None, None]
    assert reasons[2] == "line 2: missing contract columns ['score']"
    assert reasons[3] is not None and reasons[3].startswith("line 3: not valid JSON")


def test_the_online_gateway_reads_json_lines_too_and_refuses_a_bad_one_whole():
    assert parsing.parse_body(
        b'{"age": 1, "score": 0.5}\n[2, 0.5]\n', "application/jsonlines", CONTRACT
    ) == [
        (1, 0.5),
        (2, 0.5),
    ]
    with pytest.raises(parsing.BadRequest, match="JSON Lines line 0"):
        parsing.parse_body(b'"text"\n', "application/jsonlines", CONTRACT)


def test_execution_parameters_are_what_sagemaker_asks_for():
    assert execution_parameters(2) == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
