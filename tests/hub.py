"""The helpers every test directory and the benchmarks share, in one place: the hub
checkout under test, git, a free port, the `slipway` command, and a valid slipway.toml.

Copier renders from git, and the working tree under test may hold uncommitted changes, so
`snapshot_working_tree` copies exactly the files git would see into a fresh repository,
committed and tagged with VERSION: tests never depend on tags being present in the checkout.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

HUB = Path(__file__).resolve().parents[1]
VERSION = (HUB / "VERSION").read_text().strip()

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Slipway Tests",
    "GIT_AUTHOR_EMAIL": "tests@slipway.invalid",
    "GIT_COMMITTER_NAME": "Slipway Tests",
    "GIT_COMMITTER_EMAIL": "tests@slipway.invalid",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.strip()


def snapshot_working_tree(dst: Path, tag: str | None = None) -> Path:
    """Copy the hub's working tree (what git would see) into a fresh repo at `dst`."""
    listing = git(HUB, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for rel in filter(None, listing.split("\0")):
        src = HUB / rel
        if not src.is_file():  # deleted in the working tree but still in the index
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "snapshot of the working tree under test")
    git(dst, "tag", tag or f"v{VERSION}")
    return dst


# The `slipway` command of the environment running the tests; a failure guard only.
SLIPWAY = Path(sys.executable).parent / "slipway"
COMMAND_GUARD_S = 300


def free_port() -> int:
    """A port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slipway(
    root: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    inherit: bool = True,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a process of its own, on the spoke at `root` (`-C root`, run from
    there too), with `env` over this environment (or, `inherit=False`, `env` alone); output
    captured for assertion messages. `check`: fail the test on a non-zero exit, with it."""
    done = subprocess.run(
        [str(SLIPWAY), "-C", str(root), *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=COMMAND_GUARD_S,
        env={**(os.environ if inherit else {}), **(env or {})},
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


# A valid slipway.toml: the library tests' spoke, and the template's defaults in brief.
VALID_SPOKE_TOML = """
[project]
name = "Churn Guard"
slug = "churn-guard"
package = "churn_guard"
team = "retention"
contact = "retention@example.com"
business_owner = "VP Retention"
cost_center = "cc-42"

[kpi]
name = "monthly churn percent"
baseline = 4.0
target = 3.0
higher_is_better = false

[data]
loader = "churn_guard.data:load"
target = "churned"

[data.contract]
min_rows = 10
columns = { tenure = { dtype = "int", min = 0 }, plan = { dtype = "str", allowed = ["a", "b"] } }

[training]
trainer = "churn_guard.train:train"

[budget]
monthly_usd = 250
"""
