"""Fixtures for the deploy tests: a rendered low-tier spoke with two real trained versions,
a real gateway subprocess on 127.0.0.1, the `slipway` CLI as a subprocess, and a bounded
concurrent load running in a background thread; and for the KServe tests (the controller's
and the deploy pipeline's), the cluster stand-in and a real Prometheus scraping one real
gateway process per revision.

The registry with v1 (champion) and v2 (a healthy candidate, trained with other params)
is built once per session and copied per test: MLflow's migrations and model logging cost
seconds, and every test must start from the same known state.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from slipway.pipelines.config import SpokeConfig, load_config
from tests.hub import SLIPWAY, free_port
from tests.hub import slipway as slipway  # the deploy tests import it from here
from tests.kserve_standin import Cluster

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


def answers_200(url: str, guard_s: float, alive: Callable[[], object] = lambda: None) -> bool:
    """Whether `url` answered 200 within `guard_s` (a failure guard, never a speed claim);
    `alive` is asked before each try (it raises when the server's process died)."""
    deadline = time.monotonic() + guard_s
    while time.monotonic() < deadline:
        alive()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


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


# -- KServe: the cluster stand-in, one gateway per revision, a real Prometheus ------------

PROMETHEUS = shutil.which("prometheus")
KSERVE_GUARD_S = 60  # a hang fails the test instead of stalling the suite; never a speed claim
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="needs Debian's prometheus (make test installs it)"
)


def model_dir(spoke: Spoke, version: str, tmp_path: Path) -> Path:
    import mlflow.artifacts

    from slipway.pipelines.registry import fluent_registry

    with fluent_registry(spoke.root):
        return Path(
            mlflow.artifacts.download_artifacts(
                f"models:/{spoke.config.model_name}/{version}", dst_path=str(tmp_path / version)
            )
        )


class Prometheus:
    """`prometheus` scraping the revisions' /metrics twice a second."""

    def __init__(self, tmp_path: Path, targets: list[str], isvc: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "prometheus.yml"
        hosts = ", ".join(f'"{t.removeprefix("http://")}"' for t in targets)
        config.write_text(
            "global: {scrape_interval: 500ms, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: kserve-revisions\n"
            f"    static_configs: [{{targets: [{hosts}], labels: {{inferenceservice: {isvc}}}}}]\n"
        )
        self.log = (tmp_path / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if not answers_200(f"{self.url}/-/ready", KSERVE_GUARD_S):
            self.stop()
            raise AssertionError("prometheus never became ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    yield made
    made.close()


@contextmanager
def revisions(
    spoke: Spoke, cluster: Cluster, tmp_path: Path, versions: list[str]
) -> Iterator[Prometheus]:
    """One real gateway process per model version (the image's `serve` entry, as a KServe
    revision runs it), the router stand-in sending each its share, and a real Prometheus
    scraping them all with the label a PodMonitor would keep."""
    from .test_sagemaker_serving import Container

    dirs = [model_dir(spoke, v, tmp_path) for v in versions]
    with ThreadPoolExecutor(len(versions)) as pool:  # the revisions start side by side
        containers = list(
            pool.map(lambda v, d: Container(spoke, d, {"SLIPWAY_MODEL_VERSION": v}), versions, dirs)
        )
    prometheus = None
    try:
        cluster.router.backends = {v: c.url for v, c in zip(versions, containers, strict=True)}
        prometheus = Prometheus(tmp_path, [c.url for c in containers], spoke.config.model_name)
        yield prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        for container in containers:
            container.stop()


def canary_patches(cluster: Cluster) -> list[object]:
    """canaryTrafficPercent of every InferenceService created or patched, in order."""
    return [
        body["spec"]["predictor"].get("canaryTrafficPercent", "absent")
        for method, _, body in cluster.standin.requests
        if method in ("POST", "PATCH")
    ]


def alias(spoke: Spoke, name: str) -> str | None:
    from slipway.pipelines import registry

    found = registry.version_by_alias(registry.client(spoke.root), spoke.config.model_name, name)
    return None if found is None else str(found.version)
