"""Wall time of `slipway train` on the demo spoke, against the same model trained by a plain script.

Baseline: a fresh Python process that calls the spoke's own `data.load` and `train.train`
on the same seeded split and scores roc_auc, which is what a team without Slipway would
run. The ratio is what the pipeline adds: six step processes, contract validation,
evaluation, the gate against the registry, registration with lineage.

`slipway train` is measured three ways, interleaved with the plain script in one run:
- first run: no step daemon yet (stopped before), so the command starts it (goal <= 5x);
- later runs: the spoke's daemon is warm (goal <= 3x);
- a zygote per run (SLIPWAY_STEP_PROCESSES=zygote, what CI uses), and with --fresh also a
  fresh interpreter per step (SLIPWAY_STEP_PROCESSES=subprocess).
CPU seconds include the daemon's share (its sessions and steps, read from /proc, and its own
CPU up to the command's end, sampled while it runs: the daemon's warming up after the first
command returned serves the later runs and is not counted), not the
drawing of MLflow's evaluation pictures, which a daemon run leaves to a process of its own
after the command returned: shown on its own (each timing waits for it to end).

    .venv/bin/python benchmarks/training.py [--repeat 3] [--fresh]

With another checkout's interpreter (its venv has its slipway installed), the same script
measures that slipway: the README's "before" is main's venv running this file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
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


@dataclass
class Timing:
    wall: float
    cpu: float
    daemon_own: float = 0.0  # the daemon's own CPU for the command (its start, on a first run)


def _daemon_cpu(pid: int | None) -> tuple[float, float]:
    """(its own CPU seconds, its reaped sessions' and their steps'), from /proc."""
    if pid is None:
        return 0.0, 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(fields[i]) / tick for i in (11, 12, 13, 14))
    return utime + stime, cutime + cstime


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, zombies included (not reaped yet)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _settled(pid: int | None) -> tuple[float, float]:
    """The daemon's CPU once its sessions are reaped (a session not yet reaped is in no
    one's CPU: under load the daemon may reap it seconds after the command returned) and it
    has finished warming up."""
    for _ in range(600):
        if pid is None or not _children(pid):
            break
        time.sleep(0.1)
    last = _daemon_cpu(pid)
    for _ in range(120):
        time.sleep(0.5)
        now = _daemon_cpu(pid)
        if now == last:
            return now
        last = now
    return last


def _daemon_pid(root: Path) -> int | None:
    """The spoke's daemon, found without asking it (a daemon importing does not answer)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            if b"slipway.pipelines.training.daemon" in args and str(root).encode() in args:
                return int(cmdline.parent.name)
    return None


class _OwnSampler(threading.Thread):
    """The daemon's own CPU, read every 20 ms while the command runs: the last reading is
    its share up to the command's end. Read afterwards, it would include the warming up the
    daemon starts as soon as the command's session ends (for the next runs, not this one)."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.pid, self.own, self.done = root, None, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.pid = self.pid or _daemon_pid(self.root)
            if self.pid is not None:
                self.own = max(self.own, _daemon_cpu(self.pid)[0])


def timed(command: list[str], cwd: Path, env: dict[str, str], *, daemon: bool = False) -> Timing:
    """Wall seconds, and CPU seconds of the command, every process it started and (with
    `daemon`) the daemon's work for it: on a shared 2-core machine the wall time also
    measures the neighbours; CPU time does not."""
    from slipway.pipelines.training import daemon as step_daemon

    pid = step_daemon.running(cwd) if daemon else None
    own_before, sessions_before = _settled(pid)
    sampler = _OwnSampler(cwd.resolve())
    if daemon:
        sampler.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if not daemon:
        return Timing(wall, cpu)
    sampler.done.set()
    sampler.join()
    pid = pid or sampler.pid
    own = max(0.0, sampler.own - own_before) if sampler.pid == pid else 0.0
    _, sessions = _settled(pid)
    _wait_for_pictures(cwd)
    return Timing(wall, cpu + own + sessions - sessions_before, daemon_own=own)


def _pictures_cpu(spoke: Path) -> list[float]:
    """CPU seconds of each background drawing of MLflow's pictures (daemon runs only): a
    process of its own after the command returned, so in no command's CPU above."""
    found = []
    for log in (spoke / ".slipway" / "pipeline-runs").glob("*.pictures.log"):
        if match := re.search(r"\(([0-9.]+) s of CPU\)", log.read_text()):
            found.append(float(match.group(1)))
    return found


def _wait_for_pictures(spoke: Path) -> None:
    """Until no run's pictures are still being drawn, so the next timing has the machine."""
    from slipway.pipelines import registry

    tag = getattr(registry, "TAG_EVALUATION_PICTURES", None)
    if tag is None:  # a slipway from before issue 27 (the README's "before"): drawn in the gate
        return
    client = registry.client_for(registry.embedded_tracking_uri(spoke))
    drawing = f"tags.`{tag}` = 'drawing'"
    experiments = [e.experiment_id for e in client.search_experiments()]
    for _ in range(600):
        if not client.search_runs(experiments, drawing):
            return
        time.sleep(0.2)


def _median(runs: list[Timing]) -> Timing:
    return Timing(statistics.median(t.wall for t in runs), statistics.median(t.cpu for t in runs))


def main() -> None:
    from slipway.pipelines.training import daemon as step_daemon

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (medians are shown)")
    parser.add_argument("--fresh", action="store_true", help="also a fresh interpreter per step")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "CI")}
    env.update(GIT_ENV, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env["SLIPWAY_STEP_PROCESSES"] = "daemon"
    train = [str(VENV_BIN / "slipway"), "train"]
    plain_command = [sys.executable, "-c", PLAIN]
    runs: dict[str, list[Timing]] = {
        k: [] for k in ("plain", "first", "later", "zygote", "fresh", "warming")
    }
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        spoke = demo_spoke(Path(tmp))
        # Every run after the first is gated against the version before it: the steady state.
        subprocess.run(train, cwd=spoke, env=env, check=True, capture_output=True)
        for _ in range(args.repeat):  # interleaved, so every way sees the same neighbours
            step_daemon.stop(spoke)
            time.sleep(0.5)
            runs["plain"].append(timed(plain_command, spoke, env))
            runs["first"].append(timed(train, spoke, env, daemon=True))
            runs["warming"].append(Timing(0.0, runs["first"][-1].daemon_own))
            runs["plain"].append(timed(plain_command, spoke, env))
            runs["later"].append(timed(train, spoke, env, daemon=True))
            runs["later"].append(timed(train, spoke, env, daemon=True))
            runs["zygote"].append(timed(train, spoke, {**env, "SLIPWAY_STEP_PROCESSES": "zygote"}))
            if args.fresh:
                runs["fresh"].append(
                    timed(train, spoke, {**env, "SLIPWAY_STEP_PROCESSES": "subprocess"})
                )
            loads.append(os.getloadavg()[0])
        step_daemon.stop(spoke)
        pictures = _pictures_cpu(spoke)
    report(runs, loads, args.repeat, pictures)


def report(
    runs: dict[str, list[Timing]], loads: list[float], repeat: int, pictures: list[float]
) -> None:
    plain = _median(runs["plain"])
    print(
        f"training the demo spoke, medians of {repeat} rounds on {os.cpu_count()} cores "
        f"(load average {', '.join(f'{x:.1f}' for x in loads)} at each round's start/end):"
    )
    print(f"  {'':44} {'wall':>7} {'cpu':>7} {'ratio':>6} {'cpu':>6}  goal")
    rows = [
        ("plain script (load + train + roc_auc)", "plain", ""),
        ("slipway train, first run (starts the daemon)", "first", "<= 5x"),
        ("slipway train, later runs (daemon warm)", "later", "<= 3x"),
        ("  a zygote per run (CI's way)", "zygote", ""),
        ("  a fresh interpreter per step", "fresh", ""),
    ]
    for label, key, goal in rows:
        if not runs[key]:
            continue
        m = _median(runs[key])
        print(
            f"  {label:44} {m.wall:6.1f}s {m.cpu:6.1f}s {m.wall / plain.wall:5.1f}x "
            f"{m.cpu / plain.cpu:5.1f}x  {goal}   (walls: "
            f"{', '.join(f'{t.wall:.1f}' for t in runs[key])} s)"
        )
    warming = statistics.median(t.cpu for t in runs["warming"])
    print(f"  the daemon's own CPU up to the first run's end (its first imports): {warming:.1f}s")
    if pictures:
        print(
            f"  MLflow's pictures drawn after a daemon run returned (not counted above): "
            f"{statistics.median(pictures):.1f}s CPU (median of {len(pictures)})"
        )


if __name__ == "__main__":
    main()
