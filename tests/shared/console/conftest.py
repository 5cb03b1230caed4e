"""The console's fleet, once per session, on the team's shared services (tests/shared)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shared.conftest import MlflowServer
from tests.shared.console.fleet import Fleet, build

STATE_ENV = ("MLFLOW_TRACKING_URI", "SLIPWAY_STATE_URL")


@pytest.fixture(scope="session")
def fleet(
    mlflow_server: MlflowServer, template_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    if not mlflow_server.proc or mlflow_server.proc.poll() is not None:
        mlflow_server.start()  # an outage test before stopped it and failed before restarting
    saved = {key: os.environ.get(key) for key in STATE_ENV}
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server.url
    os.environ["SLIPWAY_STATE_URL"] = mlflow_server.backend
    # Only while the fleet is built: left set for the session, they sent every later test of
    # this xdist worker to the team's shared trail (fleet_env sets them per console test).
    try:
        built = build(
            tmp_path_factory.mktemp("console"),
            template_repo,
            mlflow_server.url,
            mlflow_server.backend,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield built


@pytest.fixture(autouse=True)
def fleet_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here reads the fleet's registry and state (the root conftest clears them);
    the team's server is started again if a test before stopped it."""
    if "fleet" not in request.fixturenames:
        return
    fleet: Fleet = request.getfixturevalue("fleet")
    server: MlflowServer = request.getfixturevalue("mlflow_server")
    if not server.proc or server.proc.poll() is not None:
        server.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fleet.registry)
    monkeypatch.setenv("SLIPWAY_STATE_URL", fleet.state)
