"""A registry another MLflow wrote is said up front, with both versions, as exit 12.

The reproduction (2026-12-07): MLflow 3.18 migrated a spoke's registry to schema revision
f4a9b2c7d1e6, and every later step on the hub's MLflow 3.17 stopped with "Detected out-of-date
database schema" deep inside its log, `slipway train` printing only that a step failed. Here the
registry is made by the installed MLflow, then its alembic revision is set to the one 3.18
writes (what a newer MLflow's migration leaves behind) or to an older one of its own history.
The server case uses a stand-in answering MLflow's `/version` endpoint (named as such): the
only MLflow server that runs here is the installed version, which agrees with itself.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from slipway.pipelines.cli import main
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.registry_versions import (
    RegistryVersionSkew,
    _known_revisions,
    registry_versions,
)
from tests.hub import VALID_SPOKE_TOML as VALID
from tests.hub import seed_registry

CLIENT = version("mlflow")
# The schema revision MLflow 3.18.0 migrates a registry to: newer than any MLflow before it.
# Where 3.18 or later is installed (the newest-releases job), it is known, so another revision
# no MLflow wrote stands for "newer than the installed one".
NEWER = next(r for r in ("f4a9b2c7d1e6", "ffffffffffff") if r not in _known_revisions()[1])


def slipway(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(root), *args])


@pytest.fixture
def spoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A spoke whose embedded registry the installed MLflow created (at its head)."""
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "slipway.toml").write_text(VALID)
    uri = f"sqlite:///{seed_registry(tmp_path)}"  # migrated by the installed MLflow, once
    MlflowClient(tracking_uri=uri, registry_uri=uri).create_registered_model("churn-model")
    return tmp_path


def set_revision(spoke: Path, revision: str) -> None:
    with sqlite3.connect(spoke / ".slipway" / "mlflow.db") as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_registry_at_this_mlflows_head_is_fine(spoke: Path):
    result = slipway(spoke, "check")
    assert result.exit_code == 0, result.output
    head, _ = _known_revisions()
    assert f"schema {head}, MLflow {CLIENT} here" in result.output


def test_check_names_both_versions_of_a_registry_a_newer_mlflow_migrated(spoke: Path):
    set_revision(spoke, NEWER)
    result = slipway(spoke, "check")
    assert result.exit_code == Exit.REGISTRY_SKEW, result.output
    assert "Traceback" not in result.output
    for words in (NEWER, f"newer MLflow than {CLIENT}", "make setup"):
        assert words in result.output


def test_check_json_reports_the_skew_too(spoke: Path):
    import json

    set_revision(spoke, NEWER)
    result = slipway(spoke, "check", "--json")
    assert result.exit_code == Exit.REGISTRY_SKEW
    document = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert document["registry"]["client"] == CLIENT
    assert NEWER in document["registry"]["problem"]


def test_a_command_that_meets_mlflows_error_exits_12_not_a_traceback(spoke: Path):
    # Its own process, as a team runs it: this one's MLflow cached the store at its head.
    set_revision(spoke, NEWER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    for args in (["promote", "1", "--reason", "hotfix"], ["status"]):
        result = subprocess.run(
            [sys.executable, "-c", "from slipway.pipelines.cli import main; main()", *args],
            cwd=spoke,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == Exit.REGISTRY_SKEW, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert NEWER in result.stderr and CLIENT in result.stderr
        assert "has no version" not in result.stderr


def test_train_stops_before_any_step(spoke: Path):
    from slipway.pipelines.training.pipeline import run_local_training

    set_revision(spoke, NEWER)
    with pytest.raises(RegistryVersionSkew, match=NEWER):
        run_local_training(spoke)
    assert not (spoke / ".slipway" / "runs").exists(), "a step ran"


def test_an_older_schema_says_how_to_migrate_it(spoke: Path):
    head, known = _known_revisions()
    older = next(r for r in sorted(known) if r != head)
    set_revision(spoke, older)
    found = registry_versions(f"sqlite:///{spoke / '.slipway' / 'mlflow.db'}")
    assert found is not None and found.problem is not None
    assert "older schema" in found.problem and "mlflow db upgrade" in found.problem


@pytest.fixture
def server_standin() -> Iterator[tuple[str, list[str]]]:
    """A stand-in for `mlflow server`'s /version endpoint, answering what `answer[0]` holds."""
    answer = ["3.18.0"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = answer[0].encode()
            self.send_response(200 if self.path == "/version" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answer
    server.shutdown()


def test_a_server_on_another_minor_version_is_a_skew(server_standin: tuple[str, list[str]]):
    url, answer = server_standin
    answer[0] = "3.18.0" if not CLIENT.startswith("3.18.") else "3.19.0"
    found = registry_versions(url)
    assert found is not None and found.problem is not None
    assert answer[0] in found.problem and CLIENT in found.problem
    with pytest.raises(RegistryVersionSkew):
        found.raise_for_skew()


def test_a_server_on_the_same_minor_version_is_fine(server_standin: tuple[str, list[str]]):
    url, answer = server_standin
    major, minor, *_ = CLIENT.split(".")
    answer[0] = f"{major}.{minor}.99"
    found = registry_versions(url)
    assert found is not None and found.problem is None
