"""`make tested-versions`: derive the versions every spoke installs from the hub's uv.lock.

The hub's lock is the one source of truth for what a release was tested with. This writes it
out, as pinned requirements, to `pipelines/src/slipway/pipelines/hub/tested-versions.txt`:

- the template renders that list into each spoke's `[tool.uv] constraint-dependencies`, so a
  spoke's uv.lock resolves to exactly these versions (a team's own extra dependencies resolve
  within them, and a conflict fails the lock naming the package);
- the slipway-pipelines wheel ships it, so `slipway check` can tell a team which installed
  library differs from what its release was tested with.

`--check` exits 1, changing nothing, when the file is stale (the hub's lint runs it), so the
lock and the list never disagree. Run it after every `uv lock`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HUB = Path(__file__).resolve().parents[1]
TARGET = HUB / "pipelines" / "src" / "slipway" / "pipelines" / "hub" / "tested-versions.txt"
HEADER = """\
# The versions this Slipway release was tested with: every package of the hub's uv.lock
# (the libraries' runtime, infra and the dev tools a spoke shares). Generated from uv.lock by
# `make tested-versions`; never edit by hand. Spokes get it as [tool.uv] constraint-dependencies
# (template/pyproject.toml.jinja), and `slipway check` compares an environment against it.
"""


def uv() -> str:
    found = shutil.which("uv") or str(HUB / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        sys.exit("uv not found: run `make setup` first")
    return found


def render(root: Path = HUB) -> str:
    """The file's text, from `root`'s uv.lock as it is (--frozen: never re-resolved)."""
    exported = subprocess.run(
        [
            uv(),
            "export",
            "--frozen",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            "--no-emit-workspace",
            "--all-packages",
            "--all-extras",
            "--all-groups",
        ],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "UV_NO_PROGRESS": "1"},
    ).stdout
    lines = sorted(
        (line.strip() for line in exported.splitlines() if line.strip()),
        key=str.lower,
    )
    return HEADER + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--root", type=Path, default=HUB, help="the hub checkout (default: here)")
    args = parser.parse_args(argv)
    target = args.root / TARGET.relative_to(HUB)
    text = render(args.root)
    if args.check:
        if not target.exists() or target.read_text() != text:
            print(
                f"{target.relative_to(args.root)} does not match uv.lock: run "
                "`make tested-versions` and commit the result",
                file=sys.stderr,
            )
            return 1
        return 0
    target.write_text(text)
    print(f"wrote {target.relative_to(args.root)} ({text.count(chr(10)) - 4} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
