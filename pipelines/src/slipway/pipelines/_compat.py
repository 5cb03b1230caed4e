"""The module paths of 0.1.0 and the 0.2.0 development line, for one release.

0.2.0 groups the modules by stage (training, serving, rollout, governance, hub). A spoke's
code that still imports an old flat path (`slipway.pipelines.contract`) keeps working: each
old path is a real stub module (so a type checker sees its names) whose every attribute
read warns and names the new path; 0.3.0 removes them. The table is the whole mapping, so a
reader can find any old name here; a test checks every entry has its stub.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    from slipway.pipelines.spoke import Spoke

P = ParamSpec("P")
R = TypeVar("R")

MOVED: dict[str, str] = {
    "steps": "training.steps",
    "components": "training.components",
    "evaluation": "training.evaluation",
    "gate": "training.quality_gate",
    "contract": "training.data_contract",
    "spoke_code": "training.spoke_code",
    "lineage": "training.lineage",
    "gateway": "serving.gateway",
    "gateway_client": "serving.client",
    "batching": "serving.batching",
    "scoring": "serving.parsing",
    "samples": "serving.drift_sample",
    "rollout_state": "rollout.state",
    "guardrails": "rollout.guardrails",
    "release": "rollout.release",
    "deploy_pipeline": "rollout.pipeline",
    "traffic": "rollout.traffic",
    "rehearsal": "rollout.rehearsal",
    "chart": "rollout.chart",
    "packaging": "rollout.packaging",
    "status": "rollout.status",
    "tiers": "governance.tiers",
    "approvals": "governance.approvals",
    "audit": "governance.audit",
    "card": "governance.model_card",
    "monitor": "governance.monitoring",
    "catalog": "hub.catalog",
    "fleet": "hub.fleet",
    "fluent": "registry",
    "rollout.statistics": "statistics",
}
"""Old module under slipway.pipelines -> its module now. `training`, `rollout` and
`governance` are packages now whose public names include what the old modules offered, so
only the paths that no longer hold a module of their own are listed."""


def moved(old: str, new: str) -> Callable[[str], object]:
    """The `__getattr__` of the stub at `old`: every read of a name warns (not only the
    first import, which a test run's earlier import would have hidden) and answers from
    `new`."""

    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        warnings.warn(
            f"{old} moved to {new} in Slipway 0.2.0; the old path goes in 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new), name)

    return __getattr__


def renamed(
    module: str, old_to_new: Mapping[str, str], namespace: Mapping[str, object]
) -> Callable[[str], object]:
    """A module `__getattr__` that answers each old name with the object now called
    `old_to_new[name]`, warning on every use (not only the first) so a caller sees it in
    every test run until it moves."""

    def __getattr__(name: str) -> object:
        new = old_to_new.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is now {module}.{new}; the old name goes in Slipway 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return namespace[new]

    return __getattr__


# -- functions that took a bare `root: Path` until 0.2.0 ------------------------------------
# A function given a root re-loaded slipway.toml and re-resolved where the team state lives
# on every call; new code opens a `Spoke` once at the edge and hands it down. The old
# signatures a spoke's code may call stay one release, marked by one of these decorators
# (SHIM_DECORATORS: scripts/code_health.py counts them apart from the bare roots left).


def deprecated_root(use: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Marks a whole function kept one release for callers with a bare root (`use` says
    what replaces it); every call warns (DeprecationWarning) and then runs it as before."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def shim(*args: P.args, **kwargs: P.kwargs) -> R:
            warnings.warn(
                f"{function.__module__}.{function.__qualname__}(root, ...) is deprecated "
                f"since Slipway 0.2.0 and goes in 0.3.0: use {use}",
                DeprecationWarning,
                stacklevel=2,
            )
            return function(*args, **kwargs)

        return shim

    return decorate


def spoke_or_root(
    function: Callable[Concatenate[Spoke, P], R],
) -> Callable[Concatenate[Spoke | Path, P], R]:
    """For a function whose first parameter is a `Spoke`: a caller still passing a bare root
    (0.1.0's signature) gets a DeprecationWarning and a spoke opened for that call, which
    loads slipway.toml only if the function reads the config (as the old function did)."""

    @functools.wraps(function)
    def shim(spoke: Spoke | Path, *args: P.args, **kwargs: P.kwargs) -> R:
        from slipway.pipelines.spoke import Spoke

        if not isinstance(spoke, Spoke):
            warnings.warn(
                f"{function.__module__}.{function.__qualname__} takes a Spoke since Slipway "
                "0.2.0 (Spoke.open(root)); a bare root is accepted until 0.3.0",
                DeprecationWarning,
                stacklevel=2,
            )
            spoke = Spoke(Path(spoke))
        return function(spoke, *args, **kwargs)

    return shim


SHIM_DECORATORS = (deprecated_root.__name__, spoke_or_root.__name__)
"""The names that mark a one-release shim for a bare root (read by scripts/code_health.py)."""
