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
from typing import Any

from slipway.pipelines.governance import audit
from slipway.pipelines.registry import STATE_DIR
from slipway.pipelines.rollout import state
from slipway.pipelines.rollout.state import OPEN_STATUSES, RolloutRow
from slipway.pipelines.spoke import Spoke

__all__ = [
    "OPEN_STATUSES",
    "RolloutRow",
    "TrailReading",
    "events",
    "readings",
    "rollouts",
    "trail",
]


def rollouts(spoke: Spoke) -> list[RolloutRow]:
    """Every rollout of `spoke`, oldest first."""
    if spoke.state_url is None and not (spoke.root / STATE_DIR / state.STATE_FILE).is_file():
        return []
    return spoke.rollouts.all_rollouts()


def readings(spoke: Spoke, rollout_id: int) -> list[dict[str, Any]]:
    """The judge's readings of one rollout, oldest first (at, phase, weight, guardrails)."""
    return spoke.rollouts.readings(rollout_id)


def events(spoke: Spoke, rollout_id: int) -> list[dict[str, Any]]:
    """The timeline of one rollout (at, message), oldest first."""
    return spoke.rollouts.events(rollout_id)


@dataclass(frozen=True)
class TrailReading:
    """A spoke's audit trail as the console shows it: its entries and what verify found."""

    entries: list[dict[str, Any]]
    verification: audit.Verification
    lost: str | None  # the registry holds versions yet the trail is gone (verify cannot see it)
    where: str


def trail(spoke: Spoke) -> TrailReading:
    """Read and verify the trail of `spoke` (files or the shared store)."""
    root = spoke.root
    if spoke.state_url is None and not (root / STATE_DIR / audit.AUDIT_FILE).exists():
        # Nothing to read; verify() would still find a head record left without its trail.
        head = root / STATE_DIR / audit.HEAD_FILE
        checked = spoke.audit.verify() if head.exists() else audit.Verification(0, ())
        return TrailReading([], checked, audit.registry_says_trail_lost(spoke), "")
    checked = spoke.audit.verify()
    lost = audit.registry_says_trail_lost(spoke) if checked.entries == 0 else None
    return TrailReading(spoke.audit.read(), checked, lost, spoke.audit.where)
