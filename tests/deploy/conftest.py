"""Fixtures for the deploy tests: a rendered low-tier spoke with two real trained versions,
a real gateway subprocess on 127.0.0.1, the `slipway` CLI as a subprocess, and a bounded
concurrent load running in a background thread.

The registry with v1 (champion) and v2 (a healthy candidate, trained with other params)
is built once per session and copied per test: MLflow's migrations and model logging cost
seconds, and every test must start from the same known state.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from slipway.pipelines.config import SpokeConfig, load_config
from tests.hub import SLIPWAY
from tests.hub import slipway as slipway  # the deploy tests import it from here

# Failure guards only (a wedged subprocess must not hang the suite); never a speed claim.
STARTUP_GUARD_S = 120
COMMAND_GUARD_S = 300


@dataclass(frozen=True)
class Spoke:
    root: Path
    config: SpokeConfig


@pytest.fixture(scope="session")
def deploy_base(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Spoke:
    """A low-tier spoke whose registry holds v1 (champion) and v2 (healthy, unaliased)."""
    from copier import run_copy

    from slipway.pipelines import registry
    from slipway.pipelines.rollout import release
    from slipway.pipelines.rollout.rehearsal import register_trained

    root = tmp_path_factory.mktemp("deploy-base") / "spoke"
    run_copy(
        str(template_repo),
        root,
        data={"risk_tier": "low"},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
        unsafe=False,
    )
    config = load_config(root)
    v1 = register_trained(root, config, {"C": 1.0, "max_iter": 500})
    v2 = register_trained(root, config, {"C": 0.5, "max_iter": 500})
    assert (v1, v2) == ("1", "2")
    release.promote(
        root, registry.client(root), config.model_name, v1, reason="test fixture: first champion"
    )
    return Spoke(root, config)


@pytest.fixture
def spoke(deploy_base: Spoke, tmp_path: Path) -> Spoke:
    """A private copy of the base spoke (registry, audit trail and all)."""
    root = tmp_path / "spoke"
    shutil.copytree(deploy_base.root, root)
    return Spoke(root, load_config(root))


def wait_healthy(url: str) -> dict:
    deadline = time.monotonic() + STARTUP_GUARD_S
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"{url}/health", timeout=5).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"gateway at {url} never became healthy")


class GatewayProcess:
    """`slipway serve --port 0` as a subprocess; `url` is what it announced."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = subprocess.Popen(
            [str(SLIPWAY), "-C", str(root), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(f"gateway did not start: {line}{self.proc.stderr.read()}")
        self.url = line.rsplit(" ", 1)[1].strip()
        wait_healthy(self.url)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def gateway(spoke: Spoke) -> Iterator[GatewayProcess]:
    process = GatewayProcess(spoke.root)
    yield process
    process.stop()


class Load:
    """Concurrent clients replaying held-out rows in a background thread until stopped."""

    def __init__(
        self,
        url: str,
        spoke: Spoke,
        *,
        concurrency: int = 20,
        rate: float = 0.0,
        guard_s: float = 240.0,
    ) -> None:
        from slipway.pipelines.rollout.traffic import replay_rows, run_traffic

        self.stop_event = threading.Event()
        self.report = None
        rows = replay_rows(spoke.root, spoke.config)

        def run() -> None:
            self.report = run_traffic(
                url,
                rows,
                rate=rate,
                duration=guard_s,
                concurrency=concurrency,
                stop=self.stop_event,
            )

        self.thread = threading.Thread(target=run, daemon=True)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=60)
        assert self.report is not None, "the load generator did not finish"
