"""A team's shared services for real: PostgreSQL on 127.0.0.1:5432, S3 from moto's server,
and `mlflow server` with its backend on that PostgreSQL and its artifacts on that S3.

- `postgres_admin`: the machine's PostgreSQL (user postgres, trust auth). Under CI=true an
  unreachable server fails the test; elsewhere it skips with the reason.
- `database`: a fresh database with a unique name per test, dropped after.
- `s3`: moto's ThreadedMotoServer in this process on a free port, one bucket.
- `mlflow_server`: one `mlflow server` per test session (its first start migrates an empty
  database: ~20 s, too dear per test), restartable by the test that needs a registry outage.
  Tests sharing it stay apart by their spokes' slugs, as two teams' spokes would.

Every test that uses the server runs in one xdist group, so one worker pays for it; the
tests on a database of their own (audit trail, leases, store protocols) are not grouped.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hub import MlflowServer as HubMlflowServer
from tests.hub import free_port

ADMIN_URL = os.environ.get("SLIPWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BUCKET = "slipway-team-artifacts"
VENV_BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that use the session's `mlflow_server` run in one xdist group, so one worker
    pays for starting it; the ones on a database of their own run wherever there is room."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents and "mlflow_server" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.xdist_group("shared-registry"))


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """The admin URL of the machine's PostgreSQL, after proving it answers."""
    import psycopg

    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        reason = (
            f"PostgreSQL is not reachable at {ADMIN_URL} ({str(exc).strip()}); start the "
            "machine's server (`service postgresql start`)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the real PostgreSQL: {reason}")
        pytest.skip(reason)
    return ADMIN_URL


def _create(admin: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_db(admin, name)


def _drop(admin: str, name: str) -> None:
    import psycopg

    from slipway.pipelines import store

    url = _with_db(admin, name)
    for key in [k for k in store._schema_ready if k[0] == url]:
        store._schema_ready.discard(key)
    store.engine(url).dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database(postgres_admin: str) -> Iterator[str]:
    """A database of this test's own (unique name), dropped after it."""
    name = f"slipway_test_{uuid.uuid4().hex[:12]}"
    url = _create(postgres_admin, name)
    try:
        yield url
    finally:
        _drop(postgres_admin, name)


@dataclass
class S3:
    endpoint: str
    bucket: str
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """moto's S3 server (a stand-in for AWS S3, the one AWS forces) with one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    try:
        yield S3(endpoint, BUCKET, env)
    finally:
        server.stop()


class MlflowServer(HubMlflowServer):
    """The team's server: `mlflow server --backend-store-uri postgresql://...
    --artifacts-destination s3://...`, restartable by the test that needs an outage."""

    def __init__(self, backend: str, s3: S3, workdir: Path) -> None:
        super().__init__(workdir, backend=backend, artifacts=f"s3://{s3.bucket}/mlflow")
        self.s3 = s3

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.s3.env}


@pytest.fixture(scope="session")
def mlflow_server(
    postgres_admin: str, s3: S3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    name = f"slipway_mlflow_{uuid.uuid4().hex[:12]}"
    backend = _create(postgres_admin, name)
    server = MlflowServer(backend, s3, tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        _drop(postgres_admin, name)


@pytest.fixture
def team_env(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """This process and every `slipway` it starts use the team's server and state database
    (the MLflow backend database: the documented default for a postgresql:// registry; an
    http registry names it in SLIPWAY_STATE_URL, as here). MLflow's HTTP retries are bounded
    so an outage test ends in seconds, not MLflow's default minutes."""
    if not mlflow_server.running():
        mlflow_server.start()  # a test before stopped it and failed before restarting
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("SLIPWAY_STATE_URL", mlflow_server.backend)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    return mlflow_server


SpokeMaker = Callable[[str], Path]


@pytest.fixture
def make_spoke(template_repo: Path, tmp_path: Path) -> SpokeMaker:
    """make_spoke(name) -> a rendered low-tier spoke; its slug (the registered model) is the
    name lower-cased with hyphens."""
    from copier import run_copy

    def _make(slug: str) -> Path:
        dst = tmp_path / slug
        run_copy(
            str(template_repo),
            dst,
            data={"risk_tier": "low", "project_name": slug},
            defaults=True,
            vcs_ref="HEAD",
            quiet=True,
            unsafe=False,
        )
        return dst

    return _make


def unique_slug(prefix: str) -> str:
    """Slugs differ per test: the session's server outlives each test's spokes."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
