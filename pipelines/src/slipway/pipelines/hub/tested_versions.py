"""The versions this Slipway release was tested with, and where an environment differs.

`tested-versions.txt` beside this module is derived from the hub's uv.lock at release time
(`make tested-versions`); the template renders it into every spoke's constraints, so a spoke's
lock holds exactly these versions. An environment can still drift (a `pip install` by hand, a
notebook kernel): `slipway check` names each library that differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files

from packaging.requirements import Requirement

__all__ = ["WATCHED", "Untested", "tested_versions", "untested"]

# What a spoke's behaviour rests on; `slipway check` compares these.
WATCHED = ("mlflow", "kfp", "scikit-learn", "pandas", "pandera", "numpy", "pydantic")


@dataclass(frozen=True)
class Untested:
    """An installed library whose version is not the one the release was tested with."""

    package: str
    installed: str
    tested: str


def tested_versions() -> dict[str, str]:
    """{package: version} of the tested set that applies to this interpreter (markers)."""
    text = files("slipway.pipelines.hub").joinpath("tested-versions.txt").read_text()
    pinned: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (spec,) = requirement.specifier
        pinned[requirement.name.lower()] = spec.version
    return pinned


def untested(names: tuple[str, ...] = WATCHED) -> list[Untested]:
    """The installed libraries among `names` whose version differs from the tested one."""
    tested = tested_versions()
    found: list[Untested] = []
    for name in names:
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # the base install: nothing of the runtime to compare
        if name in tested and installed != tested[name]:
            found.append(Untested(name, installed, tested[name]))
    return found
