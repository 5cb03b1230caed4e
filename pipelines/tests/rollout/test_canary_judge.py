"""The canary judge on simulated windows: the decision loop the controller runs per poll.

Every scenario that must not roll back has its twin that must, on the same traffic, so a
judge that stops firing (or fires on everything) fails here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from slipway.pipelines.config import parse_config
from slipway.pipelines.rollout.controller import POLL_SECONDS, Plan, plan_for
from slipway.pipelines.rollout.guardrails import (
    CONTINUE,
    PASSED,
    ROLLBACK,
    Thresholds,
    thresholds_for,
)
from slipway.pipelines.serving.window import Window
from slipway.pipelines.statistics import (
    alarm_rule,
    binomial_tail,
    compare_predictions,
    rate_bounds,
)
from tests.hub import VALID_SPOKE_TOML as VALID

RATE = 400  # requests per second through the gateway
STEP_SECONDS = 60


def config(extra: str = "", tier: str = "low"):
    sections = (
        f'[governance]\nrisk_tier = "{tier}"\n\n'
        f"[rollout]\nstep_seconds = {STEP_SECONDS}\n\n{extra}\n[budget]"
    )
    return parse_config(VALID.replace("[budget]", sections))


class Variant:
    def __init__(self, rng, errors: float, slower: float = 1.0, positive: float = 0.5):
        self.rng, self.p, self.slower, self.positive = rng, errors, slower, positive
        self.requests = self.errors = 0
        self.latencies: list[float] = []
        self.predictions: list[int] = []

    def serve(self, n: int) -> None:
        failed = int((self.rng.random(n) < self.p).sum())
        self.requests += n
        self.errors += failed
        ok = n - failed
        self.latencies += (self.rng.lognormal(math.log(30), 0.5, ok) * self.slower).tolist()
        self.predictions += (self.rng.random(ok) < self.positive).astype(int).tolist()

    def reading(self) -> dict:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "p95_ms": float(np.percentile(self.latencies, 95)) if self.latencies else None,
            "latencies_ms": self.latencies[-5000:],
            "predictions": self.predictions[-5000:],
        }


def roll_out(plan: Plan, seed: int, champion: dict, challenger: dict):
    """Every step of `plan` at RATE, polled as the controller polls: (outcome, step, reasons,
    challenger requests seen by then, the last decision)."""
    rng = np.random.default_rng(seed)
    judge = plan.judge()
    seen = 0
    for phase in plan.phases():
        weight = int(phase.rstrip("%"))
        base, chal = Variant(rng, **champion), Variant(rng, **challenger)
        watch = judge.step(plan.step_seconds)
        polls = 0
        while True:
            polls += 1
            total = round(RATE * POLL_SECONDS * polls)
            chal.serve(round(total * weight / 100) - chal.requests)
            base.serve(total - base.requests - chal.requests)
            window = Window.from_json(
                {"seq": polls, "champion": base.reading(), "challenger": chal.reading()}
            )
            decision = watch.observe(window, polls * POLL_SECONDS)
            if decision.status == ROLLBACK:
                return ROLLBACK, phase, decision.reasons, seen + chal.requests, decision
            if decision.status == PASSED:
                seen += chal.requests
                break
            assert decision.status == CONTINUE
    return PASSED, None, [], seen, decision


@pytest.mark.parametrize("seed", range(3))
def test_a_healthy_challenger_with_rare_transient_errors_is_promoted(seed):
    plan = plan_for(config())
    outcome, _, reasons, _, last = roll_out(plan, seed, {"errors": 0.002}, {"errors": 0.002})
    assert outcome == PASSED, reasons
    # The last step's evidence was judged, with its boundary stated.
    assert last.judgement.evidence.errors is not None
    assert last.judgement.evidence.latency is not None
    assert last.judgement.evidence.drift is not None
    assert last.looks == 4


def test_a_shared_upstream_fault_does_not_roll_the_challenger_back():
    """2% of both variants' calls fail (above the 1% ceiling): the champion fails as often."""
    outcome, _, reasons, _, _ = roll_out(plan_for(config()), 7, {"errors": 0.02}, {"errors": 0.02})
    assert outcome == PASSED, reasons


def test_five_times_the_champions_errors_is_rolled_back_in_the_first_step():
    outcome, phase, reasons, _, decision = roll_out(
        plan_for(config()), 1, {"errors": 0.01}, {"errors": 0.05}
    )
    assert (outcome, phase) == (ROLLBACK, "10%")
    assert "error rate" in reasons[0] and "at least" in reasons[0]
    evidence = decision.judgement.evidence.errors
    assert evidence.challenger_low > evidence.boundary


def test_a_model_failing_every_call_is_pulled_at_its_first_errors():
    outcome, phase, reasons, seen, _ = roll_out(
        plan_for(config()), 2, {"errors": 0.002}, {"errors": 1.0}
    )
    assert (outcome, phase) == (ROLLBACK, "10%")
    assert seen <= 10  # the first poll's challenger requests: 10% of 100
    assert "error rate 100.0%" in reasons[0]


def test_a_slower_challenger_is_rolled_back_and_one_within_tolerance_is_not():
    plan = plan_for(config())
    outcome, phase, reasons, _, _ = roll_out(plan, 3, {"errors": 0}, {"errors": 0, "slower": 1.5})
    assert (outcome, phase) == (ROLLBACK, "10%") and "p95 latency" in reasons[0]
    outcome, _, reasons, _, _ = roll_out(plan, 3, {"errors": 0}, {"errors": 0, "slower": 1.1})
    assert outcome == PASSED, reasons


def test_shifted_predictions_are_rolled_back():
    outcome, phase, reasons, _, _ = roll_out(
        plan_for(config()), 4, {"errors": 0}, {"errors": 0, "positive": 0.77}
    )
    assert (outcome, phase) == (ROLLBACK, "10%") and "prediction drift" in reasons[0]


def unread_champion_step(plan: Plan, champion: dict) -> list:
    """The first step's polls, the challenger's window full and healthy from the start, the
    champion's as given: (status, reasons) per poll until the step ends."""
    rng = np.random.default_rng(5)
    chal = Variant(rng, errors=0.0)
    chal.serve(200)
    watch = plan.judge().step(plan.step_seconds)
    polls = []
    elapsed = 0.0
    while True:
        elapsed += STEP_SECONDS / 4
        window = Window.from_json({"seq": 1, "champion": champion, "challenger": chal.reading()})
        decision = watch.observe(window, elapsed)
        polls.append((decision.status, decision.reasons))
        if decision.status != CONTINUE:
            return polls


def test_an_empty_champion_window_is_not_enough_to_pass_a_step():
    """A champion window with nothing read yet (KServe's Prometheus had not scraped it) is
    not a champion that served nothing: judged against it, drift and latency would not be
    judged at all. The step waits, and at its timeout rolls back saying why."""
    plan = plan_for(config())
    empty = {"requests": 0, "errors": 0, "p95_ms": None, "latencies_ms": [], "predictions": []}
    polls = unread_champion_step(plan, empty)
    assert all(status == CONTINUE for status, _ in polls[:-1])
    status, reasons = polls[-1]
    assert status == ROLLBACK and "0 champion answers of 30" in reasons[0]
    assert len(polls) * STEP_SECONDS / 4 >= plan.step_timeout  # it waited the whole timeout
    # Its twin: the same challenger, a champion read, passes at the end of the hold.
    served = Variant(np.random.default_rng(6), errors=0.0)
    served.serve(1800)
    polls = unread_champion_step(plan, served.reading())
    assert polls[-1] == (PASSED, []) and len(polls) == 4


def test_a_pending_window_waits_then_rolls_back_with_its_reason_at_the_timeout():
    plan = plan_for(config())
    watch = plan.judge().step(plan.step_seconds)
    empty = {"requests": 0, "errors": 0, "p95_ms": None, "latencies_ms": [], "predictions": []}
    window = Window.from_json({"seq": 1, "champion": empty, "challenger": empty})
    pending = Window(window.seq, window.champion, window.challenger, pending="not scraped yet")
    assert watch.observe(pending, plan.step_timeout / 2).status == CONTINUE
    late = watch.observe(pending, plan.step_timeout)
    assert late.status == ROLLBACK and late.reasons == [
        f"no readings to judge within {plan.step_timeout:g}s: not scraped yet"
    ]


def test_error_bounds_hold_at_every_look_as_often_as_promised():
    """300 sequences of 2,000 requests at 1% errors, bounds checked after every request: the
    true rate leaves the 90% bounds in at most 10% of sequences (Ville's inequality)."""
    rng = np.random.default_rng(11)
    missed = 0
    for _ in range(300):
        errors = np.cumsum(rng.random(2000) < 0.01)
        for n in range(1, 2001, 7):
            low, high = rate_bounds(int(errors[n - 1]), n, 0.10)
            if not low <= 0.01 <= high:
                missed += 1
                break
    assert missed <= 30


def test_the_drift_test_fires_by_chance_at_its_stated_rate():
    rng = np.random.default_rng(5)
    fired = sum(
        compare_predictions(
            rng.normal(size=400).tolist(), rng.normal(size=3600).tolist(), max_psi=0, alpha=0.05
        ).breach
        for _ in range(300)
    )
    assert fired <= 300 * 0.05 + 3 * math.sqrt(300 * 0.05 * 0.95)
    shifted = compare_predictions(
        (rng.normal(size=400) + 0.55).tolist(),
        rng.normal(size=3600).tolist(),
        max_psi=0.1,
        alpha=0.001,
    )
    assert shifted.breach and shifted.psi > 0.2


def test_a_slipway_toml_of_the_previous_release_still_validates_with_the_new_defaults():
    old = config("[rollout.guardrails]\nmax_error_rate = 0.02\nmax_p95_latency_ratio = 1.5\n")
    limits = thresholds_for(old)
    assert limits.max_error_rate == 0.02 and limits.max_p95_latency_ratio == 1.5
    assert limits.max_error_increase == pytest.approx(0.005)
    assert limits.false_rollback_budget == 0.01
    # A rollout stored by the previous release resumes: its thresholds lack the new keys.
    stored = plan_for(old).as_dict()
    stored["thresholds"] = {
        k: stored["thresholds"][k]
        for k in ("max_error_rate", "max_p95_latency_ratio", "max_prediction_psi")
    }
    assert Plan.from_dict(stored).thresholds == Thresholds(0.02, 1.5, 0.25)


def test_the_high_tier_tolerates_less_than_low_on_the_same_slipway_toml():
    low, high = thresholds_for(config(tier="low")), thresholds_for(config(tier="high"))
    assert high.max_error_increase < low.max_error_increase
    assert 1 < high.max_p95_latency_ratio < low.max_p95_latency_ratio


def test_a_bad_budget_is_refused_with_its_field():
    from slipway.pipelines.config import ConfigError

    with pytest.raises(ConfigError, match=r"rollout\.guardrails\.false_rollback_budget"):
        config("[rollout.guardrails]\nfalse_rollback_budget = 0.5\n")


def test_binomial_tail_and_the_alarm_rule():
    assert binomial_tail(3, 20, 0.1) == pytest.approx(binom.sf(2, 20, 0.1))
    rule = alarm_rule(0.05, 10, 0.005)
    assert rule.false_alarm <= 0.005 < binomial_tail(rule.datapoints_to_alarm - 1, 10, 0.05)
    assert alarm_rule(0.0, 10, 0.005).datapoints_to_alarm == 1


def test_requests_to_decide_shrink_when_the_tier_tightens_the_tolerance():
    from slipway.pipelines.rollout.guardrails import requests_to_catch_errors

    low = requests_to_catch_errors(thresholds_for(config(tier="low")), 3, 0.001, 0.02)
    high = requests_to_catch_errors(thresholds_for(config(tier="high")), 4, 0.001, 0.02)
    assert 0 < high < low
    # A challenger within the tolerance is never caught, however many requests it gets.
    assert requests_to_catch_errors(thresholds_for(config()), 3, 0.01, 0.012) == 0
