"""Judge one rollout window: is the challenger failing, slow, or predicting differently?

Thresholds come from slipway.toml [rollout.guardrails], tightened by the risk tier's
`guardrail_factor` (tiers.py): error rate and PSI are multiplied by it, the latency ratio's
excess over 1 is (a factor of 0.5 turns 1.5x into 1.25x). Readings come from the gateway's
window of exactly the requests since the step began.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from slipway.pipelines.config import Guardrails, SpokeConfig
from slipway.pipelines.governance.tiers import rules_for

# Latency ratios are only judged when the challenger is slower by at least this much:
# a p95 of 2 ms against 1 ms is scheduler noise on a busy host, not a regression users feel.
LATENCY_FLOOR_MS = 20.0
# Below this many predictions per side a PSI is noise; the step waits for more traffic.
MIN_PSI_SAMPLES = 30
CATEGORICAL_MAX_VALUES = 20
PSI_BINS = 10
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class Thresholds:
    max_error_rate: float
    max_p95_latency_ratio: float
    max_prediction_psi: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def thresholds_for(config: SpokeConfig) -> Thresholds:
    rails: Guardrails = config.rollout.guardrails
    factor = rules_for(config.governance.risk_tier).guardrail_factor
    return Thresholds(
        max_error_rate=rails.max_error_rate * factor,
        max_p95_latency_ratio=1 + (rails.max_p95_latency_ratio - 1) * factor,
        max_prediction_psi=rails.max_prediction_psi * factor,
    )


def psi(expected: Sequence[Any], actual: Sequence[Any]) -> float:
    """Population stability index of `actual` against `expected` (0 = same distribution).

    Few distinct values (classes) are compared category by category; continuous outputs in
    ten bins cut at the expected side's quantiles.
    """
    values = set(expected) | set(actual)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if len(values) <= CATEGORICAL_MAX_VALUES or not numeric:
        bins_e, bins_a = Counter(expected), Counter(actual)
        keys = sorted(values, key=str)
        shares_e = [bins_e[k] / len(expected) for k in keys]
        shares_a = [bins_a[k] / len(actual) for k in keys]
    else:
        ordered = sorted(expected)
        cuts = [ordered[int(len(ordered) * i / PSI_BINS)] for i in range(1, PSI_BINS)]

        def shares(sample: Sequence[float]) -> list[float]:
            counts = [0] * PSI_BINS
            for v in sample:
                counts[sum(1 for c in cuts if v > c)] += 1
            return [c / len(sample) for c in counts]

        shares_e, shares_a = shares(expected), shares(actual)
    total = 0.0
    for e, a in zip(shares_e, shares_a, strict=True):
        e, a = max(e, PSI_EPSILON), max(a, PSI_EPSILON)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class Judgement:
    breaches: list[str]
    readings: dict[str, Any]


def judge(
    window: dict[str, Any],
    baseline: dict[str, Any],
    limits: Thresholds,
    *,
    min_requests: int,
    final: bool,
) -> Judgement:
    """Breaches of the challenger in `window` against the champion readings in `baseline`.

    Errors are judged on every poll, as soon as they are certain to breach even a clean
    window of `min_requests` (a failing model is pulled at its first errors); latency and
    drift only when `final` (the step's hold time is over), so they see the whole window.
    """
    chal = window["challenger"]
    readings: dict[str, Any] = {
        "champion_requests": window["champion"]["requests"],
        "champion_errors": window["champion"]["errors"],
        "challenger_requests": chal["requests"],
        "challenger_errors": chal["errors"],
        "champion_p95_ms": baseline.get("p95_ms"),
        "challenger_p95_ms": chal["p95_ms"],
    }
    breaches: list[str] = []
    n = chal["requests"]
    error_rate = chal["errors"] / n if n else 0.0
    readings["error_rate"] = round(error_rate, 4)
    if chal["errors"] > limits.max_error_rate * (n if final else max(n, min_requests)):
        breaches.append(
            f"error rate {error_rate:.1%} ({chal['errors']}/{n}) above {limits.max_error_rate:.1%}"
        )
    base_p95, chal_p95 = baseline.get("p95_ms"), chal["p95_ms"]
    if base_p95 and chal_p95:
        ratio = chal_p95 / base_p95
        readings["p95_ratio"] = round(ratio, 3)
        if (
            final
            and ratio > limits.max_p95_latency_ratio
            and chal_p95 - base_p95 > LATENCY_FLOOR_MS
        ):
            breaches.append(
                f"p95 latency {chal_p95:.1f} ms is {ratio:.2f}x the champion's "
                f"{base_p95:.1f} ms (limit {limits.max_p95_latency_ratio:.2f}x)"
            )
    base_pred, chal_pred = baseline.get("predictions") or [], chal["predictions"]
    if len(base_pred) >= MIN_PSI_SAMPLES and len(chal_pred) >= MIN_PSI_SAMPLES:
        value = psi(base_pred, chal_pred)
        readings["psi"] = round(value, 4)
        if final and value > limits.max_prediction_psi:
            breaches.append(
                f"prediction drift PSI {value:.2f} against the champion above "
                f"{limits.max_prediction_psi:.2f}"
            )
    return Judgement(breaches=breaches, readings=readings)
