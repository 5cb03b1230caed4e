"""Durable rollout state: the open rollout, its phase and owner, outliving any process.

With the embedded registry it is one sqlite file under <spoke>/.slipway/; when the registry
is a server it lives in the team's PostgreSQL (tables slipway_rollouts, slipway_rollout_*;
see slipway.pipelines.store), so two machines or pods agree on which rollout is open. Same
functions, same rows, either way.

The controller writes every decision here *before* acting on it (desired weights, phase,
step), so a controller or gateway killed at any instant leaves a row that says what was
going on: `slipway status` shows it, `slipway deploy --resume` continues it, `slipway
rollback` aborts it, and a restarted gateway restores its weights from it. Readings (one per
poll) and timeline events are kept for the status view, the demo's chart and the audit.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.pipelines import store
from slipway.pipelines._compat import deprecated_root
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.registry import state_dir
from slipway.pipelines.settings import SettingError, Settings

# RolloutRow and lease_expired live in spoke.py (the stores return them), named here as before.
from slipway.pipelines.spoke import RolloutRow as RolloutRow
from slipway.pipelines.spoke import lease_expired as lease_expired

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

STATE_FILE = "rollout.db"

# A rollout is "open" (needs resume or rollback) in these statuses; all others are final.
RUNNING = "running"
PROMOTING = "promoting"
ROLLING_BACK = "rolling_back"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
OPEN_STATUSES = (RUNNING, PROMOTING, ROLLING_BACK)

# How long a controller's claim on a rollout lasts without a heartbeat (it renews it every
# poll). Past it, `deploy --resume` on any machine may take the rollout over, and a gateway
# drops the challenger to 0: a canary nobody watches serves no traffic.
LEASE_SECONDS = 30.0
LEASE_ENV = "SLIPWAY_ROLLOUT_LEASE_SECONDS"

# The rollout record, once for both stores; each dialect names its key and float types.
_ROLLOUT_COLUMNS = """
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    champion_version TEXT,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    step_index INTEGER NOT NULL DEFAULT -1,
    weight INTEGER NOT NULL DEFAULT 0,
    shadow INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    plan TEXT NOT NULL DEFAULT '{{}}',
    controller_pid INTEGER,
    owner TEXT,
    lease_expires_at {real},
    started_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    finished_at {real}"""
_READING_COLUMNS = """
    at {real} NOT NULL,
    phase TEXT NOT NULL,
    weight INTEGER NOT NULL,
    data TEXT NOT NULL"""
_EVENT_COLUMNS = """
    at {real} NOT NULL,
    message TEXT NOT NULL"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,{_ROLLOUT_COLUMNS.format(real="REAL")}
);
CREATE TABLE IF NOT EXISTS readings (
    rollout_id INTEGER NOT NULL REFERENCES rollouts(id),{_READING_COLUMNS.format(real="REAL")}
);
CREATE TABLE IF NOT EXISTS events (
    rollout_id INTEGER NOT NULL REFERENCES rollouts(id),{_EVENT_COLUMNS.format(real="REAL")}
);
"""


class RolloutOpen(SlipwayError, RuntimeError):
    """Another rollout of this spoke is still open; the message says how to close it."""


BadLeaseSetting = SettingError  # its own class until 0.2.0; one settings error now


def state_path(root: Path) -> Path:
    return state_dir(root) / STATE_FILE


def owner_id() -> str:
    """This host and process (a pid alone means nothing across machines)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_owner() -> str:
    """One controller's identity, host:pid:uuid: unique even for two controllers in one
    process, so a lease names exactly one of them."""
    return f"{owner_id()}:{uuid.uuid4().hex[:12]}"


def lease_seconds() -> float:
    """The lease length: $SLIPWAY_ROLLOUT_LEASE_SECONDS, else LEASE_SECONDS."""
    configured = Settings.from_env().rollout_lease_seconds
    return LEASE_SECONDS if configured is None else configured


def owner_is_dead_here(owner: str | None) -> bool:
    """The owner ran on this host and its process is gone: its lease is void early (on
    another host only the lease's expiry can say so)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


_UPDATABLE = {
    "status",
    "phase",
    "step_index",
    "weight",
    "shadow",
    "reason",
    "controller_pid",
    "owner",
    "lease_expires_at",
}


def _changes(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"unknown rollout fields {sorted(unknown)}")
    now = time.time()
    values = dict(fields, updated_at=now)
    if fields.get("status") in (PROMOTED, ROLLED_BACK):
        values["finished_at"] = now
    if "shadow" in values:
        values["shadow"] = int(bool(values["shadow"]))
    return values


def _row(record: Any) -> RolloutRow | None:
    if record is None:
        return None
    data = {k: v for k, v in dict(record).items() if k in RolloutRow.__dataclass_fields__}
    data["shadow"] = bool(data["shadow"])
    data["plan"] = json.loads(data["plan"])
    return RolloutRow(**data)


def _already_open(row: Any) -> RolloutOpen:
    return RolloutOpen(
        f"rollout {row.id} of version {row.version} is still {row.status}; "
        "run `slipway deploy --resume` or `slipway rollback` first"
    )


# -- the embedded store: sqlite under .slipway/ ------------------------------------------------


_schema_ready: set[tuple[str, int]] = set()


@contextmanager
def _connect(root: Path) -> Iterator[sqlite3.Connection]:
    path = state_path(root)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        # The schema once per file and process: the controller polls four times a second and
        # the gateway checks the lease, and each of those opens a connection. Keyed by inode,
        # so a state file removed and made anew gets its tables again.
        key = (str(path), os.stat(path).st_ino)
        if key not in _schema_ready:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(rollouts)")}
            # State files from before 0.2.0 gain the columns they lack (old rows: NULL).
            for column, sqltype in (("owner", "TEXT"), ("lease_expires_at", "REAL")):
                if column not in columns:
                    conn.execute(f"ALTER TABLE rollouts ADD COLUMN {column} {sqltype}")
            _schema_ready.add(key)
        conn.row_factory = sqlite3.Row
        yield conn
    finally:
        conn.close()


class _FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def start(
        self,
        model: str,
        version: str,
        champion: str | None,
        plan: str,
        pid: int,
        owner: str,
        lease: float,
    ) -> int:
        now = time.time()
        with _connect(self.root) as conn:
            conn.execute("BEGIN IMMEDIATE")
            open_row = conn.execute(
                f"SELECT * FROM rollouts WHERE status IN {OPEN_STATUSES} ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if open_row is not None:
                conn.execute("ROLLBACK")
                raise _already_open(_row(open_row))
            cur = conn.execute(
                "INSERT INTO rollouts (model, version, champion_version, status, phase, plan, "
                "controller_pid, owner, lease_expires_at, started_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'starting', ?, ?, ?, ?, ?, ?)",
                (model, version, champion, RUNNING, plan, pid, owner, now + lease, now, now),
            )
            conn.execute("COMMIT")
            return int(cur.lastrowid or 0)

    def update(self, rollout_id: int, values: dict[str, Any], where: dict[str, str]) -> bool:
        assignments = ", ".join(f"{k} = ?" for k in values)
        conditions = "".join(f" AND {k} = ?" for k in where)
        with _connect(self.root) as conn:
            cur = conn.execute(
                f"UPDATE rollouts SET {assignments} WHERE id = ?{conditions}",
                (*values.values(), rollout_id, *where.values()),
            )
            return cur.rowcount == 1

    def claim(
        self,
        rollout_id: int,
        values: dict[str, Any],
        expected_owner: str | None,
        now: float,
        force: bool,
    ) -> bool:
        assignments = ", ".join(f"{k} = ?" for k in values)
        with _connect(self.root) as conn:
            cur = conn.execute(
                f"UPDATE rollouts SET {assignments} WHERE id = ? AND status IN {OPEN_STATUSES} "
                "AND owner IS ? AND (? OR lease_expires_at IS NULL OR lease_expires_at <= ?)",
                (*values.values(), rollout_id, expected_owner, int(force), now),
            )
            return cur.rowcount == 1

    def get(self, rollout_id: int) -> RolloutRow | None:
        with _connect(self.root) as conn:
            return _row(
                conn.execute("SELECT * FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
            )

    def latest(self) -> RolloutRow | None:
        with _connect(self.root) as conn:
            return _row(conn.execute("SELECT * FROM rollouts ORDER BY id DESC LIMIT 1").fetchone())

    def all_rollouts(self) -> list[RolloutRow]:
        with _connect(self.root) as conn:
            rows = conn.execute("SELECT * FROM rollouts ORDER BY id").fetchall()
        return [r for r in (_row(x) for x in rows) if r is not None]

    def record(self, table: str, rollout_id: int, values: dict[str, Any]) -> None:
        columns = ", ".join(["rollout_id", "at", *values])
        marks = ", ".join("?" * (len(values) + 2))
        with _connect(self.root) as conn:
            conn.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                (rollout_id, time.time(), *values.values()),
            )

    def history(self, table: str, rollout_id: int, columns: str) -> list[dict[str, Any]]:
        with _connect(self.root) as conn:
            rows = conn.execute(
                f"SELECT {columns} FROM {table} WHERE rollout_id = ? ORDER BY at", (rollout_id,)
            ).fetchall()
        return [dict(r) for r in rows]


# -- the shared store: the team's PostgreSQL -----------------------------------------------------

_PG_REAL = "DOUBLE PRECISION"
_PG_READINGS = _READING_COLUMNS.format(real=_PG_REAL)
_PG_EVENTS = _EVENT_COLUMNS.format(real=_PG_REAL)
_SHARED_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS slipway_rollouts (
        id BIGSERIAL PRIMARY KEY,{_ROLLOUT_COLUMNS.format(real=_PG_REAL)}
    )""",
    # Tables created before leases existed gain the column (old rows: NULL, i.e. expired).
    "ALTER TABLE slipway_rollouts ADD COLUMN IF NOT EXISTS lease_expires_at DOUBLE PRECISION",
    # At most one open rollout per model, whichever machine starts it: the database says no.
    f"""CREATE UNIQUE INDEX IF NOT EXISTS slipway_rollouts_one_open ON slipway_rollouts (model)
        WHERE status IN ({", ".join(repr(s) for s in OPEN_STATUSES)})""",
    f"""CREATE TABLE IF NOT EXISTS slipway_rollout_readings (
        rollout_id BIGINT NOT NULL REFERENCES slipway_rollouts(id),{_PG_READINGS}
    )""",
    f"""CREATE TABLE IF NOT EXISTS slipway_rollout_events (
        rollout_id BIGINT NOT NULL REFERENCES slipway_rollouts(id),{_PG_EVENTS}
    )""",
    "CREATE INDEX IF NOT EXISTS slipway_rollout_readings_id "
    "ON slipway_rollout_readings (rollout_id)",
    "CREATE INDEX IF NOT EXISTS slipway_rollout_events_id ON slipway_rollout_events (rollout_id)",
)
_SHARED_TABLES = {"readings": "slipway_rollout_readings", "events": "slipway_rollout_events"}


class _SharedStore:
    def __init__(self, url: str, model: str) -> None:
        self.url = url
        self.model = model
        store.ensure_schema(url, "rollout", _SHARED_SCHEMA)

    def _run(self, what: str, action: Any) -> Any:
        return store.with_retry(self.url, what, action)

    def start(
        self,
        model: str,
        version: str,
        champion: str | None,
        plan: str,
        pid: int,
        owner: str,
        lease: float,
    ) -> int:
        from sqlalchemy import text
        from sqlalchemy.exc import IntegrityError

        now = time.time()

        def insert(conn: Connection) -> int:
            return int(
                conn.execute(
                    text(
                        "INSERT INTO slipway_rollouts (model, version, champion_version, status, "
                        "phase, plan, controller_pid, owner, lease_expires_at, started_at, "
                        "updated_at) VALUES (:m, :v, :c, :s, 'starting', :p, :pid, :o, :lease, "
                        ":now, :now) RETURNING id"
                    ),
                    {
                        "m": model,
                        "v": version,
                        "c": champion,
                        "s": RUNNING,
                        "p": plan,
                        "pid": pid,
                        "o": owner,
                        "lease": now + lease,
                        "now": now,
                    },
                ).scalar_one()
            )

        try:
            return int(self._run("open a rollout", insert))
        except IntegrityError:
            open_row = self.open_row(model)
            if open_row is None:  # closed between the conflict and this read: try once more
                return int(self._run("open a rollout", insert))
            raise _already_open(open_row) from None

    def open_row(self, model: str) -> RolloutRow | None:
        from sqlalchemy import text

        def fetch(conn: Connection) -> Any:
            return (
                conn.execute(
                    text(
                        "SELECT * FROM slipway_rollouts WHERE model = :m AND status IN "
                        f"({', '.join(repr(s) for s in OPEN_STATUSES)}) ORDER BY id DESC LIMIT 1"
                    ),
                    {"m": model},
                )
                .mappings()
                .first()
            )

        return _row(self._run("read the rollout state", fetch))

    def update(self, rollout_id: int, values: dict[str, Any], where: dict[str, str]) -> bool:
        from sqlalchemy import text

        assignments = ", ".join(f"{k} = :v_{k}" for k in values)
        conditions = "".join(f" AND {k} = :w_{k}" for k in where)
        params = {f"v_{k}": v for k, v in values.items()} | {f"w_{k}": v for k, v in where.items()}

        def change(conn: Connection) -> bool:
            result = conn.execute(
                text(f"UPDATE slipway_rollouts SET {assignments} WHERE id = :id{conditions}"),
                {**params, "id": rollout_id},
            )
            return result.rowcount == 1

        return bool(self._run("record a rollout decision", change))

    def claim(
        self,
        rollout_id: int,
        values: dict[str, Any],
        expected_owner: str | None,
        now: float,
        force: bool,
    ) -> bool:
        from sqlalchemy import text

        assignments = ", ".join(f"{k} = :v_{k}" for k in values)
        open_list = ", ".join(repr(s) for s in OPEN_STATUSES)

        def change(conn: Connection) -> bool:
            result = conn.execute(
                text(
                    f"UPDATE slipway_rollouts SET {assignments} WHERE id = :id AND model = :m "
                    f"AND status IN ({open_list}) AND owner IS NOT DISTINCT FROM :owner "
                    "AND (:force OR lease_expires_at IS NULL OR lease_expires_at <= :now)"
                ),
                {f"v_{k}": v for k, v in values.items()}
                | {"id": rollout_id, "m": self.model, "owner": expected_owner}
                | {"force": force, "now": now},
            )
            return result.rowcount == 1

        return bool(self._run("claim a rollout", change))

    def _select(self, where: str, params: dict[str, Any]) -> list[RolloutRow]:
        from sqlalchemy import text

        def fetch(conn: Connection) -> list[Any]:
            return list(
                conn.execute(text(f"SELECT * FROM slipway_rollouts {where}"), params).mappings()
            )

        return [r for r in (_row(x) for x in self._run("read the rollout state", fetch)) if r]

    def get(self, rollout_id: int) -> RolloutRow | None:
        found = self._select("WHERE id = :id AND model = :m", {"id": rollout_id, "m": self.model})
        return found[0] if found else None

    def latest(self) -> RolloutRow | None:
        found = self._select("WHERE model = :m ORDER BY id DESC LIMIT 1", {"m": self.model})
        return found[0] if found else None

    def all_rollouts(self) -> list[RolloutRow]:
        return self._select("WHERE model = :m ORDER BY id", {"m": self.model})

    def record(self, table: str, rollout_id: int, values: dict[str, Any]) -> None:
        from sqlalchemy import text

        columns = ", ".join(["rollout_id", "at", *values])
        marks = ", ".join([":rollout_id", ":at", *(f":{k}" for k in values)])

        def insert(conn: Connection) -> None:
            conn.execute(
                text(f"INSERT INTO {_SHARED_TABLES[table]} ({columns}) VALUES ({marks})"),
                {"rollout_id": rollout_id, "at": time.time(), **values},
            )

        self._run(f"record a rollout {table[:-1]}", insert)

    def history(self, table: str, rollout_id: int, columns: str) -> list[dict[str, Any]]:
        from sqlalchemy import text

        def fetch(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                text(
                    f"SELECT {columns} FROM {_SHARED_TABLES[table]} WHERE rollout_id = :id "
                    "ORDER BY at"
                ),
                {"id": rollout_id},
            ).mappings()
            return [dict(r) for r in rows]

        return list(self._run(f"read the rollout {table}", fetch))


class _Rollouts:
    """The rollout operations over one back end: a `RolloutStore` (slipway.pipelines.spoke).
    FileRollouts and SharedRollouts below are its two implementations."""

    def __init__(self, backend: _FileStore | _SharedStore, where: str) -> None:
        self._backend = backend
        self.where = where

    def start(
        self,
        *,
        model: str,
        version: str,
        champion_version: str | None,
        plan: dict[str, Any],
        pid: int,
        owner: str | None = None,
        lease: float | None = None,
    ) -> RolloutRow:
        """Open a rollout held by `owner` (a lease of `lease` seconds); refuse if another one
        is still open (resume or roll it back first)."""
        rollout_id = self._backend.start(
            model,
            version,
            champion_version,
            json.dumps(plan),
            pid,
            owner or new_owner(),
            lease_seconds() if lease is None else lease,
        )
        found = self._backend.get(rollout_id)
        assert found is not None
        return found

    def update(
        self,
        rollout_id: int,
        *,
        expected_phase: str | None = None,
        expected_status: str | None = None,
        expected_owner: str | None = None,
        **fields: Any,
    ) -> bool:
        """Record a decision (status, phase, step_index, weight, shadow, reason,
        controller_pid, owner, lease_expires_at). With `expected_phase` / `expected_status` /
        `expected_owner` the change applies only while the row still has that phase / status
        / owner (compare-and-set: an operator's abort or a controller that took over wins).
        Returns whether the row changed."""
        where = {
            k: v
            for k, v in (
                ("phase", expected_phase),
                ("status", expected_status),
                ("owner", expected_owner),
            )
            if v is not None
        }
        return self._backend.update(rollout_id, _changes(fields), where)

    def renew(self, rollout_id: int, owner: str, lease: float, status: str = RUNNING) -> bool:
        """The heartbeat: extend `owner`'s lease while it still owns the rollout and the
        rollout is still `status`. False means someone else took it over or closed it: stop."""
        return self.update(
            rollout_id,
            expected_status=status,
            expected_owner=owner,
            lease_expires_at=time.time() + lease,
        )

    def claim(
        self,
        row: RolloutRow,
        owner: str,
        lease: float,
        *,
        pid: int | None = None,
        now: float | None = None,
    ) -> bool:
        """Take the open rollout `row` over (`deploy --resume`), atomically: only while its
        owner is still the one read in `row` and that owner's lease has expired (or it is
        this owner, or a process on this host that is gone). Of two resumers at once exactly
        one wins."""
        at = time.time() if now is None else now
        force = row.owner == owner or owner_is_dead_here(row.owner)
        values = _changes({"owner": owner, "lease_expires_at": at + lease})
        if pid is not None:
            values["controller_pid"] = pid
        return self._backend.claim(row.id, values, row.owner, at, force)

    def get(self, rollout_id: int) -> RolloutRow | None:
        return self._backend.get(rollout_id)

    def latest(self) -> RolloutRow | None:
        return self._backend.latest()

    def open_rollout(self) -> RolloutRow | None:
        """The rollout that still needs the controller (resume) or an abort (rollback)."""
        row = self.latest()
        return row if row is not None and row.status in OPEN_STATUSES else None

    def all_rollouts(self) -> list[RolloutRow]:
        return self._backend.all_rollouts()

    def record_reading(
        self, rollout_id: int, phase: str, weight: int, data: dict[str, Any]
    ) -> None:
        self._backend.record(
            "readings", rollout_id, {"phase": phase, "weight": weight, "data": json.dumps(data)}
        )

    def record_event(self, rollout_id: int, message: str) -> None:
        self._backend.record("events", rollout_id, {"message": message})

    def readings(self, rollout_id: int) -> list[dict[str, Any]]:
        rows = self._backend.history("readings", rollout_id, "at, phase, weight, data")
        return [
            {"at": r["at"], "phase": r["phase"], "weight": r["weight"], **json.loads(r["data"])}
            for r in rows
        ]

    def events(self, rollout_id: int) -> list[dict[str, Any]]:
        return self._backend.history("events", rollout_id, "at, message")


class FileRollouts(_Rollouts):
    """The rollout record in <spoke>/.slipway/rollout.db (one machine)."""

    def __init__(self, root: Path) -> None:
        super().__init__(_FileStore(root), str(state_path(root)))


class SharedRollouts(_Rollouts):
    """The rollout record in the team's PostgreSQL, the rows of spoke `key`."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(_SharedStore(url, key), f"slipway_rollouts in {store.redacted(url)}")


# -- the 0.1.0 module functions, one release: each opens the store for `root` per call -----
# (what every call did before) and warns; new code takes a Spoke and uses spoke.rollouts.


def _rollouts(root: Path) -> _Rollouts:
    url = store.state_url()
    return FileRollouts(root) if url is None else SharedRollouts(url, store.spoke_key(root))


@deprecated_root("Spoke.open(root).rollouts.where")
def where_state_lives(root: Path) -> str:
    return _rollouts(root).where


@deprecated_root("Spoke.open(root).rollouts.start(...)")
def start(root: Path, **kwargs: Any) -> RolloutRow:
    return _rollouts(root).start(**kwargs)


@deprecated_root("Spoke.open(root).rollouts.update(...)")
def update(root: Path, rollout_id: int, **kwargs: Any) -> bool:
    return _rollouts(root).update(rollout_id, **kwargs)


@deprecated_root("Spoke.open(root).rollouts.renew(...)")
def renew(root: Path, rollout_id: int, owner: str, lease: float, status: str = RUNNING) -> bool:
    return _rollouts(root).renew(rollout_id, owner, lease, status)


@deprecated_root("Spoke.open(root).rollouts.claim(...)")
def claim(root: Path, row: RolloutRow, owner: str, lease: float, **kwargs: Any) -> bool:
    return _rollouts(root).claim(row, owner, lease, **kwargs)


@deprecated_root("Spoke.open(root).rollouts.get(...)")
def get(root: Path, rollout_id: int) -> RolloutRow | None:
    return _rollouts(root).get(rollout_id)


@deprecated_root("Spoke.open(root).rollouts.latest(...)")
def latest(root: Path) -> RolloutRow | None:
    return _rollouts(root).latest()


@deprecated_root("Spoke.open(root).rollouts.open_rollout(...)")
def open_rollout(root: Path) -> RolloutRow | None:
    return _rollouts(root).open_rollout()


@deprecated_root("Spoke.open(root).rollouts.record_reading(...)")
def record_reading(root: Path, rollout_id: int, phase: str, weight: int, data: dict) -> None:
    _rollouts(root).record_reading(rollout_id, phase, weight, data)


@deprecated_root("Spoke.open(root).rollouts.record_event(...)")
def record_event(root: Path, rollout_id: int, message: str) -> None:
    _rollouts(root).record_event(rollout_id, message)


@deprecated_root("Spoke.open(root).rollouts.readings(...)")
def readings(root: Path, rollout_id: int) -> list[dict[str, Any]]:
    return _rollouts(root).readings(rollout_id)


@deprecated_root("Spoke.open(root).rollouts.events(...)")
def events(root: Path, rollout_id: int) -> list[dict[str, Any]]:
    return _rollouts(root).events(rollout_id)


@deprecated_root("Spoke.open(root).rollouts.all_rollouts(...)")
def all_rollouts(root: Path) -> list[RolloutRow]:
    return _rollouts(root).all_rollouts()
