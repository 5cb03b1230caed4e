"""Property tests of the request parser against the data contract (Hypothesis): whatever a
caller sends, the answer is rows or a 400 that names what to fix, never a 500; one bad cell
is named by its column and row; and the vectorised fast path never changes a verdict the
row-by-row check would give."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slipway.pipelines.config import DataContract, parse_config
from slipway.pipelines.serving.batching import Batcher
from slipway.pipelines.serving.gateway import CHAMPION, Gateway, Limits, build_app
from slipway.pipelines.serving.parsing import (
    PAYLOAD_KEYS,
    BadRequest,
    _bounds,
    check_each,
    check_records,
    parse_body,
)

TOML = (Path(__file__).resolve().parents[1] / "data" / "mixed_contract_spoke.toml").read_text()
# Every dtype, nullable int, bool and float columns, an allow-list and a bound.
MIXED = parse_config(
    TOML.replace('score = { dtype = "float" }', 'score = { dtype = "float", nullable = true }')
)
CONTRACT = MIXED.data.contract
COLUMNS = list(CONTRACT.columns)
# The contract the vectorised pass serves: numeric, not nullable, some bounded.
NUMERIC: DataContract = parse_config(
    TOML.split("[data.contract.columns]")[0]
    + "[data.contract.columns]\n"
    + 'a = { dtype = "int", min = 0, max = 100 }\n'
    + 'b = { dtype = "float", min = -1.5, max = 2.5 }\n'
    + 'c = { dtype = "int" }\n'
    + 'd = { dtype = "float" }\n'
    + "[training]"
    + TOML.split("[training]")[1]
).data.contract

# Any JSON value Python can write (NaN and Infinity included, as Python's encoder writes
# them), with integers far outside int64 and float range.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**400), 10**400),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
GOOD_CELLS = {
    "tenure": st.integers(0, 10**6),
    "score": st.one_of(st.none(), st.floats(-1e6, 1e6)),
    "visits": st.integers(-(2**63), 2**63 - 1),
    "active": st.booleans(),
    "plan": st.sampled_from(["a", "b"]),
}
GOOD_ROWS = st.lists(st.fixed_dictionaries(GOOD_CELLS), min_size=1, max_size=5)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _body(rows: list[dict[str, Any]], form: str) -> bytes:
    if form == "dataframe_split":
        payload: Any = {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in rows]}
    else:
        payload = rows
    return json.dumps({form: payload}).encode()


@FAST
@given(
    body=st.one_of(st.binary(max_size=300), JSON_VALUES.map(lambda v: json.dumps(v).encode())),
    csv=st.booleans(),
)
def test_any_body_is_rows_or_a_bad_request_never_another_exception(body: bytes, csv: bool):
    try:
        rows = parse_body(body, "text/csv" if csv else "application/json", CONTRACT)
    except BadRequest as refused:
        assert str(refused) and len(str(refused)) < 600
        return
    assert rows and all(len(row) == len(COLUMNS) for row in rows)


@FAST
@given(
    rows=GOOD_ROWS,
    form=st.sampled_from(["dataframe_split", "dataframe_records"]),
    where=st.tuples(st.integers(0, 4), st.sampled_from(COLUMNS)),
    value=JSON_VALUES,
)
def test_one_bad_cell_is_named_by_its_column_and_row(rows, form, where, value):
    row, column = where[0] % len(rows), where[1]
    assert parse_body(_body(rows, form), "application/json", CONTRACT)  # the valid frame
    rows[row] = {**rows[row], column: value}
    try:
        parsed = parse_body(_body(rows, form), "application/json", CONTRACT)
    except BadRequest as refused:
        assert f"column {column!r}, row {row}" in str(refused), str(refused)
        return
    accepted = parsed[row][COLUMNS.index(column)]
    assert accepted == value or (accepted is None and value != value)  # NaN read as missing


def _served(tmp_path: Path) -> Gateway:
    gw = Gateway(tmp_path, MIXED, limits=Limits())
    to_frame = gw._frame_builder()

    def predict(rows: list[tuple[Any, ...]]) -> list[float]:
        return [float(s) if s == s else -1.0 for s in to_frame(rows)["score"]]

    gw.variants = {CHAMPION: gw._variant(CHAMPION, "1", Batcher(predict, CHAMPION))}
    gw._champion_wanted = True
    gw.loaded.set()
    return gw


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=GOOD_ROWS,
    where=st.tuples(st.integers(0, 4), st.sampled_from(COLUMNS)),
    value=JSON_VALUES,
    key=st.sampled_from(PAYLOAD_KEYS[:2]),
)
def test_the_gateway_answers_200_or_a_400_naming_the_field_never_a_500(
    tmp_path, rows, where, value, key
):
    row, column = where[0] % len(rows), where[1]
    rows[row] = {**rows[row], column: value}
    body = _body(rows, key)

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=build_app(_served(tmp_path)))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return await http.post(
                "/invocations", content=body, headers={"content-type": "application/json"}
            )

    answer = asyncio.run(post())
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert f"column {column!r}, row {row}" in answer.json()["message"]
    else:
        assert len(answer.json()["predictions"]) == len(rows)


NUMBERS = st.one_of(
    st.integers(0, 100),
    st.floats(-1.5, 2.5),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.just("1"),
)


@FAST
@given(st.lists(st.lists(NUMBERS, min_size=4, max_size=4), min_size=1, max_size=6))
def test_the_vectorised_check_and_the_row_by_row_check_always_agree(cells):
    columns = list(NUMERIC.columns)
    records = [dict(zip(columns, row, strict=True)) for row in cells]
    bounds = _bounds(NUMERIC)
    assert bounds.usable
    fast = bounds.passes([[r[c] for c in columns] for r in records])
    try:
        reference: list[tuple[Any, ...]] | None = check_each(records, NUMERIC)
    except BadRequest:
        reference = None
    exact = all(type(v) is not int or abs(v) <= 2**53 for row in cells for v in row)
    if fast:  # the fast path let it through: the reference accepts the same values
        assert reference is not None
        assert check_records(records, NUMERIC) == reference
    elif exact:  # within float64's exact integers, the fast path refuses only what is wrong
        assert reference is None
    # Whatever the path, the public check gives the reference's verdict.
    try:
        assert check_records(records, NUMERIC) == reference
    except BadRequest:
        assert reference is None
