"""The helpers every test directory and the benchmarks share, in one place: the hub
checkout under test, git, a free port, the `slipway` command, and a valid slipway.toml.

Copier renders from git, and the working tree under test may hold uncommitted changes, so
`snapshot_working_tree` copies exactly the files git would see into a fresh repository,
committed and tagged with VERSION: tests never depend on tags being present in the checkout.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

HUB = Path(__file__).resolve().parents[1]
# Failure guard only (a wedged server must not hang the suite); never a speed claim.
SERVER_GUARD_S = 120
VERSION = (HUB / "VERSION").read_text().strip()

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Slipway Tests",
    "GIT_AUTHOR_EMAIL": "tests@slipway.invalid",
    "GIT_COMMITTER_NAME": "Slipway Tests",
    "GIT_COMMITTER_EMAIL": "tests@slipway.invalid",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.strip()


def snapshot_working_tree(dst: Path, tag: str | None = None) -> Path:
    """Copy the hub's working tree (what git would see) into a fresh repo at `dst`."""
    listing = git(HUB, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for rel in filter(None, listing.split("\0")):
        src = HUB / rel
        if not src.is_file():  # deleted in the working tree but still in the index
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "snapshot of the working tree under test")
    git(dst, "tag", tag or f"v{VERSION}")
    return dst


def hub_locked_versions(names: tuple[str, ...]) -> dict[str, str]:
    """{package: version} from the hub's uv.lock: what a release was tested with."""
    lock = tomllib.loads((HUB / "uv.lock").read_text())
    found: dict[str, set[str]] = {}
    for package in lock["package"]:
        if package["name"] in names and "version" in package:
            found.setdefault(package["name"], set()).add(package["version"])
    assert set(found) == set(names), f"not in the hub's uv.lock: {set(names) - set(found)}"
    assert all(len(v) == 1 for v in found.values()), f"several versions locked: {found}"
    return {name: versions.pop() for name, versions in found.items()}


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` (the hub's MLflow) on loopback, restartable on the same port.

    `backend` is its backend store (sqlite:///... for a private one, postgresql://... for a
    team's) and `artifacts` its artifact destination (a local directory, or s3://... with
    `env` naming the S3 endpoint); its logs go under `workdir`, one file per start.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        backend: str | None = None,
        artifacts: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.backend = backend or f"sqlite:///{workdir / 'server.db'}"
        self.artifacts = artifacts or str(workdir / "server-artifacts")
        self.env = dict(env) if env is not None else None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def environment(self) -> Mapping[str, str]:
        """The server's environment, read at each start: `env`, or this process's."""
        return os.environ if self.env is None else self.env

    def _log(self) -> Path:
        return self.workdir / f"server-{self.starts}.log"

    def start(self) -> None:
        """Start it and return once /health answers (its first start migrates the backend)."""
        self.starts += 1
        with self._log().open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "mlflow"),
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    self.backend,
                    "--artifacts-destination",
                    self.artifacts,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.environment(), "MLFLOW_DISABLE_TELEMETRY": "true"},
                cwd=self.workdir,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_GUARD_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"mlflow server exited:\n{self._log().read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"mlflow server at {self.url} never became ready")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.running():
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=30)


@contextmanager
def mlflow_server(workdir: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """A private `mlflow server` (sqlite backend, local artifacts under `workdir`); yields its
    URL once /health answers, always stopped."""
    server = MlflowServer(workdir, env=env)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


@functools.cache
def _migrated_registry() -> Path:
    """An empty MLflow registry (sqlite) the installed MLflow migrated to its head, made once
    per process: MLflow's migrations take seconds, a copy of their result milliseconds."""
    from mlflow import MlflowClient

    where = Path(tempfile.mkdtemp(prefix="slipway-migrated-registry-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    db = where / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()
    client.search_registered_models()
    return db


def seed_registry(root: Path) -> Path:
    """Give the spoke at `root` an empty embedded registry (`.slipway/mlflow.db`) already at
    the installed MLflow's schema head, as its first command would have made it, for tests
    whose subject comes after that first migration. Tests of a spoke's first run do not."""
    from slipway.pipelines.registry import STATE_DIR

    db = root / STATE_DIR / "mlflow.db"
    assert not db.exists(), f"{db} exists: seed a registry only into a spoke without one"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_registry(), db)
    return db


# The `slipway` command of the environment running the tests; a failure guard only.
SLIPWAY = Path(sys.executable).parent / "slipway"
COMMAND_GUARD_S = 300


def slipway(
    root: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    inherit: bool = True,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a process of its own, on the spoke at `root` (`-C root`, run from
    there too), with `env` over this environment (or, `inherit=False`, `env` alone); output
    captured for assertion messages. `check`: fail the test on a non-zero exit, with it."""
    done = subprocess.run(
        [str(SLIPWAY), "-C", str(root), *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=COMMAND_GUARD_S,
        env={**(os.environ if inherit else {}), **(env or {})},
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


# A valid slipway.toml: the library tests' spoke, and the template's defaults in brief.
VALID_SPOKE_TOML = """
[project]
name = "Churn Guard"
slug = "churn-guard"
package = "churn_guard"
team = "retention"
contact = "retention@example.com"
business_owner = "VP Retention"
cost_center = "cc-42"

[kpi]
name = "monthly churn percent"
baseline = 4.0
target = 3.0
higher_is_better = false

[data]
loader = "churn_guard.data:load"
target = "churned"

[data.contract]
min_rows = 10
columns = { tenure = { dtype = "int", min = 0 }, plan = { dtype = "str", allowed = ["a", "b"] } }

[training]
trainer = "churn_guard.train:train"

[budget]
monthly_usd = 250
"""
