"""The canary judge: is the challenger failing, slow, or predicting differently than the
champion in the same window, beyond what the team tolerates?

Tolerances come from slipway.toml [rollout.guardrails], tightened by the risk tier's
`guardrail_factor` (tiers.py): the tolerated error increase, the error ceiling and the PSI
are multiplied by it, the latency ratio's excess over 1 is (0.5 turns 1.3x into 1.15x).
The false-rollback budget is the chance, per rollout, that a challenger within every
tolerance is rolled back anyway; it is split between the guardrails and their looks so the
sum of all chances stays within it (docs/spoke/canary-judge.md):

- errors (half the budget): always-valid confidence bounds, checked at every poll;
- latency and drift (a quarter each): at LOOKS_PER_STEP planned looks per step.

`RolloutJudge` is the decision loop the controller runs per poll; it owns no I/O, so the
canary-judge benchmark drives the very same loop with simulated windows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from slipway.pipelines import _compat
from slipway.pipelines.config import Guardrails, SpokeConfig
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.serving.window import VariantWindow, Window
from slipway.pipelines.statistics import (
    DriftEvidence,
    ErrorEvidence,
    LatencyEvidence,
    compare_error_rates,
    compare_latency,
    compare_predictions,
)

# A slow-down smaller than this is never a regression, whatever the ratio: 2 ms against 1 ms
# is scheduler noise on a busy host, not something users feel.
LATENCY_FLOOR_MS = 20.0
# Below this many predictions per side a drift test has too little to say; the step waits.
MIN_PSI_SAMPLES = 30
# Latency and drift are tested at this many planned looks per step (at each quarter of the
# hold time), each with its share of the budget: more looks would split it thinner.
LOOKS_PER_STEP = 4
ERROR_SHARE, LATENCY_SHARE, DRIFT_SHARE = 0.5, 0.25, 0.25


@dataclass(frozen=True)
class Thresholds:
    """The tolerances one rollout is judged by (slipway.toml, tightened by the tier)."""

    max_error_rate: float  # ceiling: certainly above it while the champion is certainly below
    max_p95_latency_ratio: float  # tolerated slow-down of the challenger's latencies
    max_prediction_psi: float  # tolerated drift of the challenger's predictions
    # Defaults keep a plan stored by the previous release loadable (`deploy --resume`).
    max_error_increase: float = 0.005  # tolerated error-rate increase (a fraction, 0.005 = 0.5 pp)
    false_rollback_budget: float = 0.01  # chance per rollout of rolling back a good challenger

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def thresholds_for(config: SpokeConfig) -> Thresholds:
    rails: Guardrails = config.rollout.guardrails
    factor = rules_for(config.governance.risk_tier).guardrail_factor
    return Thresholds(
        max_error_rate=rails.max_error_rate * factor,
        max_p95_latency_ratio=1 + (rails.max_p95_latency_ratio - 1) * factor,
        max_prediction_psi=rails.max_prediction_psi * factor,
        max_error_increase=rails.max_error_increase_pp / 100 * factor,
        false_rollback_budget=rails.false_rollback_budget,
    )


@dataclass(frozen=True)
class RollbackBudget:
    """The false-rollback budget split over guardrails, steps and looks (`Budget` until
    0.2.0: config.Budget is the spoke's dollars, a different thing)."""

    errors: float  # each of the two error bounds, per step
    latency: float  # per look
    drift: float  # per look

    @classmethod
    def split(cls, total: float, phases: int) -> RollbackBudget:
        return cls(
            errors=total * ERROR_SHARE / phases / 2,
            latency=total * LATENCY_SHARE / phases / LOOKS_PER_STEP,
            drift=total * DRIFT_SHARE / phases / LOOKS_PER_STEP,
        )


@dataclass(frozen=True)
class Evidence:
    """What the judge saw at one poll: per guardrail the readings, statistic and boundary
    (None: not judged at this poll)."""

    errors: ErrorEvidence | None = None
    latency: LatencyEvidence | None = None
    drift: DriftEvidence | None = None

    def readings(self) -> dict[str, float | int | None]:
        """Flat numbers for the rollout state, `slipway status` and the chart."""
        out: dict[str, float | int | None] = {}
        if (e := self.errors) is not None:
            out |= {
                "error_rate": round(e.challenger_errors / e.challenger_requests, 4)
                if e.challenger_requests
                else 0.0,
                "champion_error_rate": round(e.champion_errors / e.champion_requests, 4)
                if e.champion_requests
                else 0.0,
                "error_low": round(e.challenger_low, 5),
                "error_boundary": round(e.rollback_above, 5),
            }
        if (lat := self.latency) is not None:
            out |= {
                "p95_ratio": round(lat.challenger_p95_ms / lat.champion_p95_ms, 3)
                if lat.champion_p95_ms
                else None,
                "latency_p": _sig(lat.p_value),
                "latency_alpha": _sig(lat.alpha),
            }
        if (d := self.drift) is not None:
            out |= {
                "psi": round(d.psi, 4),
                "drift_chi2": round(d.chi_square, 2),
                "drift_p": _sig(d.p_value),
                "drift_alpha": _sig(d.alpha),
            }
        return out

    def describe(self) -> list[str]:
        """One line per judged guardrail: reading, statistic, decision boundary."""
        lines = []
        if (e := self.errors) is not None:
            lines.append(
                f"errors {e.challenger_errors}/{e.challenger_requests} vs champion "
                f"{e.champion_errors}/{e.champion_requests}: challenger >= {e.challenger_low:.2%},"
                f" champion <= {e.champion_high:.2%}; rollback above {e.boundary:.2%} "
                f"(champion + {e.boundary - e.champion_high:.2%})"
                + (
                    f" or above the {e.ceiling:.2%} ceiling"
                    if e.champion_high < e.ceiling < e.boundary
                    else ""
                )
            )
        if (lat := self.latency) is not None:
            lines.append(
                f"latency p95 {lat.challenger_p95_ms:.1f} vs {lat.champion_p95_ms:.1f} ms "
                f"({lat.challenger_samples}/{lat.champion_samples} samples): Mann-Whitney "
                f"p={lat.p_value:.2g} against the tolerated slow-down; rollback below "
                f"{lat.alpha:.2g}"
            )
        if (d := self.drift) is not None:
            lines.append(
                f"predictions PSI {d.psi:.3f} ({d.challenger_samples}/{d.champion_samples}): "
                f"chi-square {d.chi_square:.1f} on {d.degrees_of_freedom} df, p={d.p_value:.2g};"
                f" rollback when p < {d.alpha:.2g} and PSI > {d.max_psi:.2f}"
            )
        return lines


def _sig(value: float) -> float:
    return float(f"{value:.3g}")


@dataclass(frozen=True)
class Judgement:
    breaches: list[str]
    readings: dict[str, Any]
    evidence: Evidence = field(default_factory=Evidence)


def judge(
    challenger: VariantWindow,
    champion: VariantWindow,
    limits: Thresholds,
    budget: RollbackBudget,
    *,
    look: bool,
) -> Judgement:
    """Breaches of `challenger` against `champion` over the same window.

    Errors are judged at every call (their bounds are valid at any look, so a model failing
    most calls is pulled at its first errors); latency and drift only when `look` (one of
    the step's planned looks).
    """
    errors = latency = drift = None
    breaches: list[str] = []
    rate_c = challenger.errors / challenger.requests if challenger.requests else 0.0
    rate_b = champion.errors / champion.requests if champion.requests else 0.0
    # A bound never lies beyond its point estimate, so a challenger at or below both
    # boundaries' estimates cannot breach: its bounds are only worked out at the looks.
    possible = rate_c > rate_b + limits.max_error_increase or rate_c > limits.max_error_rate
    if challenger.requests and (possible or look):
        errors = compare_error_rates(
            (challenger.errors, challenger.requests),
            (champion.errors, champion.requests),
            increase=limits.max_error_increase,
            ceiling=limits.max_error_rate,
            alpha=budget.errors,
        )
        if errors.breach:
            breaches.append(
                f"error rate {rate_c:.1%} ({challenger.errors}/{challenger.requests}) against "
                f"the champion's {rate_b:.1%}: the challenger's is at least "
                f"{errors.challenger_low:.2%}, above the champion's {errors.champion_high:.2%} + "
                f"{limits.max_error_increase * 100:g} pp"
                + ("" if errors.challenger_low > errors.boundary else " and the ceiling")
            )
    if look and len(challenger.latencies_ms) and len(champion.latencies_ms):
        latency = compare_latency(
            challenger.latencies_ms,
            champion.latencies_ms,
            ratio=limits.max_p95_latency_ratio,
            floor_ms=LATENCY_FLOOR_MS,
            alpha=budget.latency,
        )
        if latency.breach:
            breaches.append(
                f"p95 latency {latency.challenger_p95_ms:.1f} ms against the champion's "
                f"{latency.champion_p95_ms:.1f} ms: slower than "
                f"{limits.max_p95_latency_ratio:.2f}x (Mann-Whitney p={latency.p_value:.2g} "
                f"< {latency.alpha:.2g})"
            )
    if (
        look
        and len(challenger.predictions) >= MIN_PSI_SAMPLES
        and len(champion.predictions) >= MIN_PSI_SAMPLES
    ):
        drift = compare_predictions(
            challenger.predictions,
            champion.predictions,
            max_psi=limits.max_prediction_psi,
            alpha=budget.drift,
        )
        if drift.breach:
            breaches.append(
                f"prediction drift PSI {drift.psi:.2f} against the champion above "
                f"{limits.max_prediction_psi:.2f} (chi-square p={drift.p_value:.2g} "
                f"< {drift.alpha:.2g})"
            )
    evidence = Evidence(errors, latency, drift)
    readings = judge_readings(champion, challenger) | evidence.readings()
    return Judgement(breaches=breaches, readings=readings, evidence=evidence)


def judge_readings(champion: VariantWindow, challenger: VariantWindow) -> dict[str, Any]:
    """The raw counts of a window, as the rollout state records them per poll."""
    return {
        "champion_requests": champion.requests,
        "champion_errors": champion.errors,
        "challenger_requests": challenger.requests,
        "challenger_errors": challenger.errors,
        "champion_p95_ms": champion.p95_ms,
        "challenger_p95_ms": challenger.p95_ms,
    }


# -- the decision loop ----------------------------------------------------------------------

CONTINUE, PASSED, ROLLBACK = "continue", "passed", "rollback"


@dataclass(frozen=True)
class StepDecision:
    status: str  # continue | passed | rollback
    reasons: list[str]
    judgement: Judgement
    looks: int  # planned looks taken so far in this step


class StepWatch:
    """One step's polls: which are looks, when the step passes, when it has waited too long."""

    def __init__(self, judge_: RolloutJudge, seconds: float) -> None:
        self._judge, self.seconds = judge_, seconds
        self.looks = 0
        self.last: StepDecision | None = None

    def observe(self, window: Window, elapsed: float) -> StepDecision:
        """Judge the step's window as of `elapsed` seconds into the step."""
        plan = self._judge
        if window.pending:
            return self._pending(window, elapsed)
        challenger, champion = window.challenger, window.champion
        # The 100% step has no champion traffic: it is judged against the champion of the
        # step before (the same champion, the window just before).
        if champion.requests >= MIN_PSI_SAMPLES or plan.baseline is None:
            baseline = champion
        else:
            baseline = plan.baseline
        # Drift needs MIN_PSI_SAMPLES predictions on both sides whatever min_requests says: a
        # step is never passed without its drift guardrail having been judged. An empty
        # champion window (none of the step's traffic read yet) is not a champion that served
        # nothing: judged against it, latency and drift would not be judged at all.
        enough = (
            challenger.requests >= plan.min_requests
            and len(challenger.predictions) >= MIN_PSI_SAMPLES
            and len(baseline.predictions) >= MIN_PSI_SAMPLES
        )
        final = elapsed >= self.seconds and enough
        due = min(LOOKS_PER_STEP, math.floor(LOOKS_PER_STEP * elapsed / max(self.seconds, 1e-9)))
        look = enough and (final or due > self.looks) and self.looks < LOOKS_PER_STEP
        if look:
            self.looks = LOOKS_PER_STEP if final else max(due, self.looks + 1)
        verdict = judge(challenger, baseline, plan.limits, plan.budget, look=look)
        if verdict.breaches:
            decision = StepDecision(ROLLBACK, verdict.breaches, verdict, self.looks)
        elif final:
            if champion.requests >= MIN_PSI_SAMPLES:
                plan.baseline = champion
            decision = StepDecision(PASSED, [], verdict, self.looks)
        elif elapsed >= plan.step_timeout:
            needed = max(plan.min_requests, MIN_PSI_SAMPLES)
            reason = (
                f"not enough traffic: {challenger.requests} challenger requests "
                f"({len(challenger.predictions)} answered) of {needed}, "
                f"{len(baseline.predictions)} champion answers of {MIN_PSI_SAMPLES} "
                f"within {plan.step_timeout:g}s"
            )
            decision = StepDecision(ROLLBACK, [reason], verdict, self.looks)
        else:
            decision = StepDecision(CONTINUE, [], verdict, self.looks)
        self.last = decision
        return decision

    def _pending(self, window: Window, elapsed: float) -> StepDecision:
        """Readings that cannot be judged yet: wait, within the step's timeout."""
        empty = VariantWindow(0, 0, None, [], [])
        verdict = Judgement(breaches=[], readings=judge_readings(empty, empty))
        if elapsed >= self._judge.step_timeout:
            reason = f"no readings to judge within {self._judge.step_timeout:g}s: {window.pending}"
            decision = StepDecision(ROLLBACK, [reason], verdict, self.looks)
        else:
            decision = StepDecision(CONTINUE, [], verdict, self.looks)
        self.last = decision
        return decision


class RolloutJudge:
    """The judge of one rollout: its tolerances, its budget split over `phases` steps, and
    the champion's last full window (what the 100% step is compared with)."""

    def __init__(
        self, limits: Thresholds, *, phases: int, min_requests: int, step_timeout: float
    ) -> None:
        self.limits = limits
        self.budget = RollbackBudget.split(limits.false_rollback_budget, max(1, phases))
        self.min_requests = min_requests
        self.step_timeout = step_timeout
        self.baseline: VariantWindow | None = None

    def step(self, seconds: float) -> StepWatch:
        return StepWatch(self, seconds)


# -- what the settings mean in requests ---------------------------------------------------


def requests_to_catch_errors(limits: Thresholds, phases: int, base: float, bad: float) -> int:
    """Challenger requests the judge needs to roll back a challenger failing `bad` of its calls
    against a champion failing `base` (with nine times the challenger's traffic, as at a 10%
    step), when errors arrive at their expected rates; 0 when it never would."""
    budget = RollbackBudget.split(limits.false_rollback_budget, max(1, phases))
    n = 1
    while n <= 10_000_000:
        evidence = compare_error_rates(
            (round(bad * n), n),
            (round(base * 9 * n), 9 * n),
            increase=limits.max_error_increase,
            ceiling=limits.max_error_rate,
            alpha=budget.errors,
        )
        if evidence.breach:
            return n
        n = max(n + 1, math.ceil(n * 1.05))
    return 0


def explain(limits: Thresholds, phases: int) -> list[str]:
    """What the guardrails mean, in requests a team can plan a canary step with."""
    budget = RollbackBudget.split(limits.false_rollback_budget, max(1, phases))
    lines = [
        f"rolls back a challenger within every tolerance in at most "
        f"{limits.false_rollback_budget:.1%} of rollouts",
        f"errors: rolled back when certainly more than {limits.max_error_increase * 100:g} pp "
        f"above the champion's in the same window (or above the {limits.max_error_rate:.1%} "
        f"ceiling while the champion is below it); checked at every poll",
    ]
    for base, bad in ((0.001, 1.0), (0.01, 0.05), (0.001, 0.02)):
        needed = requests_to_catch_errors(limits, phases, base, bad)
        lines.append(
            f"  a challenger failing {bad:.0%} of calls against a champion's {base:.1%}: "
            + (f"~{needed:,} challenger requests" if needed else "not caught")
        )
    lines += [
        f"latency: rolled back when slower than {limits.max_p95_latency_ratio:g}x the "
        f"champion's (Mann-Whitney p < {budget.latency:.2g}, p95 at least "
        f"{LATENCY_FLOOR_MS:g} ms slower), at {LOOKS_PER_STEP} looks per step",
        f"drift: rolled back when predictions differ (chi-square p < {budget.drift:.2g}) by "
        f"more than PSI {limits.max_prediction_psi:g}; needs {MIN_PSI_SAMPLES}+ predictions "
        "per variant",
    ]
    return lines


__getattr__ = _compat.renamed(__name__, {"Budget": "RollbackBudget"}, globals())
