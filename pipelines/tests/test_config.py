"""slipway.toml validation: good files load, bad ones name the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.pipelines.config import (
    ConfigError,
    RiskTier,
    find_spoke_root,
    load_config,
    parse_config,
)
from tests.hub import VALID_SPOKE_TOML as VALID


def with_replaced(old: str, new: str) -> str:
    assert old in VALID, f"test bug: {old!r} is not in the base config"
    return VALID.replace(old, new)


def test_a_minimal_valid_file_gets_the_documented_defaults():
    config = parse_config(VALID)
    assert config.model_name == "churn-guard"
    assert config.governance.risk_tier is RiskTier.low
    assert config.rollout.canary_steps == [10, 32, 100]
    assert config.gates.primary_metric == "roc_auc"
    assert config.deploy.target == "sagemaker"


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ('slug = "churn-guard"', 'slug = "Churn Guard"', "project.slug", "pattern"),
        ('contact = "retention@example.com"', 'contact = "nobody"', "project.contact", "pattern"),
        ("monthly_usd = 250", "monthly_usd = 0", "budget.monthly_usd", "greater than 0"),
        ("target = 3.0", "target = 5.0", "kpi", "must be below baseline"),
        (
            'loader = "churn_guard.data:load"',
            'loader = "churn_guard.data"',
            "data.loader",
            "pattern",
        ),
        ("[budget]", '[deploy]\nregion = "Europe"\n[budget]', "deploy.region", "pattern"),
        ("[budget]", '[deploy]\ntarget = "azure"\n[budget]', "deploy.target", "'sagemaker'"),
        (
            "[budget]",
            "[rollout]\ncanary_steps = [60, 100]\n[budget]",
            "rollout.canary_steps",
            "1 to 50%",
        ),
        (
            "[budget]",
            "[rollout]\ncanary_steps = [10, 50]\n[budget]",
            "rollout.canary_steps",
            "ends at 100",
        ),
        (
            "[budget]",
            "[rollout]\ncanary_steps = [10, 10, 100]\n[budget]",
            "rollout.canary_steps",
            "strictly increasing",
        ),
        (
            "[budget]",
            '[governance]\nrisk_tier = "extreme"\n[budget]',
            "governance.risk_tier",
            "'low', 'medium' or 'high'",
        ),
        (
            "[budget]",
            "[gates.minimum]\nbogus = 0.5\n[budget]",
            "(top level)",
            "is not a binary metric",
        ),
        ("min_rows = 10", "min_rows = 10\nmin_row = 3", "data.contract.min_row", "unknown key"),
        ('target = "churned"', 'target = "tenure"', "data", "must not be listed"),
        # nan compares false with everything: it silently switched the range check off.
        ("min = 0 }", "min = nan }", "data.contract.columns.tenure.min", "finite number"),
        # An infinite guardrail can never breach; an infinite budget never alerts.
        (
            "[budget]",
            "[rollout.guardrails]\nmax_p95_latency_ratio = inf\n[budget]",
            "rollout.guardrails.max_p95_latency_ratio",
            "finite number",
        ),
        (
            "[budget]",
            "[rollout.guardrails]\nmax_prediction_psi = inf\n[budget]",
            "rollout.guardrails.max_prediction_psi",
            "finite number",
        ),
        ("monthly_usd = 250", "monthly_usd = inf", "budget.monthly_usd", "finite number"),
        (
            "[budget]",
            '[governance]\nallowed_signers = "../../etc/keys"\n[budget]',
            "governance.allowed_signers",
            "a path inside the spoke",
        ),
    ],
)
def test_each_bad_value_is_reported_with_its_field(old, new, field, words):
    with pytest.raises(ConfigError) as err:
        parse_config(with_replaced(old, new))
    message = str(err.value)
    line = next((ln for ln in message.splitlines() if f"- {field}:" in ln), None)
    assert line is not None, message
    assert words in line, message


def test_every_problem_is_listed_at_once():
    text = with_replaced("monthly_usd = 250", "monthly_usd = -1")
    text = text.replace('contact = "retention@example.com"', 'contact = "x"')
    with pytest.raises(ConfigError, match=r"2 problem\(s\)") as err:
        parse_config(text)
    assert "budget.monthly_usd" in str(err.value)
    assert "project.contact" in str(err.value)


def test_a_missing_section_is_named():
    text = VALID.split("[budget]")[0]
    with pytest.raises(ConfigError, match=r"- budget: required, but missing"):
        parse_config(text)


def test_broken_toml_says_where():
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 1"):
        parse_config("[project\n")


def test_spoke_root_is_found_from_a_subdirectory(tmp_path: Path):
    (tmp_path / "slipway.toml").write_text(VALID)
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    assert find_spoke_root(nested) == tmp_path.resolve()
    assert load_config(tmp_path).project.team == "retention"


def test_a_directory_that_is_not_a_spoke_gets_a_next_step(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"not a Slipway spoke.*copier copy"):
        load_config(tmp_path)


def test_the_task_defaults_to_binary_and_picks_its_own_default_gates():
    assert parse_config(VALID).training.task == "binary"
    regression = parse_config(
        with_replaced(
            'trainer = "churn_guard.train:train"', 'task = "regression"\ntrainer = "a.b:c"'
        )
    )
    assert regression.gates.primary_metric == "r2"
    assert regression.gates.minimum == {"r2": 0.3}
    multiclass = parse_config(
        with_replaced("[budget]", "[gates]\nminimum = { f1_weighted = 0.7 }\n[budget]").replace(
            "[training]", '[training]\ntask = "multiclass"'
        )
    )
    assert multiclass.gates.primary_metric == "accuracy"
    assert multiclass.gates.minimum == {"f1_weighted": 0.7}


def test_a_metric_of_another_task_is_refused_with_the_ones_that_exist():
    text = with_replaced("[budget]", '[gates]\nprimary_metric = "roc_auc"\n[budget]').replace(
        "[training]", '[training]\ntask = "regression"'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    message = str(caught.value)
    assert "'roc_auc' is not a regression metric" in message
    assert "rmse, mae, r2, mse, max_error" in message


def test_an_error_floor_may_exceed_one_but_a_score_floor_may_not():
    regression = with_replaced("[budget]", "[gates.minimum]\nrmse = 60.0\n[budget]").replace(
        "[training]", '[training]\ntask = "regression"'
    )
    assert parse_config(regression).gates.minimum == {"rmse": 60.0}
    with pytest.raises(ConfigError, match=r"gates.minimum.roc_auc = 1.5 must be between 0 and 1"):
        parse_config(with_replaced("[budget]", "[gates.minimum]\nroc_auc = 1.5\n[budget]"))


def test_an_unknown_task_lists_the_three():
    with pytest.raises(ConfigError, match="'binary', 'multiclass' or 'regression'"):
        parse_config(with_replaced("[training]", '[training]\ntask = "ranking"'))
