"""The order of the stage packages, from the bottom up: the one place it is written.

A stage imports the modules at the package root (config, errors, registry, statistics,
spoke, ...) and the stages below it, never one above it; what two stages share moves down
to the root. docs/architecture.md explains the order; pipelines/tests/test_layout.py and
scripts/code_health.py check it from this tuple.
"""

from __future__ import annotations

STAGES: tuple[str, ...] = ("training", "serving", "governance", "rollout", "batch", "hub")
"""Bottom first: `training` imports no other stage, `hub` may import them all."""


def is_upward(importer: str, imported: str) -> bool:
    """Whether stage `importer` importing stage `imported` goes up the order (both are stage
    names; anything else, the root modules and cli/, is not a stage and never upward)."""
    if importer not in STAGES or imported not in STAGES:
        return False
    return STAGES.index(imported) > STAGES.index(importer)
