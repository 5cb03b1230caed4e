"""The template renders over a matrix of answers into spokes that pass their own checks.

Every choice of every choice-question appears at least once (risk_tier has three, the
others one each today), and the free-text and number questions are pushed to their edges.
Every rendered spoke: no leftover Jinja, ruff clean, `slipway check` passes, and its own
test suite passes in the hub's environment. One spoke per run (the defaults) also goes
through its own `make setup && make test` from scratch, as a domain team would: that one is
marked slow.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config

MATRIX: dict[str, dict[str, object]] = {
    "defaults": {},
    "low-risk-edges": {
        "project_name": "Fraud_Radar 2",
        "risk_tier": "low",
        "canary_first_percent": 1,
        "canary_step_count": 6,
        "monthly_budget_usd": 10.5,
        "kpi_baseline": 0.2,
        "kpi_target": 0.35,
        "description": 'Scores card payments; "fraud" means chargeback within 90 days',
    },
    "high-risk-edges": {
        "project_name": "xray triage",
        "risk_tier": "high",
        "canary_first_percent": 50,
        "canary_step_count": 2,
        "aws_region": "us-gov-west-1",
        "step_seconds": 86400,
        "max_error_rate": 0.5,
        "max_p95_latency_ratio": 1.05,
    },
    # One starter per task: its data, metrics, gate floors and tests (binary is "defaults").
    "multiclass": {"task": "multiclass"},
    "regression": {"task": "regression", "risk_tier": "low"},
}

JINJA_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}")


def spoke_files(spoke: Path) -> list[Path]:
    return [p for p in spoke.rglob("*") if p.is_file() and ".git" not in p.parts]


@pytest.mark.parametrize("case", list(MATRIX))
def test_rendered_spoke_is_clean_and_valid(render, case: str):
    spoke = render(case, **MATRIX[case])
    files = spoke_files(spoke)
    assert files, "nothing was rendered"
    assert not [p for p in files if p.suffix == ".jinja"], "template suffix left in a file name"
    leftovers = [
        f"{p.relative_to(spoke)}:{n}"
        for p in files
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if JINJA_LEFTOVER.search(line) and "${{" not in line  # GitHub expressions are fine
    ]
    assert not leftovers, f"unrendered Jinja: {leftovers}"

    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=spoke,
        capture_output=True,
        text=True,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr

    result = CliRunner().invoke(main, ["--project", str(spoke), "check"])
    assert result.exit_code == 0, result.output
    config = load_config(spoke)
    answers = MATRIX[case]
    assert config.governance.risk_tier == answers.get("risk_tier", "medium")
    steps = config.rollout.canary_steps
    assert steps[0] == answers.get("canary_first_percent", 10)
    assert len(steps) == answers.get("canary_step_count", 3)
    task = answers.get("task", "binary")
    assert config.training.task == task
    # The starter's floors are the task's metrics (config validation checked the names).
    expected = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}[task]
    assert config.gates.primary_metric == expected


@pytest.mark.parametrize("case", list(MATRIX))
def test_rendered_spoke_passes_its_own_tests_in_the_hub_environment(render, case: str):
    spoke = render(case, **MATRIX[case])
    env = {**os.environ, "PYTHONPATH": str(spoke / "src")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=spoke,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout


def test_derived_names_follow_the_project_name(render):
    spoke = render("names", project_name="Fraud_Radar 2")
    config = load_config(spoke)
    assert config.project.slug == "fraud-radar-2"
    assert config.project.package == "fraud_radar_2"
    assert (spoke / "src" / "fraud_radar_2" / "train.py").is_file()
    answers = (spoke / ".copier-answers.yml").read_text()
    assert "project_name: Fraud_Radar 2" in answers
    # derived values are recomputed on update, never stored
    assert "project_slug" not in answers and "package_name" not in answers


def test_library_pin_is_a_path_source_for_a_local_copy(render, template_repo: Path):
    spoke = render("pin")
    pyproject = (spoke / "pyproject.toml").read_text()
    assert f'path = "{template_repo}/pipelines", editable = true' in pyproject
    version = (template_repo / "VERSION").read_text().strip()
    assert f'"slipway-pipelines[runtime]=={version}"' in pyproject


def test_image_build_context_holds_what_the_dockerfile_copies(render):
    """No Docker engine here: check what can be checked without one, against the real spoke."""
    spoke = render("image")
    dockerfile = (spoke / "Dockerfile").read_text()
    sources = [
        src
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for src in line.split()[1:-1]
    ]
    assert sources, "the Dockerfile copies nothing"
    ignored = set((spoke / ".dockerignore").read_text().split())
    for src in sources:
        if src == "uv.lock":  # made by the team's first `make setup`, then committed
            continue
        assert (spoke / src).exists(), f"Dockerfile copies {src}, which a fresh spoke lacks"
        assert src.rstrip("/") not in ignored, f"{src} is copied but .dockerignore drops it"
    serve = spoke / "docker" / "serve"
    assert os.access(serve, os.X_OK), "SageMaker runs `serve`: it must be executable"
    # The gateway's single-model mode, which binds 8080 (tests/deploy/test_sagemaker_serving.py
    # runs this very script against a packaged model).
    assert "python -m slipway.pipelines.serving.sagemaker serve" in serve.read_text()
