"""What people read: `slipway status` readings in their units, and no credential from a URL
ever echoed (status, errors, the registry's unreachable message). Issue 22."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipelines.tests.cli.test_cli_errors import slipway
from slipway.pipelines import registry
from slipway.pipelines.cli.status import reading_line
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.redact import shown_url
from slipway.pipelines.rollout import state as rollout_state
from tests.hub import VALID_SPOKE_TOML as VALID
from tests.hub import seed_registry

SECRET = "s3cr3t-pw"


@pytest.fixture
def spoke(tmp_path: Path) -> Path:
    (tmp_path / "slipway.toml").write_text(VALID)
    seed_registry(tmp_path)  # status reads the registry: MLflow's migrations are not under test
    return tmp_path


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://ops:{SECRET}@10.0.0.5:8780", "http://***@10.0.0.5:8780"),
        (f"https://{SECRET}@mlflow.internal/api", "https://***@mlflow.internal/api"),
        (f"http://ops:{SECRET}@[::1", "http://***@[::1"),  # does not even parse
        (
            f"https://b.s3.amazonaws.com/k?X-Amz-Signature={SECRET}&part=2",
            "https://b.s3.amazonaws.com/k?X-Amz-Signature=***&part=2",
        ),
        (f"https://kfp.example/?token={SECRET}", "https://kfp.example/?token=***"),
        ("http://127.0.0.1:8780", "http://127.0.0.1:8780"),
        ("sqlite:////tmp/x/.slipway/mlflow.db", "sqlite:////tmp/x/.slipway/mlflow.db"),
    ],
)
def test_shown_url_hides_userinfo_and_secret_query_values(url: str, shown: str):
    assert shown_url(url) == shown


def test_status_never_prints_the_credentials_of_the_gateway_url(spoke: Path):
    url = f"http://ops:{SECRET}@127.0.0.1:9"  # nothing listens: the unreachable line
    for args in (["status", "--url", url], ["status", "--json", "--url", url]):
        result = slipway(spoke, *args)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
        assert "http://***@127.0.0.1:9" in result.output
    # A URL that does not parse is echoed in its own error: without its secret too.
    result = slipway(spoke, "status", "--url", f"http://ops:{SECRET}@[::1")
    assert result.exit_code == Exit.USAGE
    assert SECRET not in result.output and "http://***@[::1" in result.output


def test_an_unreachable_registry_is_named_without_its_credentials(monkeypatch):
    uri = f"http://mlflow:{SECRET}@127.0.0.1:9"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    found = registry.unreachable(
        __import__("mlflow").exceptions.MlflowException(
            "API request to endpoint failed with error: Max retries exceeded with url"
        )
    )
    assert found is not None
    assert SECRET not in str(found) and "http://***@127.0.0.1:9" in str(found)
    message = registry.unreachable_message(uri, ConnectionError("refused"))
    assert SECRET not in message


def test_status_prints_the_last_reading_in_its_units(spoke: Path):
    raw = {
        "champion_p95_ms": 0.813380700037669,
        "challenger_p95_ms": 1250.0,
        "error_rate": 0.012345,
        "p95_ratio": 1.0812,
        "psi": 0.0312345678,
        "latency_p": None,
    }
    row = rollout_state.start(
        spoke, model="churn-guard", version="2", champion_version="1", plan={}, pid=os.getpid()
    )
    rollout_state.record_reading(spoke, row.id, "10%", 10, raw)
    env = {"MLFLOW_TRACKING_URI": ""}
    result = slipway(spoke, "status", "--url", "http://127.0.0.1:9", env=env)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("readings"))
    # The case as found: "{'champion_p95_ms': 0.813380700037669, ...}".
    assert "0.813380700037669" not in line and "{" not in line
    assert "10% at 10%, " in line
    assert line.endswith(
        "champion_p95_ms 0.8 ms, challenger_p95_ms 1.25 s, error_rate 1.2%, p95_ratio 1.08x, "
        "psi 0.0312, latency_p -"
    )
    # --json keeps the numbers as they are, for machines.
    result = slipway(spoke, "status", "--json", "--url", "http://127.0.0.1:9", env=env)
    reading = json.loads(result.output)["rollout"]["last_reading"]
    assert reading["champion_p95_ms"] == raw["champion_p95_ms"]


def test_a_reading_without_numbers_is_its_phase_alone():
    assert reading_line({"phase": "shadow", "weight": 0}) == "shadow at 0%"
