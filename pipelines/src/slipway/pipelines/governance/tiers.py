"""What each risk tier demands: the one table that gates, rollout and infra policies read.

docs/spoke/governance.md renders this table; change behaviour here, never by tier name elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from slipway.pipelines.config import RiskTier


@dataclass(frozen=True)
class TierRules:
    """One tier's rules. Callers read the flags, never the tier's name, so a rule changes
    here and nowhere else."""

    automatic_promotion: bool
    card_required: bool
    approval_required: bool
    shadow_required: bool
    # Guardrails are multiplied by this (< 1 is stricter) before a rollout judges a step.
    guardrail_factor: float
    # Steps (and a required shadow phase) are held at least this long, whatever slipway.toml
    # or `slipway deploy --step-seconds` says. Above the copier floor for step_seconds (5 s)
    # it changes real plans; kept in seconds, not minutes, because the rehearsal override is
    # floored too (the demo rehearses a medium spoke at --step-seconds 3).
    min_step_seconds: int
    # SageMaker instance types an endpoint of this tier may use (shared with infra policies).
    instance_types: tuple[str, ...]


_SMALL = ("ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.c5.large", "ml.c5.xlarge")
_MEDIUM = (*_SMALL, "ml.m5.2xlarge", "ml.c5.2xlarge")

TIER_RULES: dict[RiskTier, TierRules] = {
    RiskTier.low: TierRules(
        automatic_promotion=True,
        card_required=False,
        approval_required=False,
        shadow_required=False,
        guardrail_factor=1.0,
        min_step_seconds=1,
        instance_types=_MEDIUM,
    ),
    RiskTier.medium: TierRules(
        automatic_promotion=True,
        card_required=True,
        approval_required=False,
        shadow_required=False,
        guardrail_factor=1.0,
        min_step_seconds=10,
        instance_types=_MEDIUM,
    ),
    RiskTier.high: TierRules(
        automatic_promotion=False,
        card_required=True,
        approval_required=True,
        shadow_required=True,
        guardrail_factor=0.5,
        min_step_seconds=30,
        instance_types=_SMALL,
    ),
}


def rules_for(tier: RiskTier | str) -> TierRules:
    """The rules of `tier` (a RiskTier or its name, as slipway.toml and registry tags hold it)."""
    return TIER_RULES[RiskTier(tier)]
