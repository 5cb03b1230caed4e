"""Parse and validate a scoring request: MLflow's protocol, checked against the data contract.

Existing MLflow clients keep working because the gateway accepts the four JSON payloads of
`mlflow models serve` (dataframe_split, dataframe_records, instances, inputs) and `text/csv`
(SageMaker's other common content type). Each request is validated here before it reaches a
model: a bad request gets a 400 naming the column and row at fault, and never poisons a
batch shared with other callers nor counts as a model error in a canary's window. Validated
rows come out as tuples in contract column order, ready to stack into one batch.

Every value that would make the model (or the frame built for it) fail is refused here,
because there it is still the caller's mistake: numbers out of the int64 or float range, a
null where pandas has no missing value (int and bool columns), column names that are not
strings. The row cap is checked while reading: a CSV body stops being read at the first
row over the cap (a 6 MiB body of one-value lines is three million rows: decoding them all
before counting took seconds and a gigabyte), a JSON body is counted on its decoded lists
before any per-row work. Bodies too big to parse on the event loop are parsed on a small
pool of their own (`LARGE_PARSES`), so a burst of them queues there instead of taking every
core and all the memory at once while small requests wait.

A missing value is JSON `null` (or an empty CSV field); NaN, which JSON lacks but Python's
encoder writes, is read as the same missing value. Either is accepted only where the contract
says the column is nullable.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson

from slipway.pipelines.config import ColumnRule, DataContract
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

PAYLOAD_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MAX_ROWS_PER_REQUEST = 10_000
# Threads that parse bodies too large for the event loop: more would only share the GIL with
# the loop (small requests slowed 200-fold under four 6 MiB bodies) and multiply peak memory.
LARGE_PARSE_THREADS = 2
LARGE_PARSES = ThreadPoolExecutor(LARGE_PARSE_THREADS, thread_name_prefix="slipway-parse")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Digits beyond which an integer literal cannot be an int64 nor a useful float feature.
_MAX_INT_DIGITS = 20
CSV_TYPES = ("text/csv", "application/csv")
JSONLINES_TYPES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


class BadRequest(SlipwayError, ValueError):
    """The request is malformed; the message tells the caller what to change."""

    exit_code = Exit.USAGE


class _HugeNumber:
    """An integer literal too long to be a feature value (kept so the 400 can name its field:
    a JSON parser on its own would fail the whole body without saying where)."""

    __slots__ = ("digits",)

    def __init__(self, literal: str) -> None:
        self.digits = len(literal.lstrip("-"))

    def __repr__(self) -> str:
        return f"<an integer of {self.digits} digits>"


def _int_or_huge(literal: str) -> int | _HugeNumber:
    return _HugeNumber(literal) if len(literal) > _MAX_INT_DIGITS else int(literal)


def decode_json(body: bytes) -> Any:
    """orjson on the fast path; on its failure the standard parser, which keeps overlong
    integers as markers (named later by the column check) and reads NaN as MLflow does."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body, parse_int=_int_or_huge)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc


def _check_count(n: int) -> None:
    if n > MAX_ROWS_PER_REQUEST:
        raise BadRequest(f"request holds {n} rows; split it (max {MAX_ROWS_PER_REQUEST})")


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
        for i, col in enumerate(cols):
            if not isinstance(col, str):
                raise BadRequest(
                    f"dataframe_split.columns[{i}] must be a column name (a string), got "
                    f"{_show(col)}"
                )
        _check_count(len(data))
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
        _check_count(n)
        return [{c: payload[c][i] for c in payload} for i in range(n)]
    if not isinstance(payload, list):
        raise BadRequest(f"{key} must be a list of rows")
    _check_count(len(payload))
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


def _show(value: Any) -> str:
    """A value for an error message, never a megabyte of it."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _check_value(name: str, rule: ColumnRule, value: Any, row: int) -> Any:
    where = f"column {name!r}, row {row}"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if not rule.nullable:
            raise BadRequest(f"{where}: value is missing, and the data contract forbids nulls")
        if rule.dtype in ("int", "bool"):
            # pandas has no missing int64 or bool: the frame would fail (int) or silently
            # score the null as False (bool). Refuse it rather than guess.
            raise BadRequest(
                f"{where}: null cannot be scored in a {rule.dtype} column (a model takes "
                f"{rule.dtype} features without missing values); send a value, or declare "
                "the column as float in the data contract and retrain"
            )
        return None
    if isinstance(value, _HugeNumber):
        raise BadRequest(f"{where}: {value!r} is out of range for a {rule.dtype} column")
    if rule.dtype in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"{where}: expected a number ({rule.dtype}), got {_show(value)}")
        if rule.dtype == "int":
            if isinstance(value, float):
                if not math.isfinite(value) or not value.is_integer():
                    raise BadRequest(f"{where}: expected an integer, got {_show(value)}")
                if not INT64_MIN <= value < 2.0**63:
                    raise BadRequest(f"{where}: {_show(value)} is out of the int64 range")
                value = int(value)
            elif not INT64_MIN <= value <= INT64_MAX:
                raise BadRequest(f"{where}: {_show(value)} is out of the int64 range")
        else:
            try:
                as_float = float(value)
            except OverflowError:
                raise BadRequest(f"{where}: {_show(value)} is out of the float range") from None
            if not math.isfinite(as_float):
                raise BadRequest(f"{where}: expected a finite number, got {_show(value)}")
        if rule.min is not None and value < rule.min:
            raise BadRequest(f"{where}: {_show(value)} is below the contract minimum {rule.min}")
        if rule.max is not None and value > rule.max:
            raise BadRequest(f"{where}: {_show(value)} is above the contract maximum {rule.max}")
    elif rule.dtype == "bool" and not isinstance(value, bool):
        raise BadRequest(f"{where}: expected true or false, got {_show(value)}")
    elif rule.dtype == "str" and not isinstance(value, str):
        raise BadRequest(f"{where}: expected a string, got {_show(value)}")
    if rule.allowed is not None and value not in rule.allowed:
        raise BadRequest(f"{where}: {_show(value)} is not one of the allowed values {rule.allowed}")
    return value


class _NumericBounds:
    """An all-numeric contract's checks as arrays: one vectorised pass over a request's rows
    (the row-by-row check then runs only to word the 400 of a request that failed)."""

    def __init__(self, contract: DataContract) -> None:
        self.contract = contract  # held: the cache's id() key cannot be reused meanwhile
        rules = list(contract.columns.values())
        self.usable = all(
            r.dtype in ("float", "int") and not r.nullable and r.allowed is None for r in rules
        )
        inf = float("inf")
        self.low = np.array([-inf if r.min is None else r.min for r in rules], dtype="float64")
        self.high = np.array([inf if r.max is None else r.max for r in rules], dtype="float64")
        self.ints = np.array([r.dtype == "int" for r in rules])
        self.any_int = bool(self.ints.any())

    def passes(self, values: list[list[Any]]) -> bool:
        for row in values:
            for value in row:
                kind = type(value)
                if kind is float:
                    continue
                # bool, str, None, markers... and integers float64 cannot hold exactly (the
                # row-by-row check compares those exactly: both must give one verdict).
                if kind is not int or not -_EXACT_INT <= value <= _EXACT_INT:
                    return False
        try:
            array = np.array(values, dtype="float64")
        except OverflowError:
            return False
        return bool(self.rows_within(array).all())

    def rows_within(self, array: np.ndarray) -> np.ndarray:
        """Per row of a (rows, contract columns) float array: does it keep every rule? The
        gateway asks it of a request, `slipway score` of each chunk of a file (NaN, a null
        read from a file, fails it like any non-finite value)."""
        ok = np.asarray(np.isfinite(array).all(axis=1))
        ok &= ((array >= self.low) & (array <= self.high)).all(axis=1)
        if self.any_int:
            ints = array[:, self.ints]
            # 2**63 is exactly representable; anything at or above it is not an int64.
            ok &= ((ints == np.floor(ints)) & (np.abs(ints) < 2.0**63)).all(axis=1)
        return ok


_BOUNDS: dict[int, _NumericBounds] = {}
_EXACT_INT = 2**53


def _bounds(contract: DataContract) -> _NumericBounds:
    found = _BOUNDS.get(id(contract))
    if found is None or found.contract is not contract:
        found = _BOUNDS[id(contract)] = _NumericBounds(contract)
    return found


def numeric_bounds(contract: DataContract) -> _NumericBounds | None:
    """The contract's vectorised check when every column is a non-null number without an
    allowed list (`rows_within`), else None: such rows are checked one by one."""
    bounds = _bounds(contract)
    return bounds if bounds.usable else None


def record_problem(
    record: Mapping[str, Any], contract: DataContract, row: int, *, text: bool = False
) -> str | None:
    """Why one row breaks the contract (the gateway's wording of a 400), or None; `text`:
    the values are CSV fields, read as the gateway reads text/csv."""
    try:
        for name, rule in contract.columns.items():
            value = record.get(name)
            if text and isinstance(value, str):
                value = _csv_value(rule, value)
            _check_value(name, rule, value, row)
    except BadRequest as exc:
        return str(exc)
    return None


def checked_value(rule: ColumnRule, value: Any, row: int, column: str, *, text: bool) -> Any:
    """One value as the contract admits it (a CSV field converted first); BadRequest if not."""
    if text and isinstance(value, str):
        value = _csv_value(rule, value)
    return _check_value(column, rule, value, row)


def check_records(
    records: Sequence[Mapping[str, Any]], contract: DataContract
) -> list[tuple[Any, ...]]:
    """Each record checked against the contract, as a tuple in contract column order."""
    if not records:
        raise BadRequest("request holds no rows")
    _check_count(len(records))
    expected = contract.columns.keys()
    bounds = _bounds(contract)
    if bounds.usable and all(record.keys() == expected for record in records):
        columns = list(expected)
        values = [[record[c] for c in columns] for record in records]
        if bounds.passes(values):
            return [tuple(v) for v in values]
    return check_each(records, contract)


def check_each(
    records: Sequence[Mapping[str, Any]], contract: DataContract
) -> list[tuple[Any, ...]]:
    """The row-by-row check: the reference the vectorised pass must always agree with, and
    the one that words the 400 (column and row at fault)."""
    expected = set(contract.columns)
    items = list(contract.columns.items())
    rows = []
    for i, record in enumerate(records):
        if record.keys() != expected:
            missing = sorted(expected - set(record))
            unknown = sorted(set(record) - expected)
            raise BadRequest(
                f"row {i} does not match the data contract: missing columns {missing}, "
                f"unknown columns {unknown}"
            )
        rows.append(tuple(_check_value(c, rule, record[c], i) for c, rule in items))
    return rows


def parse_rows(body: bytes, contract: DataContract) -> list[tuple[Any, ...]]:
    """Validated rows in contract column order from a JSON body; raise BadRequest saying
    what is wrong."""
    doc = decode_json(body)
    if not isinstance(doc, Mapping):
        raise BadRequest(f"request body must be a JSON object with one of the keys {PAYLOAD_KEYS}")
    keys = [k for k in PAYLOAD_KEYS if k in doc]
    if len(keys) != 1:
        raise BadRequest(
            f"request must carry exactly one of {PAYLOAD_KEYS}, got {sorted(doc)[:10]}; e.g. "
            '{"dataframe_split": {"columns": [...], "data": [[...]]}}'
        )
    records = _records_from(doc[keys[0]], list(contract.columns), keys[0])
    return check_records(records, contract)


def _csv_value(rule: ColumnRule, text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    if rule.dtype == "str":
        return text
    if rule.dtype == "bool":
        lowered = text.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    try:
        number = float(text) if rule.dtype == "float" else _int_or_huge(text)
    except ValueError:
        try:  # "3.0" in an int column: let the column check judge it as a number
            number = float(text)
        except ValueError:
            return text  # the column check names it as not a number
    return number


def parse_csv(body: bytes, contract: DataContract) -> list[tuple[Any, ...]]:
    """Rows from `text/csv`: a header row naming the contract's columns (MLflow's form), or
    no header and the values in contract column order (SageMaker's built-in form)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"CSV body is not UTF-8: {exc}") from exc
    columns = list(contract.columns)
    try:
        # Read at most one row past the cap (plus a header): the rest is never decoded.
        lines = list(
            itertools.islice(
                (line for line in csv.reader(io.StringIO(text)) if line),
                MAX_ROWS_PER_REQUEST + 2,
            )
        )
    except csv.Error as exc:
        raise BadRequest(f"request body is not valid CSV: {exc}") from exc
    if lines and set(c.strip() for c in lines[0]) & set(columns):
        header = [c.strip() for c in lines[0]]
        lines = lines[1:]
    else:
        header = columns
    if len(lines) > MAX_ROWS_PER_REQUEST:
        raise BadRequest(
            f"request holds more than {MAX_ROWS_PER_REQUEST} rows; split it "
            f"(max {MAX_ROWS_PER_REQUEST})"
        )
    records = []
    for i, line in enumerate(lines):
        if len(line) != len(header):
            raise BadRequest(
                f"CSV row {i} has {len(line)} values; expected {len(header)} "
                f"(one per column: {header[:3]}...)"
            )
        records.append(dict(zip(header, line, strict=True)))
    rules = contract.columns
    return check_records(
        [{c: _csv_value(rules[c], v) if c in rules else v for c, v in r.items()} for r in records],
        contract,
    )


def from_text(rule: ColumnRule, text: str) -> Any:
    """A CSV field as the contract's column reads it ("" is a null, "abc" stays text and is
    then refused by the column check)."""
    return _csv_value(rule, text)


def parse_jsonlines(body: bytes, contract: DataContract) -> list[tuple[Any, ...]]:
    """Rows from JSON Lines (SageMaker Batch Transform's other line format): one object of
    column -> value, or one list of values in contract column order, per line."""
    columns = list(contract.columns)
    records: list[Mapping[str, Any]] = []
    for i, line in enumerate(body.splitlines()):
        if not line.strip():
            continue
        doc = decode_json(line)
        if isinstance(doc, list) and len(doc) == len(columns):
            doc = dict(zip(columns, doc, strict=True))
        if not isinstance(doc, Mapping):
            raise BadRequest(
                f"JSON Lines line {i} must be an object of column -> value, or a list of "
                f"{len(columns)} values in contract order"
            )
        records.append(doc)
    return check_records(records, contract)


def parse_body(body: bytes, content_type: str, contract: DataContract) -> list[tuple[Any, ...]]:
    """Dispatch on the request's Content-Type: CSV or JSON Lines when it says so, JSON
    otherwise (what the laptop gateway always accepted, whatever the client sent as its
    type)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in CSV_TYPES:
        return parse_csv(body, contract)
    if mime in JSONLINES_TYPES:
        return parse_jsonlines(body, contract)
    return parse_rows(body, contract)
