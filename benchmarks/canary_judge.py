"""Canary-judge benchmark: how often the rollout judge rolls back a healthy challenger, and how
fast it catches a bad one, over simulated rollouts.

    .venv/bin/python benchmarks/canary_judge.py [--rollouts 1000] [--step-seconds 60 10]

Each rollout runs the real decision loop: `plan_for` on a slipway.toml with the default
guardrails (low tier), `Plan.judge()` (the `RolloutJudge` the controller builds), one
`StepWatch` per canary step fed a window at every controller poll (POLL_SECONDS), exactly as
`Controller._hold` feeds it the gateway's /admin/window. Only the gateway is simulated: 400
requests/s split by the step's weight, each request an error with its variant's error rate,
a latency drawn from a lognormal (median 30 ms, with a per-poll load factor shared by both
variants: the host's noise), and a class prediction; windows keep the newest 5,000 latencies
and predictions per variant, as the gateway does.

Healthy scenarios give both variants the same error rate (a shared upstream fault), latency
distribution and predictions: the goal is at most 1% rolled back. Bad ones give the challenger
5x the errors, 1.5x the latency, or predictions shifted by PSI 0.3: the goal is at least 99%
rolled back within the first step. Two tables: steps of 60 s (the slipway.toml default, 2,400
requests to the challenger in its first step) and of 10 s (as in the issue that asked for
this judge: 400). Not a test: nothing here holds a threshold.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from slipway.pipelines.config import parse_config
from slipway.pipelines.rollout.controller import POLL_SECONDS, SHADOW, Plan, plan_for
from slipway.pipelines.rollout.guardrails import CONTINUE, ROLLBACK
from slipway.pipelines.serving.gateway import WINDOW_PREDICTIONS
from slipway.pipelines.serving.window import Window

RATE = 400.0  # requests per second, as measured on the demo spoke under wrk
LATENCY_MEDIAN_MS = 30.0
LATENCY_SIGMA = 0.5
LOAD_NOISE_SIGMA = 0.2  # per-poll factor on both variants' latencies
CLASS_SHARE = 0.5  # share of positive predictions of the champion

SPOKE = """
[project]
name = "Bench"
slug = "bench"
package = "bench"
team = "t"
contact = "t@example.com"
business_owner = "o"
cost_center = "c"

[kpi]
name = "k"
baseline = 0.1
target = 0.2

[data]
loader = "bench.data:load"
target = "y"

[data.contract.columns.x]
dtype = "float"

[training]
trainer = "bench.train:fit"

[rollout]
step_seconds = {step_seconds}

[budget]
monthly_usd = 100
"""


def share_for_psi(base: float, psi: float) -> float:
    """The positive share whose PSI against `base` is `psi` (binary predictions)."""

    def value(q: float) -> float:
        return (q - base) * math.log(q / base) + (base - q) * math.log((1 - q) / (1 - base))

    lo, hi = base, 0.999
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if value(mid) < psi else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class Scenario:
    name: str
    healthy: bool
    champion_errors: float
    error_factor: float = 1.0
    latency_factor: float = 1.0
    psi: float = 0.0


SCENARIOS = [
    Scenario("healthy, 0% shared errors", True, 0.0),
    Scenario("healthy, 0.2% shared errors", True, 0.002),
    Scenario("healthy, 0.5% shared errors", True, 0.005),
    Scenario("healthy, 2% shared errors", True, 0.02),
    Scenario("5x errors (champion 0.2%)", False, 0.002, error_factor=5),
    Scenario("5x errors (champion 1%)", False, 0.01, error_factor=5),
    Scenario("5x errors (champion 2%)", False, 0.02, error_factor=5),
    Scenario("p95 1.5x slower", False, 0.002, latency_factor=1.5),
    Scenario("predictions shifted, PSI 0.3", False, 0.002, psi=0.3),
    Scenario("fails every call", False, 0.002, error_factor=500),
]


@dataclass(frozen=True)
class RolloutResult:
    rolled_back: bool
    first_step: bool
    challenger_requests: int  # seen by the judge when it decided (all steps)
    reason: str


class Variant:
    """One variant's simulated requests over a step, drawn at once and revealed poll by poll
    (cumulative counts, newest WINDOW_PREDICTIONS samples: what the gateway's window holds)."""

    def __init__(
        self,
        rng: np.random.Generator,
        counts: np.ndarray,
        load: np.ndarray,
        errors: float,
        latency: float,
        share: float,
    ) -> None:
        total = int(counts[-1])
        failed = rng.random(total) < errors
        per_request_load = np.repeat(load, np.diff(np.concatenate(([0], counts))))
        latencies = rng.lognormal(math.log(LATENCY_MEDIAN_MS), LATENCY_SIGMA, total)
        latencies *= latency * per_request_load
        predictions = (rng.random(total) < share).astype(np.int64)
        self.counts = counts
        self.errors = np.cumsum(failed)
        self.answered = np.cumsum(~failed)
        self.latencies = latencies[~failed]
        self.predictions = predictions[~failed]

    def reading(self, poll: int) -> dict:
        n = int(self.counts[poll])
        answered = int(self.answered[n - 1]) if n else 0
        first = max(0, answered - WINDOW_PREDICTIONS)
        return {
            "requests": n,
            "errors": int(self.errors[n - 1]) if n else 0,
            "p95_ms": None,  # a reading for the chart only; the judge takes its own
            "latencies_ms": self.latencies[first:answered],
            "predictions": self.predictions[first:answered],
        }


def one_rollout(plan: Plan, scenario: Scenario, rng: np.random.Generator) -> RolloutResult:
    judge = plan.judge()
    seen = 0
    shifted = share_for_psi(CLASS_SHARE, scenario.psi) if scenario.psi else CLASS_SHARE
    for index, phase in enumerate(plan.phases()):
        weight = 100 if phase == SHADOW else int(phase.rstrip("%"))
        seconds = plan.shadow_seconds if phase == SHADOW else plan.step_seconds
        polls = int(plan.step_timeout / POLL_SECONDS) + 1
        # The gateway's split is deterministic: the challenger's share of requests so far.
        total = np.round(RATE * POLL_SECONDS * np.arange(1, polls + 1)).astype(np.int64)
        to_challenger = np.round(total * weight / 100).astype(np.int64)
        load = rng.lognormal(0.0, LOAD_NOISE_SIGMA, polls)  # the host's noise, on both
        champion = Variant(
            rng, total - to_challenger, load, scenario.champion_errors, 1.0, CLASS_SHARE
        )
        challenger = Variant(
            rng,
            to_challenger,
            load,
            min(1.0, scenario.champion_errors * scenario.error_factor),
            scenario.latency_factor,
            shifted,
        )
        watch = judge.step(seconds)
        for poll in range(polls):
            window = Window.from_json(
                {
                    "seq": poll,
                    "champion": champion.reading(poll),
                    "challenger": challenger.reading(poll),
                }
            )
            decision = watch.observe(window, (poll + 1) * POLL_SECONDS)
            if decision.status == CONTINUE:
                continue
            seen += int(to_challenger[poll])
            if decision.status == ROLLBACK:
                return RolloutResult(True, index == 0, seen, decision.reasons[0])
            break
    return RolloutResult(False, False, seen, "promoted")


def run_scenario(args: tuple[Scenario, int, int, int]) -> tuple[Scenario, list[RolloutResult]]:
    scenario, rollouts, step_seconds, seed = args
    plan = plan_for(parse_config(SPOKE.format(step_seconds=step_seconds)))
    rng = np.random.default_rng(seed)
    return scenario, [one_rollout(plan, scenario, rng) for _ in range(rollouts)]


def table(rollouts: int, step_seconds: int, workers: int, only: str) -> None:
    plan = plan_for(parse_config(SPOKE.format(step_seconds=step_seconds)))
    t = plan.thresholds
    print(
        f"\n{rollouts} rollouts per scenario; {RATE:g} req/s, poll {POLL_SECONDS} s, steps "
        f"{' / '.join(plan.phases())} of {plan.step_seconds:g} s; tolerances: +"
        f"{t.max_error_increase * 100:g} pp errors (ceiling {t.max_error_rate:.0%}), latency "
        f"{t.max_p95_latency_ratio:g}x, PSI {t.max_prediction_psi:g}; false-rollback budget "
        f"{t.false_rollback_budget:.0%} per rollout\n",
        flush=True,
    )
    chosen = [s for s in SCENARIOS if only in s.name]
    jobs = [(s, rollouts, step_seconds, 1000 + i) for i, s in enumerate(chosen)]
    started = time.perf_counter()
    print(
        "| scenario | rolled back | in the first step | median challenger requests to "
        "decision | goal |\n|---|---|---|---|---|"
    )
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for scenario, results in pool.map(run_scenario, jobs):
            back = sum(r.rolled_back for r in results) / len(results)
            first = sum(r.first_step for r in results) / len(results)
            median = statistics.median(r.challenger_requests for r in results)
            if scenario.healthy:
                goal = f"<= 1% rolled back: {'met' if back <= 0.01 else 'NOT met'}"
            else:
                goal = f">= 99% in the first step: {'met' if first >= 0.99 else 'NOT met'}"
            print(
                f"| {scenario.name} | {back:.1%} | {first:.1%} | {median:,.0f} | {goal} |",
                flush=True,
            )
            reasons = {r.reason.split(":")[0][:60] for r in results if r.rolled_back}
            if scenario.healthy and reasons:
                print(f"  (why: {sorted(reasons)[:3]})", file=sys.stderr)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument(
        "--step-seconds",
        type=int,
        nargs="+",
        default=[60, 10],
        help="one table per step length (60: the slipway.toml default)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="", help="run the scenarios whose name has this")
    args = parser.parse_args()
    for seconds in args.step_seconds:
        table(args.rollouts, seconds, args.workers, args.only)


if __name__ == "__main__":
    main()
