"""The serving image under SageMaker Batch Transform: a mini-batch of lines in, a line out each.

A transform job starts the spoke's image with `serve` like an endpoint does, asks
`GET /execution-parameters` how to call it, then POSTs mini-batches to /invocations: with
`SplitType=Line` and `BatchStrategy=MultiRecord` each body is whole lines of the input file,
CSV without a header (values in contract column order) or JSON Lines (one object a line).
`AssembleWith=Line` then writes the answers' lines in the input's order.

A request's 400 would fail the whole job for one bad row, so the transform job sets
`SLIPWAY_TRANSFORM=1` in the container's environment and /invocations answers per line
instead: `{"prediction": ...}` for a row the contract accepts (scored by the gateway's own
batcher and model, with its metrics), `{"rejected": "<reason>"}` for a row it refuses, worded
as the gateway's 400 and `slipway score`'s quarantine word it. `slipway score --env` splits
the job's output into predictions and quarantine, and applies `[batch]
max_rejected_fraction` to the whole file.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from slipway.pipelines.serving import parsing

if TYPE_CHECKING:
    from slipway.pipelines.config import DataContract
    from slipway.pipelines.serving.gateway import Gateway

MAX_PAYLOAD_MB = 6  # SageMaker's default and the most a MultiRecord mini-batch should carry
BATCH_STRATEGY = "MULTI_RECORD"


def execution_parameters(workers: int) -> dict[str, Any]:
    """What `GET /execution-parameters` answers (the names SageMaker's containers use)."""
    return {
        "MaxConcurrentTransforms": workers,
        "BatchStrategy": BATCH_STRATEGY,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
    }


def split_lines(body: bytes, content_type: str, columns: list[str]) -> list[Any]:
    """Each line of a mini-batch as a record (column -> value, CSV fields as text), or the
    reason it is not one (a str). A CSV header line is refused like any bad line: Batch
    Transform splits a file by lines, so a header would reach one mini-batch only."""
    mime = content_type.split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    records: list[Any] = []
    if mime in parsing.JSONLINES_TYPES or mime == "application/json":
        for i, line in enumerate(lines):
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                records.append(f"line {i}: not valid JSON ({exc})")
                continue
            if isinstance(doc, list) and len(doc) == len(columns):
                doc = dict(zip(columns, doc, strict=True))
            if not isinstance(doc, dict):
                records.append(
                    f"line {i}: expected an object of column -> value, or a list of "
                    f"{len(columns)} values in contract order"
                )
                continue
            records.append(doc)
        return records
    for i, fields in enumerate(csv.reader(io.StringIO("\n".join(lines)))):
        if len(fields) != len(columns):
            records.append(
                f"line {i}: {len(fields)} values; expected {len(columns)} in contract order "
                f"({', '.join(columns[:3])}...), without a header"
            )
            continue
        records.append(dict(zip(columns, fields, strict=True)))
    return records


def check_lines(
    records: list[Any], contract: DataContract, text: bool
) -> tuple[list[tuple[Any, ...]], list[str | None]]:
    """The rows to score, and per line None (scored) or the reason it was refused.

    The gateway's own check judges the whole mini-batch at once (vectorised for a numeric
    contract); only a mini-batch it refuses is judged line by line, for each line's reason.
    Keys beyond the contract's columns (ids riding along) are left out, not refused."""
    rules = contract.columns
    candidates: list[dict[str, Any] | str] = []
    for i, record in enumerate(records):
        if isinstance(record, str):
            candidates.append(record)
            continue
        missing = [c for c in rules if c not in record]
        if missing:
            candidates.append(f"line {i}: missing contract columns {missing}")
            continue
        candidates.append(
            {
                c: parsing.from_text(rule, v) if text and isinstance(v, str) else v
                for c, rule in rules.items()
                for v in (record[c],)
            }
        )
    if candidates and all(isinstance(c, dict) for c in candidates):
        try:
            rows = []
            for start in range(0, len(candidates), parsing.MAX_ROWS_PER_REQUEST):
                part = candidates[start : start + parsing.MAX_ROWS_PER_REQUEST]
                rows += parsing.check_records(part, contract)  # pyright: ignore[reportArgumentType]
            return rows, [None] * len(rows)
        except parsing.BadRequest:
            pass  # at least one bad line: judge them one by one
    rows = []
    reasons: list[str | None] = []
    for i, candidate in enumerate(candidates):
        if isinstance(candidate, str):
            reasons.append(candidate)
            continue
        try:
            rows.append(
                tuple(
                    parsing.checked_value(rule, candidate[c], i, c, text=False)
                    for c, rule in rules.items()
                )
            )
        except parsing.BadRequest as exc:
            reasons.append(str(exc))
            continue
        reasons.append(None)
    return rows, reasons


def transform_invocations(gateway: Gateway) -> Any:
    """The /invocations handler of a transform job's container."""
    from slipway.pipelines.serving.gateway import CHAMPION

    contract = gateway.config.data.contract
    columns = list(contract.columns)
    limit = MAX_PAYLOAD_MB * 2**20

    async def invocations(request: Request) -> Response:
        body = await request.body()
        if len(body) > limit:
            return _error(413, f"mini-batch over {MAX_PAYLOAD_MB} MB: set MaxPayloadInMB lower")
        variant = gateway.variants.get(CHAMPION)
        if not gateway.ready() or variant is None:
            return _error(503, "the model is still loading; retry shortly")
        content_type = request.headers.get("content-type", "text/csv")
        records = split_lines(body, content_type, columns)
        text = not content_type.lower().startswith(("application/json", "application/x-json"))
        rows, reasons = check_lines(records, contract, text)
        predictions: list[Any] = []
        for start in range(0, len(rows), parsing.MAX_ROWS_PER_REQUEST):
            predictions += await gateway.score(
                variant, rows[start : start + parsing.MAX_ROWS_PER_REQUEST]
            )
        scored = iter(predictions)
        out = [
            orjson.dumps(
                {"prediction": next(scored)} if reason is None else {"rejected": reason},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            for reason in reasons
        ]
        return Response(
            b"\n".join(out) + b"\n",
            media_type="application/jsonlines",
            headers={"x-slipway-version": variant.version},
        )

    return invocations


def _error(status: int, message: str) -> Response:
    return Response(orjson.dumps({"message": message}), status, media_type="application/json")
