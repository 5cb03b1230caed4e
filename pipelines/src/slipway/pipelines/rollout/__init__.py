"""Rollout: shadow, canary steps and guardrails, then promotion or rollback.

Modules: `controller` (the plan and the loop that runs it), `state` (the durable rollout
record), `guardrails` (judging a window), `release` (moving aliases, tagging outcomes),
`pipeline` (the deploy pipeline: the same rollout as KFP steps), `traffic` (replaying
rows), `rehearsal` (registering a deliberately bad challenger), `chart`, `packaging` (a
version as SageMaker takes it) and `status`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines._lazy import lazy_exports

if TYPE_CHECKING:
    from slipway.pipelines.rollout.chart import (
        draw_rollouts,
    )
    from slipway.pipelines.rollout.controller import (
        Controller,
        NotApproved,
        Outcome,
        Plan,
        plan_for,
    )
    from slipway.pipelines.rollout.guardrails import (
        Judgement,
        Thresholds,
        judge,
        psi,
        thresholds_for,
    )
    from slipway.pipelines.rollout.packaging import (
        ModelPackage,
        NotReleasable,
        package_version,
    )
    from slipway.pipelines.rollout.pipeline import (
        DeployPipelineError,
        compile_deploy,
        deploy_pipeline,
    )
    from slipway.pipelines.rollout.release import (
        RejectedPrevious,
        ReleaseError,
        candidate_version,
        promote,
        reject_challenger,
        revert_promotion,
        tag_outcome,
    )
    from slipway.pipelines.rollout.traffic import (
        TrafficReport,
        replay_rows,
        run_traffic,
    )

_EXPORTS = {
    "Controller": "controller",
    "NotApproved": "controller",
    "Outcome": "controller",
    "Plan": "controller",
    "plan_for": "controller",
    "Judgement": "guardrails",
    "Thresholds": "guardrails",
    "judge": "guardrails",
    "psi": "guardrails",
    "thresholds_for": "guardrails",
    "ReleaseError": "release",
    "RejectedPrevious": "release",
    "candidate_version": "release",
    "promote": "release",
    "reject_challenger": "release",
    "revert_promotion": "release",
    "tag_outcome": "release",
    "DeployPipelineError": "pipeline",
    "compile_deploy": "pipeline",
    "deploy_pipeline": "pipeline",
    "TrafficReport": "traffic",
    "replay_rows": "traffic",
    "run_traffic": "traffic",
    "draw_rollouts": "chart",
    "ModelPackage": "packaging",
    "NotReleasable": "packaging",
    "package_version": "packaging",
}
__all__ = [
    "Controller",
    "DeployPipelineError",
    "Judgement",
    "ModelPackage",
    "NotApproved",
    "NotReleasable",
    "Outcome",
    "Plan",
    "RejectedPrevious",
    "ReleaseError",
    "Thresholds",
    "TrafficReport",
    "candidate_version",
    "compile_deploy",
    "deploy_pipeline",
    "draw_rollouts",
    "judge",
    "package_version",
    "plan_for",
    "promote",
    "psi",
    "reject_challenger",
    "replay_rows",
    "revert_promotion",
    "run_traffic",
    "tag_outcome",
    "thresholds_for",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
