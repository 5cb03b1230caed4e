"""The code-health counts of issue 28 stay where they were left: no environment read outside
settings.py, no exception outside SlipwayError, no import up the stage order, and no more
functions taking a bare `root: Path` than scripts/code_health.py's ceiling (a ratchet).
Each check is also shown firing on a small tree that breaks it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HUB = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def health() -> ModuleType:
    """scripts/code_health.py, the script `make code-health` runs, loaded as a module."""
    spec = importlib.util.spec_from_file_location("code_health", HUB / "scripts/code_health.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["code_health"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_libraries_are_within_every_ceiling(health):
    counts = health.measure()
    assert counts.problems() == []
    assert counts.environment_reads == []
    assert counts.loose_exceptions == []
    assert counts.upward_imports == []
    assert len(counts.bare_roots) <= health.BARE_ROOT_CEILING


def test_the_ratchet_is_tight(health):
    """The ceiling is what is left, not a number with room in it: lower it with the count."""
    bare, _ = health.bare_roots()
    assert len(bare) == health.BARE_ROOT_CEILING


SHIMMED = """
from pathlib import Path
from typing import overload
from slipway.pipelines._compat import deprecated_root, spoke_or_root

def bare(root: Path) -> None: ...

def keyword(*, root: Path) -> None: ...

@overload
def typed(root: Path) -> None: ...

def other(root: str) -> None: ...

@deprecated_root("spoke.audit.read()")
def old(root: Path) -> None: ...

@spoke_or_root
def new(spoke, version: str) -> None: ...
"""


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "infra/src").mkdir(parents=True, exist_ok=True)
    return tmp_path


def test_bare_roots_are_counted_and_marked_shims_apart(health, tmp_path):
    hub = _tree(tmp_path, {"pipelines/src/slipway/pipelines/rollout/m.py": SHIMMED})
    bare, shims = health.bare_roots(hub)
    assert [b.split()[-1] for b in bare] == ["bare", "keyword"]
    assert [s.split()[-1] for s in shims] == ["old", "new"]


def test_the_ratchet_fires_above_its_ceiling(health, tmp_path):
    hub = _tree(tmp_path, {"pipelines/src/slipway/pipelines/rollout/m.py": SHIMMED})
    counts = health.Counts(health.bare_roots(hub)[0], [], [], [], [])
    assert counts.problems(ceiling=2) == []
    (problem,) = counts.problems(ceiling=1)
    assert "2 functions take a bare `root: Path`, above the ceiling of 1" in problem


def test_an_environment_read_outside_settings_fires(health, tmp_path):
    hub = _tree(
        tmp_path,
        {
            "pipelines/src/slipway/pipelines/settings.py": "import os\nA = os.environ.get('A')\n",
            "pipelines/src/slipway/pipelines/serving/m.py": (
                "import os\nB = os.getenv('B')\nC = os.environ['C']\nos.environ['D'] = 'x'\n"
            ),
            "infra/src/slipway/infra/m.py": "import os\nE = os.environ.get('E', '')\n",
        },
    )
    assert health.environment_reads(hub) == [
        "slipway/pipelines/serving/m.py:2",
        "slipway/pipelines/serving/m.py:3",
        "slipway/infra/m.py:2",
    ]
    counts = health.Counts([], [], health.environment_reads(hub), [], [])
    assert "3 places read the environment outside settings.py" in counts.problems()[0]


def test_an_import_up_the_stage_order_fires(health, tmp_path):
    base = "pipelines/src/slipway/pipelines"
    hub = _tree(
        tmp_path,
        {
            f"{base}/training/m.py": "from slipway.pipelines.rollout import state\n",
            f"{base}/rollout/m.py": "import slipway.pipelines.training.steps\n",
            f"{base}/serving/m.py": "from slipway.pipelines import config\n",
            f"{base}/hub/m.py": "from slipway.pipelines.batch import job\n",
            f"{base}/batch/m.py": "from slipway.pipelines.hub import fleet\n",
        },
    )
    assert health.upward_imports(hub) == [
        "batch/m.py -> slipway.pipelines.hub",
        "training/m.py -> slipway.pipelines.rollout",
    ]


def test_an_exception_outside_the_hierarchy_fires_whatever_its_name(health, tmp_path, monkeypatch):
    package = tmp_path / "loose_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "m.py").write_text(
        "from slipway.pipelines.errors import SlipwayError\n"
        "class Timeout(TimeoutError): ...\n"
        "class Fine(SlipwayError): ...\n"
        "class Notice(UserWarning): ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert health.loose_exceptions("loose_pkg") == ["loose_pkg.m.Timeout"]
