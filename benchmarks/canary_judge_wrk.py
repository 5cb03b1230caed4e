"""The canary judge for real: `slipway deploy` on a freshly rendered demo spoke under wrk load.

    .venv/bin/python benchmarks/canary_judge_wrk.py [--step-seconds 10] [--connections 20]

Confirms benchmarks/canary_judge.py's simulation on the real gateway, controller and
registry: the template's default spoke (low tier), v1 champion, and two challengers rolled
out while wrk (Debian's, `apt-get install wrk`) posts one held-out row per request:

1. v2, a healthy model trained with other parameters: must be promoted;
2. a copy of v1 failing 5% of its calls at random (5x a 1% champion, without the champion's
   1%: the real champion does not fail): must be rolled back, in its first step when the
   step carries enough requests (`slipway check` says how many).

Prints each rollout's outcome, its step and the challenger requests the judge saw when it
decided, and wrk's throughput. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import mlflow.pyfunc

HUB = Path(__file__).resolve().parents[1]
SLIPWAY = str(Path(sys.executable).parent / "slipway")


class FlakyModel(mlflow.pyfunc.PythonModel):
    """A known-good model that fails `share` of its requests at random (cloudpickled by
    value: this script is __main__, so the gateway needs no import of it).

    The gateway predicts concurrent requests in one batch and, when the batch fails, each
    request alone (so one bad row fails only its own caller): a batch always fails here, and
    each request alone fails with `share`, which makes `share` the per-request error rate.
    """

    def __init__(self, model, share):
        self.model, self.share = model, share

    def predict(self, context, model_input, params=None):
        if len(model_input) > 1 or random.random() < self.share:
            raise RuntimeError("benchmark: a transient failure on purpose")
        return self.model.predict(model_input)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_spoke(workdir: Path) -> tuple[Path, object]:
    from copier import run_copy

    from slipway.pipelines import registry
    from slipway.pipelines.config import load_config
    from slipway.pipelines.rollout import release
    from slipway.pipelines.rollout.rehearsal import register_trained

    root = workdir / "demo"
    run_copy(str(HUB), root, data={"risk_tier": "low"}, defaults=True, vcs_ref="HEAD", quiet=True)
    config = load_config(root)
    register_trained(root, config, {"C": 1.0, "max_iter": 500})
    register_trained(root, config, {"C": 0.5, "max_iter": 500})
    release.promote(root, registry.client(root), config.model_name, "1", reason="benchmark")
    return root, config


def register_flaky(root: Path, config, share: float) -> str:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    from slipway.pipelines import registry
    from slipway.pipelines.registry import fluent_registry
    from slipway.pipelines.rollout.traffic import replay_rows

    client = registry.client(root)
    example = pd.DataFrame.from_records(replay_rows(root, config)[:5])
    with fluent_registry(root):
        base = mlflow.sklearn.load_model(f"models:/{config.model_name}/1")
        experiment = registry.experiment_id(client, root, config.model_name)
        with mlflow.start_run(experiment_id=experiment, run_name="benchmark-flaky"):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=FlakyModel(base, share),
                signature=infer_signature(example, base.predict(example)),
                registered_model_name=config.model_name,
            )
    return str(info.registered_model_version)


def wrk_script(root: Path, config, path: Path) -> None:
    from slipway.pipelines.rollout.traffic import replay_rows

    row = replay_rows(root, config)[0]
    body = json.dumps({"dataframe_records": [row]}).replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.body = "{body}"\n'
    )


def rollout(root: Path, url: str, version: str, args: argparse.Namespace, lua: Path) -> None:
    from slipway.pipelines.rollout import state as rollout_state

    duration = 3 * args.step_seconds + 30
    load = subprocess.Popen(
        [
            "wrk",
            "-t2",
            f"-c{args.connections}",
            f"-d{duration}s",
            "-s",
            str(lua),
            f"{url}/invocations",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    started = time.monotonic()
    done = subprocess.run(
        [
            SLIPWAY,
            "-C",
            str(root),
            "deploy",
            "--version",
            version,
            "--url",
            url,
            "--step-seconds",
            str(args.step_seconds),
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    load.send_signal(signal.SIGINT)  # wrk prints its summary when interrupted
    wrk_out, _ = load.communicate()
    row = rollout_state.latest(root)
    readings = rollout_state.readings(root, row.id)
    seen = sum(
        max(r["challenger_requests"] for r in readings if r["phase"] == phase)
        for phase in dict.fromkeys(r["phase"] for r in readings)
    )
    rps = next((line for line in wrk_out.splitlines() if "Requests/sec" in line), "?")
    print(
        f"version {version}: {row.status} at {row.phase} after {seconds:.1f} s; the judge "
        f"saw {seen:,} challenger requests; wrk {rps.strip()}"
    )
    print("  " + (row.reason or ""))
    tail = [line for line in done.stdout.splitlines() if line.startswith("    ")][-3:]
    print("\n".join(f"  {line.strip()}" for line in tail))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step-seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--flaky-share", type=float, default=0.05)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (`apt-get install wrk`)")
    with tempfile.TemporaryDirectory() as tmp:
        root, config = make_spoke(Path(tmp))
        flaky = register_flaky(root, config, args.flaky_share)
        lua = Path(tmp) / "post.lua"
        wrk_script(root, config, lua)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [SLIPWAY, "-C", str(root), "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            print(
                f"demo spoke under wrk, {args.connections} connections, steps of "
                f"{args.step_seconds} s"
            )
            rollout(root, url, flaky, args, lua)
            rollout(root, url, "2", args, lua)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
