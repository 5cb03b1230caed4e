"""The console's only door into the team state stores (rollout records, audit trails).

The stores (rollout/state.py, governance/audit.py, store.py) own their schemas and are
refactored on their own; the console reads them through these few public read functions
alone, so a change of the stores' interface is re-pointed here and nowhere else.

Reading must not create anything: with the embedded registry, a spoke that has never run a
rollout has no rollout.db, and opening one through the store would make it (a read-only
console that writes files into the spokes it watches would surprise their owners).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.pipelines import store
from slipway.pipelines.governance import audit
from slipway.pipelines.registry import STATE_DIR
from slipway.pipelines.rollout import state
from slipway.pipelines.rollout.state import OPEN_STATUSES, RolloutRow

__all__ = [
    "OPEN_STATUSES",
    "RolloutRow",
    "TrailReading",
    "events",
    "readings",
    "rollouts",
    "trail",
]


def _shared() -> bool:
    return store.state_url() is not None


def rollouts(root: Path) -> list[RolloutRow]:
    """Every rollout of the spoke at `root`, oldest first."""
    if not _shared() and not (root / STATE_DIR / state.STATE_FILE).is_file():
        return []
    return state.all_rollouts(root)


def readings(root: Path, rollout_id: int) -> list[dict[str, Any]]:
    """The judge's readings of one rollout, oldest first (at, phase, weight, guardrails)."""
    return state.readings(root, rollout_id)


def events(root: Path, rollout_id: int) -> list[dict[str, Any]]:
    """The timeline of one rollout (at, message), oldest first."""
    return state.events(root, rollout_id)


@dataclass(frozen=True)
class TrailReading:
    """A spoke's audit trail as the console shows it: its entries and what verify found."""

    entries: list[dict[str, Any]]
    verification: audit.Verification
    lost: str | None  # the registry holds versions yet the trail is gone (verify cannot see it)
    where: str


def trail(root: Path, model: str) -> TrailReading:
    """Read and verify the trail of the spoke at `root` (files or the shared store)."""
    if not _shared() and not (root / STATE_DIR / audit.AUDIT_FILE).exists():
        # Nothing to read; verify() would still find a head record left without its trail.
        head = root / STATE_DIR / audit.HEAD_FILE
        checked = audit.verify(root) if head.exists() else audit.Verification(0, ())
        return TrailReading([], checked, audit.registry_says_trail_lost(root, model), "")
    checked = audit.verify(root)
    lost = audit.registry_says_trail_lost(root, model) if checked.entries == 0 else None
    return TrailReading(audit.read(root), checked, lost, audit.location(root))
