"""The package's shape holds: one-way dependency, one error hierarchy, old paths for one
release."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from slipway.pipelines import _compat
from slipway.pipelines._layers import STAGES
from slipway.pipelines._lazy import public_names
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


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        names.append(".".join(("slipway", "pipelines", *parts)).removesuffix(".__init__"))
    return names


def test_every_exception_class_of_the_library_is_a_slipway_error():
    """Each error carries the exit code the CLI maps it to; a new one on another base
    would reach users as a traceback. Every class is checked, whatever its name
    (`PredictTimeout(TimeoutError)` slipped past a check of names ending in Error); a
    warning category (SlipwayWarning) is never raised, so it is not an error here."""
    loose = []
    for name in _modules():
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if (
                inspect.isclass(cls)
                and cls.__module__ == name
                and issubclass(cls, BaseException)
                and not issubclass(cls, (SlipwayError, Warning))
            ):
                loose.append(f"{name}.{cls.__name__}")
    assert loose == []


def test_the_guard_sees_an_exception_whatever_its_name(tmp_path, monkeypatch):
    """The check above fires on a class named like anything, not only *Error."""
    (tmp_path / "loose_mod.py").write_text("class Timeout(TimeoutError):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("loose_mod")
    found = [
        c.__name__
        for c in vars(module).values()
        if inspect.isclass(c)
        and issubclass(c, BaseException)
        and not issubclass(c, SlipwayError)
        and c.__module__ == "loose_mod"
    ]
    assert found == ["Timeout"]


# The stages from the bottom up (_layers.STAGES, the one place the order is written): a
# stage may import the modules at the package root (config, errors, registry, statistics,
# ...) and the stages below it, never one above.
# The spoke context (spoke.py) is the composition root: it sits at the package root and
# opens the stores that governance and rollout implement, lazily, for every stage.
UPWARD_ALLOWED: set[tuple[str, str]] = set()  # none left: keep it so


def _upward_imports() -> set[tuple[str, str]]:
    found = set()
    for stage in STAGES:
        for path in sorted((PACKAGE / stage).rglob("*.py")):
            for name in _imports(path):
                parts = name.split(".")
                if parts[:2] != ["slipway", "pipelines"] or len(parts) < 3:
                    continue
                if parts[2] in STAGES and STAGES.index(parts[2]) > STAGES.index(stage):
                    found.add((str(path.relative_to(PACKAGE)), name))
    return found


def test_stage_packages_import_only_downwards():
    """serving used to take psi from rollout while rollout read serving's windows, and
    governance took it from rollout while rollout asked governance for approvals: each
    stage now imports only the root modules and the stages below it."""
    assert _upward_imports() - UPWARD_ALLOWED == set()


def test_the_root_modules_import_no_stage_except_through_the_spoke_context():
    """statistics, config, errors and the other root modules are what the stages share;
    one importing a stage would make the stages import each other again."""
    offenders = {}
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in ("spoke.py", "json_output.py") or path.stem in _compat.MOVED:
            continue  # the composition root, the CLI's output shapes, the old-path stubs
        stages = sorted(
            name
            for name in _imports(path)
            if name.split(".")[:2] == ["slipway", "pipelines"]
            and len(name.split(".")) > 2
            and name.split(".")[2] in STAGES
        )
        if stages:
            offenders[path.name] = stages
    assert offenders == ROOT_IMPORTS_ALLOWED


# load_config raises a spoke's tier to the hub's (issue 21): the one root module that asks a
# stage, lazily. A question for its owners: move the hub's list down, or the floor up.
ROOT_IMPORTS_ALLOWED = {"config.py": ["slipway.pipelines.governance.hub_governance"]}


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("slipway.pipelines.rollout.guardrails", "Budget", "RollbackBudget"),
        ("slipway.pipelines.training.quality_gate", "judge", "check_gates"),
    ],
)
def test_a_renamed_name_still_resolves_and_warns_on_every_use(module, old, new):
    mod = importlib.import_module(module)
    for _ in range(2):
        with pytest.warns(DeprecationWarning, match=new):
            assert getattr(mod, old) is getattr(mod, new)


def test_one_definition_of_the_alias_names():
    from slipway.pipelines import registry
    from slipway.pipelines.serving import gateway

    assert gateway.CHAMPION is registry.CHAMPION
    assert gateway.CHALLENGER is registry.CHALLENGER


@pytest.mark.parametrize(("old", "new"), sorted(_compat.MOVED.items()))
def test_an_old_module_path_is_a_stub_that_warns_on_every_use(old, new):
    """Each old path is a real module (a type checker sees its names through the stub's
    TYPE_CHECKING import); every read warns and names the new path, not only the first
    import of the process."""
    stub = importlib.import_module(f"slipway.pipelines.{old}")
    target = importlib.import_module(f"slipway.pipelines.{new}")
    assert (PACKAGE / (old.replace(".", "/") + ".py")).is_file()
    public = [n for n in vars(target) if not n.startswith("_")]
    assert public, f"{new} has no public names"
    for _ in range(2):
        with pytest.warns(DeprecationWarning, match=f"slipway.pipelines.{new}"):
            assert getattr(stub, public[0]) is getattr(target, public[0])


def test_importing_the_library_changes_no_global_import_machinery():
    """0.2.0's first cut appended a finder to sys.meta_path on import (in a fresh process:
    this one imported the library long ago)."""
    probe = (
        "import sys; before = list(sys.meta_path); "
        "import slipway.pipelines, slipway.pipelines.rollout, slipway.pipelines.steps; "
        "assert sys.meta_path == before, sys.meta_path[len(before):]"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


STAGE_PACKAGES = ("training", "serving", "rollout", "governance", "batch", "hub")


@pytest.mark.parametrize("stage", STAGE_PACKAGES)
def test_every_exported_name_resolves_to_its_defining_module(stage):
    """A stage lists its public names once (its TYPE_CHECKING imports); each must resolve
    at run time to the very object its module defines, and be all that `dir` and
    `__all__` offer."""
    package = importlib.import_module(f"slipway.pipelines.{stage}")
    names = public_names(package.__file__)
    assert names, f"{stage} exports nothing"
    for name, module in names.items():
        assert getattr(package, name) is getattr(importlib.import_module(module), name), name
    assert sorted(names) == dir(package) == package.__all__
    with pytest.raises(AttributeError):
        _ = package.NoSuchName


def test_a_renamed_package_name_resolves_and_warns():
    from slipway.pipelines import rollout
    from slipway.pipelines.rollout.guardrails import RollbackBudget

    with pytest.warns(DeprecationWarning, match="RollbackBudget"):
        assert rollout.Budget is RollbackBudget


def test_an_error_carries_its_class_code_unless_given_another():
    from slipway.pipelines.config import ConfigError
    from slipway.pipelines.training.spoke_code import SpokeCodeError

    assert ConfigError("x").exit_code == Exit.CONFIG
    assert SpokeCodeError("x").exit_code == Exit.ERROR
    assert SpokeCodeError("x", exit_code=Exit.CONFIG).exit_code == Exit.CONFIG
    assert SpokeCodeError.exit_code == Exit.ERROR  # the instance's code did not leak
