"""Risk tiers change the rollout itself: its plan, guardrails, instances and approvals.

Every test compares tiers (or a tier with slipway.toml) on the same configuration, so a tier
that stops changing behaviour fails here, not in production.
"""

from __future__ import annotations

import pytest

from slipway.pipelines.config import Deploy, RiskTier, SpokeConfig, parse_config
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.rollout.controller import SHADOW, plan_for
from slipway.pipelines.rollout.guardrails import thresholds_for
from tests.hub import VALID_SPOKE_TOML as VALID

# The shortest step copier lets a team choose (copier.yml, step_seconds): a tier minimum at or
# below it would never change a plan a spoke was stamped with.
COPIER_MIN_STEP_SECONDS = 5


def config_for(
    tier: str, *, step_seconds: int = COPIER_MIN_STEP_SECONDS, shadow_seconds: int = 0
) -> SpokeConfig:
    """The same valid slipway.toml in `tier`, with the given rollout timings."""
    sections = (
        f'[governance]\nrisk_tier = "{tier}"\n\n'
        f"[rollout]\nstep_seconds = {step_seconds}\nshadow_seconds = {shadow_seconds}\n\n"
        "[budget]"
    )
    return parse_config(VALID.replace("[budget]", sections))


def test_high_corrects_a_plan_without_a_shadow_phase_and_low_keeps_it():
    low, high = plan_for(config_for("low")), plan_for(config_for("high"))
    assert SHADOW not in low.phases()
    assert low.shadow_seconds == 0
    assert high.phases()[0] == SHADOW
    assert high.shadow_seconds == rules_for(RiskTier.high).min_step_seconds


def test_high_keeps_its_shadow_phase_when_a_rehearsal_asks_for_none():
    rehearsal = plan_for(config_for("high", shadow_seconds=120), shadow_seconds=0)
    assert rehearsal.phases()[0] == SHADOW
    assert rehearsal.shadow_seconds == rules_for(RiskTier.high).min_step_seconds


def test_a_longer_shadow_in_slipway_toml_is_kept():
    assert plan_for(config_for("high", shadow_seconds=600)).shadow_seconds == 600


def test_high_guardrails_are_stricter_than_low_on_the_same_slipway_toml():
    low, high = thresholds_for(config_for("low")), thresholds_for(config_for("high"))
    assert high.max_error_rate < low.max_error_rate
    assert high.max_error_increase < low.max_error_increase
    assert high.max_prediction_psi < low.max_prediction_psi
    assert 1 < high.max_p95_latency_ratio < low.max_p95_latency_ratio


def test_low_guardrails_are_slipway_toml_as_written():
    config = config_for("low")
    rails = config.rollout.guardrails
    assert thresholds_for(config).as_dict() == {
        "max_error_rate": rails.max_error_rate,
        "max_p95_latency_ratio": rails.max_p95_latency_ratio,
        "max_prediction_psi": rails.max_prediction_psi,
        "max_error_increase": rails.max_error_increase_pp / 100,
        "false_rollback_budget": rails.false_rollback_budget,
    }


def test_medium_holds_the_shortest_copier_step_longer_than_low():
    low, medium = plan_for(config_for("low")), plan_for(config_for("medium"))
    assert low.step_seconds == COPIER_MIN_STEP_SECONDS
    assert medium.step_seconds > low.step_seconds
    assert medium.step_seconds == rules_for(RiskTier.medium).min_step_seconds


@pytest.mark.parametrize("tier", ["medium", "high"])
def test_the_tier_minimum_is_above_what_copier_allows(tier: str):
    assert rules_for(tier).min_step_seconds > COPIER_MIN_STEP_SECONDS


def test_step_minimums_grow_with_the_risk():
    low, medium, high = (rules_for(t).min_step_seconds for t in ("low", "medium", "high"))
    assert low < medium < high


@pytest.mark.parametrize("tier", ["low", "medium", "high"])
def test_a_step_longer_than_the_minimum_is_kept(tier: str):
    assert plan_for(config_for(tier, step_seconds=600)).step_seconds == 600


def test_the_step_seconds_rehearsal_override_is_floored_by_the_tier():
    """`slipway deploy --step-seconds 3`: low rehearses at 3 s, medium at its minimum."""
    low = plan_for(config_for("low"), step_seconds=3)
    medium = plan_for(config_for("medium"), step_seconds=3)
    assert low.step_seconds == 3
    assert medium.step_seconds == rules_for(RiskTier.medium).min_step_seconds > 3


def test_high_allows_only_the_small_instances_low_and_medium_allow():
    low, medium, high = (set(rules_for(t).instance_types) for t in ("low", "medium", "high"))
    assert high < low
    assert medium == low
    assert "ml.m5.2xlarge" in low - high


@pytest.mark.parametrize("tier", ["low", "medium", "high"])
def test_the_default_instance_type_is_allowed_in_every_tier(tier: str):
    """A spoke stamped with defaults must pass the infra policy whatever tier it picks."""
    assert Deploy().instance_type in rules_for(tier).instance_types


@pytest.mark.parametrize(
    ("tier", "approval", "card", "automatic"),
    [("low", False, False, True), ("medium", False, True, True), ("high", True, True, False)],
)
def test_what_each_tier_requires_before_promotion(
    tier: str, approval: bool, card: bool, automatic: bool
):
    rules = rules_for(tier)
    assert (rules.approval_required, rules.card_required, rules.automatic_promotion) == (
        approval,
        card,
        automatic,
    )


def test_an_unknown_tier_is_refused_by_name():
    with pytest.raises(ValueError, match="extreme"):
        rules_for("extreme")
