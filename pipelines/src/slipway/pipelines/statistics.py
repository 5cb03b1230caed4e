"""The tests the canary judge runs, as pure functions with a known chance of firing.

- Error rates: time-uniform confidence sequences for a Bernoulli rate (Robbins' method of
  mixtures with a Jeffreys Beta(1/2, 1/2) mixing prior). The bounds hold simultaneously at
  every look with probability 1 - alpha, so the controller may look after every request.
- Latency: a one-sided Mann-Whitney U test of the challenger's samples against the champion's
  samples stretched by the tolerated slow-down (as Kayenta's judge, with its effect size).
- Prediction drift: Pearson's chi-square test of homogeneity on the binned prediction counts,
  whose chance firing rate for a given sample size is its p-value, plus the PSI of the same
  bins as the size of the drift.
- Production alarms: the chance that M of N one-minute periods breach by chance (binomial).

Only the error bounds and the alarm arithmetic run without numpy and scipy: slipway-infra
derives its alarms from this module on the base install.

It sits below the stage packages (it imports none of them), so the gateway's CloudWatch
publisher, drift monitoring and the canary judge all take `psi` from here: the stages import
one way (pipelines/tests/test_layout.py checks it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Jeffreys prior: invariant, and puts enough weight near 0 and 1 that a model failing every
# call is pulled within its first few errors while rare errors need many requests.
PRIOR = 0.5
_TINY = 1e-12
CATEGORICAL_MAX_VALUES = 20
DRIFT_BINS = 10
# Pearson's chi-square approximation wants about five expected counts per bin: rarer bins
# are merged into their neighbour (or, for classes, into one "other" bin).
MIN_EXPECTED_PER_BIN = 5.0
PSI_EPSILON = 1e-4


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _log_likelihood(p: float, errors: int, n: int) -> float:
    hits = errors * math.log(p) if errors else 0.0
    misses = (n - errors) * math.log1p(-p) if n > errors else 0.0
    return hits + misses


def _bisect(f: Callable[[float], float], lo: float, hi: float, iterations: int = 40) -> float:
    """Root of f between lo and hi, where f(lo) and f(hi) differ in sign (bisection: 40
    halvings reach 1e-12 of the unit interval, and it cannot fail to converge)."""
    f_lo = f(lo) > 0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == f_lo:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def rate_bounds(errors: int, n: int, alpha: float) -> tuple[float, float]:
    """Always-valid (1 - alpha) confidence bounds for an error rate after `errors` of `n`.

    The set of rates p whose likelihood is within 1/alpha of the Beta-Binomial mixture's:
    by Ville's inequality the true rate leaves it at some look with probability <= alpha,
    however many looks are taken (Robbins 1970; Howard et al. 2021).
    """
    if n <= 0:
        return 0.0, 1.0
    log_mixture = _log_beta(PRIOR + errors, PRIOR + n - errors) - _log_beta(
        PRIOR, PRIOR
    )  # log of the mixture likelihood
    limit = math.log(1 / alpha)

    def excess(p: float) -> float:  # > 0 outside the confidence set
        return log_mixture - _log_likelihood(p, errors, n) - limit

    rate = errors / n
    lower = 0.0 if errors == 0 else _bisect(excess, _TINY, rate)
    upper = 1.0 if errors == n else _bisect(excess, rate, 1 - _TINY)
    return lower, upper


@dataclass(frozen=True)
class ErrorEvidence:
    """The error guardrail at one look: both variants' bounds and the decision boundary."""

    challenger_requests: int
    challenger_errors: int
    champion_requests: int
    champion_errors: int
    challenger_low: float  # the challenger's error rate is at least this
    champion_high: float  # the champion's error rate is at most this
    boundary: float  # champion_high + tolerated increase: rollback when challenger_low > it
    ceiling: float  # max_error_rate: also rollback when challenger_low > it > champion_high
    alpha: float  # chance a bound is wrong at any look of this step (each bound)
    breach: bool

    @property
    def rollback_above(self) -> float:
        """The challenger's lower bound rolls it back above this (both rules in one)."""
        if self.champion_high < self.ceiling:
            return min(self.boundary, self.ceiling)
        return self.boundary


def compare_error_rates(
    challenger: tuple[int, int],
    champion: tuple[int, int],
    *,
    increase: float,
    ceiling: float,
    alpha: float,
) -> ErrorEvidence:
    """Is the challenger's error rate certainly more than `increase` above the champion's,
    or certainly above `ceiling` while the champion's is certainly below it?

    `challenger` and `champion` are (errors, requests). Each bound holds at every look with
    probability 1 - alpha, so a challenger no worse than the champion is rolled back with
    probability at most 2 * alpha however often this is called.
    """
    (e_c, n_c), (e_b, n_b) = challenger, champion
    low = rate_bounds(e_c, n_c, alpha)[0]
    high = rate_bounds(e_b, n_b, alpha)[1]
    boundary = high + increase
    breach = low > boundary or (high < ceiling < low)
    return ErrorEvidence(n_c, e_c, n_b, e_b, low, high, boundary, ceiling, alpha, breach)


@dataclass(frozen=True)
class LatencyEvidence:
    challenger_samples: int
    champion_samples: int
    challenger_p95_ms: float
    champion_p95_ms: float
    u_statistic: float
    p_value: float  # one-sided: challenger slower than the tolerated slow-down of the champion
    alpha: float
    breach: bool


def compare_latency(
    challenger_ms: Sequence[float],
    champion_ms: Sequence[float],
    *,
    ratio: float,
    floor_ms: float,
    alpha: float,
) -> LatencyEvidence:
    """Mann-Whitney U, one-sided: are the challenger's latencies stochastically larger than
    the champion's stretched by the tolerated `ratio`? A slow-down of the p95 below
    `floor_ms` is never a breach (noise on a busy host, not a regression users feel).

    A challenger within the tolerance is rolled back with probability at most alpha.
    """
    import numpy as np
    from scipy.stats import mannwhitneyu

    chal = np.asarray(challenger_ms, dtype=float)
    base = np.asarray(champion_ms, dtype=float)
    result = mannwhitneyu(chal, base * ratio, alternative="greater", method="asymptotic")
    p_value = float(result.pvalue)
    p95_c, p95_b = float(np.percentile(chal, 95)), float(np.percentile(base, 95))
    return LatencyEvidence(
        challenger_samples=len(chal),
        champion_samples=len(base),
        challenger_p95_ms=p95_c,
        champion_p95_ms=p95_b,
        u_statistic=float(result.statistic),
        p_value=p_value,
        alpha=alpha,
        breach=p_value < alpha and p95_c - p95_b > floor_ms,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def binned_counts(
    expected: Sequence[Any], actual: Sequence[Any]
) -> tuple[list[int], list[int], list[str]]:
    """Both samples' counts in the same bins: one per class when there are few distinct
    values (or they are not numbers), else ten bins cut at the expected side's deciles."""
    import numpy as np

    # numpy arrays (the benchmark's windows) count as the lists the gateway sends.
    expected = list(expected.tolist() if isinstance(expected, np.ndarray) else expected)
    actual = list(actual.tolist() if isinstance(actual, np.ndarray) else actual)
    values = set(expected) | set(actual)
    if len(values) <= CATEGORICAL_MAX_VALUES or not all(_is_number(v) for v in values):
        count_e, count_a = Counter(expected), Counter(actual)
        keys = sorted(values, key=str)
        return [count_e[k] for k in keys], [count_a[k] for k in keys], [str(k) for k in keys]
    import numpy as np

    ordered = np.sort(np.asarray(expected, dtype=float))
    cuts = np.unique(ordered[[int(len(ordered) * i / DRIFT_BINS) for i in range(1, DRIFT_BINS)]])
    edges = np.searchsorted(cuts, np.asarray(expected, dtype=float), side="left")
    edges_a = np.searchsorted(cuts, np.asarray(actual, dtype=float), side="left")
    n_bins = len(cuts) + 1
    labels = [f"<= {c:.4g}" for c in cuts] + [f"> {cuts[-1]:.4g}" if len(cuts) else "all"]
    return (
        np.bincount(edges, minlength=n_bins).tolist(),
        np.bincount(edges_a, minlength=n_bins).tolist(),
        labels,
    )


def psi_of_counts(expected: Sequence[int], actual: Sequence[int]) -> float:
    """Population stability index of two count vectors over the same bins."""
    total_e, total_a = sum(expected), sum(actual)
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        share_e = max(e / total_e, PSI_EPSILON)
        share_a = max(a / total_a, PSI_EPSILON)
        value += (share_a - share_e) * math.log(share_a / share_e)
    return value


def _merge_sparse(expected: list[int], actual: list[int]) -> tuple[list[int], list[int]]:
    """Merge each bin whose expected count under homogeneity is below five into the next."""
    total = sum(expected) + sum(actual)
    share_a = sum(actual) / total
    out_e: list[int] = []
    out_a: list[int] = []
    acc_e = acc_a = 0
    for e, a in zip(expected, actual, strict=True):
        acc_e, acc_a = acc_e + e, acc_a + a
        smaller = min(share_a, 1 - share_a) * (acc_e + acc_a)
        if smaller >= MIN_EXPECTED_PER_BIN:
            out_e.append(acc_e)
            out_a.append(acc_a)
            acc_e = acc_a = 0
    if acc_e or acc_a:
        if out_e:
            out_e[-1] += acc_e
            out_a[-1] += acc_a
        else:
            out_e, out_a = [acc_e], [acc_a]
    return out_e, out_a


@dataclass(frozen=True)
class DriftEvidence:
    challenger_samples: int
    champion_samples: int
    psi: float
    chi_square: float
    degrees_of_freedom: int
    p_value: float  # chance of a chi-square this large from the same distribution
    alpha: float
    max_psi: float
    breach: bool


def compare_predictions(
    challenger: Sequence[Any], champion: Sequence[Any], *, max_psi: float, alpha: float
) -> DriftEvidence:
    """Do the challenger's predictions come from another distribution than the champion's
    (chi-square homogeneity test, p < alpha) by more than the tolerated PSI?

    The same distribution is rolled back with probability at most alpha (the chi-square's
    p-value is calibrated for the sample size at hand); the PSI condition only keeps a
    statistically certain but tiny difference from rolling a model back.
    """
    from scipy.stats import chi2

    counts_b, counts_c, _ = binned_counts(champion, challenger)
    value = psi_of_counts(counts_b, counts_c)
    merged_b, merged_c = _merge_sparse(counts_b, counts_c)
    n_b, n_c = sum(merged_b), sum(merged_c)
    statistic = 0.0
    for b, c in zip(merged_b, merged_c, strict=True):
        column = b + c
        for observed, row_total in ((b, n_b), (c, n_c)):
            expected = column * row_total / (n_b + n_c)
            statistic += (observed - expected) ** 2 / expected
    dof = len(merged_b) - 1
    p_value = float(chi2.sf(statistic, dof)) if dof > 0 else 1.0
    return DriftEvidence(
        challenger_samples=n_c,
        champion_samples=n_b,
        psi=value,
        chi_square=statistic,
        degrees_of_freedom=dof,
        p_value=p_value,
        alpha=alpha,
        max_psi=max_psi,
        breach=p_value < alpha and value > max_psi,
    )


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed exactly in log space."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_p
        + (n - i) * log_q
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass(frozen=True)
class AlarmPlan:
    """A CloudWatch alarm's M-of-N rule and its chance of firing on a healthy endpoint."""

    evaluation_periods: int
    datapoints_to_alarm: int
    period_false_alarm: float  # chance one healthy period breaches the threshold
    false_alarm: float  # chance the rule fires at least once during one canary bake


def alarm_rule(period_chance: float, periods: int, budget: float) -> AlarmPlan:
    """The fewest breaching datapoints M (of the bake's `periods` one-minute datapoints) that
    keep the chance of a false alarm during the bake within `budget`, given each healthy
    period breaches independently with `period_chance`. M of N periods breach with
    probability P(Binomial(N, q) >= M); the bake watches one window of N periods."""
    periods = max(1, periods)
    for m in range(1, periods + 1):
        chance = binomial_tail(m, periods, period_chance)
        if chance <= budget:
            return AlarmPlan(periods, m, period_chance, chance)
    return AlarmPlan(
        periods, periods, period_chance, binomial_tail(periods, periods, period_chance)
    )


def psi(expected: Sequence[Any], actual: Sequence[Any]) -> float:
    """Population stability index of `actual` against `expected` (0 = same distribution).

    Few distinct values (classes) are compared category by category; continuous outputs in
    ten bins cut at the expected side's quantiles (the bins the drift guardrail tests).
    """
    counts_e, counts_a, _ = binned_counts(expected, actual)
    return psi_of_counts(counts_e, counts_a)
