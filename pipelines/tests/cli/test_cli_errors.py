"""Bad input and unreachable services end in a clear message and the documented exit code.

Each case is one the security review reproduced as a traceback (or a misleading message).
The registry case points MLflow at a closed port on loopback: a real connection refusal,
with MLflow's own retries turned off so the test does not wait out the backoff.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from slipway.pipelines.cli import main
from slipway.pipelines.exitcodes import Exit
from tests.hub import VALID_SPOKE_TOML as VALID

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
NO_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@pytest.fixture
def spoke(tmp_path: Path) -> Path:
    (tmp_path / "slipway.toml").write_text(VALID)
    return tmp_path


def slipway(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--project", str(root), *args], env=env)


def assert_clean_failure(result: Result, code: Exit, *words: str) -> None:
    """The documented code, every expected word, and no traceback."""
    assert result.exit_code == code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def test_a_slipway_toml_that_is_not_utf8_is_a_config_error(spoke: Path):
    (spoke / "slipway.toml").write_bytes(
        VALID.replace("VP Retention", "Direcci\xf3n").encode("latin-1")
    )
    result = slipway(spoke, "check")
    assert_clean_failure(result, Exit.CONFIG, "not UTF-8 text (byte 0xf3 at offset", "re-save")


@pytest.mark.parametrize("command", [["status"], ["promote", "1", "--reason", "x"], ["deploy"]])
def test_a_url_that_does_not_parse_is_a_usage_error(spoke: Path, command: list[str]):
    result = slipway(spoke, *command, "--url", "http://[::1")
    assert_clean_failure(result, Exit.USAGE, "'http://[::1' is not a URL (Invalid IPv6 URL)")


def test_a_bad_gateway_url_from_the_environment_is_a_usage_error(spoke: Path):
    result = slipway(spoke, "status", env={"SLIPWAY_GATEWAY_URL": "http://127.0.0.1:99999"})
    assert_clean_failure(result, Exit.USAGE, "gateway URL:", "Port out of range")


def test_a_bad_gateway_url_in_slipway_toml_is_a_config_error(spoke: Path):
    (spoke / "slipway.toml").write_text(
        VALID.replace("[budget]", '[deploy]\ngateway_url = "http://[::1"\n\n[budget]')
    )
    result = slipway(spoke, "check")
    assert_clean_failure(result, Exit.CONFIG, "deploy.gateway_url", "is not a URL")


def test_serve_on_a_port_in_use_says_so(spoke: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = slipway(spoke, "serve", "--port", str(port))
    assert_clean_failure(
        result, Exit.USAGE, f"cannot listen on 127.0.0.1:{port}", "already in use", "--port"
    )


def test_deploy_with_an_unreachable_registry_exits_8(spoke: Path):
    # Reproduction: an MLflow traceback with exit 1 instead of the documented 8.
    env = {"MLFLOW_TRACKING_URI": CLOSED, **NO_RETRIES}
    for args in (["deploy"], ["deploy", "--version", "1"]):
        result = slipway(spoke, *args, "--url", "http://127.0.0.1:9", env=env)
        assert_clean_failure(
            result, Exit.UNREACHABLE, f"the model registry at {CLOSED} cannot be reached"
        )


def test_promote_with_an_unreachable_registry_is_not_a_missing_version(spoke: Path):
    # Reproduction: "has no version 1", as if the version did not exist.
    env = {"MLFLOW_TRACKING_URI": CLOSED, **NO_RETRIES}
    result = slipway(spoke, "promote", "1", "--reason", "hotfix", env=env)
    assert_clean_failure(result, Exit.UNREACHABLE, "cannot be reached", "MLFLOW_TRACKING_URI")
    assert "has no version" not in result.output


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("min = 0 }", "min = nan }", "data.contract.columns.tenure.min"),
        (
            "[budget]",
            "[rollout.guardrails]\nmax_prediction_psi = inf\n\n[budget]",
            "rollout.guardrails.max_prediction_psi",
        ),
    ],
)
def test_check_refuses_nan_and_inf(spoke: Path, old: str, new: str, field: str):
    # Reproduction: `min = nan` passed `slipway check` and switched the range check off.
    (spoke / "slipway.toml").write_text(VALID.replace(old, new))
    result = slipway(spoke, "check")
    assert_clean_failure(result, Exit.CONFIG, field, "finite number")
