"""Serving benchmark: the gateway against `mlflow models serve` and a bare-Starlette ceiling.

    .venv/bin/python benchmarks/serving.py [--seconds 10] [--connections 20] [--rollout]

On one freshly rendered spoke (the template's breast-cancer logistic regression, trained by
the spoke's own trainer), wrk (Debian's `wrk`, a native load generator: a Python client eats
the CPU it measures) posts one-row JSON requests (`dataframe_split`, held-out rows in turn)
over `--connections` keep-alive connections for `--seconds` each, loopback only, against:

1. a bare Starlette endpoint returning a constant (the ceiling of the server stack), under
   uvicorn with uvloop + httptools and with asyncio + h11;
2. `mlflow models serve --env-manager local` on the same registered version (the baseline);
3. the gateway as `slipway serve` runs it on a laptop (one process: champion, contract
   check, batching, Prometheus metrics, drift sample to disk);
4. the gateway as the SageMaker image runs it (`serve`, single-model mode, guardrail
   publisher on), with uvloop + httptools and with asyncio + h11 on one worker, and with one
   worker per core (what SageMaker gets by default).

Goals (issue 12): one-row JSON at 20 connections, >= 2,000 req/s, >= 15x mlflow, p99 < 25 ms,
with every check on. Also printed: orjson against the standard json module on one request's
parse and answer. With --rollout, the older sections run too: the cost of a 50/50 split and
the time from a guardrail breach to 100% champion (Python clients, slipway deploy).

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


WRK_SCRIPT = """
local bodies = {}
for line in io.lines(os.getenv("SLIPWAY_BENCH_BODIES")) do bodies[#bodies + 1] = line end
local path = os.getenv("SLIPWAY_BENCH_PATH") or "/invocations"
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, bodies[i])
end
"""
BARE_APP = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def constant(request):
    await request.body()
    return Response(b'{"predictions": [1]}', media_type="application/json")

app = Starlette(routes=[Route("/invocations", constant, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop=sys.argv[2], http=sys.argv[3],
            log_level="warning", access_log=False)
"""


def parse_wrk(text: str) -> dict:
    """req/s, p50/p99 (ms) and non-2xx counts from `wrk --latency` output."""
    import re

    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def wrk(
    label: str,
    url: str,
    bodies: Path,
    seconds: float,
    connections: int,
    path: str = "/invocations",
) -> dict:
    script = bodies.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "SLIPWAY_BENCH_BODIES": str(bodies), "SLIPWAY_BENCH_PATH": path}
    common = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", str(script), url]
    subprocess.run([*common[:3], "-d2s", *common[3:]], env=env, capture_output=True)  # warm up
    done = subprocess.run(
        [*common[:3], f"-d{seconds:g}s", *common[3:]], env=env, capture_output=True, text=True
    )
    result = parse_wrk(done.stdout)
    print(
        f"  {label:<48} {result['rps']:>8.0f} req/s  p50 {result['p50_ms']:>6.1f} ms  "
        f"p99 {result['p99_ms']:>6.1f} ms  non-2xx {result['non_2xx']}"
        + (f"  socket errors: {result['socket_errors']}" if result["socket_errors"] else ""),
        flush=True,
    )
    return result


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_single_model(
    root: Path, model_dir: Path, workers: int, loop: str, http: str
) -> tuple[subprocess.Popen, str]:
    """The image's `serve` entry as SageMaker runs it, guardrail publisher on (its
    CloudWatch calls go to a closed local port: they fail once a minute, off the path)."""
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SLIPWAY_MODEL_DIR": str(model_dir),
        "SLIPWAY_SPOKE_ROOT": str(root),
        "SLIPWAY_MODEL_VERSION": "1",
        "SLIPWAY_ENDPOINT_NAME": "bench-prod",
        "SLIPWAY_VARIANT_NAME": "AllTraffic",
        "SLIPWAY_ACCESS_LOG": "0",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
        "SLIPWAY_SERVER_LOOP": loop,
        "SLIPWAY_SERVER_HTTP": http,
    }
    proc = subprocess.Popen(
        ["sh", str(HUB / "template" / "docker" / "serve")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/ping")
    return proc, url


def packaged_model(root: Path, model_name: str, version: str, where: Path) -> Path:
    import mlflow.artifacts

    from slipway.pipelines.registry import fluent_registry
    from slipway.pipelines.rollout.packaging import add_reference

    with fluent_registry(root):
        local = mlflow.artifacts.download_artifacts(
            f"models:/{model_name}/{version}", dst_path=str(where / "model")
        )
    add_reference(root, Path(local))
    return Path(local)


def json_libraries(body: bytes, rounds: int = 20_000) -> None:
    """One request's decode and one answer's encode, orjson against the json module."""
    import json

    import orjson

    answer = {"predictions": [1]}
    timings = {}
    for name, loads, dumps in (
        ("json", json.loads, lambda v: json.dumps(v).encode()),
        ("orjson", orjson.loads, orjson.dumps),
    ):
        started = time.perf_counter()
        for _ in range(rounds):
            loads(body)
            dumps(answer)
        timings[name] = (time.perf_counter() - started) / rounds * 1e6
    print(
        f"  decode + encode of one request: json {timings['json']:.1f} us, orjson "
        f"{timings['orjson']:.1f} us ({timings['json'] / timings['orjson']:.1f}x)"
    )


def main() -> None:
    import json
    import shutil

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--rollout", action="store_true", help="also the older sections")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (Debian)")

    from slipway.pipelines import registry
    from slipway.pipelines.rollout.traffic import replay_rows

    with tempfile.TemporaryDirectory() as tmp:
        root, config, v1, v2 = make_spoke(Path(tmp))
        rows = replay_rows(root, config)
        columns = list(config.data.contract.columns)
        bodies = Path(tmp) / "bodies.txt"
        bodies.write_text(
            "\n".join(
                json.dumps(
                    {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns]]}}
                )
                for r in rows
            )
            + "\n"
        )
        cores = len(os.sched_getaffinity(0))
        load = os.getloadavg()[0]
        print(
            f"spoke {config.model_name}: {len(rows)} held-out rows as one-row JSON requests; "
            f"wrk, {args.connections} connections, {args.seconds:g} s each; {cores} cores, "
            f"load average {load:.1f} at start (other work on this machine counts)\n"
        )
        results: dict[str, dict] = {}

        print("1. ceiling: bare Starlette returning a constant")
        for loop, http in (("uvloop", "httptools"), ("asyncio", "h11")):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-c", BARE_APP, str(port), loop, http],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                time.sleep(0.5)
                wait_for_port(port)
                results[f"bare {loop}+{http}"] = wrk(
                    f"bare Starlette, {loop} + {http}",
                    f"http://127.0.0.1:{port}",
                    bodies,
                    args.seconds,
                    args.connections,
                )
            finally:
                stop(proc)

        print("2. baseline: mlflow models serve (same model)")
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
            base = wrk(
                "mlflow models serve",
                f"http://127.0.0.1:{port}",
                bodies,
                args.seconds,
                args.connections,
            )
        finally:
            stop(mlflow_proc)
        results["mlflow"] = base

        print("3. the gateway on a laptop: slipway serve (one process, every check on)")
        gateway, url = start_gateway(root)
        try:
            results["laptop"] = wrk(
                "slipway serve, champion only", url, bodies, args.seconds, args.connections
            )
        finally:
            stop(gateway)

        print("4. the gateway as the SageMaker image runs it: serve, single-model mode")
        model_dir = packaged_model(root, config.model_name, v1, Path(tmp))
        for workers, loop, http in (
            (1, "uvloop", "httptools"),
            (1, "asyncio", "h11"),
            (cores, "uvloop", "httptools"),
        ):
            proc, url = start_single_model(root, model_dir, workers, loop, http)
            try:
                key = f"serve {workers}w {loop}+{http}"
                results[key] = wrk(
                    f"serve, {workers} worker(s), {loop} + {http}",
                    url,
                    bodies,
                    args.seconds,
                    args.connections,
                )
            finally:
                stop(proc)

        print("5. JSON library on the request path")
        json_libraries(bodies.read_text().splitlines()[0].encode())

        best = max(
            (k for k in results if k.startswith("serve") or k == "laptop"),
            key=lambda k: results[k]["rps"],
        )
        ours = results[best]
        print(
            f"\nbest gateway configuration: {best}: {ours['rps']:.0f} req/s, p99 "
            f"{ours['p99_ms']:.1f} ms; {ours['rps'] / base['rps']:.1f}x mlflow models serve "
            f"(goal >= 15x), {ours['rps'] / results['bare uvloop+httptools']['rps']:.0%} of the "
            f"bare ceiling; goals: >= 2,000 req/s "
            f"{'met' if ours['rps'] >= 2000 else 'NOT met'}, p99 < 25 ms "
            f"{'met' if ours['p99_ms'] < 25 else 'NOT met'}"
        )
        if args.rollout:
            rollout_sections(root, config, v2, rows, args.seconds, args.connections)


def wait_for_port(port: int, guard_s: float = 60) -> None:
    deadline = time.monotonic() + guard_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing listens on {port}")


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


def rollout_sections(root, config, v2, rows, seconds: float, concurrency: int) -> None:
    """The cost of a 50/50 split, and breach to 100% champion (Python clients: they share
    the CPU with the server, so read them as ratios within the run)."""
    from slipway.pipelines import registry
    from slipway.pipelines.rollout.rehearsal import register_faulty
    from slipway.pipelines.rollout.traffic import run_traffic

    gateway, url = start_gateway(root)
    try:
        print(
            f"\n6. cost of routing: 50/50 against 100% champion, {ROUNDS} interleaved "
            "rounds each (one sample swings by tens of percent on 2 shared cores)"
        )
        client = registry.client(root)
        client.set_registered_model_alias(config.model_name, registry.CHALLENGER, v2)
        httpx.post(f"{url}/admin/reload", json={}, timeout=120)
        rps: dict[int, list[float]] = {0: [], 50: []}
        for round_ in range(ROUNDS):
            for weight in (0, 50):
                httpx.post(f"{url}/admin/weights", json={"challenger": weight}, timeout=10)
                label = f"round {round_ + 1}, challenger at {weight}%"
                rps[weight].append(measure(label, url, rows, seconds, concurrency)["rps"])
        overhead = 1 - statistics.median(rps[50]) / statistics.median(rps[0])
        print(f"  throughput cost of routing, medians {overhead:+.1%} (goal < 5%)\n")
        httpx.post(f"{url}/admin/weights", json={"challenger": 0}, timeout=10)
        client.delete_registered_model_alias(config.model_name, registry.CHALLENGER)

        print("7. guardrail breach to 100% champion (a challenger that raises)")
        broken = register_faulty(root, config, "raise")
        stop_event = threading.Event()
        result: dict = {}
        load = threading.Thread(
            target=lambda: result.update(
                report=run_traffic(
                    url, rows, duration=300, concurrency=concurrency, stop=stop_event
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
        stop_event.set()
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
        stop(gateway)


if __name__ == "__main__":
    main()
