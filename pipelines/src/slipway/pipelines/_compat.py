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
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, cast, overload

if TYPE_CHECKING:
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.spoke import Spoke

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

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


def _warn_root(function: Callable[..., object], now: str) -> None:
    warnings.warn(
        f"{function.__module__}.{function.__qualname__} takes {now} since Slipway 0.2.0; "
        "the bare root it took before is accepted until 0.3.0",
        DeprecationWarning,
        stacklevel=3,
    )


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
            _warn_root(function, "a Spoke (Spoke.open(root))")
            spoke = Spoke(Path(spoke))
        return function(spoke, *args, **kwargs)

    return shim


class _SpokeOrRootAndConfig(Protocol[P, R_co]):
    @overload
    def __call__(self, spoke: Spoke, /, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    @overload
    def __call__(
        self, root: Path, config: SpokeConfig, /, *args: P.args, **kwargs: P.kwargs
    ) -> R_co: ...


def spoke_or_root_and_config(
    function: Callable[Concatenate[Spoke, P], R],
) -> _SpokeOrRootAndConfig[P, R]:
    """For a function that took `(root, config, ...)` and takes `(spoke, ...)` now: an old
    caller's pair becomes `Spoke(root, config)` (its config as given, even one it changed),
    with a DeprecationWarning."""

    @functools.wraps(function)
    def shim(first: Spoke | Path, *args: Any, **kwargs: Any) -> R:
        from slipway.pipelines.spoke import Spoke

        if not isinstance(first, Spoke):
            _warn_root(function, "a Spoke in place of (root, config)")
            first, args = Spoke(Path(first), args[0]), args[1:]
        return function(first, *args, **kwargs)

    return cast("_SpokeOrRootAndConfig[P, R]", shim)


class _WithoutRoot(Protocol[P, R_co]):
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    @overload
    def __call__(self, root: Path, /, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


def without_root(function: Callable[P, R]) -> _WithoutRoot[P, R]:
    """For a function that took a `root` it never needed: an old caller's root is dropped,
    with a DeprecationWarning."""

    @functools.wraps(function)
    def shim(*args: Any, **kwargs: Any) -> R:
        if args and isinstance(args[0], Path):
            _warn_root(function, "no root")
            args = args[1:]
        return function(*args, **kwargs)

    return cast("_WithoutRoot[P, R]", shim)


SHIM_DECORATORS = (
    deprecated_root.__name__,
    spoke_or_root.__name__,
    spoke_or_root_and_config.__name__,
    without_root.__name__,
)
"""The names that mark a one-release shim for a bare root (read by scripts/code_health.py)."""
