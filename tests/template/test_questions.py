"""Bad answers fail with a message that says what is allowed, and nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from copier import run_copy

from tests.hub import HUB

QUESTIONS = {
    name: spec
    for name, spec in yaml.safe_load((HUB / "copier.yml").read_text()).items()
    if not name.startswith("_")
}

BAD_ANSWERS = [
    ("project_name", "9lives", "a letter first"),
    ("project_name", "ab", "3 to 40 characters"),
    ("project_name", "churn/model", "letters, digits, spaces"),
    # The derived package must be importable and must not hide (or be hidden by) a module the
    # spoke imports: `lambda` is a SyntaxError, `pandas` shadows pandas.
    ("project_name", "Lambda", "'lambda', which is a Python keyword"),
    ("project_name", "Pandas", "'pandas', which a standard-library module, a dependency"),
    ("project_name", "Json", "'json', which a standard-library module"),
    ("project_name", "Mlflow", "'mlflow', which a standard-library module"),
    ("project_name", "Sklearn", "'sklearn', which a standard-library module"),
    ("project_name", "Test", "e.g. 'Test Model' (package test_model)"),
    (
        "project_name",
        "Pipelines",
        "'pipelines', which a standard-library module, a dependency or a folder of the spoke",
    ),
    ("description", "", "one non-empty line"),
    ("team", "Data Science", "lowercase letters"),
    ("contact_email", "ml-team.example.com", "an email address"),
    ("business_owner", "  ", "must not be empty"),
    ("cost_center", "cc 1", "letters, digits"),
    ("task", "ranking", "'ranking' is not in"),
    ("registry", "databricks", "'databricks' is not in"),
    ("kpi_name", "", "must not be empty"),
    ("kpi_baseline", "abc", "kpi_baseline must be a finite number like 48"),
    ("kpi_baseline", "nan", "kpi_baseline must be a finite number like 48"),
    ("kpi_baseline", float("inf"), "kpi_baseline must be a finite number like 48"),
    ("kpi_target", float("nan"), "kpi_target must be a finite number like 24"),
    ("kpi_target", "-.inf", "kpi_target must be a finite number like 24"),
    ("kpi_target", 48.0, "must differ from kpi_baseline"),
    ("risk_tier", "extreme", "'extreme' is not in ['low', 'medium', 'high']"),
    ("deploy_target", "azureml", "'azureml' is not in ['sagemaker', 'kserve', 'both']"),
    ("aws_region", "Europe-West", "must look like eu-west-1"),
    ("aws_region", "eu-west", "must look like eu-west-1"),
    ("monthly_budget_usd", 0, "positive, finite number"),
    ("monthly_budget_usd", -25.0, "positive, finite number"),
    ("monthly_budget_usd", "lots", "positive, finite number"),
    ("monthly_budget_usd", ".inf", "positive, finite number"),
    ("canary_first_percent", 0, "between 1 and 50"),
    ("canary_first_percent", 51, "between 1 and 50"),
    ("canary_first_percent", "ten", "a whole number between 1 and 50"),
    ("canary_first_percent", 12.5, "a whole number between 1 and 50"),
    ("canary_step_count", 1, "between 2 and 6"),
    ("canary_step_count", "three", "a whole number between 2 and 6"),
    ("step_seconds", 1, "between 5 and 86400"),
    ("step_seconds", "1m", "a whole number between 5 and 86400"),
    ("max_error_rate", 0.9, "between 0 and 0.5"),
    ("max_error_rate", float("nan"), "a number between 0 and 0.5"),
    ("max_error_rate", "low", "a number between 0 and 0.5"),
    ("max_p95_latency_ratio", 1.0, "between 1.05 and 10"),
    ("max_p95_latency_ratio", float("inf"), "a number between 1.05 and 10"),
    ("max_p95_latency_ratio", "fast", "a number between 1.05 and 10"),
    ("governance_reviewers", "platform-team", "must be GitHub owners such as @my-org/platform"),
    ("ci_provider", "jenkins", "'jenkins' is not in ['github']"),
]


@pytest.mark.parametrize(("question", "value", "allowed"), BAD_ANSWERS)
def test_bad_answer_is_rejected_with_what_is_allowed(
    template_repo: Path, tmp_path: Path, question: str, value: object, allowed: str
):
    dst = tmp_path / "spoke"
    with pytest.raises(ValueError, match=question) as err:
        run_copy(
            str(template_repo),
            dst,
            data={question: value},
            defaults=True,
            vcs_ref="HEAD",
            quiet=True,
        )
    assert allowed in str(err.value)
    assert not dst.exists(), "a rejected copy must leave nothing behind"


def test_every_validated_question_has_a_bad_answer_test():
    validated = {
        name for name, spec in QUESTIONS.items() if "validator" in spec or "choices" in spec
    }
    assert validated <= {q for q, _, _ in BAD_ANSWERS}


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_every_question_has_a_default_and_asked_ones_have_help(name: str):
    spec = QUESTIONS[name]
    assert "default" in spec, f"{name}: `copier update --defaults` needs a default"
    if spec.get("when") is not False:
        assert spec.get("help", "").strip(), f"{name}: asked without help text"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            "monthly_budget_usd=0",
            "monthly_budget_usd must be a positive, finite number of US dollars",
        ),
        ("kpi_baseline=abc", "kpi_baseline must be a finite number like 48 or 12.5 (got 'abc')"),
        ("kpi_target=inf", "kpi_target must be a finite number like 24 or 12.5 (got 'inf')"),
        ("step_seconds=1.5", "step_seconds must be a whole number between 5 and 86400"),
        ("project_name=Lambda", "add a word, e.g. 'Lambda Model'"),
    ],
)
def test_the_cli_explains_a_bad_answer_and_writes_nothing(
    template_repo: Path, tmp_path: Path, answer: str, message: str
):
    """`-d` answers arrive as strings: a non-number gets the validator's message, not a bare
    "could not convert string to float"; a refused answer leaves no half-made spoke."""
    dst = tmp_path / "spoke"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--defaults",
            "--vcs-ref",
            "HEAD",
            "-d",
            answer,
            str(template_repo),
            str(dst),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert message in run.stderr
    assert not dst.exists()


def test_numbers_given_as_text_render_a_valid_slipway_toml(render):
    """What `-d` sends (strings, whole numbers for floats) renders numbers slipway.toml loads."""
    from slipway.pipelines.config import load_config

    spoke = render(
        project_name="Pandas Model",
        kpi_baseline="12",
        kpi_target="30.5",
        monthly_budget_usd="250",
        canary_first_percent="5",
        canary_step_count="4",
        step_seconds="30",
        max_error_rate="0.02",
        max_p95_latency_ratio="2",
    )
    config = load_config(spoke)
    assert (spoke / "src" / "pandas_model" / "__init__.py").is_file()
    assert (config.kpi.baseline, config.kpi.target) == (12.0, 30.5)
    assert config.kpi.higher_is_better
    assert config.budget.monthly_usd == 250
    assert config.rollout.canary_steps[0] == 5
    assert len(config.rollout.canary_steps) == 4
    assert config.rollout.step_seconds == 30
    assert config.rollout.guardrails.max_error_rate == 0.02
    assert config.rollout.guardrails.max_p95_latency_ratio == 2.0


def test_copy_needs_no_trust(template_repo: Path, tmp_path: Path):
    """No _tasks, no unsafe extensions: a domain team never has to pass --trust."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--defaults",
            "--vcs-ref",
            "HEAD",
            str(template_repo),
            str(tmp_path / "spoke"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "spoke" / "slipway.toml").is_file()
