"""Durable rollout state: one sqlite file under <spoke>/.slipway/ that outlives any process.

The controller writes every decision here *before* acting on it (desired weights, phase,
step), so a controller or gateway killed at any instant leaves a row that says what was
going on: `slipway status` shows it, `slipway deploy --resume` continues it, `slipway
rollback` aborts it, and a restarted gateway restores its weights from it. Readings (one per
poll) and timeline events are kept for the status view, the demo's chart and the audit.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.registry import state_dir

STATE_FILE = "rollout.db"

# A rollout is "open" (needs resume or rollback) in these statuses; all others are final.
RUNNING = "running"
PROMOTING = "promoting"
ROLLING_BACK = "rolling_back"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
OPEN_STATUSES = (RUNNING, PROMOTING, ROLLING_BACK)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    champion_version TEXT,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    step_index INTEGER NOT NULL DEFAULT -1,
    weight INTEGER NOT NULL DEFAULT 0,
    shadow INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    plan TEXT NOT NULL DEFAULT '{}',
    controller_pid INTEGER,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS readings (
    rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
    at REAL NOT NULL,
    phase TEXT NOT NULL,
    weight INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
    at REAL NOT NULL,
    message TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class RolloutRow:
    id: int
    model: str
    version: str
    champion_version: str | None
    status: str
    phase: str
    step_index: int
    weight: int
    shadow: bool
    reason: str
    plan: dict[str, Any]
    controller_pid: int | None
    started_at: float
    updated_at: float
    finished_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RolloutOpen(SlipwayError, RuntimeError):
    """Another rollout of this spoke is still open; the message says how to close it."""


def state_path(root: Path) -> Path:
    return state_dir(root) / STATE_FILE


@contextmanager
def _connect(root: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(state_path(root), timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        conn.row_factory = sqlite3.Row
        yield conn
    finally:
        conn.close()


def _row(record: sqlite3.Row | None) -> RolloutRow | None:
    if record is None:
        return None
    data = dict(record)
    data["shadow"] = bool(data["shadow"])
    data["plan"] = json.loads(data["plan"])
    return RolloutRow(**data)


def start(
    root: Path,
    *,
    model: str,
    version: str,
    champion_version: str | None,
    plan: dict[str, Any],
    pid: int,
) -> RolloutRow:
    """Open a rollout; refuse if another one is still open (resume or roll it back first)."""
    now = time.time()
    with _connect(root) as conn:
        conn.execute("BEGIN IMMEDIATE")
        open_row = conn.execute(
            f"SELECT * FROM rollouts WHERE status IN {OPEN_STATUSES} ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if open_row is not None:
            conn.execute("ROLLBACK")
            raise RolloutOpen(
                f"rollout {open_row['id']} of version {open_row['version']} is still "
                f"{open_row['status']}; run `slipway deploy --resume` or `slipway rollback` first"
            )
        cur = conn.execute(
            "INSERT INTO rollouts (model, version, champion_version, status, phase, plan, "
            "controller_pid, started_at, updated_at) VALUES (?, ?, ?, ?, 'starting', ?, ?, ?, ?)",
            (model, version, champion_version, RUNNING, json.dumps(plan), pid, now, now),
        )
        conn.execute("COMMIT")
        rollout_id = cur.lastrowid
    found = get(root, int(rollout_id or 0))
    assert found is not None
    return found


def update(root: Path, rollout_id: int, **fields: Any) -> None:
    """Record a decision (status, phase, step_index, weight, shadow, reason, controller_pid)."""
    allowed = {"status", "phase", "step_index", "weight", "shadow", "reason", "controller_pid"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown rollout fields {sorted(unknown)}")
    now = time.time()
    values = dict(fields, updated_at=now)
    if fields.get("status") in (PROMOTED, ROLLED_BACK):
        values["finished_at"] = now
    if "shadow" in values:
        values["shadow"] = int(bool(values["shadow"]))
    assignments = ", ".join(f"{k} = ?" for k in values)
    with _connect(root) as conn:
        conn.execute(
            f"UPDATE rollouts SET {assignments} WHERE id = ?", (*values.values(), rollout_id)
        )


def get(root: Path, rollout_id: int) -> RolloutRow | None:
    with _connect(root) as conn:
        return _row(conn.execute("SELECT * FROM rollouts WHERE id = ?", (rollout_id,)).fetchone())


def latest(root: Path) -> RolloutRow | None:
    with _connect(root) as conn:
        return _row(conn.execute("SELECT * FROM rollouts ORDER BY id DESC LIMIT 1").fetchone())


def open_rollout(root: Path) -> RolloutRow | None:
    """The rollout that still needs the controller (resume) or an abort (rollback)."""
    row = latest(root)
    return row if row is not None and row.status in OPEN_STATUSES else None


def record_reading(root: Path, rollout_id: int, phase: str, weight: int, data: dict) -> None:
    with _connect(root) as conn:
        conn.execute(
            "INSERT INTO readings (rollout_id, at, phase, weight, data) VALUES (?, ?, ?, ?, ?)",
            (rollout_id, time.time(), phase, weight, json.dumps(data)),
        )


def record_event(root: Path, rollout_id: int, message: str) -> None:
    with _connect(root) as conn:
        conn.execute(
            "INSERT INTO events (rollout_id, at, message) VALUES (?, ?, ?)",
            (rollout_id, time.time(), message),
        )


def readings(root: Path, rollout_id: int) -> list[dict[str, Any]]:
    with _connect(root) as conn:
        rows = conn.execute(
            "SELECT at, phase, weight, data FROM readings WHERE rollout_id = ? ORDER BY at",
            (rollout_id,),
        ).fetchall()
    return [
        {"at": r["at"], "phase": r["phase"], "weight": r["weight"], **json.loads(r["data"])}
        for r in rows
    ]


def events(root: Path, rollout_id: int) -> list[dict[str, Any]]:
    with _connect(root) as conn:
        rows = conn.execute(
            "SELECT at, message FROM events WHERE rollout_id = ? ORDER BY at", (rollout_id,)
        ).fetchall()
    return [dict(r) for r in rows]


def all_rollouts(root: Path) -> list[RolloutRow]:
    with _connect(root) as conn:
        rows = conn.execute("SELECT * FROM rollouts ORDER BY id").fetchall()
    return [r for r in (_row(x) for x in rows) if r is not None]
