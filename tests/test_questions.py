"""Bad answers fail with a message that says what is allowed, and nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from copier import run_copy

HUB = Path(__file__).resolve().parents[1]
QUESTIONS = {
    name: spec
    for name, spec in yaml.safe_load((HUB / "copier.yml").read_text()).items()
    if not name.startswith("_")
}

BAD_ANSWERS = [
    ("project_name", "9lives", "a letter first"),
    ("project_name", "ab", "3 to 40 characters"),
    ("project_name", "churn/model", "letters, digits, spaces"),
    ("description", "", "one non-empty line"),
    ("team", "Data Science", "lowercase letters"),
    ("contact_email", "ml-team.example.com", "an email address"),
    ("business_owner", "  ", "must not be empty"),
    ("cost_center", "cc 1", "letters, digits"),
    ("kpi_name", "", "must not be empty"),
    ("kpi_target", 48.0, "must differ from kpi_baseline"),
    ("risk_tier", "extreme", "'extreme' is not in ['low', 'medium', 'high']"),
    ("deploy_target", "azureml", "'azureml' is not in ['sagemaker']"),
    ("aws_region", "Europe-West", "must look like eu-west-1"),
    ("aws_region", "eu-west", "must look like eu-west-1"),
    ("monthly_budget_usd", 0, "positive number"),
    ("monthly_budget_usd", -25.0, "positive number"),
    ("canary_first_percent", 0, "between 1 and 50"),
    ("canary_first_percent", 51, "between 1 and 50"),
    ("canary_step_count", 1, "between 2 and 6"),
    ("step_seconds", 1, "between 5 and 86400"),
    ("max_error_rate", 0.9, "between 0 and 0.5"),
    ("max_p95_latency_ratio", 1.0, "between 1.05 and 10"),
    ("ci_provider", "jenkins", "'jenkins' is not in ['github']"),
]


@pytest.mark.parametrize(("question", "value", "allowed"), BAD_ANSWERS)
def test_bad_answer_is_rejected_with_what_is_allowed(
    template_repo: Path, tmp_path: Path, question: str, value: object, allowed: str
):
    dst = tmp_path / "spoke"
    with pytest.raises(ValueError, match=question) as err:
        run_copy(str(template_repo), dst, data={question: value}, defaults=True,
                 vcs_ref="HEAD", quiet=True)
    assert allowed in str(err.value)
    assert not dst.exists(), "a rejected copy must leave nothing behind"


def test_every_validated_question_has_a_bad_answer_test():
    validated = {name for name, spec in QUESTIONS.items() if "validator" in spec or
                 "choices" in spec}
    assert validated <= {q for q, _, _ in BAD_ANSWERS}


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_every_question_has_a_default_and_asked_ones_have_help(name: str):
    spec = QUESTIONS[name]
    assert "default" in spec, f"{name}: `copier update --defaults` needs a default"
    if spec.get("when") is not False:
        assert spec.get("help", "").strip(), f"{name}: asked without help text"


def test_the_cli_reports_a_bad_answer_and_writes_nothing(template_repo: Path, tmp_path: Path):
    dst = tmp_path / "spoke"
    run = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", "--vcs-ref", "HEAD",
         "-d", "monthly_budget_usd=0", str(template_repo), str(dst)],
        capture_output=True, text=True,
    )
    assert run.returncode != 0
    assert "monthly_budget_usd must be a positive number of US dollars" in run.stderr
    assert not dst.exists()


def test_copy_needs_no_trust(template_repo: Path, tmp_path: Path):
    """No _tasks, no unsafe extensions: a domain team never has to pass --trust."""
    run = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", "--vcs-ref", "HEAD",
         str(template_repo), str(tmp_path / "spoke")],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "spoke" / "slipway.toml").is_file()
