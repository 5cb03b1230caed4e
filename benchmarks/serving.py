"""Serving benchmark: Slipway's gateway against `mlflow models serve`, in one run.

    .venv/bin/python benchmarks/serving.py [--seconds 10] [--concurrency 20]

On one freshly rendered spoke (the template's breast-cancer logistic regression, trained by
the spoke's own trainer), with the same load generator (slipway.pipelines.rollout.traffic: asyncio
clients, one held-out row per request, as fast as they go, loopback only) and the same
concurrency, it measures:

1. throughput and p50/p99 latency of the gateway (100% champion) and of
   `mlflow models serve --env-manager local` on the same registered version, and the ratios
   (goal: at least 5x the throughput at a lower p99);
2. the cost of routing: the gateway at 50/50 champion/challenger against 100% champion
   (goal: under 5% of throughput);
3. the time from a guardrail breach to 100% champion: a challenger that raises is rolled out
   under load; from the first failed client request to the last one (goal: under 1 s).

Numbers are only meaningful relative to each other, measured in the same run on the same
machine; nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HUB = Path(__file__).resolve().parents[1]
SLIPWAY = str(Path(sys.executable).parent / "slipway")
MLFLOW = str(Path(sys.executable).parent / "mlflow")
ROUNDS = 3


def wait_for(url: str, guard_s: float = 180) -> None:
    deadline = time.monotonic() + guard_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} never answered")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_spoke(where: Path):
    from copier import run_copy

    from slipway.pipelines import registry
    from slipway.pipelines.config import load_config
    from slipway.pipelines.rollout import release
    from slipway.pipelines.rollout.rehearsal import register_trained

    root = where / "spoke"
    run_copy(
        str(HUB),
        root,
        data={"risk_tier": "low"},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
        unsafe=False,
    )
    config = load_config(root)
    v1 = register_trained(root, config, {"C": 1.0, "max_iter": 500})
    v2 = register_trained(root, config, {"C": 0.5, "max_iter": 500})
    release.promote(
        root, registry.client(root), config.model_name, v1, reason="benchmark: first champion"
    )
    return root, config, v1, v2


def start_gateway(root: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [SLIPWAY, "-C", str(root), "serve", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().rsplit(" ", 1)[1].strip()
    wait_for(f"{url}/health")
    return proc, url


def measure(label: str, url: str, rows: list, seconds: float, concurrency: int) -> dict:
    from slipway.pipelines.rollout.traffic import run_traffic

    run_traffic(url, rows, duration=min(2.0, seconds), concurrency=concurrency)  # warm up
    report = run_traffic(url, rows, duration=seconds, concurrency=concurrency)
    summary = report.summary()
    print(
        f"  {label:<34} {summary['rps']:>8.1f} req/s  p50 {summary['p50_ms']:>7.1f} ms  "
        f"p99 {summary['p99_ms']:>7.1f} ms  failed {summary['failed']}"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()

    from slipway.pipelines import registry
    from slipway.pipelines.rollout.rehearsal import register_faulty
    from slipway.pipelines.rollout.traffic import replay_rows, run_traffic

    with tempfile.TemporaryDirectory() as tmp:
        root, config, v1, v2 = make_spoke(Path(tmp))
        rows = replay_rows(root, config)
        print(
            f"spoke {config.model_name}: {len(rows)} held-out rows, "
            f"{args.concurrency} concurrent clients, {args.seconds:g} s per measurement\n"
        )

        port = free_port()
        # mlflow execs `uvicorn` by name: the venv's bin must be on PATH.
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": registry.tracking_uri(root),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        mlflow_proc = subprocess.Popen(
            [
                MLFLOW,
                "models",
                "serve",
                "-m",
                f"models:/{config.model_name}/{v1}",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/ping")
            print("1. gateway against mlflow models serve (same model, same load)")
            base = measure(
                "mlflow models serve",
                f"http://127.0.0.1:{port}",
                rows,
                args.seconds,
                args.concurrency,
            )
        finally:
            mlflow_proc.terminate()
            mlflow_proc.wait()

        gateway, url = start_gateway(root)
        try:
            ours = measure(
                "slipway gateway, 100% champion", url, rows, args.seconds, args.concurrency
            )
            print(
                f"  throughput ratio {ours['rps'] / base['rps']:.1f}x (goal >= 5x), "
                f"p99 ratio {ours['p99_ms'] / base['p99_ms']:.2f} (goal < 1)\n"
            )

            print(
                f"2. cost of routing: 50/50 against 100% champion, {ROUNDS} interleaved "
                "rounds each (one sample swings by tens of percent on 2 shared cores)"
            )
            client = registry.client(root)
            client.set_registered_model_alias(config.model_name, registry.CHALLENGER, v2)
            httpx.post(f"{url}/admin/reload", timeout=120)
            rps: dict[int, list[float]] = {0: [], 50: []}
            for round_ in range(ROUNDS):
                for weight in (0, 50):
                    httpx.post(f"{url}/admin/weights", json={"challenger": weight}, timeout=10)
                    label = f"round {round_ + 1}, challenger at {weight}%"
                    rps[weight].append(
                        measure(label, url, rows, args.seconds, args.concurrency)["rps"]
                    )
            overhead = 1 - statistics.median(rps[50]) / statistics.median(rps[0])
            print(f"  throughput cost of routing, medians {overhead:+.1%} (goal < 5%)\n")
            httpx.post(f"{url}/admin/weights", json={"challenger": 0}, timeout=10)
            client.delete_registered_model_alias(config.model_name, registry.CHALLENGER)

            print("3. guardrail breach to 100% champion (a challenger that raises)")
            broken = register_faulty(root, config, "raise")
            stop = threading.Event()
            result: dict = {}
            load = threading.Thread(
                target=lambda: result.update(
                    report=run_traffic(
                        url, rows, duration=300, concurrency=args.concurrency, stop=stop
                    )
                )
            )
            load.start()
            time.sleep(1.0)
            deploy = subprocess.run(
                [
                    SLIPWAY,
                    "-C",
                    str(root),
                    "deploy",
                    "--version",
                    broken,
                    "--url",
                    url,
                    "--step-seconds",
                    "1",
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            time.sleep(1.0)
            stop.set()
            load.join()
            report = result["report"]
            times = report.error_times
            window = (times[-1] - times[0]) if times else float("nan")
            print(
                f"  deploy exit {deploy.returncode} (6 = rolled back); {report.failed} of "
                f"{report.sent} client requests failed"
            )
            print(f"  first to last failed request: {window * 1000:.0f} ms (goal < 1000 ms)")
        finally:
            gateway.terminate()
            gateway.wait()


if __name__ == "__main__":
    main()
