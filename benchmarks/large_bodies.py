"""Huge request bodies against the gateway (issue 22): the row cap applied while reading,
against the same gateway with the cap applied after decoding every row (the baseline: how
parse_csv worked before), in one run.

Each mode runs in a fresh interpreter (so peak memory is its own): the gateway app in
process (httpx's ASGI transport), four concurrent 6 MiB CSV bodies of 3.1 M one-value rows
(each must be a 400), and one-row requests sent back to back meanwhile (after 20 to warm
up; at least 20 are measured, some after the burst when it is short). Printed: seconds to
the 400s, peak RSS growth, the small requests' p50/p99, and the ratios baseline / now.

    .tools/bin/uv run --no-sync python benchmarks/large_bodies.py
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HUB = Path(__file__).resolve().parents[1]
BIG = b"1\n" * (3 * 1024 * 1024)  # 6 MiB (the body limit), 3.1 M rows
BURST = 4


def _unbounded_csv(body: bytes, contract: Any) -> Any:
    """The baseline: every line decoded into a list, then counted (parse_csv before)."""
    from slipway.pipelines.serving import parsing

    lines = [line for line in csv.reader(io.StringIO(body.decode())) if line]
    if len(lines) > parsing.MAX_ROWS_PER_REQUEST:
        raise parsing.BadRequest(f"request holds {len(lines)} rows")
    return parsing.parse_csv(body, contract)


def measure(mode: str) -> dict[str, float]:
    import httpx

    from slipway.pipelines.config import parse_config
    from slipway.pipelines.serving import gateway as gateway_module
    from slipway.pipelines.serving import parsing
    from slipway.pipelines.serving.batching import Batcher
    from slipway.pipelines.serving.gateway import CHAMPION, Gateway, Limits, build_app

    config = parse_config(
        (HUB / "pipelines" / "tests" / "data" / "mixed_contract_spoke.toml").read_text()
    )
    if mode == "baseline":
        real = parsing.parse_body

        def old_parse(body: bytes, content_type: str, contract: Any) -> Any:
            if "csv" in content_type:
                return _unbounded_csv(body, contract)
            return real(body, content_type, contract)

        gateway_module.parse_body = old_parse  # and the loop's default executor, as before
        gateway_module.LARGE_PARSES = None  # pyright: ignore[reportAttributeAccessIssue]
    gw = Gateway(Path("."), config, limits=Limits())
    gw.variants = {
        CHAMPION: gw._variant(CHAMPION, "1", Batcher(lambda rows: [0] * len(rows), CHAMPION))
    }
    gw._champion_wanted = True
    gw.loaded.set()
    small = {
        "dataframe_split": {
            "columns": list(config.data.contract.columns),
            "data": [[3, 0.5, 2, True, "a"]],
        }
    }
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def run() -> tuple[float, list[float]]:
        transport = httpx.ASGITransport(app=build_app(gw), client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", timeout=120
        ) as http:
            latencies: list[float] = []
            done = asyncio.Event()

            async def big() -> int:
                answer = await http.post(
                    "/invocations", content=BIG, headers={"content-type": "text/csv"}
                )
                return answer.status_code

            async def smalls() -> None:
                while not done.is_set():
                    t = time.perf_counter()
                    await http.post("/invocations", json=small)
                    latencies.append((time.perf_counter() - t) * 1000)
                    await asyncio.sleep(0.005)

            for _ in range(20):  # warm: the first requests build the frame path and the batcher
                await http.post("/invocations", json=small)
            ticker = asyncio.create_task(smalls())
            started = time.perf_counter()
            codes = await asyncio.gather(*(big() for _ in range(BURST)))
            seconds = time.perf_counter() - started
            while len(latencies) < 20:  # enough samples for a p99 to mean something
                await asyncio.sleep(0.01)
            done.set()
            await ticker
            assert codes == [400] * BURST, codes
            return seconds, latencies

    seconds, latencies = asyncio.run(run())
    latencies.sort()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return {
        "seconds": seconds,
        "rss_mib": grown,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--mode":
        print(json.dumps(measure(sys.argv[2])))
        return
    results = {}
    for mode in ("baseline", "now"):
        out = subprocess.run(
            [sys.executable, __file__, "--mode", mode], capture_output=True, text=True, check=True
        )
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    for mode, r in results.items():
        print(
            f"{mode:>8}: {BURST} x 6 MiB CSV answered 400 in {r['seconds']:.2f} s, peak RSS "
            f"+{r['rss_mib']:,.0f} MiB, small requests meanwhile p50 {r['p50_ms']:.1f} ms "
            f"p99 {r['p99_ms']:.1f} ms"
        )
    b, n = results["baseline"], results["now"]
    print(
        f"ratios baseline/now: time {b['seconds'] / n['seconds']:.0f}x, memory "
        f"{b['rss_mib'] / max(n['rss_mib'], 1):.0f}x, small p99 {b['p99_ms'] / n['p99_ms']:.1f}x"
    )


if __name__ == "__main__":
    main()
