"""The module paths of 0.1.0 and the 0.2.0 development line, for one release.

0.2.0 groups the modules by stage (training, serving, rollout, governance, hub). A spoke's
code that still imports an old flat path (`slipway.pipelines.contract`) keeps working and is
told the new one; 0.3.0 removes this finder. The table is the whole mapping, so a reader can
find any old name here.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType

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
only the flat names that no longer exist are listed."""

_PREFIX = "slipway.pipelines."


class _Loader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The module is the new one, already executed."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves an old flat path to the module that replaced it, with a DeprecationWarning."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        new = MOVED.get(fullname.removeprefix(_PREFIX))
        if new is None:
            return None
        warnings.warn(
            f"{fullname} moved to {_PREFIX}{new} in Slipway 0.2.0; the old path goes in 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.util.spec_from_loader(fullname, _Loader(_PREFIX + new))


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())


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
