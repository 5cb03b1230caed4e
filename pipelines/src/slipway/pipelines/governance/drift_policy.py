"""When drift in a monitoring window should start retraining: N windows in a row, then a cool-down.

A scheduled `slipway monitor --env ENV` runs on a fresh CI runner or pod each time, so what
it must remember between windows (how many windows in a row drifted, when retraining last
started) is read back from the audit trail, the team's shared record, and nowhere else: one
source of truth, and every decision that moves the count is in it.

- Each window leaves one entry: action `drift` (the window drifted) or `monitor` (it did not,
  or had too few rows to judge), with `details.env`, `details.source` and `details.judged`.
  Windows are counted per environment and source (governance.monitor_sources): a drifted
  batch window and a quiet endpoint window of the same environment are different evidence.
- A window too thin to judge neither breaks nor extends a run of drifted windows: it is no
  evidence either way.
- A `retrain` entry ends the run: windows before it were answered by that retraining.
- Within `cooldown_hours` of the last `retrain` entry of the model (any environment), nothing
  is started again; drifted windows still count, so drift that outlives the cool-down
  retrains at the first window after it.

Why N windows: one window's PSI check raises a false alarm on unshifted traffic with some
probability p (measured in docs/spoke/monitoring.md); N independent windows in a row do so
with p**N, the same reasoning as the canary judge's budget for a false rollback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from slipway.pipelines.config import Monitoring

__all__ = [
    "DRIFT",
    "MONITOR",
    "RETRAIN",
    "Decision",
    "Verdict",
    "decide",
]

DRIFT, MONITOR, RETRAIN = "drift", "monitor", "retrain"


class Decision(StrEnum):
    RETRAIN = "retrain"  # start retraining now
    WAIT = "wait"  # drifted, but fewer than drift_windows in a row so far
    COOLDOWN = "cooldown"  # enough drifted windows, but retraining started too recently
    NO_DRIFT = "no_drift"
    NOT_JUDGED = "not_judged"  # too few rows in the window


@dataclass(frozen=True)
class Verdict:
    """What one window decided, and the numbers behind it (recorded in the audit entry)."""

    decision: Decision
    consecutive: int  # drifted windows in a row, this one included
    needed: int
    last_retrain: datetime | None = None
    cooldown_until: datetime | None = None

    @property
    def sentence(self) -> str:
        """The decision for people: the audit entry's reason tail and the command's output."""
        if self.decision is Decision.RETRAIN:
            return f"retraining: {self.consecutive} drifted window(s) in a row"
        if self.decision is Decision.WAIT:
            return (
                f"drifted window {self.consecutive} of {self.needed} in a row: not retraining "
                "yet ([monitoring] drift_windows)"
            )
        if self.decision is Decision.COOLDOWN:
            until = self.cooldown_until.isoformat(timespec="minutes") if self.cooldown_until else ""
            return (
                f"{self.consecutive} drifted window(s) in a row, but retraining started at "
                f"{self.last_retrain.isoformat(timespec='minutes') if self.last_retrain else '?'}"
                f": cool-down until {until} ([monitoring] cooldown_hours)"
            )
        if self.decision is Decision.NOT_JUDGED:
            return "too few rows to judge: the run of drifted windows is unchanged"
        return "no drift"

    def as_details(self) -> dict[str, Any]:
        return {
            "decision": str(self.decision),
            "consecutive": self.consecutive,
            "needed": self.needed,
            "cooldown_until": self.cooldown_until.isoformat() if self.cooldown_until else None,
        }


def entry_source(details: Mapping[str, Any]) -> str:
    """The source a window entry judged; entries from before sources were recorded judged
    the local sample (env `local`) or the endpoint's capture."""
    recorded = details.get("source")
    if recorded:
        return str(recorded)
    return "gateway" if details.get("env") == "local" else "capture"


def _at(entry: Mapping[str, Any]) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(entry.get("at", "")))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def decide(
    history: Iterable[Mapping[str, Any]],
    *,
    model: str,
    env: str,
    judged: bool,
    drifted: bool,
    policy: Monitoring,
    now: datetime | None = None,
    source: str | None = None,
) -> Verdict:
    """The decision for this window, given the audit trail so far (oldest first)."""
    now = now or datetime.now(UTC)
    mine = [e for e in history if e.get("model") == model]
    retrains = [e for e in mine if e.get("action") == RETRAIN]
    last_retrain = _at(retrains[-1]) if retrains else None
    since = mine[mine.index(retrains[-1]) + 1 :] if retrains else mine
    earlier = 0
    for entry in reversed(since):
        details = entry.get("details") or {}
        if entry.get("action") not in (DRIFT, MONITOR) or details.get("env") != env:
            continue
        if source is not None and entry_source(details) != source:
            continue
        if details.get("judged") is False:
            continue
        if entry.get("action") != DRIFT:
            break
        earlier += 1
    needed = policy.drift_windows
    if not judged:
        return Verdict(Decision.NOT_JUDGED, earlier, needed, last_retrain)
    if not drifted:
        return Verdict(Decision.NO_DRIFT, 0, needed, last_retrain)
    consecutive = earlier + 1
    if consecutive < needed:
        return Verdict(Decision.WAIT, consecutive, needed, last_retrain)
    if last_retrain is not None:
        until = last_retrain + timedelta(hours=policy.cooldown_hours)
        if now < until:
            return Verdict(Decision.COOLDOWN, consecutive, needed, last_retrain, until)
    return Verdict(Decision.RETRAIN, consecutive, needed, last_retrain)
