"""`make demo`: the whole Slipway story on one laptop, on the template's defaults.

1. stamp a spoke with `copier copy --defaults`, set it up and run its checks, as a team would;
2. train v1 and bootstrap it (first deploy: smoke test, then 100%);
3. the team tunes the model: v2 beats the champion on the same held-out rows and is promoted
   through the canary steps under live traffic;
4. a deliberately broken v3 (every prediction fails) is rolled back automatically at the
   first canary step, while the champion keeps answering;
5. the timeline, a PNG chart of weights and error rates, and the audit trail.

Every step is the real command a team runs (`slipway ...` in the spoke's own .venv), against
a real gateway on 127.0.0.1 and the spoke's embedded MLflow registry.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HUB = Path(__file__).resolve().parents[1]
# Where the demo spoke is stamped (the hub's test of `make demo` points it at a temporary dir).
DEMO = Path(os.environ.get("SLIPWAY_DEMO_DIR") or HUB / "build" / "demo").resolve()
# The template it is stamped from: this checkout (its committed HEAD), or the snapshot of the
# working tree that the hub's tests render from.
TEMPLATE = Path(os.environ.get("SLIPWAY_DEMO_TEMPLATE") or HUB).resolve()
SLIPWAY = DEMO / ".venv" / "bin" / "slipway"
STEP_SECONDS = "3"  # the plan's 60 s per step, shortened for a demo (`--step-seconds`)
TRAFFIC_RATE = "120"  # requests per second replayed from held-out rows
AUTHOR = {
    "GIT_AUTHOR_NAME": "Demo Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Demo Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


# The broken v3, registered as a team's script would: MLflow's warnings and log lines go to
# .slipway/logs/slipway.log, as under the `slipway` command, not onto the demo's terminal.
REGISTER_BROKEN = """
from pathlib import Path
from slipway.pipelines import console
from slipway.pipelines.config import load_config
root = Path('.')
log = root / '.slipway' / 'logs' / 'slipway.log'
log.parent.mkdir(parents=True, exist_ok=True)
with log.open('a') as out, console.quiet_libraries(verbose=False), console.attach_log(out):
    # Imported here: defining its PythonModel already makes MLflow warn.
    from slipway.pipelines.rollout.rehearsal import register_faulty
    version = register_faulty(root, load_config(root), 'raise')
print('registered broken version', version)
"""


def step(title: str) -> None:
    print(f"\n\033[1m==> {title}\033[0m", flush=True)


def run(*cmd: str, cwd: Path = DEMO, ok: tuple[int, ...] = (0,)) -> int:
    print(f"$ {' '.join(cmd)}", flush=True)
    code = subprocess.run(cmd, cwd=cwd, env=ENV).returncode
    if code not in ok:
        sys.exit(f"demo stopped: `{' '.join(cmd)}` exited {code}")
    return code


# The demo runs on the embedded defaults: the spoke's own .venv (not the hub's, which `make`
# would otherwise pass down as VIRTUAL_ENV) and its own registry under .slipway/.
ENV = {
    **{
        k: v
        for k, v in os.environ.items()
        if k
        not in {"VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SLIPWAY_GATEWAY_URL"}
    },
    **AUTHOR,
    "SLIPWAY_ACTOR": AUTHOR["GIT_AUTHOR_EMAIL"],
}


def stamp() -> None:
    step(f"copier copy --defaults {TEMPLATE} {DEMO}")
    if DEMO.exists():
        shutil.rmtree(DEMO)
    run(
        sys.executable,
        "-m",
        "copier",
        "copy",
        "--defaults",
        "--quiet",
        "--vcs-ref",
        "HEAD",
        str(TEMPLATE),
        str(DEMO),
        cwd=HUB,
    )
    # A spoke is a git repository: every registered version records its commit.
    run("git", "init", "-q", "-b", "main")
    commit("Spoke from the Slipway template")


def commit(message: str) -> None:
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", message)


def start_gateway() -> tuple[subprocess.Popen[str], str]:
    step("slipway serve: the local gateway (champion + challenger, weighted)")
    gateway = subprocess.Popen(
        [str(SLIPWAY), "serve", "--port", "0"], cwd=DEMO, env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert gateway.stdout is not None
    first = gateway.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", first)
    if not match:
        gateway.kill()
        sys.exit(f"demo stopped: the gateway did not start ({first.strip()!r})")
    print(f"gateway on {match.group(0)}", flush=True)
    return gateway, match.group(0)


def deploy_under_traffic(expect: int) -> None:
    """Replay held-out rows against the gateway while the controller walks the plan."""
    traffic = subprocess.Popen(
        [str(SLIPWAY), "traffic", "--rate", TRAFFIC_RATE, "--duration", "120"],
        cwd=DEMO,
        env=ENV,
        stdout=subprocess.DEVNULL,
    )
    try:
        run(str(SLIPWAY), "deploy", "--step-seconds", STEP_SECONDS, ok=(expect,))
    finally:
        traffic.terminate()
        traffic.wait(timeout=30)


def main() -> None:
    started = time.perf_counter()
    stamp()
    step("make setup / check / test: what a team runs right after copying")
    for target in ("setup", "check", "test"):
        run("make", "--no-print-directory", target)

    step("v1: train, gate (bootstrap: no champion yet), register as challenger")
    run("make", "--no-print-directory", "train")
    gateway, url = start_gateway()
    ENV["SLIPWAY_GATEWAY_URL"] = url
    try:
        step("v1: model card (risk tier medium needs a current one), then first deploy")
        run(str(SLIPWAY), "card")
        run(str(SLIPWAY), "deploy", "--step-seconds", STEP_SECONDS)

        step("v2: the team tunes regularisation (C 1.0 -> 0.1), retrains, beats the champion")
        toml = DEMO / "slipway.toml"
        toml.write_text(toml.read_text().replace("C = 1.0", "C = 0.1"))
        commit("Stronger regularisation: fewer false alarms on the held-out biopsies")
        run("make", "--no-print-directory", "train")
        run(str(SLIPWAY), "card")
        step("v2: canary under live traffic, guardrails judged per step, then promotion")
        deploy_under_traffic(expect=0)

        step("v3: a broken release (every prediction raises) reaches the canary")
        run(str(SLIPWAY.parent / "python"), "-c", REGISTER_BROKEN)
        run(str(SLIPWAY), "card")
        deploy_under_traffic(expect=6)  # 6: rolled back automatically

        step("where it stands: aliases, weights, the rollouts as a chart, the audit trail")
        chart = DEMO / "build" / "rollouts.png"
        run(str(SLIPWAY), "status", "--chart", str(chart))
        run(str(SLIPWAY), "audit", "--verify")
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)

    print(f"\nDone in {time.perf_counter() - started:.0f} s. The spoke is in {DEMO}.")
    print(f"  chart of the rollouts:  {chart}")
    print(f"  model card:             {DEMO / 'docs' / 'model_card.md'}")
    print(
        f"  registry:               cd {DEMO} && .venv/bin/mlflow ui --backend-store-uri "
        f"sqlite:///{DEMO / '.slipway' / 'mlflow.db'}"
    )
    print(f"  more:                   cd {DEMO} && make help")


if __name__ == "__main__":
    main()
