"""The batch pipeline's steps as plain functions: plan the shards, score one, merge them all.

Each step runs in its own pod on a cluster, so nothing crosses steps through a local disk:
the shards' outputs and manifests go to a work directory beside the output (`<output>.parts/`,
on S3 when the output is), and the steps pass each other only short strings. That is also
how the merge learns what the shards did without `dsl.Collected`, which the open-source
Kubeflow backend long did not run (artifacts still cannot be collected): it reads the
manifests the plan named (batch/kubeflow.py says more).

One model for the whole file: the plan resolves the alias once and every shard scores with
that version number. The rejected share is judged on the whole file at the merge, which
publishes the output, or nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from slipway.pipelines.batch import lineage
from slipway.pipelines.batch.files import Sink, filesystem, open_source, row_group_sizes
from slipway.pipelines.batch.scoring import (
    DRIFT_SAMPLE,
    BatchResult,
    RejectedBatch,
    default_quarantine,
    score_file,
)
from slipway.pipelines.config import load_config

PLAN_FILE = "plan.json"
PARTS_SUFFIX = ".parts"


@dataclass(frozen=True)
class Shard:
    index: int
    row_groups: tuple[int, ...]
    first_row: int
    rows: int


@dataclass(frozen=True)
class ShardManifest:
    """What one shard did, written beside its outputs for the merge to read."""

    index: int
    output: str
    quarantine: str
    rows_in: int
    scored: int
    quarantined: int
    seconds: float
    reasons: dict[str, int]
    sample: list[Any]


def work_dir_for(output: str) -> str:
    return output + PARTS_SUFFIX


def _use_registry(tracking_uri: str) -> None:
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri


def _write_json(location: str, document: Any) -> None:
    handle, path = filesystem(location)
    if "://" not in location:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with handle.open_output_stream(path) as out:
        out.write(json.dumps(document).encode())


def _read_json(location: str) -> Any:
    handle, path = filesystem(location)
    with handle.open_input_stream(path) as raw:
        return json.loads(raw.read().decode())


def split(sizes: list[int], shards: int) -> list[Shard]:
    """Row groups into at most `shards` contiguous shards of about equal rows."""
    total = sum(sizes)
    wanted = max(1, min(shards, len(sizes)))
    out: list[Shard] = []
    groups: list[int] = []
    first = rows = 0
    for i, size in enumerate(sizes):
        groups.append(i)
        rows += size
        boundary = total * (len(out) + 1) / wanted
        if first + rows >= boundary and len(out) < wanted - 1:
            out.append(Shard(len(out), tuple(groups), first, rows))
            first, groups, rows = first + rows, [], 0
    if groups:
        out.append(Shard(len(out), tuple(groups), first, rows))
    return out


def plan(
    project_root: str, input: str, output: str, version: str, alias: str, tracking_uri: str = ""
) -> tuple[str, str, list[str]]:
    """Resolve the version once; shard the input by row group (a CSV is first rewritten as
    Parquet in the work directory, one row group per [batch] chunk_rows). Returns the
    version, the Parquet file the shards read and the shards (JSON)."""
    _use_registry(tracking_uri)
    root = Path(project_root)
    config = load_config(root)
    ref = lineage.resolve(root, config, version or None, alias or None)
    work = work_dir_for(output)
    source = open_source(input)
    parquet = input
    if source.format == "csv":
        parquet = f"{work}/input.parquet"
        sink = Sink(parquet)
        for chunk in source.chunks(config.batch.chunk_rows):
            sink.write(chunk)
        sink.publish()
    shards = split(row_group_sizes(parquet), config.batch.shards)
    _write_json(f"{work}/{PLAN_FILE}", {"version": ref.version, "shards": len(shards)})
    return ref.version, parquet, [json.dumps(asdict(s)) for s in shards]


def score_shard(
    project_root: str, source: str, output: str, shard: str, version: str, tracking_uri: str = ""
) -> str:
    """Score one shard's row groups into the work directory; returns its manifest's path."""
    _use_registry(tracking_uri)
    root = Path(project_root)
    config = load_config(root)
    spec = json.loads(shard)
    work = work_dir_for(output)
    from slipway.pipelines.batch.job import plan_for

    part = f"{work}/part-{spec['index']:04d}.parquet"
    batch_plan = replace(
        plan_for(config, source, part, f"{work}/quarantine-{spec['index']:04d}.parquet"),
        row_groups=tuple(spec["row_groups"]),
        first_row=int(spec["first_row"]),
        judge_rejected=False,
    )
    ref = lineage.resolve(root, config, version, None)
    model = lineage.load(root, ref)
    result = score_file(batch_plan, ref, model.predict, seed=int(spec["index"]))
    keep = max(1, DRIFT_SAMPLE // max(1, config.batch.shards))
    manifest = ShardManifest(
        index=int(spec["index"]),
        output=part,
        quarantine=batch_plan.quarantine if result.quarantined else "",
        rows_in=result.rows_in,
        scored=result.scored,
        quarantined=result.quarantined,
        seconds=result.seconds,
        reasons=result.reasons,
        sample=result.prediction_sample[:keep],
    )
    location = f"{work}/manifest-{spec['index']:04d}.json"
    _write_json(location, asdict(manifest))
    return location


def _copy_parts(parts: list[str], sink: Sink) -> None:
    import pyarrow.parquet as pq

    for part in parts:
        handle, path = filesystem(part)
        with handle.open_input_file(path) as raw:
            for batch in pq.ParquetFile(raw).iter_batches():
                sink.write(batch.to_pandas())


def merge(project_root: str, input: str, output: str, version: str, tracking_uri: str = "") -> str:
    """Judge the whole file's rejected share; publish the output and quarantine (or nothing),
    record the batch (MLflow run, audit entry), remove the work directory. Returns the
    summary as JSON; raises RejectedBatch (nothing published) above the limit."""
    _use_registry(tracking_uri)
    root = Path(project_root)
    config = load_config(root)
    work = work_dir_for(output)
    planned = _read_json(f"{work}/{PLAN_FILE}")
    manifests = [
        ShardManifest(**_read_json(f"{work}/manifest-{i:04d}.json"))
        for i in range(int(planned["shards"]))
    ]
    ref = lineage.resolve(root, config, version, None)
    quarantine = default_quarantine(output)
    result = BatchResult(input, output, quarantine, ref)
    for m in manifests:
        result.rows_in += m.rows_in
        result.scored += m.scored
        result.quarantined += m.quarantined
        result.seconds = max(result.seconds, m.seconds)
        result.prediction_sample += m.sample
        for reason, count in m.reasons.items():
            result.reasons[reason] = result.reasons.get(reason, 0) + count
    limit = config.batch.max_rejected_fraction
    try:
        if result.rejected_fraction > limit:
            lineage.record(root, config, result, None, where="kubeflow")
            raise RejectedBatch.of(result, limit)
        outputs, bad = Sink(output), Sink(quarantine)
        _copy_parts([m.output for m in manifests if m.scored], outputs)
        _copy_parts([m.quarantine for m in manifests if m.quarantine], bad)
        outputs.publish()
        bad.publish()
        result.published = True
    finally:
        _remove(work)
    model = lineage.load(root, ref)
    drift = lineage.prediction_psi(lineage.reference_predictions(root, config, model), result)
    run_id = lineage.record(root, config, result, drift, where="kubeflow")
    return json.dumps(
        {
            "rows_in": result.rows_in,
            "scored": result.scored,
            "quarantined": result.quarantined,
            "version": ref.version,
            "run_id": run_id,
            "prediction_psi": drift,
        }
    )


def _remove(work: str) -> None:
    handle, path = filesystem(work)
    with contextlib.suppress(FileNotFoundError, OSError):
        handle.delete_dir(path)
