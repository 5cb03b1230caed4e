"""The package's shape holds: one-way dependency, one error hierarchy, old paths for one
release."""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

from slipway.pipelines import _compat
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "slipway" / "pipelines"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_module_of_the_pipelines_library_imports_slipway_infra():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imports(path) if name.startswith("slipway.infra")
        )
        for path in PACKAGE.rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_every_exception_class_of_the_library_is_a_slipway_error():
    """Each error carries the exit code the CLI maps it to; a new one on another base
    would reach users as a traceback."""
    loose = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(
            ("slipway", "pipelines", *path.relative_to(PACKAGE).with_suffix("").parts)
        )
        module = module.removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Unreachable")):
                cls = getattr(importlib.import_module(module), node.name)
                if not issubclass(cls, SlipwayError):
                    loose.append(f"{module}.{node.name}")
    assert loose == []


@pytest.mark.parametrize(("old", "new"), sorted(_compat.MOVED.items()))
def test_an_old_module_path_still_imports_and_names_the_new_one(old, new):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(f"slipway.pipelines.{old}")
    assert module is importlib.import_module(f"slipway.pipelines.{new}")
    if caught:  # only the first import of the old name in this process warns
        assert f"slipway.pipelines.{new}" in str(caught[0].message)


def test_an_error_carries_its_class_code_unless_given_another():
    from slipway.pipelines.config import ConfigError
    from slipway.pipelines.training.spoke_code import SpokeCodeError

    assert ConfigError("x").exit_code == Exit.CONFIG
    assert SpokeCodeError("x").exit_code == Exit.ERROR
    assert SpokeCodeError("x", exit_code=Exit.CONFIG).exit_code == Exit.CONFIG
    assert SpokeCodeError.exit_code == Exit.ERROR  # the instance's code did not leak
