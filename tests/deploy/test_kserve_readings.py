"""The KServe judge's window against a real Prometheus, when a revision's scrape is late.

Why the first canary step once read "champion 0/0": the judge's window is the difference of
each version's counters between the step's start and now, as Prometheus has them. A busy
champion answering /metrics slower than the scrape timeout fails its scrape; Prometheus then
marks its series stale, the instant query at "now" returns nothing for it, and the window
counted zero champion requests (while the challenger's fresh scrape counted its own). Judged
against that empty champion, a step passed with neither latency nor drift compared.

Here each revision is a small exporter of the gateway's series whose /metrics can be held
past the scrape timeout, scraped by Debian's real `prometheus`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from slipway.pipelines.rollout.kserve_readings import REQUESTS, PrometheusReadings

from .conftest import KSERVE_GUARD_S, Prometheus, needs_prometheus

pytestmark = needs_prometheus
ISVC = "churn-guard"


class Exporter:
    """One revision's /metrics: the gateway's series for one version, counts set by the
    test; `hold` makes /metrics answer after the scrape timeout (the scrape fails)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.requests = self.answered = 0
        self.hold = threading.Event()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if exporter.hold.is_set():
                    time.sleep(1.5)  # past the 0.5 s scrape timeout: Prometheus gives up
                body = exporter.text().encode()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/plain; version=0.0.4")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # Prometheus hung up on a held scrape

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def text(self) -> str:
        v = f'variant="champion",version="{self.version}"'
        half = self.answered // 2
        return (
            f"{REQUESTS}{{{v}}} {self.requests}\n"
            f"slipway_gateway_errors_total{{{v}}} 0\n"
            f'slipway_gateway_model_seconds_bucket{{{v},le="0.005"}} {self.answered}\n'
            f'slipway_gateway_model_seconds_bucket{{{v},le="+Inf"}} {self.answered}\n'
            f'slipway_gateway_predictions_total{{{v},value="0"}} {half}\n'
            f'slipway_gateway_predictions_total{{{v},value="1"}} {self.answered - half}\n'
        )

    def serve(self, n: int) -> None:
        self.requests += n
        self.answered += n

    def close(self) -> None:
        self.hold.clear()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[Exporter, Exporter, Prometheus]]:
    champion, challenger = Exporter("1"), Exporter("2")
    champion.serve(100)  # its traffic before the step
    prometheus = Prometheus(tmp_path, [champion.url, challenger.url], ISVC)
    try:
        yield champion, challenger, prometheus
    finally:
        prometheus.stop()
        champion.close()
        challenger.close()


def until(what: str, check: Callable[[], bool]) -> None:
    """Wait for `check` (a failure guard, never a speed claim)."""
    deadline = time.monotonic() + KSERVE_GUARD_S
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def instant(prometheus: Prometheus, promql: str) -> dict[str, float]:
    body = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}).json()
    return {r["metric"].get("version", ""): float(r["value"][1]) for r in body["data"]["result"]}


def test_a_window_waits_for_a_scrape_of_both_revisions_after_the_step_began(scraped):
    champion, challenger, prometheus = scraped
    readings = PrometheusReadings(prometheus.url, f'inferenceservice="{ISVC}"')
    selector = f'{REQUESTS}{{inferenceservice="{ISVC}"}}'
    until("both revisions scraped", lambda: set(instant(prometheus, selector)) == {"1", "2"})
    # The champion's scrapes start failing (its /metrics slower than the scrape timeout).
    champion.hold.set()
    until("the champion's series stale", lambda: "1" not in instant(prometheus, selector))
    since = time.time()  # the step begins
    champion.serve(90)
    challenger.serve(40)
    until(
        "a scrape of the challenger after the step began",
        lambda: readings.last_scraped(time.time()).get("2", 0.0) > since,
    )
    # A scrape's time is its sample's, not the query's: asked a minute ahead, it is the past.
    now = time.time()
    assert readings.last_scraped(now + 60)["2"] <= now
    # The cause: at "now" Prometheus has nothing for the champion; a window read from that
    # said "champion 0/0". Now the window is pending, and says why.
    assert "1" not in instant(prometheus, f"sum by (version) ({selector})")
    window = readings.window("1", "2", since)
    assert window.pending and "version 1" in window.pending, window
    assert window.champion.requests == 0 and window.challenger.requests == 0
    # The champion answers scrapes again: the window is read, with the step's own traffic
    # (90, not the 190 of its lifetime: the stale start reads its last real sample).
    champion.hold.clear()
    until("a window", lambda: not readings.window("1", "2", since).pending)
    window = readings.window("1", "2", since)
    assert (window.champion.requests, window.challenger.requests) == (90, 40)
    assert len(window.champion.predictions) == 90 and len(window.challenger.predictions) == 40
