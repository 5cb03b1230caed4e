"""The helpers every test directory and the benchmarks share, in one place: the hub
checkout under test, git, a free port, the `slipway` command, and a valid slipway.toml.

Copier renders from git, and the working tree under test may hold uncommitted changes, so
`snapshot_working_tree` copies exactly the files git would see into a fresh repository,
committed and tagged with VERSION: tests never depend on tags being present in the checkout.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

HUB = Path(__file__).resolve().parents[1]
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


@contextmanager
def mlflow_server(workdir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `mlflow server` (the hub's MLflow) on loopback: sqlite backend and local
    artifacts under `workdir`; yields its URL once /health answers, always stopped."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{workdir / 'server.db'}",
                "--artifacts-destination",
                str(workdir / "server-artifacts"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**(env or os.environ), "MLFLOW_DISABLE_TELEMETRY": "true"},
            cwd=workdir,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(log_path.read_text()) from None
                    time.sleep(0.5)
            yield url
        finally:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)


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
