"""pre-commit runs what `make lint` runs, in the hub and in every spoke."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.hub import HUB

PRE_COMMIT = str(Path(sys.executable).parent / "pre-commit")


def _lint_commands(makefile: Path) -> set[str]:
    """The tools `make lint` runs (`$(RUN) ruff check .` -> `ruff check`)."""
    text = makefile.read_text(encoding="utf-8")
    body = re.search(r"^lint:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert body, f"{makefile} has no lint target"
    commands = set()
    for line in body.group(1).splitlines():
        words = line.strip().removeprefix("$(RUN) ").split()
        commands.add(" ".join(w for w in words if not w.startswith("-") and w != "."))
    return commands


def _hook_commands(config: Path) -> set[str]:
    hooks = [h for repo in yaml.safe_load(config.read_text())["repos"] for h in repo["hooks"]]
    commands = set()
    for hook in hooks:
        words = hook["entry"].removeprefix("uv run --no-sync ").split()
        commands.add(" ".join(w for w in words if not w.startswith("-")))
    return commands


@pytest.mark.parametrize("root", [HUB, HUB / "template"], ids=["hub", "template"])
def test_pre_commit_config_is_valid_and_runs_every_lint_command(root):
    config = root / ".pre-commit-config.yaml"
    checked = subprocess.run(
        [PRE_COMMIT, "validate-config", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lint = {
        c.replace("ruff format check", "ruff format") for c in _lint_commands(root / "Makefile")
    }
    assert lint <= _hook_commands(config), "a `make lint` check is missing from pre-commit"
