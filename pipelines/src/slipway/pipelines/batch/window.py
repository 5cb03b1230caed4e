"""The rows batch jobs scored in a window, as the current side of a drift report.

It lives with the batch stage, not with monitoring: it reads what batch jobs write, and a
stage imports only the stages below it (governance defines the MonitorSource protocol and
the window's shape; `BatchOutputs` here is the batch stage's implementation of it).

Every batch path (`slipway score` on a laptop, the Kubeflow batch pipeline's merge step,
SageMaker Batch Transform) records its job the same way (batch.lineage.record): an MLflow
run in the spoke's experiment tagged `slipway.kind = batch`, FINISHED when it published,
with the `input` and `output` locations as parameters. The MLflow run is the record read
here, not the audit entry: the Kubeflow pods always reach the registry (the pipeline passes
its URI), while the team's state database is not theirs to write.

A job belongs to the window when its run started within it (the job's recorded time). Its
output holds the scored rows' file positions (`row`), ids and predictions, not their
features, so the features are read back from its input at those positions: the input a
batch was scored from is the table the team keeps (a local path or s3://). A job whose
input or output can no longer be read is skipped and named, not fatal: the window is judged
on the rest. At most `[monitoring] sample_capacity` rows are kept, drawn at random across
the window's jobs in proportion to their size, reading each file chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

import numpy as np

from slipway.pipelines.batch.files import BatchFileError, open_source
from slipway.pipelines.batch.lineage import KIND_BATCH, TAG_KIND, TAG_MODEL_VERSION
from slipway.pipelines.batch.scoring import ROW
from slipway.pipelines.governance.monitor_sources import BATCH, Window
from slipway.pipelines.registry import CHAMPION

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from slipway.pipelines.config import SpokeConfig


@dataclass(frozen=True)
class BatchJob:
    """One published batch, as its MLflow run recorded it."""

    run_id: str
    at: float  # epoch seconds: when the job's run started
    input: str
    output: str
    version: str
    scored: int


@dataclass
class BatchWindow:
    rows: pd.DataFrame
    jobs: list[BatchJob] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # run id -> why


def jobs_in_window(client: MlflowClient, model: str, start: float, now: float) -> list[BatchJob]:
    """The published batch jobs whose runs started in [start, now], oldest first."""
    experiment = client.get_experiment_by_name(model)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.`{TAG_KIND}` = '{KIND_BATCH}' and attributes.status = 'FINISHED' "
            f"and attributes.start_time >= {int(start * 1000)} "
            f"and attributes.start_time <= {int(now * 1000)}"
        ),
        order_by=["attributes.start_time ASC"],
        max_results=1000,
    )
    return [
        BatchJob(
            run_id=run.info.run_id,
            at=run.info.start_time / 1000,
            input=run.data.params.get("input", ""),
            output=run.data.params.get("output", ""),
            version=run.data.tags.get(TAG_MODEL_VERSION, ""),
            scored=int(run.data.metrics.get("scored", 0)),
        )
        for run in runs
        if run.data.params.get("output")
    ]


def _sampled_outputs(
    job: BatchJob, keep: int, chunk_rows: int, ids: list[str], rng: np.random.Generator
) -> pd.DataFrame:
    """`keep` rows of the job's output chosen uniformly (smallest random keys), read a
    chunk at a time: its row positions, predictions and id columns."""
    import pandas as pd

    kept: pd.DataFrame | None = None
    for chunk in open_source(job.output).chunks(chunk_rows):
        part = cast("pd.DataFrame", chunk[[ROW, "prediction", *[c for c in ids if c in chunk]]])
        part = part.copy()
        part["_key"] = rng.random(len(part))
        both = part if kept is None else pd.concat([kept, part], ignore_index=True)
        kept = both.nsmallest(keep, "_key") if len(both) > keep else both
    if kept is None:
        return pd.DataFrame(columns=[ROW, "prediction"])
    return cast("pd.DataFrame", kept.drop(columns="_key").sort_values(ROW))


def _features_at(job: BatchJob, rows: np.ndarray, config: SpokeConfig) -> pd.DataFrame:
    """The contract columns of the input's rows at file positions `rows` (sorted)."""
    import pandas as pd

    contract = config.data.contract
    columns = list(contract.columns)
    found: list[pd.DataFrame] = []
    first = 0
    for chunk in open_source(job.input).chunks(config.batch.chunk_rows):
        positions = np.arange(first, first + len(chunk))
        mask = np.isin(positions, rows)
        if mask.any():
            part = chunk.loc[mask, columns].copy()
            part.insert(0, ROW, positions[mask])
            found.append(part)
        first += len(chunk)
        if first > rows[-1]:
            break
    frame = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=[ROW, *columns])
    for name, rule in contract.columns.items():
        if rule.dtype in ("int", "float"):  # CSV inputs are read as text
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def read_batch_window(
    client: MlflowClient, config: SpokeConfig, start: float, now: float, seed: int = 0
) -> BatchWindow:
    """The window's batch rows in read_samples' shape (features, `_at`, `_variant`,
    `_version`, `_prediction`, plus `[batch] id_columns` for labels)."""
    import pandas as pd

    jobs = jobs_in_window(client, config.model_name, start, now)
    window = BatchWindow(pd.DataFrame(), jobs)
    total = sum(max(job.scored, 1) for job in jobs)
    capacity = config.monitoring.sample_capacity
    ids = list(config.batch.id_columns)
    rng = np.random.default_rng(seed)
    frames: list[pd.DataFrame] = []
    for job in jobs:
        keep = max(1, round(capacity * max(job.scored, 1) / total))
        try:
            outputs = _sampled_outputs(job, keep, config.batch.chunk_rows, ids, rng)
            if outputs.empty:
                continue
            features = _features_at(job, outputs[ROW].to_numpy(dtype="int64"), config)
        except (BatchFileError, OSError, KeyError) as exc:
            window.skipped[job.run_id] = f"{job.output} or {job.input}: {exc}"
            continue
        merged = outputs.merge(features, on=ROW, how="inner", suffixes=("", "_input"))
        frames.append(
            merged.rename(columns={"prediction": "_prediction"}).assign(
                _at=job.at, _variant=CHAMPION, _version=job.version, _run=job.run_id
            )
        )
    if frames:
        window.rows = pd.concat(frames, ignore_index=True).drop(columns=ROW)
    return window


def describe(window: BatchWindow) -> list[str]:
    """What was read, for the person reading the monitor's output."""
    lines = [
        f"batch job {job.run_id[:12]} (v{job.version}, {job.scored} rows scored): {job.output}"
        for job in window.jobs
    ]
    lines += [f"skipped batch job {run[:12]}: {why}" for run, why in window.skipped.items()]
    return lines


@dataclass(frozen=True)
class BatchOutputs:
    """The rows the batch jobs recorded in the last `hours` scored (read_batch_window)."""

    root: Path
    config: SpokeConfig
    hours: float
    name: ClassVar[str] = BATCH

    def read(self, now: float) -> Window:
        from slipway.pipelines.registry import client

        window = read_batch_window(client(self.root), self.config, now - self.hours * 3600, now)
        lines = [
            f"batch: {len(window.rows)} rows sampled from {len(window.jobs)} job(s) recorded "
            f"in the last {self.hours:g} h",
            *describe(window),
        ]
        return Window(window.rows, f"batch jobs of the last {self.hours:g} h", lines)
