"""Parse and validate a scoring request: MLflow's protocol, checked against the data contract.

Existing MLflow clients keep working because the gateway accepts the four payloads of
`mlflow models serve` (dataframe_split, dataframe_records, instances, inputs). Each request is
validated here in plain Python, row by row, before it reaches a model: a bad request gets a
400 naming the column and row at fault, and never poisons a batch shared with other callers.
Validated rows come out as tuples in contract column order, ready to stack into one batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from slipway.pipelines.config import ColumnRule, DataContract
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

PAYLOAD_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MAX_ROWS_PER_REQUEST = 10_000


class BadRequest(SlipwayError, ValueError):
    """The request is malformed; the message tells the caller what to change."""

    exit_code = Exit.USAGE


def _records_from(payload: Any, columns: Sequence[str], key: str) -> list[Mapping[str, Any]]:
    if key == "dataframe_split":
        if not isinstance(payload, Mapping) or "data" not in payload:
            raise BadRequest(
                'dataframe_split must be an object {"columns": [...], "data": [[...]]}'
            )
        cols = payload.get("columns", list(columns))
        data = payload["data"]
        if not isinstance(cols, list) or not isinstance(data, list):
            raise BadRequest("dataframe_split.columns and dataframe_split.data must be lists")
        rows = []
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(cols):
                raise BadRequest(
                    f"dataframe_split.data[{i}] must be a list of {len(cols)} values "
                    f"(one per column)"
                )
            rows.append(dict(zip(cols, row, strict=True)))
        return rows
    if isinstance(payload, Mapping):  # column-oriented: {"col": [v, ...], ...}
        lengths = {len(v) if isinstance(v, list) else -1 for v in payload.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise BadRequest(f"{key} as an object needs one list of equal length per column")
        n = lengths.pop()
        return [{c: payload[c][i] for c in payload} for i in range(n)]
    if not isinstance(payload, list):
        raise BadRequest(f"{key} must be a list of rows")
    rows = []
    for i, row in enumerate(payload):
        if isinstance(row, Mapping):
            rows.append(row)
        elif isinstance(row, list) and len(row) == len(columns):
            rows.append(dict(zip(columns, row, strict=True)))
        else:
            raise BadRequest(
                f"{key}[{i}] must be an object of column -> value, or a list of "
                f"{len(columns)} values in the order {list(columns)[:3]}..."
            )
    return rows


def _check_value(name: str, rule: ColumnRule, value: Any, row: int) -> Any:
    where = f"column {name!r}, row {row}"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if rule.nullable:
            return None
        raise BadRequest(f"{where}: value is missing, and the data contract forbids nulls")
    if rule.dtype in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"{where}: expected a number ({rule.dtype}), got {value!r}")
        if rule.dtype == "int" and not float(value).is_integer():
            raise BadRequest(f"{where}: expected an integer, got {value!r}")
        if not math.isfinite(value):
            raise BadRequest(f"{where}: expected a finite number, got {value!r}")
        if rule.min is not None and value < rule.min:
            raise BadRequest(f"{where}: {value!r} is below the contract minimum {rule.min}")
        if rule.max is not None and value > rule.max:
            raise BadRequest(f"{where}: {value!r} is above the contract maximum {rule.max}")
    elif rule.dtype == "bool" and not isinstance(value, bool):
        raise BadRequest(f"{where}: expected true or false, got {value!r}")
    elif rule.dtype == "str" and not isinstance(value, str):
        raise BadRequest(f"{where}: expected a string, got {value!r}")
    if rule.allowed is not None and value not in rule.allowed:
        raise BadRequest(f"{where}: {value!r} is not one of the allowed values {rule.allowed}")
    return value


def parse_rows(body: bytes, contract: DataContract) -> list[tuple[Any, ...]]:
    """Validated rows in contract column order; raise BadRequest saying what is wrong."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise BadRequest(f"request body must be a JSON object with one of the keys {PAYLOAD_KEYS}")
    keys = [k for k in PAYLOAD_KEYS if k in doc]
    if len(keys) != 1:
        raise BadRequest(
            f"request must carry exactly one of {PAYLOAD_KEYS}, got {sorted(doc)}; e.g. "
            '{"dataframe_split": {"columns": [...], "data": [[...]]}}'
        )
    columns = list(contract.columns)
    records = _records_from(doc[keys[0]], columns, keys[0])
    if not records:
        raise BadRequest("request holds no rows")
    if len(records) > MAX_ROWS_PER_REQUEST:
        raise BadRequest(
            f"request holds {len(records)} rows; split it (max {MAX_ROWS_PER_REQUEST})"
        )
    expected = set(columns)
    rows = []
    for i, record in enumerate(records):
        if set(record) != expected:
            missing = sorted(expected - set(record))
            unknown = sorted(set(record) - expected)
            raise BadRequest(
                f"row {i} does not match the data contract: missing columns {missing}, "
                f"unknown columns {unknown}"
            )
        rows.append(
            tuple(_check_value(c, rule, record[c], i) for c, rule in contract.columns.items())
        )
    return rows
