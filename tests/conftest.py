"""Shared fixtures: a committed, tagged snapshot of the template and a renderer over it.

Copier renders from git, and the working tree under test may hold uncommitted changes, so
every test session renders from a temporary repository holding exactly the working tree's
files (tracked and untracked, minus ignored ones), committed and tagged with VERSION. Tests
never depend on tags being present in the checkout.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.hub import HUB, snapshot_working_tree


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return snapshot_working_tree(tmp_path_factory.mktemp("template") / "slipway")


Renderer = Callable[..., Path]


@pytest.fixture
def render(template_repo: Path, tmp_path: Path) -> Renderer:
    """render(name="spoke", **answers) -> the rendered spoke, via copier's public API."""
    from copier import run_copy

    def _render(name: str = "spoke", **answers: Any) -> Path:
        dst = tmp_path / name
        run_copy(
            str(template_repo),
            dst,
            data=answers,
            defaults=True,
            vcs_ref="HEAD",
            quiet=True,
            unsafe=False,
        )
        return dst

    return _render


@pytest.fixture(scope="session", autouse=True)
def no_step_daemons() -> None:
    """`slipway train` outside CI leaves a step daemon per spoke for the next run; a test's
    spokes are thrown away, so theirs run a zygote per run (the tests of the daemon ask for
    it). Set for the whole session: module-scoped fixtures train before any test runs."""
    os.environ.setdefault("SLIPWAY_STEP_PROCESSES", "zygote")


@pytest.fixture(autouse=True)
def no_inherited_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every spoke in a test uses its own embedded registry: an MLFLOW_TRACKING_URI left in
    the environment (by a developer's shell, or by earlier code in this xdist worker) would
    send its commands to another registry."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    # The same for the team's state: a shared trail left named here would take every later
    # test's audit entries and rollouts (tests that want one set it with monkeypatch).
    monkeypatch.delenv("SLIPWAY_STATE_URL", raising=False)


@pytest.fixture(scope="session", autouse=True)
def no_default_registry() -> Any:
    """MLflow's default registry is `./mlflow.db`: code that reaches it was not pointed at a
    spoke's registry, and two xdist workers migrating that one file race each other."""
    stray = HUB / "mlflow.db"
    existed = stray.exists()
    yield
    if not existed and stray.exists():
        stray.unlink()
        pytest.fail(
            "a test used MLflow's default registry (./mlflow.db) instead of a spoke's: "
            "wrap the MLflow call in slipway.pipelines.registry.fluent_registry(root)"
        )
