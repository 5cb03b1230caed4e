"""Shared fixtures: a committed, tagged snapshot of the template and a renderer over it.

Copier renders from git, and the working tree under test may hold uncommitted changes, so
every test session renders from a temporary repository holding exactly the working tree's
files (tracked and untracked, minus ignored ones), committed and tagged with VERSION. Tests
never depend on tags being present in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(autouse=True)
def no_inherited_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every spoke in a test uses its own embedded registry: an MLFLOW_TRACKING_URI left in
    the environment (by a developer's shell, or by earlier code in this xdist worker) would
    send its commands to another registry."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


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
