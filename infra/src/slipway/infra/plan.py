"""What an environment's endpoint must look like, computed from slipway.toml alone.

Pure data, no Pulumi: the components render this plan into AWS resources, the policies
check the same numbers, and a reader can see in one place how the rollout plan written
for the local gateway becomes a SageMaker blue/green deployment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.rollout.guardrails import (
    DRIFT_SHARE,
    ERROR_SHARE,
    LATENCY_SHARE,
    Thresholds,
    thresholds_for,
)
from slipway.pipelines.serving import guardrail_metrics
from slipway.pipelines.statistics import AlarmPlan, alarm_rule, binomial_tail


class Environment(StrEnum):
    dev = "dev"
    staging = "staging"
    prod = "prod"


# SageMaker's limits on blue/green traffic routing (CreateEndpoint DeploymentConfig).
MAX_CANARY_PERCENT = 50
MAX_WAIT_SECONDS = 3600
MIN_EXECUTION_TIMEOUT = 600
MAX_EXECUTION_TIMEOUT = 14400
# After traffic has fully shifted the old fleet is kept this long, so an alarm that fires
# late can still roll back to warm instances.
TERMINATION_WAIT_SECONDS = 300
# Target tracking: add an instance when a variant sees more invocations per instance and
# minute than this. A conservative default for a small scikit-learn model.
TARGET_INVOCATIONS_PER_INSTANCE = 100
# The custom metric the serving container publishes (prediction drift, PSI): the names are
# the container's own (slipway.pipelines.serving.guardrail_metrics), so alarm and datum agree.
DRIFT_NAMESPACE = guardrail_metrics.NAMESPACE
DRIFT_METRIC = guardrail_metrics.PREDICTION_PSI
MODEL_ERRORS_METRIC = guardrail_metrics.MODEL_ERRORS
# Days an endpoint's captured requests and responses (raw bodies, possibly personal data) are
# kept; the `capture-expires` policy refuses a capture kept longer than the maximum, or kept
# for good.
CAPTURE_RETENTION_DAYS = 30
MAX_CAPTURE_RETENTION_DAYS = 90
# GitHub Actions' OIDC issuer: CI roles trust it, for one repository each.
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"


def parse_environment(stack_name: str) -> Environment:
    """The environment a Pulumi stack name stands for; a clear error for any other name."""
    try:
        return Environment(stack_name)
    except ValueError:
        allowed = ", ".join(e.value for e in Environment)
        raise ValueError(
            f"Pulumi stack {stack_name!r} is not a Slipway environment; use one of: {allowed} "
            f"(`pulumi stack select {Environment.staging.value}`)"
        ) from None


# Relative size of a SageMaker instance by its size word (ml.<family>.<size>); `<n>xlarge` is
# n times xlarge. Only the order matters: which allowed type is the smallest.
_SIZE_UNITS = {"medium": 1, "large": 2, "xlarge": 4}


def _size(instance_type: str) -> float:
    word = instance_type.rsplit(".", 1)[-1]
    if word in _SIZE_UNITS:
        return _SIZE_UNITS[word]
    times = word.removesuffix("xlarge")
    return 4 * int(times) if times.isdigit() and word.endswith("xlarge") else float("inf")


def smallest_instance_type(allowed: tuple[str, ...]) -> str:
    """The smallest of a tier's allowed types; on a tie, the one the tier lists first."""
    return min(allowed, key=_size)


@dataclass(frozen=True)
class EndpointPlan:
    """The serving shape of one environment: instances, canary and rollback thresholds."""

    instance_type: str
    min_instances: int
    max_instances: int
    canary_percent: int
    wait_seconds: int
    termination_wait_seconds: int
    max_execution_seconds: int
    max_error_rate: float
    max_latency_ratio: float
    max_prediction_psi: float
    # M of N one-minute datapoints per alarm, chosen for the false-rollback budget.
    error_alarm: AlarmPlan
    metric_alarm: AlarmPlan


# CloudWatch's period for SageMaker's endpoint metrics, and the alarms' period.
ALARM_PERIOD_SECONDS = 60
# A latency or drift alarm threshold is assumed to sit at or above what a healthy minute
# exceeds one time in twenty (the tolerance is a multiple of the champion's p95, or a PSI
# a healthy sample rarely reaches); the M-of-N rule then bounds the false alarms.
HEALTHY_METRIC_BREACH = 0.05


def alarm_plans(
    limits: Thresholds, *, bake_seconds: int, invocations_per_minute: int
) -> tuple[AlarmPlan, AlarmPlan]:
    """The M-of-N rules of the rollback alarms (errors; latency and drift), derived from the
    same guardrails as the local judge.

    A healthy endpoint is one failing the ceiling minus the tolerated increase
    (max_error_rate - max_error_increase) at the planned load; a one-minute datapoint of it
    breaches the ceiling with a binomial chance. The alarm uses the fewest periods N (within
    the bake: the canary wait plus the termination wait, when SageMaker still watches the
    alarms) and then the fewest datapoints M whose chance of firing on that healthy endpoint
    during the bake stays within the guardrail's share of the false-rollback budget.
    """
    periods = max(1, bake_seconds // ALARM_PERIOD_SECONDS)
    healthy = max(0.0, limits.max_error_rate - limits.max_error_increase)
    n = max(1, invocations_per_minute)
    per_period = binomial_tail(math.floor(limits.max_error_rate * n) + 1, n, healthy)

    def fewest(chance: float, budget: float) -> AlarmPlan:
        for n_periods in range(1, periods + 1):
            rule = alarm_rule(chance, n_periods, budget)
            if rule.false_alarm <= budget:
                return rule
        return alarm_rule(chance, periods, budget)

    budget = limits.false_rollback_budget
    return (
        fewest(per_period, budget * ERROR_SHARE),
        fewest(HEALTHY_METRIC_BREACH, budget * max(LATENCY_SHARE, DRIFT_SHARE) / 2),
    )


def endpoint_plan(config: SpokeConfig, environment: Environment) -> EndpointPlan | None:
    """The endpoint plan of `environment`, or None for dev (dev runs the local target).

    Prod serves on `[deploy].instance_type`; staging, which proves a version and carries no
    customer load, on the risk tier's smallest allowed type (slipway.toml has no per-staging
    type yet). The canary share is the rollout plan's first step (capped at SageMaker's 50%),
    held for step_seconds (at least the tier's minimum, at most SageMaker's 3600 s). The alarm
    thresholds are the very ones the local rollout engine judges by (guardrails.thresholds_for:
    slipway.toml's guardrails tightened by the risk tier).
    """
    if environment is Environment.dev:
        return None
    rules = rules_for(config.governance.risk_tier)
    rollout = config.rollout
    scaling = config.deploy.staging if environment is Environment.staging else config.deploy.prod
    wait = min(max(rollout.step_seconds, rules.min_step_seconds), MAX_WAIT_SECONDS)
    limits = thresholds_for(config)
    staging = environment is Environment.staging
    error_alarm, metric_alarm = alarm_plans(
        limits,
        bake_seconds=wait + TERMINATION_WAIT_SECONDS,
        invocations_per_minute=TARGET_INVOCATIONS_PER_INSTANCE * scaling.min_instances,
    )
    return EndpointPlan(
        instance_type=(
            smallest_instance_type(rules.instance_types) if staging else config.deploy.instance_type
        ),
        min_instances=scaling.min_instances,
        max_instances=scaling.max_instances,
        canary_percent=min(rollout.canary_steps[0], MAX_CANARY_PERCENT),
        wait_seconds=wait,
        termination_wait_seconds=TERMINATION_WAIT_SECONDS,
        max_execution_seconds=min(
            max(MIN_EXECUTION_TIMEOUT, 2 * wait + TERMINATION_WAIT_SECONDS), MAX_EXECUTION_TIMEOUT
        ),
        max_error_rate=limits.max_error_rate,
        max_latency_ratio=limits.max_p95_latency_ratio,
        max_prediction_psi=limits.max_prediction_psi,
        error_alarm=error_alarm,
        metric_alarm=metric_alarm,
    )


# Percent of a budget at which its owner is emailed: a warning, then the limit.
BUDGET_ALERT_PERCENTS: tuple[float, ...] = (80.0, 100.0)
# How slipway.toml's budget.monthly_usd is split between the environment stacks; each
# environment's budget alerts at 80% and 100% of its share, the hub's per-spoke budget
# watches the total.
BUDGET_SHARE: dict[Environment, float] = {
    Environment.dev: 0.1,
    Environment.staging: 0.2,
    Environment.prod: 0.7,
}


def environment_budget_usd(config: SpokeConfig, environment: Environment) -> float:
    """The monthly budget of one environment stack, in USD."""
    return round(config.budget.monthly_usd * BUDGET_SHARE[environment], 2)
