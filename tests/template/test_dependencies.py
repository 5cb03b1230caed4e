"""Spokes install exactly what the hub tested: the hub's uv.lock decides, a spoke may not loosen.

Reproduction (2026-12-07): MLflow 3.18.0 reached the index after a release; every spoke stamped
from then on resolved `mlflow>=3.17,<4` to 3.18.0 while the hub was tested on 3.17.2, and 3.18
migrated registries that 3.17 could then not open. Now the template renders the hub's tested
versions into the spoke's constraints and `make setup` locks within them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from copier import run_copy

from slipway.pipelines.hub.tested_versions import tested_versions as hub_tested
from tests.hub import HUB

pytestmark = pytest.mark.xdist_group("dependencies")


def spoke_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    uv = shutil.which("uv") or str(HUB / ".tools" / "bin" / "uv")
    env["PATH"] = f"{Path(uv).parent}:{env['PATH']}"
    return env


def locked(spoke: Path) -> dict[str, set[str]]:
    """{package: versions} of a uv.lock (a package may hold one version per Python range)."""
    lock = tomllib.loads((spoke / "uv.lock").read_text())
    found: dict[str, set[str]] = {}
    for package in lock["package"]:
        if "registry" in package.get("source", {}):
            found.setdefault(package["name"], set()).add(package["version"])
    return found


def listed() -> dict[str, set[str]]:
    """{package: versions} of the hub's tested-versions file, whatever the markers."""
    text = (HUB / "pipelines/src/slipway/pipelines/hub/tested-versions.txt").read_text()
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("==")
            found.setdefault(name.lower(), set()).add(rest.split(";")[0].strip())
    return found


@pytest.fixture(scope="module")
def spoke(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("deps") / "spoke"
    run_copy(str(template_repo), dst, defaults=True, vcs_ref="HEAD", quiet=True, unsafe=False)
    done = subprocess.run(["uv", "lock"], cwd=dst, env=spoke_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return dst


def test_the_spoke_constraints_are_the_hubs_tested_versions(spoke: Path):
    pyproject = tomllib.loads((spoke / "pyproject.toml").read_text())
    rendered = pyproject["tool"]["uv"]["constraint-dependencies"]
    listed = (HUB / "pipelines/src/slipway/pipelines/hub/tested-versions.txt").read_text()
    assert rendered == [line for line in listed.splitlines() if not line.startswith("#")]


def test_every_package_the_spoke_locks_is_at_the_hubs_version(spoke: Path):
    tested, spoke_lock = listed(), locked(spoke)
    differ = {n: (v, tested[n]) for n, v in spoke_lock.items() if n in tested and tested[n] != v}
    assert not differ, differ
    for name in ("mlflow", "kfp", "scikit-learn", "pandas"):
        assert spoke_lock[name] == tested[name] == {hub_tested()[name]}


def test_a_teams_own_dependency_that_needs_another_version_fails_naming_it(
    spoke: Path, tmp_path: Path
):
    team = tmp_path / "team"
    shutil.copytree(spoke, team, ignore=shutil.ignore_patterns(".venv"))
    before = (team / "uv.lock").read_bytes()
    pyproject = team / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"scikit-learn>=1.5",', '"scikit-learn>=1.5,<1.6",')
    )
    setup = subprocess.run(
        ["make", "setup"], cwd=team, env=spoke_env(), capture_output=True, text=True
    )
    assert setup.returncode != 0
    assert "scikit-learn>=1.5,<1.6" in setup.stderr
    assert "do not lock within the hub's tested versions" in setup.stderr
    assert (team / "uv.lock").read_bytes() == before, "the lock changed"
    assert not (team / ".venv").exists(), "an environment was installed anyway"


def test_a_teams_own_dependency_resolves_within_the_hubs_versions(spoke: Path, tmp_path: Path):
    team = tmp_path / "team"
    shutil.copytree(spoke, team, ignore=shutil.ignore_patterns(".venv"))
    pyproject = team / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"pandas>=2.1",', '"pandas>=2.1",\n    "lightgbm>=4",')
    )
    done = subprocess.run(["uv", "lock"], cwd=team, env=spoke_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert locked(team)["lightgbm"] == {hub_tested()["lightgbm"]}


def test_a_stale_tested_versions_file_is_caught(tmp_path: Path):
    """`make lint` runs this check: the lock and the list spokes get never disagree."""
    for rel in (
        "pyproject.toml",
        "uv.lock",
        "VERSION",
        "pipelines/pyproject.toml",
        "infra/pyproject.toml",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(HUB / rel, tmp_path / rel)
    listed = tmp_path / "pipelines/src/slipway/pipelines/hub/tested-versions.txt"
    listed.parent.mkdir(parents=True)
    text = (HUB / listed.relative_to(tmp_path)).read_text()
    script = [sys.executable, str(HUB / "scripts/tested_versions.py"), "--check", "--root"]
    listed.write_text(text)
    assert subprocess.run([*script, str(tmp_path)], capture_output=True).returncode == 0
    listed.write_text(text.replace("mlflow==", "mlflow==9"))
    stale = subprocess.run([*script, str(tmp_path)], capture_output=True, text=True)
    assert stale.returncode == 1
    assert "make tested-versions" in stale.stderr


def test_only_a_spoke_on_sagemaker_managed_mlflow_installs_its_plugin(render):
    from tests.hub import VERSION

    def dependencies(spoke: Path) -> list[str]:
        return tomllib.loads((spoke / "pyproject.toml").read_text())["project"]["dependencies"]

    assert f"slipway-pipelines[runtime]=={VERSION}" in dependencies(render("server"))
    managed = dependencies(render("managed", registry="sagemaker"))
    assert f"slipway-pipelines[runtime,sagemaker-mlflow]=={VERSION}" in managed


def test_an_arn_without_the_plugin_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch):
    import importlib.util

    from slipway.pipelines import registry

    arn = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/slipway-hub"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", arn)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "sagemaker_mlflow" else real(name)
    )
    with pytest.raises(registry.MissingRegistryPlugin, match="registry=sagemaker") as caught:
        registry.tracking_uri(Path("/nonexistent"))
    assert caught.value.exit_code == 3
