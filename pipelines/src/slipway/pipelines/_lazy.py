"""Lazy public names for the stage subpackages.

`from slipway.pipelines.training import training_pipeline` must not import kfp, mlflow and
scikit-learn for a caller that only wanted the data contract: the base install of
slipway-pipelines has none of them, and `slipway --help` must stay instant. Each subpackage
imports its public names once, under `if TYPE_CHECKING:` (what a type checker and a reader
see); at run time this module reads that same block and imports a name's module on first
access (PEP 562). The names are listed once, so the three lists of 0.2.0's first cut
(imports, a name-to-module table, `__all__`) can no longer disagree; a test resolves every
name.
"""

from __future__ import annotations

import ast
import importlib
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def public_names(init_file: str) -> dict[str, str]:
    """Name -> defining module, from the `if TYPE_CHECKING:` imports of `init_file`."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    for alias in statement.names:
                        names[alias.asname or alias.name] = statement.module
    return names


def lazy_exports(
    package: str, init_file: str, renamed: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """`__getattr__`, `__dir__` and `__all__` for `package`, whose public names are the
    TYPE_CHECKING imports of its `__init__`. `renamed` maps an old public name to its new
    one: it still resolves, with a DeprecationWarning on every use."""
    exports = public_names(init_file)
    old_names = dict(renamed or {})

    def __getattr__(name: str) -> Any:
        if name in old_names:
            warnings.warn(
                f"{package}.{name} is now {package}.{old_names[name]}; the old name goes in "
                "Slipway 0.3.0",
                DeprecationWarning,
                stacklevel=2,
            )
            name = old_names[name]
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__, sorted(exports)
