"""The spoke's generated infra/: its Pulumi project files agree with slipway.toml, and its own
mock-mode test (tests/test_infra.py) passes right after `copier copy`.

The spoke's test runs here with the hub's environment (which holds slipway-infra); the slow
render-matrix tests run it again inside each spoke's own `make test`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml


@pytest.mark.slow  # a rendered spoke's own tests in a pytest of their own: `make test` runs it
@pytest.mark.parametrize("tier", ["low", "high"])
def test_the_spokes_own_infra_test_passes_after_copy(spokes, tier):
    root: Path = spokes[tier]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::DeprecationWarning",
            "tests/test_infra.py",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed" in run.stdout


def test_pulumi_project_files_agree_with_slipway_toml(spokes, configs):
    root, config = spokes["medium"], configs["medium"]
    project = yaml.safe_load((root / "infra" / "Pulumi.yaml").read_text())
    assert project["name"] == config.project.slug
    # Relative to infra/: the spoke's own .venv, the one `make setup` builds.
    assert project["runtime"]["options"] == {"virtualenv": "../.venv"}
    assert project["config"]["githubRepository"]["default"] == (
        f"{config.project.team}/{config.project.slug}"
    )
    for env in ("dev", "staging", "prod"):
        stack = yaml.safe_load((root / "infra" / f"Pulumi.{env}.yaml").read_text())
        assert stack["config"] == {"aws:region": config.deploy.region}


def test_generated_infra_files_are_ruff_clean_with_the_spokes_config(spokes):
    root = spokes["medium"]
    ruff = Path(sys.executable).with_name("ruff")
    run = subprocess.run(
        [str(ruff), "check", "infra", "tests/test_infra.py"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
