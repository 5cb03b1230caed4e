"""Score a file against the data contract in chunks: predictions out, bad rows quarantined.

The same core runs on every path: `slipway score` on a laptop, each shard of the Kubeflow
batch pipeline, and (row by row, through the gateway) SageMaker Batch Transform. Each chunk
is checked with the gateway's vectorised contract check (serving.parsing.numeric_bounds), so
a row is accepted in a batch exactly when the gateway would accept it in a request; only the
rejected rows are checked one by one, to word their reason the way the gateway's 400 does.

Nothing is published until the whole file is read: predictions and quarantine go to
`.partial` files, moved into place at the end. When the rejected share is above
`[batch] max_rejected_fraction`, both are discarded and the job fails (exit 4).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from slipway.pipelines.batch.files import Sink, Source, open_source
from slipway.pipelines.config import PANDAS_DTYPES, Batch, DataContract
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.serving import parsing

if TYPE_CHECKING:
    import pandas as pd

REASON = "reason"
ROW = "row"
DRIFT_SAMPLE = 20_000  # predictions kept (uniformly at random) for the drift reading


class RejectedBatch(SlipwayError):
    """Too many rows broke the data contract; nothing was published."""

    exit_code = Exit.DATA_INVALID

    def __init__(self, message: str, result: BatchResult) -> None:
        super().__init__(message)
        self.result = result  # what was read before the refusal, for the record

    @classmethod
    def of(cls, result: BatchResult, limit: float) -> RejectedBatch:
        """The refusal every path gives (laptop, Kubeflow merge, Batch Transform)."""
        return cls(
            f"{result.quarantined} of {result.rows_in} rows ({result.rejected_fraction:.1%}) "
            f"break the data contract, above [batch] max_rejected_fraction ({limit:.1%}): "
            f"nothing was published. Most common: {top_reasons(result.reasons)}. Fix the "
            "extract, or raise the limit if these rows are expected",
            result,
        )


class BatchInputError(SlipwayError):
    """The file cannot be scored at all (contract or id columns missing)."""

    exit_code = Exit.DATA_INVALID


@dataclass(frozen=True)
class ModelRef:
    """The one model a batch is scored with: its lineage goes on every output row."""

    name: str
    version: str
    run_id: str
    uri: str  # where it was loaded from (models:/name/version, or a directory)


@dataclass(frozen=True)
class BatchPlan:
    """What to score, with what, and where the results go."""

    input: str
    output: str
    quarantine: str
    settings: Batch
    contract: DataContract
    # One shard of a Parquet file (the Kubeflow pipeline's): its row groups, and the file
    # row of its first row, so `row` in the outputs is the row's place in the whole file.
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0
    # A shard publishes what it scored; the whole file's rejected share is judged on merge.
    judge_rejected: bool = True


@dataclass
class BatchResult:
    """What a finished (or refused) batch did; `published` is False when it was refused."""

    input: str
    output: str
    quarantine: str
    model: ModelRef
    rows_in: int = 0
    scored: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    published: bool = False
    scored_at: str = ""
    reasons: dict[str, int] = field(default_factory=dict)  # first words of a reason -> rows
    prediction_sample: list[Any] = field(default_factory=list)

    @property
    def rejected_fraction(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[BatchResult], None]


def default_quarantine(output: str) -> str:
    """`scores.parquet` -> `scores.quarantine.parquet`, beside the output."""
    stem = output[: -len(".parquet")] if output.lower().endswith(".parquet") else output
    return f"{stem}.quarantine.parquet"


class _Checker:
    """One chunk -> (the model's input frame for its good rows, their mask, the rejected
    rows' reasons), with the gateway's rules."""

    def __init__(self, contract: DataContract) -> None:
        self.contract = contract
        self.columns = list(contract.columns)
        self.bounds = parsing.numeric_bounds(contract)
        self.ints = [c for c, r in contract.columns.items() if r.dtype == "int"]
        self.dtypes = {c: PANDAS_DTYPES[r.dtype] for c, r in contract.columns.items()}

    def check(
        self, chunk: pd.DataFrame, first_row: int, text: bool
    ) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
        import pandas as pd

        if self.bounds is not None:
            array = self._numbers(chunk)
            ok = self.bounds.rows_within(array)
            bad = np.flatnonzero(~ok)
            reasons = self._reasons(chunk, bad, first_row, text)
            good = pd.DataFrame(array[ok], columns=self.columns)
            if self.ints:
                good = good.astype(dict.fromkeys(self.ints, "int64"))
            return good, ok, reasons
        ok = np.ones(len(chunk), dtype=bool)
        rows: list[tuple[Any, ...]] = []
        reasons = []
        records: list[dict[str, Any]] = chunk[self.columns].to_dict(orient="records")  # pyright: ignore[reportCallIssue, reportAssignmentType]
        for i, record in enumerate(records):
            try:
                rows.append(
                    tuple(
                        parsing.checked_value(rule, record[c], first_row + i, c, text=text)
                        for c, rule in self.contract.columns.items()
                    )
                )
            except parsing.BadRequest as exc:
                ok[i] = False
                reasons.append(str(exc))
        good = pd.DataFrame.from_records(rows, columns=self.columns).astype(self.dtypes)
        return good, ok, reasons

    def _numbers(self, chunk: pd.DataFrame) -> np.ndarray:
        import pandas as pd

        out = np.empty((len(chunk), len(self.columns)), dtype="float64")
        for j, name in enumerate(self.columns):
            column = cast("pd.Series", chunk[name])
            if column.dtype == bool:  # the gateway refuses true/false for a number too
                out[:, j] = np.nan
                continue
            if column.dtype == object or isinstance(column.dtype, pd.StringDtype):
                # text: "abc" -> NaN -> rejected (its reason is worded from the text)
                column = pd.Series(pd.to_numeric(column, errors="coerce"), index=column.index)
            out[:, j] = column.to_numpy(dtype="float64", na_value=np.nan)
        return out

    def _reasons(
        self, chunk: pd.DataFrame, bad: np.ndarray, first_row: int, text: bool
    ) -> list[str]:
        """The rejected rows' reasons, worded by the gateway's row check (one frame slice for
        all of them: a cell at a time costs ~0.1 ms, thousands of times a chunk)."""
        if not len(bad):
            return []
        records: list[dict[str, Any]] = chunk.iloc[bad][self.columns].to_dict(orient="records")  # pyright: ignore[reportCallIssue, reportAssignmentType]
        return [
            parsing.record_problem(
                {c: _native(v) for c, v in record.items()},
                self.contract,
                first_row + int(i),
                text=text,
            )
            or f"row {first_row + int(i)}: not a number the model can take"
            for i, record in zip(bad, records, strict=True)
        ]


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _reason_key(reason: str) -> str:
    """'column 'x', row 12: value is missing...' -> "column 'x': value is missing": the
    summary counts reasons without their row numbers."""
    head, _, rest = reason.partition(": ")
    column = head.split(", row", 1)[0]
    return f"{column}: {rest.split(',', 1)[0][:80]}" if rest else reason[:80]


def check_columns(source: Source, plan: BatchPlan) -> None:
    missing = [c for c in plan.contract.columns if c not in source.columns]
    ids = [c for c in plan.settings.id_columns if c not in source.columns]
    if missing or ids:
        parts = []
        if missing:
            parts.append(f"contract columns {missing}")
        if ids:
            parts.append(f"[batch] id_columns {ids}")
        raise BatchInputError(
            f"{source.location} lacks {' and '.join(parts)}; it has {list(source.columns)[:8]}"
            f"{'...' if len(source.columns) > 8 else ''}. Score a file with the columns "
            "slipway.toml names, or fix [batch] id_columns"
        )


def score_file(
    plan: BatchPlan,
    model: ModelRef,
    predict: Callable[[pd.DataFrame], Any],
    *,
    progress: Progress | None = None,
    seed: int = 0,
) -> BatchResult:
    """Score `plan.input` with `predict`; publish predictions and quarantine, or raise
    RejectedBatch (nothing published) when too many rows break the contract."""
    import pandas as pd

    started = time.perf_counter()
    source = open_source(plan.input)
    check_columns(source, plan)
    checker = _Checker(plan.contract)
    text = source.format == "csv"
    scored_at = datetime.now(UTC).replace(microsecond=0)
    result = BatchResult(
        plan.input, plan.output, plan.quarantine, model, scored_at=scored_at.isoformat()
    )
    predictions_out, quarantine_out = Sink(plan.output), Sink(plan.quarantine)
    ids = list(plan.settings.id_columns)
    rng = np.random.default_rng(seed)
    sample = _Reservoir(DRIFT_SAMPLE, rng)
    limit = plan.settings.max_rejected_fraction if plan.judge_rejected else 1.0
    total = source.rows if plan.row_groups is None else None
    try:
        for chunk in source.chunks(plan.settings.chunk_rows, plan.row_groups):
            first = plan.first_row + result.rows_in
            good, ok, reasons = checker.check(chunk, first, text)
            positions = np.arange(first, first + len(chunk), dtype="int64")
            if len(good):
                predicted = np.asarray(predict(good))
                if predicted.ndim > 1 and predicted.shape[1] == 1:
                    predicted = predicted[:, 0]
                out = chunk.loc[ok, ids].reset_index(drop=True) if ids else pd.DataFrame()
                out[ROW] = positions[ok]
                out["prediction"] = predicted
                out["model_name"] = model.name
                out["model_version"] = model.version
                out["model_run_id"] = model.run_id
                out["scored_at"] = pd.Timestamp(scored_at)
                predictions_out.write(out)
                sample.add(predicted)
            if reasons:
                bad = chunk.loc[~ok].reset_index(drop=True)
                bad.insert(0, ROW, positions[~ok])
                bad[REASON] = reasons
                quarantine_out.write(bad)
                for reason in reasons:
                    key = _reason_key(reason)
                    result.reasons[key] = result.reasons.get(key, 0) + 1
            result.rows_in += len(chunk)
            result.scored += int(ok.sum())
            result.quarantined += len(reasons)
            result.seconds = time.perf_counter() - started
            if total and result.quarantined > limit * total:
                break  # already certain to be refused: stop reading
            if progress is not None:
                progress(result)
        result.prediction_sample = sample.values()
        if total and result.quarantined > limit * total:
            result.rows_in = total  # the fraction is judged on the whole file
        if result.rows_in and result.rejected_fraction > limit:
            raise RejectedBatch.of(result, limit)
        predictions_out.publish()
        quarantine_out.publish()
        result.published = True
    except BaseException:
        predictions_out.discard()
        quarantine_out.discard()
        raise
    finally:
        result.seconds = time.perf_counter() - started
    return result


def top_reasons(reasons: dict[str, int]) -> str:
    ranked = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
    return "; ".join(f"{reason} ({count} rows)" for reason, count in ranked) or "none"


class _Reservoir:
    """A uniform random sample of a stream's values, kept at `size` (Algorithm R by keys)."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size, self.rng = size, rng
        self.keys = np.empty(0)
        self.kept = np.empty(0, dtype=object)

    def add(self, values: np.ndarray) -> None:
        keys = np.concatenate([self.keys, self.rng.random(len(values))])
        kept = np.concatenate([self.kept, values.astype(object)])
        if len(keys) > self.size:
            top = np.argpartition(keys, self.size)[: self.size]
            keys, kept = keys[top], kept[top]
        self.keys, self.kept = keys, kept

    def values(self) -> list[Any]:
        return [_native(v) for v in self.kept.tolist()]
