"""How long `copier copy --defaults` takes for the Slipway spoke, against an empty template.

Baseline: a Copier template with no questions and one file, rendered by the same copier in
the same run, so the ratio isolates what Slipway's questions and files cost on top of
Copier's own start-up and git work. Goal: the spoke in under 1.5 s on this machine.

    .venv/bin/python benchmarks/render.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the hub root: tests.hub
from tests.hub import git, snapshot_working_tree


def empty_template(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "copier.yml").write_text("_min_copier_version: '9.9.1'\n")
    (root / "README.md").write_text("empty\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "empty template")
    git(root, "tag", "v0.0.1")
    return root


def time_copy(template: Path, workdir: Path, repeat: int) -> list[float]:
    times = []
    for i in range(repeat):
        dst = workdir / f"{template.name}-{i}"
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "copier",
                "copy",
                "--defaults",
                "--quiet",
                "--vcs-ref",
                "HEAD",
                str(template),
                str(dst),
            ],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="copies of each template")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spoke_template = snapshot_working_tree(work / "slipway")
        baseline = empty_template(work / "empty")
        time_copy(baseline, work, 1)  # warm the interpreter's file cache once
        empty = statistics.median(time_copy(baseline, work, args.repeat))
        spoke = statistics.median(time_copy(spoke_template, work, args.repeat))
    print(f"copier copy --defaults, median of {args.repeat}:")
    print(f"  empty template (baseline) {empty:6.2f} s")
    print(f"  slipway spoke             {spoke:6.2f} s")
    print(f"  ratio spoke/empty         {spoke / empty:6.2f}x")
    print(f"  goal: spoke < 1.50 s -> {'met' if spoke < 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
