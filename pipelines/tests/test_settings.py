"""One settings model for the environment: one error and exit code for a bad value, one
table in the docs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from slipway.pipelines import settings as settings_module
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.settings import SettingError, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reference" / "environment.md"


@pytest.mark.parametrize(
    ("variable", "bad"),
    [
        ("SLIPWAY_ROLLOUT_LEASE_SECONDS", "soon"),
        ("SLIPWAY_ROLLOUT_LEASE_SECONDS", "inf"),
        ("SLIPWAY_STATE_RETRIES", "many"),
        ("SLIPWAY_STATE_RETRIES", "-1"),
        ("SLIPWAY_MAX_BODY_BYTES", "lots"),
        ("SLIPWAY_PREDICT_TIMEOUT_S", "0"),
        ("SAGEMAKER_BIND_TO_PORT", "http"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0"),
        ("SLIPWAY_KFP_POLL_SECONDS", "often"),
        ("SLIPWAY_METRICS_INTERVAL_S", "nan"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable_and_its_default(variable, bad):
    with pytest.raises(SettingError) as caught:
        Settings.from_env({variable: bad})
    assert caught.value.exit_code == Exit.CONFIG
    assert isinstance(caught.value, ValueError)  # what the gateway's limits raised before
    message = str(caught.value)
    assert message.startswith(f"{variable}={bad!r} must be ")
    assert "(default " in message and message.endswith("set it so, or unset it")


def test_every_reader_raises_the_same_error(monkeypatch):
    """The five readers that each had their own behaviour on a bad value now agree."""
    from slipway.pipelines import store
    from slipway.pipelines.cli.train import _poll
    from slipway.pipelines.rollout import state
    from slipway.pipelines.serving.gateway import Limits
    from slipway.pipelines.serving.sagemaker import ServingSettings

    readers = {
        "SLIPWAY_MAX_BODY_BYTES": Limits.from_env,
        "SLIPWAY_ROLLOUT_LEASE_SECONDS": state.lease_seconds,
        "SLIPWAY_STATE_RETRIES": store.retries,  # was the default in silence
        "SAGEMAKER_BIND_TO_PORT": ServingSettings.from_env,
        "SLIPWAY_KFP_POLL_SECONDS": _poll,  # was a raw ValueError
    }
    for variable, read in readers.items():
        monkeypatch.setenv(variable, "x")
        with pytest.raises(SettingError, match=variable):
            read()
        monkeypatch.delenv(variable)
        read()  # unset again: the default, no error


def test_an_empty_value_is_unset_and_values_are_typed():
    assert Settings.from_env({"SLIPWAY_STATE_RETRIES": "  "}).state_retries is None
    env = Settings.from_env(
        {"SLIPWAY_STATE_RETRIES": "0", "SLIPWAY_ROLLOUT_LEASE_SECONDS": "7.5", "OTHER": "x"}
    )
    assert env.state_retries == 0
    assert env.rollout_lease_seconds == 7.5


def test_the_sagemaker_timeout_name_sets_the_prediction_timeout_unless_ours_does():
    from slipway.pipelines.serving.gateway import Limits

    assert Limits.from_env({"SAGEMAKER_MODEL_SERVER_TIMEOUT": "12"}).predict_timeout_s == 12
    both = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "12", "SLIPWAY_PREDICT_TIMEOUT_S": "3"}
    assert Limits.from_env(both).predict_timeout_s == 3
    assert Limits.from_env({}).predict_timeout_s == Limits().predict_timeout_s


def test_the_docs_table_is_the_model():
    assert settings_module.table() in DOCS.read_text(encoding="utf-8"), (
        "docs/reference/environment.md is out of date: paste `python -m "
        "slipway.pipelines.settings` into it"
    )


def test_no_library_module_reads_a_setting_outside_the_model():
    """A new `os.environ.get` would be a sixth way to parse a value: read it through
    Settings (whole-environment copies for a child process are not settings)."""
    import ast

    src = Path(settings_module.__file__).parent
    readers = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            read = (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) in ("os.environ.get", "os.getenv")
            ) or (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and ast.unparse(node.value) == "os.environ"
            )
            if read:
                readers.append(str(path.relative_to(src)))
    assert Counter(readers) == ALLOWED_READERS


# None left: a scoped change (the registry's and Kubeflow's environment, store.no_retries)
# goes through settings.restored_environment, and the step daemon's fingerprint of what
# imports read (PYTHONPATH, ...) through settings.passed_on.
ALLOWED_READERS: Counter[str] = Counter()


def test_a_scoped_environment_change_never_outlives_its_block(monkeypatch):
    """restored_environment (the registry's fluent block, Kubeflow's quick MLflow,
    store.no_retries): a variable set inside is gone after, one changed is back."""
    import os

    from slipway.pipelines.settings import passed_on, restored_environment

    monkeypatch.setenv("SLIPWAY_TEST_KEPT", "before")
    monkeypatch.delenv("SLIPWAY_TEST_NEW", raising=False)
    with restored_environment(("SLIPWAY_TEST_KEPT", "SLIPWAY_TEST_NEW")):
        os.environ["SLIPWAY_TEST_KEPT"] = "inside"
        os.environ["SLIPWAY_TEST_NEW"] = "inside"
        assert passed_on(["SLIPWAY_TEST_NEW"]) == {"SLIPWAY_TEST_NEW": "inside"}
    assert os.environ["SLIPWAY_TEST_KEPT"] == "before"
    assert "SLIPWAY_TEST_NEW" not in os.environ
    assert passed_on(["SLIPWAY_TEST_NEW"]) == {"SLIPWAY_TEST_NEW": ""}
