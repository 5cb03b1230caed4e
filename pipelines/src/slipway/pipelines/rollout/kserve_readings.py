"""The judge's readings per revision from Prometheus, for a canary on KServe.

On KServe each revision is its own pods, each the gateway in single-model mode exporting
slipway_gateway_* metrics labelled with the model `version` it serves; Prometheus scrapes
them (a PodMonitor, or pod discovery keeping the `serving.kserve.io/inferenceservice` label as
`inferenceservice`). A step's window is the difference of the counters between the step's
start and now, per version: requests, errors, the latency histogram's buckets and the
predicted-value counters. The judge then decides as it does on the laptop on errors and on
drift (its prediction samples are the counted values: classes; a regressor's values are one
"continuous" label there, so its drift is not judged on KServe).

A window is only read once Prometheus holds a scrape of both versions taken after the step
began. Before that (the scrape interval has not come round, or the busy champion's last
scrape failed and Prometheus marked its series stale), the champion's counters read the same
at both ends, or not at all, and the window said "champion 0/0": judged against that, a step
passed with neither latency nor drift compared. Such a window is `pending`, and the judge
waits for the next one, within the step's timeout. Counter values are each series' last real
sample (`last_over_time`), so one failed scrape at the step's start does not make a version's
whole lifetime count as the step's.

Latency is judged on the model-time histogram (slipway_gateway_model_seconds), as the
laptop's window holds model time: the whole time to answer includes each pod's queueing under
its share of traffic, and on it the rank test rolled a healthy challenger back here (25 ms
bucket against 2.5 ms on a busy 2-core machine). Samples sit at their bucket's upper bound,
so a slow-down is seen at bucket resolution.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.serving.window import VariantWindow, Window

REQUESTS = "slipway_gateway_requests_total"
ERRORS = "slipway_gateway_errors_total"
LATENCY = "slipway_gateway_model_seconds_bucket"
PREDICTIONS = "slipway_gateway_predictions_total"
MAX_SAMPLES = 5_000  # as the gateway's own window returns at most
# How far back a counter's last sample is looked for (Prometheus' own lookback is 5 minutes).
LOOKBACK = "5m"


class PrometheusUnreachable(SlipwayError):
    """Prometheus did not answer a query: the step cannot be judged, so nothing moves."""

    exit_code = Exit.UNREACHABLE


class PrometheusReadings:
    """Windows per model version, read from the Prometheus at `url`, over the series that
    `selector` (PromQL label matchers, e.g. `inferenceservice="churn-guard"`) picks."""

    def __init__(self, url: str, selector: str, http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.selector = selector
        self._http = http or httpx.Client(timeout=10.0)

    def _query(self, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        try:
            response = self._http.get(
                f"{self.url}/api/v1/query", params={"query": promql, "time": f"{at:.3f}"}
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PrometheusUnreachable(
                f"Prometheus at {self.url} did not answer ({type(exc).__name__}: {exc}); check "
                "[deploy.kserve].prometheus_url, then `slipway deploy --resume`"
            ) from exc
        if body.get("status") != "success":
            raise PrometheusUnreachable(f"Prometheus refused {promql!r}: {body.get('error')}")
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    def _delta(
        self, metric: str, by: str, since: float, now: float
    ) -> dict[tuple[str, ...], float]:
        """Per label group, the counter's increase between `since` and `now` (a reset, i.e. a
        restarted pod, counts from zero)."""
        promql = f"sum by ({by}) (last_over_time({metric}{{{self.selector}}}[{LOOKBACK}]))"
        keys = [k.strip() for k in by.split(",")]

        def at(t: float) -> dict[tuple[str, ...], float]:
            return {tuple(m.get(k, "") for k in keys): v for m, v in self._query(promql, t)}

        before, after = at(since), at(now)
        return {
            key: (value - before.get(key, 0.0) if value >= before.get(key, 0.0) else value)
            for key, value in after.items()
        }

    def last_scraped(self, at: float) -> dict[str, float]:
        """Per version, when Prometheus last scraped it (the oldest of its pods' last good
        scrapes, epoch seconds); a version whose every pod's last scrape failed is absent."""
        promql = f"min by (version) (timestamp({REQUESTS}{{{self.selector}}}))"
        return {m.get("version", ""): v for m, v in self._query(promql, at)}

    def window(self, champion: str | None, challenger: str | None, since: float) -> Window:
        """Both versions' readings since `since` (epoch seconds), or a pending window while
        Prometheus has not scraped both since then."""
        now = time.time()
        scraped = self.last_scraped(now)
        unread = [v for v in (champion, challenger) if v and scraped.get(v, 0.0) <= since]
        if unread:
            empty = VariantWindow(0, 0, None, [], [])
            last = ", ".join(
                f"version {v} last at {scraped[v]:.1f}" if v in scraped else f"version {v} never"
                for v in unread
            )
            return Window(
                int(now * 1000),
                empty,
                empty,
                pending=f"Prometheus at {self.url} has no scrape since the step began at "
                f"{since:.1f} ({last}); check that it scrapes the predictor pods",
            )
        requests = self._delta(REQUESTS, "version", since, now)
        errors = self._delta(ERRORS, "version", since, now)
        buckets = self._delta(LATENCY, "version, le", since, now)
        values = self._delta(PREDICTIONS, "version, value", since, now)

        def variant(version: str | None) -> VariantWindow:
            if version is None:
                return VariantWindow(0, 0, None, [], [])
            latencies = _bucket_samples({le: n for (v, le), n in buckets.items() if v == version})
            predictions = _value_samples({x: n for (v, x), n in values.items() if v == version})
            p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else None
            return VariantWindow(
                requests=round(requests.get((version,), 0.0)),
                errors=round(errors.get((version,), 0.0)),
                p95_ms=p95,
                latencies_ms=latencies,
                predictions=predictions,
            )

        return Window(int(now * 1000), variant(champion), variant(challenger))

    def close(self) -> None:
        self._http.close()


def _scaled(counts: Mapping[Any, float]) -> dict[Any, int]:
    """Counts scaled down (proportionally) to at most MAX_SAMPLES in all."""
    total = sum(counts.values())
    factor = min(1.0, MAX_SAMPLES / total) if total > 0 else 0.0
    return {k: round(n * factor) for k, n in counts.items() if round(n * factor) > 0}


def _bucket_samples(cumulative: Mapping[str, float]) -> list[float]:
    """Latency samples (ms, sorted) from cumulative histogram buckets: each observation at its
    bucket's upper bound (the +Inf bucket's at the largest finite bound)."""
    bounds = sorted((float(le), n) for le, n in cumulative.items())
    finite = [b for b, _ in bounds if b != float("inf")]
    per_bucket: dict[float, float] = {}
    below = 0.0
    for bound, n in bounds:
        at = bound if bound != float("inf") else (finite[-1] if finite else 0.0)
        per_bucket[at] = per_bucket.get(at, 0.0) + max(0.0, n - below)
        below = max(below, n)
    return [b * 1000 for b, n in sorted(_scaled(per_bucket).items()) for _ in range(n)]


def _value(label: str) -> Any:
    if label in ("true", "false"):
        return label == "true"
    try:
        return int(label)
    except ValueError:
        return label


def _value_samples(counts: Mapping[str, float]) -> list[Any]:
    return [_value(x) for x, n in sorted(_scaled(counts).items()) for _ in range(n)]
