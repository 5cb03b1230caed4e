"""The hub checkout under test and git helpers shared by tests and benchmarks.

Copier renders from git, and the working tree under test may hold uncommitted changes, so
`snapshot_working_tree` copies exactly the files git would see into a fresh repository,
committed and tagged with VERSION: tests never depend on tags being present in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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
