"""Counts issue 28 tracks, so the before/after numbers in its closing note can be re-measured.

    uv run --no-sync python scripts/code_health.py

- functions taking a bare root: parameters named ``root`` annotated ``Path`` in the libraries
  (a `Spoke` carries the root, its config and its stores instead);
- places reading the environment: ``os.environ`` / ``os.getenv`` reads in the libraries
  outside `slipway.pipelines.settings` (writes and whole-environment copies handed to a
  child process are not reads of a setting and are not counted);
- exception classes outside the hierarchy: classes of slipway.pipelines deriving from
  BaseException but not from SlipwayError;
- upward imports: an import in a stage package of a stage above it (the order is
  ``STAGES`` in pipelines/tests/test_layout.py).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (ROOT / "pipelines" / "src", ROOT / "infra" / "src")
STAGES = ("training", "serving", "governance", "rollout", "hub")


def _py_files() -> list[Path]:
    return sorted(p for src in SOURCES for p in src.rglob("*.py"))


def bare_roots() -> int:
    count = 0
    for path in _py_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                    ann = arg.annotation
                    if arg.arg == "root" and ann is not None and ast.unparse(ann) == "Path":
                        count += 1
    return count


def environment_reads() -> int:
    count = 0
    for path in _py_files():
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = ast.unparse(node.func)
                if target in ("os.environ.get", "os.getenv"):
                    count += 1
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and ast.unparse(node.value) == "os.environ"
            ):
                count += 1
    return count


def loose_exceptions() -> list[str]:
    import slipway.pipelines as package
    from slipway.pipelines.errors import SlipwayError

    loose = []
    for info in pkgutil.walk_packages(package.__path__, "slipway.pipelines."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, BaseException):
                continue
            if not issubclass(cls, SlipwayError):
                loose.append(f"{module.__name__}.{name}")
    return sorted(set(loose))


def upward_imports() -> list[str]:
    base = ROOT / "pipelines" / "src" / "slipway" / "pipelines"
    found = []
    for stage in STAGES:
        for path in sorted((base / stage).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    parts = name.split(".")
                    if parts[:2] == ["slipway", "pipelines"] and len(parts) > 2:
                        other = parts[2]
                        if other in STAGES and STAGES.index(other) > STAGES.index(stage):
                            found.append(f"{path.relative_to(base)} -> {name}")
    return found


def main() -> None:
    loose = loose_exceptions()
    upward = upward_imports()
    print(f"functions taking a bare root: {bare_roots()}")
    print(f"places reading the environment: {environment_reads()}")
    print(f"exception classes outside SlipwayError: {len(loose)}")
    for name in loose:
        print(f"  {name}")
    print(f"upward imports between stages: {len(upward)}")
    for line in upward:
        print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
