"""Replay held-out rows against a gateway and report what the clients saw.

`slipway traffic`, the tests, the demo and the benchmark all use this one load generator:
`concurrency` asyncio clients on one httpx connection pool, one row per request (the shape
of online traffic), optionally paced to a total rate, bounded by a duration and a request
count, stoppable from another thread. It talks to loopback addresses only, by design.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import httpx
import numpy as np

from slipway.pipelines.config import SpokeConfig

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def replay_rows(root: Path, config: SpokeConfig) -> list[dict[str, Any]]:
    """The held-out rows the gate judged models on (spoke_code decides the split), as
    request rows: the contract's feature columns only, never the label."""
    from slipway.pipelines.training.spoke_code import held_out_rows

    rows = held_out_rows(root, config)[list(config.data.contract.columns)]
    return cast("list[dict[str, Any]]", rows.to_dict(orient="records"))  # pyright: ignore[reportCallIssue]


@dataclass
class TrafficReport:
    sent: int = 0
    ok: int = 0
    statuses: Counter = field(default_factory=Counter)
    variants: Counter = field(default_factory=Counter)
    exceptions: Counter = field(default_factory=Counter)  # connection-level failures by type
    latencies_ms: list[float] = field(default_factory=list)
    error_times: list[float] = field(default_factory=list)  # seconds since start, non-200s
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "variants": dict(self.variants),
            "exceptions": dict(self.exceptions),
            "seconds": round(self.seconds, 3),
            "rps": round(self.sent / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
        }


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ValueError(f"traffic goes to loopback addresses only; {url} is not one")


async def _run(
    url: str,
    rows: list[dict[str, Any]],
    *,
    rate: float,
    duration: float,
    concurrency: int,
    max_requests: int | None,
    stop: threading.Event | None,
    path: str,
) -> TrafficReport:
    report = TrafficReport()
    bodies = [{"dataframe_split": {"columns": list(r), "data": [list(r.values())]}} for r in rows]
    start = time.perf_counter()
    deadline = start + duration
    interval = concurrency / rate if rate > 0 else 0.0  # per client
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        i = worker
        next_at = time.perf_counter() + (interval * worker / concurrency)
        while True:
            now = time.perf_counter()
            if now >= deadline or (stop is not None and stop.is_set()):
                return
            if max_requests is not None and report.sent >= max_requests:
                return
            if interval:
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at += interval
            report.sent += 1
            t = time.perf_counter()
            try:
                response = await http.post(path, json=bodies[i % len(bodies)])
                status = response.status_code
                variant = response.headers.get("x-slipway-variant", "")
            except httpx.HTTPError as exc:
                status, variant = 0, ""  # connection failed: counted as a failed request
                report.exceptions[type(exc).__name__] += 1
            done = time.perf_counter()
            report.statuses[status] += 1
            if status == 200:
                report.ok += 1
                report.latencies_ms.append((done - t) * 1000)
                if variant:
                    report.variants[variant] += 1
            else:
                report.error_times.append(done - start)
            i += concurrency

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as http:
        await asyncio.gather(*(client(w, http) for w in range(concurrency)))
    report.seconds = time.perf_counter() - start
    return report


def run_traffic(
    url: str,
    rows: list[dict[str, Any]],
    *,
    rate: float = 0.0,
    duration: float = 10.0,
    concurrency: int = 20,
    max_requests: int | None = None,
    stop: threading.Event | None = None,
    path: str = "/invocations",
) -> TrafficReport:
    """Send rows (round robin) until `duration` seconds, `max_requests` or `stop`; rate 0
    means as fast as the clients can go."""
    _check_loopback(url)
    if not rows:
        raise ValueError("no rows to replay")
    return asyncio.run(
        _run(
            url,
            rows,
            rate=rate,
            duration=duration,
            concurrency=concurrency,
            max_requests=max_requests,
            stop=stop,
            path=path,
        )
    )
