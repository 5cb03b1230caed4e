"""Lazy public names for the stage subpackages.

`from slipway.pipelines.training import training_pipeline` must not import kfp, mlflow and
scikit-learn for a caller that only wanted the data contract: the base install of
slipway-pipelines has none of them, and `slipway --help` must stay instant. Each subpackage
names its public objects and the module that defines them; the module is imported on first
access (PEP 562).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose public names live in its modules."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
