"""The training tests' shared spoke: the template's defaults, copied and committed (a git
repository, as a team's is), then trained once by `slipway train`: its registry's first version.

Module-scoped: each test module gets its own spoke and first run, and runs the command with
its own environment (the module's `slipway` helper: its actor, no inherited registry).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.hub import git


@pytest.fixture(scope="module")
def spoke(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from copier import run_copy

    dst = tmp_path_factory.mktemp("training") / "spoke"
    run_copy(str(template_repo), dst, defaults=True, vcs_ref="HEAD", quiet=True)
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "copied from the template")
    return dst


@pytest.fixture(scope="module")
def first_run(spoke: Path, request: pytest.FixtureRequest) -> subprocess.CompletedProcess[str]:
    """`slipway train` on the freshly committed spoke: the registry's first version."""
    return request.module.slipway(spoke, "train")
