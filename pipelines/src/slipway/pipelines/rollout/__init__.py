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

__getattr__, __dir__, __all__ = lazy_exports(
    __name__, __file__, renamed={"Budget": "RollbackBudget"}
)
