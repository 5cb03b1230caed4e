"""`make test-newest`: would the newest releases on the index break Slipway? Know within a day.

The hub's uv.lock decides what every spoke installs, so a new MLflow (or kfp, scikit-learn,
pandas...) reaches no spoke until the platform team moves that lock on purpose. This job tells
them when to: in a scratch copy of the working tree (main's lock is never touched), it
re-resolves every dependency to its newest release (`uv lock --upgrade`), regenerates the tested
versions spokes are stamped with, installs that environment, and runs the fast suite plus one
whole spoke story (`make demo`'s test: stamp, train, deploy, canary, rollback) against it.

It writes a report (markdown) of what moved and what broke, to build/newest/report.md or
--report, and exits 1 when a test failed. The hub's scheduled workflow
(.github/workflows/newest-releases.yml) runs it daily; docs/platform/dependencies.md says how
to act on it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

HUB = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HUB))

from tests.hub import snapshot_working_tree  # noqa: E402

# What a spoke's behaviour rests on: the report lists these first.
WATCHED = ("mlflow", "kfp", "scikit-learn", "pandas", "pandera", "numpy", "pydantic", "pulumi")
# The fast suite (the libraries' unit tests) plus one whole spoke story.
SUITE = ("pipelines/tests", "infra/tests", "tests/demo/test_demo.py")


@dataclass(frozen=True)
class Move:
    package: str
    old: str  # "" when the package is new
    new: str  # "" when the package is gone


def locked(lock_text: str) -> dict[str, str]:
    """{package: version(s)} of a uv.lock (several versions, for markers, joined by ' / ')."""
    versions: dict[str, list[str]] = {}
    for package in tomllib.loads(lock_text).get("package", []):
        if "version" in package and "source" in package and "registry" in package["source"]:
            versions.setdefault(package["name"], []).append(package["version"])
    return {name: " / ".join(sorted(v)) for name, v in versions.items()}


def moves(old_lock: str, new_lock: str) -> list[Move]:
    """Every package whose locked version differs, the watched ones first."""
    old, new = locked(old_lock), locked(new_lock)
    changed = [
        Move(name, old.get(name, ""), new.get(name, ""))
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
    return sorted(changed, key=lambda m: (m.package not in WATCHED, m.package))


def report(found: list[Move], outcome: str, failures: list[str], seconds: float) -> str:
    lines = [
        "# Newest releases against Slipway",
        "",
        f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {seconds:.0f} s: "
        f"{outcome}.",
        "",
    ]
    if not found:
        lines.append("Every package is already at its newest release: nothing to move.")
    else:
        lines += ["| package | hub's lock | newest |", "|---|---|---|"]
        lines += [f"| {m.package} | {m.old or '(new)'} | {m.new or '(gone)'} |" for m in found]
    if failures:
        lines += ["", "Failed against the newest releases:", ""]
        lines += [f"- `{name}`" for name in failures]
    return "\n".join(lines) + "\n"


def _uv() -> str:
    return shutil.which("uv") or str(HUB / ".tools" / "bin" / "uv")


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    print(f"$ {' '.join(argv)}", flush=True)
    return subprocess.run(argv, cwd=cwd, env=env, text=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=HUB / "build" / "newest")
    parser.add_argument("--report", type=Path, default=None, help="default: SCRATCH/report.md")
    parser.add_argument("--workers", default=os.environ.get("PYTEST_WORKERS", "2"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    scratch: Path = args.scratch.resolve()
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    hub = snapshot_working_tree(scratch / "hub")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "PYTHONPATH"} and not k.startswith("UV_PROJECT")
    }
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["PATH"] = f"{Path(_uv()).parent}:{env.get('PATH', '')}"

    before = (hub / "uv.lock").read_text()
    step = _run([_uv(), "lock", "--upgrade"], hub, env)
    if step.returncode != 0:
        # Nothing to test: the newest releases do not even resolve together.
        text = report([], "the newest releases do not resolve together", [step.stderr], 0)
        return _write(args, scratch, text, 1)
    found = moves(before, (hub / "uv.lock").read_text())
    for label, argv in (
        ("tested versions", [sys.executable, "scripts/tested_versions.py", "--root", str(hub)]),
        (
            "install",
            [_uv(), "sync", "--locked", "--all-packages", "--all-extras", "--group", "dev"],
        ),
    ):
        step = _run(argv, hub, env)
        if step.returncode != 0:
            text = report(found, f"{label} failed", [step.stderr[-2000:]], 0)
            return _write(args, scratch, text, 1)
    python = str(hub / ".venv" / "bin" / "python")
    tests = _run(
        [python, "-m", "pytest", "-q", "-n", args.workers, "--dist", "loadgroup", *SUITE],
        hub,
        env,
    )
    summary = (tests.stdout.strip().splitlines() or ["(no output)"])[-1].strip("= ")
    failures = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", tests.stdout, re.M)))
    outcome = ("all green: " if tests.returncode == 0 else "broken: ") + summary
    text = report(found, outcome, failures, time.monotonic() - started)
    return _write(args, scratch, text, 0 if tests.returncode == 0 else 1)


def _write(args: argparse.Namespace, scratch: Path, text: str, code: int) -> int:
    target = args.report or scratch / "report.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(text)
    print(f"report: {target}")
    return code


if __name__ == "__main__":
    sys.exit(main())
