"""Open Inference Protocol (v2) tensors <-> the gateway's contract-checked rows.

A request reaches the model in one of the two forms KServe's clients send:

- one input per contract column (`"parameters": {"content_type": "pd"}`, what KServe's MLflow
  runtime takes): each input's name is a column, its shape `[n]` or `[n, 1]`;
- one 2-D tensor `[n, k]` whose k values per row are the contract's columns in order (what
  a client holding a feature matrix sends).

Either way the values are checked against the tensor's declared datatype and then against the
data contract by the same `check_records` MLflow's /invocations uses, so a bad value gets the
same 400 wording whichever protocol carried it. Outputs are typed by the task: a regressor's
are FP64, a classifier's the classes' own type (INT64, BOOL or BYTES).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slipway.pipelines.config import DataContract, Task
from slipway.pipelines.serving.parsing import BadRequest, check_records

OUTPUT_NAME = "predict"
INT_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})
DATATYPES = INT_TYPES | FLOAT_TYPES | {"BOOL", "BYTES"}
CONTRACT_DATATYPE = {"float": "FP64", "int": "INT64", "bool": "BOOL", "str": "BYTES"}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor's metadata as OIP's model metadata lists it."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class InferRequest:
    """A decoded infer request: its rows, in contract column order, and what to echo."""

    rows: list[tuple[Any, ...]]
    request_id: str | None
    per_column: bool


def input_specs(contract: DataContract) -> list[TensorSpec]:
    """The per-column inputs a client sends (the form KServe's MLflow runtime takes)."""
    return [
        TensorSpec(name, CONTRACT_DATATYPE[rule.dtype], (-1,))
        for name, rule in contract.columns.items()
    ]


def output_spec(task: Task, seen: str | None = None) -> TensorSpec:
    """The output tensor: FP64 for a regressor; for a classifier, the datatype its classes
    were last answered in (INT64 until a request showed otherwise)."""
    if task == "regression":
        return TensorSpec(OUTPUT_NAME, "FP64", (-1,))
    return TensorSpec(OUTPUT_NAME, seen or "INT64", (-1,))


def _flatten(data: Any, where: str) -> list[Any]:
    """A tensor's data, flat in row-major order (OIP allows nested or flat lists)."""
    if not isinstance(data, list):
        raise BadRequest(f"{where}: 'data' must be a list")
    if not any(isinstance(x, list) for x in data):
        return data
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], StopIteration)
        if item is StopIteration:
            stack.pop()
        elif isinstance(item, list):
            if len(stack) > 8:
                raise BadRequest(f"{where}: 'data' is nested deeper than any tensor here")
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


def _check_datatype(datatype: str, values: Sequence[Any], where: str) -> None:
    """Values as the declared datatype promises: a client's mislabelled tensor is its bug."""
    for value in values:
        if value is None:  # a null: the data contract says whether the column takes one
            continue
        if datatype == "BOOL":
            ok = isinstance(value, bool)
        elif datatype == "BYTES":
            ok = isinstance(value, str)
        elif datatype in INT_TYPES:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok or type(value).__name__ == "_HugeNumber"  # named by the contract check
        if not ok:
            raise BadRequest(f"{where}: {value!r} is not a {datatype} value")


def _tensor(raw: Any, index: int) -> tuple[str, list[int], str, list[Any]]:
    if not isinstance(raw, Mapping):
        raise BadRequest(f"inputs[{index}] must be an object with name, shape, datatype, data")
    name, shape, datatype = raw.get("name"), raw.get("shape"), raw.get("datatype")
    where = f"input {name!r}" if isinstance(name, str) else f"inputs[{index}]"
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}: 'name' must be a non-empty string")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadRequest(f"{where}: 'shape' must be a list of non-negative integers")
    if datatype not in DATATYPES:
        raise BadRequest(f"{where}: 'datatype' must be one of {sorted(DATATYPES)}")
    if "data" not in raw:
        raise BadRequest(
            f"{where}: 'data' is missing (the binary tensor extension is not supported: "
            "send the values as JSON)"
        )
    values = _flatten(raw["data"], where)
    if len(values) != math.prod(shape):
        raise BadRequest(
            f"{where}: shape {shape} holds {math.prod(shape)} values, data has {len(values)}"
        )
    _check_datatype(datatype, values, where)
    return name, shape, datatype, values


def decode_infer(doc: Any, contract: DataContract) -> InferRequest:
    """Rows from an infer request body (already JSON-decoded); BadRequest says what to fix."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("inputs"), list):
        raise BadRequest(
            'an infer request is {"inputs": [{"name", "shape", "datatype", "data"}, ...]}'
        )
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise BadRequest("'parameters' must be an object")
    wanted = doc.get("outputs")
    if wanted is not None:
        names = [o.get("name") if isinstance(o, Mapping) else o for o in wanted]
        if not isinstance(wanted, list) or any(n != OUTPUT_NAME for n in names):
            raise BadRequest(f"this model has one output, {OUTPUT_NAME!r}; asked for {names}")
    tensors = [_tensor(raw, i) for i, raw in enumerate(doc["inputs"])]
    if not tensors:
        raise BadRequest("request holds no inputs")
    columns = list(contract.columns)
    name, shape, _, values = tensors[0]
    per_column = (
        parameters.get("content_type") == "pd"
        or len(tensors) > 1
        or not (len(shape) == 2 and shape[1] == len(columns))
    )
    if not per_column:
        n, k = shape
        records = [dict(zip(columns, values[i * k : (i + 1) * k], strict=True)) for i in range(n)]
        return InferRequest(check_records(records, contract), request_id, False)
    by_name: dict[str, list[Any]] = {}
    for name, shape, _, values in tensors:
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise BadRequest(
                f"input {name!r}: a per-column input has shape [n] or [n, 1], got {shape}; "
                f"send the whole row as one [n, {len(columns)}] tensor instead"
            )
        if name in by_name:
            raise BadRequest(f"input {name!r} is sent twice")
        by_name[name] = values
    missing = [c for c in columns if c not in by_name]
    unknown = sorted(set(by_name) - set(columns))
    if missing or unknown:
        raise BadRequest(
            f"inputs do not match the data contract: missing columns {missing}, unknown "
            f"columns {unknown} (one input per column, or one [n, {len(columns)}] tensor)"
        )
    lengths = {len(v) for v in by_name.values()}
    if len(lengths) != 1:
        raise BadRequest(f"inputs hold different numbers of rows: {sorted(lengths)}")
    n = lengths.pop()
    records = [{c: by_name[c][i] for c in columns} for i in range(n)]
    return InferRequest(check_records(records, contract), request_id, True)


def encode_outputs(task: Task, predictions: list[Any]) -> dict[str, Any]:
    """The output tensor of a batch's predictions, typed by the task."""
    array = np.asarray(predictions)
    shape = list(array.shape) if array.ndim else [len(predictions)]
    kind = array.dtype.kind
    if task == "regression" and kind in "biuf":
        datatype, data = "FP64", array.astype("float64").ravel().tolist()
    elif kind == "b":
        datatype, data = "BOOL", array.ravel().tolist()
    elif kind in "iu":
        datatype, data = "INT64", array.ravel().tolist()
    elif kind == "f":
        datatype, data = "FP64", array.ravel().tolist()
    else:
        datatype, data = "BYTES", [str(v) for v in array.ravel().tolist()]
    return {"name": OUTPUT_NAME, "datatype": datatype, "shape": shape, "data": data}
