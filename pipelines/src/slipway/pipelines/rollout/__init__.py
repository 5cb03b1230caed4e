"""Rollout: shadow, canary steps and guardrails, then promotion or rollback.

Modules: `controller` (the plan and the loop that runs it), `state` (the durable rollout
record), `guardrails` (the canary judge and its decision loop), `statistics` (its tests, each with a
known chance of firing), `release` (moving aliases, tagging outcomes),
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
        Evidence,
        Judgement,
        RollbackBudget,
        RolloutJudge,
        StepDecision,
        StepWatch,
        Thresholds,
        VariantWindow,
        explain,
        judge,
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
    from slipway.pipelines.statistics import (
        AlarmPlan,
        alarm_rule,
        compare_error_rates,
        compare_latency,
        compare_predictions,
        psi,
        rate_bounds,
    )

_EXPORTS = {
    "Controller": "controller",
    "NotApproved": "controller",
    "Outcome": "controller",
    "Plan": "controller",
    "plan_for": "controller",
    "RollbackBudget": "guardrails",
    "Budget": "guardrails",  # renamed RollbackBudget; warns, goes in 0.3.0
    "Evidence": "guardrails",
    "Judgement": "guardrails",
    "RolloutJudge": "guardrails",
    "StepDecision": "guardrails",
    "StepWatch": "guardrails",
    "Thresholds": "guardrails",
    "VariantWindow": "guardrails",
    "explain": "guardrails",
    "judge": "guardrails",
    "AlarmPlan": "statistics",
    "alarm_rule": "statistics",
    "compare_error_rates": "statistics",
    "compare_latency": "statistics",
    "compare_predictions": "statistics",
    "rate_bounds": "statistics",
    "psi": "statistics",
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
    "AlarmPlan",
    "Controller",
    "DeployPipelineError",
    "Evidence",
    "Judgement",
    "ModelPackage",
    "NotApproved",
    "NotReleasable",
    "Outcome",
    "Plan",
    "RejectedPrevious",
    "ReleaseError",
    "RollbackBudget",
    "RolloutJudge",
    "StepDecision",
    "StepWatch",
    "Thresholds",
    "TrafficReport",
    "VariantWindow",
    "alarm_rule",
    "candidate_version",
    "compare_error_rates",
    "compare_latency",
    "compare_predictions",
    "compile_deploy",
    "deploy_pipeline",
    "draw_rollouts",
    "explain",
    "judge",
    "package_version",
    "plan_for",
    "promote",
    "psi",
    "rate_bounds",
    "reject_challenger",
    "replay_rows",
    "revert_promotion",
    "run_traffic",
    "tag_outcome",
    "thresholds_for",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
