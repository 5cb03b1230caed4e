"""The four counts issue 28 tracks, re-measured on the tree as it is, and their ceilings.

    make code-health                     # or: uv run --no-sync python scripts/code_health.py
    uv run --no-sync python scripts/code_health.py --check   # exit 1 above a ceiling

- functions taking a bare root: parameters named ``root`` annotated ``Path`` in the two
  libraries (a `Spoke` carries the root, its config and its stores instead). The one-release
  shims for 0.1.0 callers are counted apart: the functions decorated with one of
  ``_compat.SHIM_DECORATORS`` (`deprecated_root`, `spoke_or_root`), whatever their
  parameters say. Some bare roots are right and stay (``Spoke.open(root)``, ``load_config``,
  the file stores, the paths under ``.slipway/``): the ceiling is a ratchet, lowered as
  functions move to a `Spoke`, never raised.
- places reading the environment: ``os.environ`` / ``os.getenv`` reads in the libraries
  outside `settings.py` (writes and whole-environment copies handed to a child process are
  not reads of a setting and are not counted);
- exception classes outside the hierarchy: classes of slipway.pipelines deriving from
  BaseException but not from SlipwayError (warning categories, which are never raised, are
  not exceptions here);
- upward imports: an import in a stage package of a stage above it (the order is
  ``slipway.pipelines._layers.STAGES``, explained in docs/architecture.md).

pipelines/tests/test_code_health.py runs `check` on the tree, and shows each check firing.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from slipway.pipelines._compat import SHIM_DECORATORS
from slipway.pipelines._layers import STAGES, is_upward

HUB = Path(__file__).resolve().parents[1]
SOURCES = ("pipelines/src", "infra/src")
PACKAGE = "pipelines/src/slipway/pipelines"

# The ratchet: bare roots left in the libraries, shims not counted. Lower it when you move
# functions to a Spoke; a test fails when the count rises above it.
BARE_ROOT_CEILING = 87


@dataclass(frozen=True)
class Counts:
    bare_roots: list[str]  # "path:line function"
    shims: list[str]
    environment_reads: list[str]
    loose_exceptions: list[str]
    upward_imports: list[str]

    def problems(self, ceiling: int = BARE_ROOT_CEILING) -> list[str]:
        """What `--check` refuses: any of the last three above zero, bare roots above
        the ceiling."""
        found = []
        if len(self.bare_roots) > ceiling:
            found.append(
                f"{len(self.bare_roots)} functions take a bare `root: Path`, above the ceiling "
                f"of {ceiling}: take a Spoke (or the SpokeConfig and what the function needs)"
            )
        for name, items in (
            ("places read the environment outside settings.py", self.environment_reads),
            ("exception classes are outside SlipwayError", self.loose_exceptions),
            ("imports go up the stage order", self.upward_imports),
        ):
            if items:
                found.append(f"{len(items)} {name}: " + ", ".join(items))
        return found


def _py_files(hub: Path) -> Iterator[tuple[str, ast.Module]]:
    for source in SOURCES:
        for path in sorted((hub / source).rglob("*.py")):
            relative = str(path.relative_to(hub / source))
            yield relative, ast.parse(path.read_text(encoding="utf-8"))


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(target).rsplit(".", 1)[-1]


def bare_roots(hub: Path = HUB) -> tuple[list[str], list[str]]:
    """(bare roots, shims): functions with a `root: Path` parameter not marked as a shim,
    and the functions marked as one."""
    bare, shims = [], []
    for relative, tree in _py_files(hub):
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            where = f"{relative}:{node.lineno} {node.name}"
            decorators = {_decorator_name(d) for d in node.decorator_list}
            if "overload" in decorators:
                continue  # a typed signature of a function counted on its own
            if decorators & set(SHIM_DECORATORS):
                shims.append(where)
                continue
            args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            if any(
                a.arg == "root" and a.annotation is not None and ast.unparse(a.annotation) == "Path"
                for a in args
            ):
                bare.append(where)
    return bare, shims


def environment_reads(hub: Path = HUB) -> list[str]:
    found = []
    for relative, tree in _py_files(hub):
        if relative.endswith("/settings.py"):
            continue
        for node in ast.walk(tree):
            read = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and ast.unparse(node.func) in ("os.environ.get", "os.getenv")
            ) or (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and ast.unparse(node.value) == "os.environ"
            )
            if read:
                found.append(f"{relative}:{getattr(node, 'lineno', 0)}")
    return found


def loose_exceptions(package: str = "slipway.pipelines") -> list[str]:
    """Exception classes defined in `package`'s modules that are not SlipwayErrors."""
    from slipway.pipelines.errors import SlipwayError

    root = importlib.import_module(package)
    modules = [root] + [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(root.__path__, f"{package}.")
        if not info.name.endswith("__main__")
    ]
    loose = []
    for module in modules:
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, BaseException):
                continue
            if not issubclass(cls, (SlipwayError, Warning)):
                loose.append(f"{module.__name__}.{name}")
    return sorted(set(loose))


def upward_imports(hub: Path = HUB) -> list[str]:
    base = hub / PACKAGE
    found = []
    for stage in STAGES:
        for path in sorted((base / stage).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    parts = name.split(".")
                    if (
                        parts[:2] == ["slipway", "pipelines"]
                        and len(parts) > 2
                        and is_upward(stage, parts[2])
                    ):
                        found.append(f"{path.relative_to(base)} -> {name}")
    return sorted(set(found))


def measure(hub: Path = HUB, package: str = "slipway.pipelines") -> Counts:
    bare, shims = bare_roots(hub)
    return Counts(
        bare_roots=bare,
        shims=shims,
        environment_reads=environment_reads(hub),
        loose_exceptions=loose_exceptions(package),
        upward_imports=upward_imports(hub),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The four counts issue 28 tracks.")
    parser.add_argument("--check", action="store_true", help="exit 1 above a ceiling")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every place")
    options = parser.parse_args(argv)
    counts = measure()
    rows = [
        ("functions taking a bare root (shims apart)", counts.bare_roots),
        ("one-release shims for a bare root", counts.shims),
        ("places reading the environment outside settings.py", counts.environment_reads),
        ("exception classes outside SlipwayError", counts.loose_exceptions),
        ("upward imports between stages", counts.upward_imports),
    ]
    for label, items in rows:
        extra = f" (ceiling {BARE_ROOT_CEILING})" if items is counts.bare_roots else ""
        print(f"{label}: {len(items)}{extra}")
        always = items is not counts.bare_roots and items is not counts.shims
        if options.verbose or always:
            for item in items:
                print(f"  {item}")
    print(f"with the shims: {len(counts.bare_roots) + len(counts.shims)} functions take a root")
    if options.check and (problems := counts.problems()):
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
