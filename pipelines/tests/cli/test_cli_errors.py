"""Bad input and unreachable services end in a clear message and the documented exit code.

Each case is one the security review reproduced as a traceback (or a misleading message).
The registry case points MLflow at a closed port on loopback: a real connection refusal,
with MLflow's own retries turned off so the test does not wait out the backoff.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from slipway.pipelines.cli import main
from slipway.pipelines.exitcodes import Exit
from tests.hub import VALID_SPOKE_TOML as VALID
from tests.hub import seed_registry

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
NO_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@pytest.fixture
def spoke(tmp_path: Path) -> Path:
    (tmp_path / "slipway.toml").write_text(VALID)
    seed_registry(tmp_path)  # commands that reach the registry skip MLflow's migrations
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


def test_two_serves_started_together_the_second_says_the_port_is_in_use(spoke: Path):
    from slipway.pipelines.serving.gateway import bind_socket

    # The first `slipway serve` holds its socket while its model loads. Before, it bound
    # with SO_REUSEADDR and listened only once loaded, so a second bind on the same port
    # succeeded and the second serve announced a URL it never listened on.
    first = bind_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with pytest.raises(OSError) as second:
            bind_socket("127.0.0.1", port).close()
        assert second.value.errno == errno.EADDRINUSE
        result = slipway(spoke, "serve", "--port", str(port))
    finally:
        first.close()
    assert_clean_failure(result, Exit.USAGE, f"cannot listen on 127.0.0.1:{port}", "already in use")
    assert "listening on" not in result.output


def test_promote_against_a_dead_registry_gives_up_within_the_documented_bound(
    spoke: Path, monkeypatch: pytest.MonkeyPatch
):
    # A registry that accepts each connection and drops it: every try is one accept here.
    import threading

    from urllib3.util.retry import Retry

    from slipway.pipelines.registry import CLI_HTTP_DEFAULTS

    for name in CLI_HTTP_DEFAULTS:  # MLflow's own defaults, as on a fresh machine
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    waits: list[float] = []
    # The backoff urllib3 would sleep, recorded instead of slept (no timing in this test).
    monkeypatch.setattr(Retry, "_sleep_backoff", lambda self: waits.append(self.get_backoff_time()))
    server = socket.create_server(("127.0.0.1", 0))
    tries = 0

    def drop_all() -> None:
        nonlocal tries
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            tries += 1
            conn.close()

    threading.Thread(target=drop_all, daemon=True).start()
    uri = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        result = slipway(spoke, "promote", "1", "--reason", "x", env={"MLFLOW_TRACKING_URI": uri})
    finally:
        server.close()
    assert_clean_failure(result, Exit.UNREACHABLE, f"the model registry at {uri}")
    # Before: MLflow's 7 retries with backoff factor 2 waited 248 s (plus jitter), 252 s in all.
    assert tries == 4
    assert len(waits) == 3 and sum(waits) <= 0 + 2 + 4 + 3 * 1.0  # jitter: up to 1 s a try


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
