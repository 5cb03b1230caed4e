"""Wall time of `slipway train` on the demo spoke, against the same model trained by a plain script.

Baseline: a fresh Python process that calls the spoke's own `data.load` and `train.train`
on the same seeded split and scores roc_auc, which is what a team without Slipway would
run. Both are fresh processes in the same run, so the ratio is what the pipeline adds:
six step processes (forked from a warm zygote; also measured with a fresh interpreter per
step, SLIPWAY_STEP_PROCESSES=subprocess, as before), contract validation, evaluation plots,
the gate against the registry, registration with lineage. Goals: the whole local pipeline
under 30 s, overhead under 3x.

    .venv/bin/python benchmarks/training.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the hub root: tests.hub
from tests.hub import GIT_ENV, git, snapshot_working_tree

VENV_BIN = Path(sys.executable).parent

PLAIN = """
import importlib, sys, tomllib
sys.path.insert(0, "src")
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

toml = tomllib.load(open("slipway.toml", "rb"))
data, training = toml["data"], toml["training"]
def function(entrypoint):
    module, _, name = entrypoint.partition(":")
    return getattr(importlib.import_module(module), name)

frame = function(data["loader"])()
x, y = frame.drop(columns=[data["target"]]), frame[data["target"]]
x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=training["test_size"], random_state=training["seed"], stratify=y)
model = function(training["trainer"])(x_train, y_train, training["params"])
print("roc_auc", roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))
"""


def demo_spoke(work: Path) -> Path:
    from copier import run_copy

    template = snapshot_working_tree(work / "slipway")
    spoke = work / "demo"
    run_copy(str(template), spoke, defaults=True, vcs_ref="HEAD", quiet=True)
    git(spoke, "init", "-q", "-b", "main")
    git(spoke, "add", "-A")
    git(spoke, "commit", "-q", "-m", "demo spoke")
    return spoke


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and every process it started).

    CPU time is printed too because on a shared 2-core machine the wall time also
    measures the neighbours; CPU time does not.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (median is shown)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(GIT_ENV, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    with tempfile.TemporaryDirectory() as tmp:
        spoke = demo_spoke(Path(tmp))
        plain = [timed([sys.executable, "-c", PLAIN], spoke, env) for _ in range(args.repeat)]
        # Every run after the first is gated against the version before it: the steady state.
        # Interleaved, so both ways of running the steps see the same neighbours.
        slipway, fresh = [], []
        cold = {**env, "SLIPWAY_STEP_PROCESSES": "subprocess"}
        for _ in range(args.repeat):
            slipway.append(timed([str(VENV_BIN / "slipway"), "train"], spoke, env))
            fresh.append(timed([str(VENV_BIN / "slipway"), "train"], spoke, cold))
    plain_s, slipway_s, fresh_s = (
        statistics.median(t for t, _ in runs) for runs in (plain, slipway, fresh)
    )
    plain_cpu, slipway_cpu, fresh_cpu = (
        statistics.median(c for _, c in runs) for runs in (plain, slipway, fresh)
    )
    print(
        f"training the demo spoke, median of {args.repeat} on {os.cpu_count()} cores "
        f"(load average {os.getloadavg()[0]:.1f} at the end):"
    )
    print(f"  {'':40} {'wall':>7} {'cpu':>7}")
    print(f"  {'plain script (load + train + roc_auc)':40} {plain_s:6.1f}s {plain_cpu:6.1f}s")
    print(
        f"  {'slipway train (6-step kfp.local run)':40} {slipway_s:6.1f}s {slipway_cpu:6.1f}s"
        f"   (runs: {', '.join(f'{t:.1f}' for t, _ in slipway)} s)"
    )
    print(
        f"  {'  a fresh interpreter per step (before)':40} {fresh_s:6.1f}s {fresh_cpu:6.1f}s"
        f"   (runs: {', '.join(f'{t:.1f}' for t, _ in fresh)} s)"
    )
    print(
        f"  {'overhead ratio (goal < 3x)':40} {slipway_s / plain_s:6.1f}x "
        f"{slipway_cpu / plain_cpu:6.1f}x"
    )
    print(
        f"  {'  before (fresh interpreter per step)':40} {fresh_s / plain_s:6.1f}x "
        f"{fresh_cpu / plain_cpu:6.1f}x"
    )
    print(f"  {'slipway train under 30 s (goal)':40} {'yes' if slipway_s < 30 else 'no':>7}")


if __name__ == "__main__":
    main()
