"""A whole `slipway score` on this machine: resolve the version, score, measure, record.

Kept apart from the CLI so the Kubeflow pipeline's steps and tests call the same thing.
A refused batch is recorded too (its MLflow run FAILED, an audit entry saying why) before
the refusal is raised: the attempt is part of the table's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slipway.pipelines.batch import lineage
from slipway.pipelines.batch.scoring import (
    BatchPlan,
    BatchResult,
    Progress,
    RejectedBatch,
    default_quarantine,
    score_file,
)
from slipway.pipelines.config import SpokeConfig


@dataclass(frozen=True)
class ScoreOutcome:
    result: BatchResult
    run_id: str
    prediction_psi: float | None


def plan_for(
    config: SpokeConfig, input: str, output: str, quarantine: str | None = None
) -> BatchPlan:
    return BatchPlan(
        input=input,
        output=output,
        quarantine=quarantine or default_quarantine(output),
        settings=config.batch,
        contract=config.data.contract,
    )


def run(
    root: Path,
    config: SpokeConfig,
    plan: BatchPlan,
    *,
    version: str | None = None,
    alias: str | None = None,
    progress: Progress | None = None,
) -> ScoreOutcome:
    ref = lineage.resolve(root, config, version, alias)
    model = lineage.load(root, ref)
    try:
        result = score_file(plan, ref, model.predict, progress=progress)
    except RejectedBatch as refused:
        lineage.record(root, config, refused.result, None)
        raise
    drift = lineage.prediction_psi(lineage.reference_predictions(root, config, model), result)
    run_id = lineage.record(root, config, result, drift)
    return ScoreOutcome(result, run_id, drift)
