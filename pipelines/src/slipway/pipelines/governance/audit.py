"""The audit trail: who did what to which model version, when and why.

One hash chain per spoke. Each entry carries the hash of the one before it, so an edited,
inserted or deleted entry breaks the chain and `verify` says where. Two places hold it:

- with the embedded registry, an append-only JSON-lines file under <spoke>/.slipway/
  (audit.jsonl) and a head record beside it (audit.head: the last seq and hash);
- when the registry is a server (see slipway.pipelines.store), the team's PostgreSQL:
  table ``slipway_audit`` (one row per entry; ``(trail, seq)`` and ``(trail, prev)`` are
  unique, so two appenders can never fork the chain or reuse a number) and
  ``slipway_audit_head`` (the head, updated in the same transaction). A trigger refuses
  UPDATE, DELETE and TRUNCATE on the entries.

Appending is O(1): the new entry chains from the head record, never from a re-read of the
trail. So entries cut from the end stay visible: the next append carries on from the head's
number and hash, and `verify` finds the gap; it never re-anchors on what is left.

What verify detects, offline and from the trail alone: an edited entry (its hash), a deleted,
inserted or reordered entry (seq and links), deleted last entries or an emptied trail (the head
record), a missing or unreadable head record (reported; an append made without it is marked
in the entry it wrote, so the gap it may hide stays visible after the head is rewritten), a
torn line (a write cut by a crash; reported as a note when the chain runs on past it).
What it cannot detect from the trail alone: the trail *and* its head deleted or rewritten
consistently by someone who can write both (a fresh, empty trail looks like that). `slipway
audit --verify` then compares with the registry: versions registered but no trail at all is
reported. Anchor the head hash somewhere the writers cannot edit (CI logs, a ticket) for more.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.pipelines import store
from slipway.pipelines._compat import deprecated_root, spoke_or_root
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.registry import state_dir
from slipway.pipelines.settings import Settings
from slipway.pipelines.spoke import current_actor

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from slipway.pipelines.spoke import Spoke

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
GENESIS = "0" * 64
TABLE = "slipway_audit"
HEAD_TABLE = "slipway_audit_head"

# Set on an entry appended while the head record was missing or unreadable.
UNANCHORED = "unanchored"


class AuditTrailError(SlipwayError, RuntimeError):
    """The trail cannot be used as asked (e.g. an import of a local trail that does not
    verify); the message says what to do."""

    exit_code = Exit.ERROR


def audit_path(root: Path) -> Path:
    return state_dir(root) / AUDIT_FILE


def head_path(root: Path) -> Path:
    return state_dir(root) / HEAD_FILE


def canonical_sha256(payload: Any) -> str:
    """sha256 of `payload` as canonical JSON (sorted keys, no spaces): the same facts give
    the same digest whatever order they were built in (audit entries, model cards)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return canonical_sha256({k: v for k, v in entry.items() if k != "hash"})


def _dump(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, default=str)


@dataclass(frozen=True)
class NewEntry:
    """What a caller records; seq, prev and hash are the trail's to give."""

    action: str
    model: str
    version: str | None
    reason: str
    actor: str
    details: dict[str, Any]

    def chained(self, seq: int, prev: str, unanchored: str | None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": seq,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "actor": self.actor,
            "action": self.action,
            "model": self.model,
            "version": self.version,
            "reason": self.reason,
            "details": self.details,
            "prev": prev,
        }
        if unanchored:
            entry[UNANCHORED] = unanchored
        entry["hash"] = entry_hash(entry)
        return entry


@dataclass(frozen=True)
class Verification:
    entries: int
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()
    where: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def entry(
    action: str,
    *,
    model: str,
    version: str | int | None = None,
    reason: str = "",
    actor: str | None = None,
    details: Mapping[str, Any] | None = None,
    root: Path | None = None,
) -> NewEntry:
    """One entry to append; who is `actor`, else `current_actor` (in `root`'s git)."""
    return NewEntry(
        action=action,
        model=model,
        version=None if version is None else str(version),
        reason=reason,
        actor=actor or current_actor(root),
        details=dict(details or {}),
    )


@deprecated_root("spoke.record(action, ...) on a Spoke.open(root)")
def append(root: Path, action: str, **fields: Any) -> dict[str, Any]:
    """Add one entry (the fields of `entry`), chained to the head; safe against concurrent
    writers (file lock on one machine, row lock and unique constraints in the shared
    store). New code: `spoke.record(action, ...)`."""
    return _trail(root).append(entry(action, root=root, **fields))


@deprecated_root("spoke.audit.read()")
def read(root: Path) -> list[dict[str, Any]]:
    """Every readable entry, oldest first (unreadable lines are skipped: `verify` names them)."""
    return _trail(root).read()


@deprecated_root("spoke.audit.verify()")
def verify(root: Path) -> Verification:
    """Check the whole trail: every hash, every link, and the end against the head record."""
    return _trail(root).verify()


@deprecated_root("spoke.audit.where")
def location(root: Path) -> str:
    """Where this spoke's trail lives, for messages."""
    return _trail(root).where


@deprecated_root("show_entries(spoke.audit.read(), ...)")
def show(root: Path, *, model: str | None = None, version: str | None = None) -> list[str]:
    """One readable line per entry (oldest first): when, who, what, which version, why."""
    return show_entries(_trail(root).read(), model=model, version=version)


def show_entries(
    entries: Iterable[dict[str, Any]], *, model: str | None = None, version: str | None = None
) -> list[str]:
    """One readable line per entry (oldest first): when, who, what, which version, why."""
    lines = []
    for entry in entries:
        if model and entry.get("model") != model:
            continue
        if version and entry.get("version") != str(version):
            continue
        target = f"{entry.get('model')}" + (f" v{entry['version']}" if entry.get("version") else "")
        why = f": {entry['reason']}" if entry.get("reason") else ""
        lines.append(
            f"#{entry.get('seq', '?'):<4} {entry.get('at')}  {entry.get('actor', '?'):<24} "
            f"{entry.get('action', '?'):<16} {target}{why}"
        )
    return lines


# -- checking a chain (the same rules for both stores) ---------------------------------------


def _chain_problems(
    records: list[str], label: Callable[[int], str], head: tuple[int, str] | None
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Walk the records in order; each must parse, hash to itself and point at the one
    before. A record that does not parse is a torn write (a note) when the chain runs on
    past it, else a problem."""
    problems: list[str] = []
    notes: list[str] = []
    entries: list[dict[str, Any]] = []
    prev = GENESIS
    torn: list[int] = []
    for number, record in enumerate(records, start=1):
        try:
            entry = json.loads(record)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except ValueError:
            torn.append(number)
            continue
        seq = entry.get("seq")
        where = f"{label(number)} (seq {seq}, {entry.get('action')})"
        if entry.get("hash") != entry_hash(entry):
            problems.append(f"{where}: content does not match its hash: the entry was edited")
        expected = (entries[-1].get("seq", 0) if entries else 0) + 1
        if isinstance(seq, int) and isinstance(expected, int) and seq > expected:
            problems.append(
                f"{where}: seq jumps from {expected - 1} to {seq}: "
                f"{seq - expected} entr(y/ies) deleted before it"
            )
        elif seq != expected:
            problems.append(f"{where}: seq should be {expected}")
        if entry.get("prev") != prev:
            problems.append(
                f"{where}: does not chain to the entry before it (an entry before it was "
                "deleted, inserted or rewritten)"
            )
            problems.extend(
                f"{label(n)}: not valid JSON and the chain does not run on past it: "
                "an entry was overwritten"
                for n in torn
            )
            torn = []
        elif torn:
            notes.extend(
                f"{label(n)}: not an entry (a write cut short by a crash, or a line added by "
                "hand); the chain runs on past it, nothing is missing"
                for n in torn
            )
            torn = []
        if entry.get(UNANCHORED):
            problems.append(
                f"{where}: appended while the head record was missing or unreadable "
                f"({entry[UNANCHORED]}): entries cut from the end before it cannot be ruled out; "
                "compare with a copy of the head hash (CI logs) before trusting the trail"
            )
        entries.append(entry)
        prev = entry.get("hash", "unknown")
    if torn:
        head_at_end = head is not None and head[1] == prev
        for n in torn:
            if head_at_end and n > len(records) - len(torn):
                notes.append(
                    f"{label(n)}: not an entry (a write cut short by a crash, at the end); "
                    "the head record still names the entry before it, nothing is missing"
                )
            else:
                problems.append(
                    f"{label(n)}: not valid JSON and the chain does not run on past it: "
                    "an entry was overwritten"
                )
    return entries, problems, notes


def _head_problems(
    head: tuple[int, str] | None, entries: list[dict[str, Any]], head_name: str
) -> list[str]:
    if head is None:
        if entries:
            return [
                f"the head record {head_name} is missing, so deleted last entries could not be "
                "detected; restore it from a backup"
            ]
        return []
    if head[0] == -1:
        return [f"the head record {head_name} is unreadable (edited by hand?)"]
    last_seq = entries[-1].get("seq") if entries else 0
    last_hash = entries[-1].get("hash") if entries else GENESIS
    if head == (last_seq, last_hash):
        return []
    if isinstance(last_seq, int) and head[0] > last_seq:
        return [
            f"the trail ends at seq {last_seq} but the head record says {head[0]}: "
            f"the last {head[0] - last_seq} entr(y/ies) were deleted"
        ]
    return [
        f"the last entry (seq {last_seq}) is not the one the head record names "
        f"(seq {head[0]}): the end of the trail was rewritten"
    ]


# -- the file trail (embedded registry) ------------------------------------------------------


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class FileTrail:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = audit_path(root)
        self.head_file = head_path(root)
        self.where = str(self.path)

    def _head(self) -> tuple[int, str] | None:
        """(seq, hash) of the head record; None if absent; (-1, '') if unreadable."""
        if not self.head_file.exists():
            return None
        try:
            head = json.loads(self.head_file.read_text())
            return int(head["seq"]), str(head["hash"])
        except (ValueError, KeyError, TypeError):
            return -1, ""

    def _write_head(self, entry: Mapping[str, Any]) -> None:
        """Replace the head record atomically: a crash leaves the old head or the new one."""
        tmp = self.head_file.with_suffix(".head.tmp")
        tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}) + "\n")
        os.replace(tmp, self.head_file)

    def _last_entry(self) -> dict[str, Any] | None:
        """The last parseable entry, reading backwards from the end (only without a head)."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            block = 65536
            while True:
                start = max(0, size - block)
                handle.seek(start)
                chunk = handle.read(size - start)
                lines = chunk.splitlines()
                if start > 0:
                    lines = lines[1:]  # may be cut
                for line in reversed(lines):
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict) and isinstance(entry.get("seq"), int):
                        return entry
                if start == 0:
                    return None
                block *= 4

    def append(self, new: NewEntry) -> dict[str, Any]:
        with _locked(self.path):
            head = self._head()
            unanchored = None
            if head is not None and head[0] >= 0:
                seq, prev = head
            else:
                last = self._last_entry()
                seq, prev = (last["seq"], str(last.get("hash"))) if last else (0, GENESIS)
                if last is not None or head is not None:
                    what = "missing" if head is None else "unreadable"
                    unanchored = f"{HEAD_FILE} was {what}; chained from seq {seq}"
            entry = new.chained(seq + 1, prev, unanchored)
            line = _dump(entry) + "\n"
            with self.path.open("ab+") as handle:
                if handle.seek(0, os.SEEK_END) > 0:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        line = "\n" + line  # a torn line stays on its own, visible to verify
                handle.write(line.encode())
                handle.flush()
                os.fsync(handle.fileno())
            self._write_head(entry)
        return entry

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if line.strip()]

    def read(self) -> list[dict[str, Any]]:
        return _readable(self.lines())

    def verify(self) -> Verification:
        lines = self.lines()
        head = self._head()
        valid_head = head if head is not None and head[0] >= 0 else None
        entries, problems, notes = _chain_problems(lines, lambda n: f"line {n}", valid_head)
        problems += _head_problems(head, entries, HEAD_FILE)
        return Verification(len(lines), tuple(problems), tuple(notes), str(self.path))


# -- the shared trail (PostgreSQL, when the registry is a server) ---------------------------

_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        trail TEXT NOT NULL,
        seq BIGINT NOT NULL CHECK (seq > 0),
        prev TEXT NOT NULL,
        hash TEXT NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (trail, seq),
        UNIQUE (trail, prev)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {HEAD_TABLE} (
        trail TEXT PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL
    )""",
    f"""CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the Slipway audit trail is append-only (% refused)', TG_OP;
    END $$ LANGUAGE plpgsql""",
    f"""CREATE OR REPLACE TRIGGER {TABLE}_no_rewrite BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()""",
    f"""CREATE OR REPLACE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_append_only()""",
)

# A unique-constraint conflict means another appender won the race: chain again from the head.
CONFLICT_RETRIES = 20


class SharedTrail:
    def __init__(self, url: str, trail: str) -> None:
        self.url = url
        self.trail = trail
        self.where = f"table {TABLE} (trail {trail!r}) in {store.redacted(url)}"
        # Managed: the owner role made the tables and the append function (trail_roles.py);
        # this role may only read and call it, so it must not try to create anything.
        self.managed = _is_managed(url)
        if not self.managed:
            store.ensure_schema(url, "audit", _SCHEMA)

    def append(self, new: NewEntry) -> dict[str, Any]:
        from sqlalchemy import text
        from sqlalchemy.exc import IntegrityError

        def chain(conn: Connection) -> dict[str, Any]:
            params = {"t": self.trail}
            lock = text(f"SELECT seq, hash FROM {HEAD_TABLE} WHERE trail = :t FOR UPDATE")
            head = conn.execute(lock, params).first()
            unanchored = None
            if head is None:
                conn.execute(
                    text(
                        f"INSERT INTO {HEAD_TABLE} (trail, seq, hash) VALUES (:t, 0, :g) "
                        "ON CONFLICT (trail) DO NOTHING"
                    ),
                    {**params, "g": GENESIS},
                )
                head = conn.execute(lock, params).first()
                assert head is not None
                if head.seq == 0:
                    last = conn.execute(
                        text(
                            f"SELECT seq, hash FROM {TABLE} WHERE trail = :t "
                            "ORDER BY seq DESC LIMIT 1"
                        ),
                        params,
                    ).first()
                    if last is not None:
                        head = last
                        unanchored = f"{HEAD_TABLE} row was missing; chained from seq {last.seq}"
            entry = new.chained(int(head.seq) + 1, str(head.hash), unanchored)
            conn.execute(
                text(
                    f"INSERT INTO {TABLE} (trail, seq, prev, hash, entry) "
                    "VALUES (:t, :seq, :prev, :hash, :entry)"
                ),
                {**params, **{k: entry[k] for k in ("seq", "prev", "hash")}, "entry": _dump(entry)},
            )
            conn.execute(
                text(f"UPDATE {HEAD_TABLE} SET seq = :seq, hash = :hash WHERE trail = :t"),
                {**params, "seq": entry["seq"], "hash": entry["hash"]},
            )
            return entry

        if self.managed:
            return self._append_through_function(new)
        for _ in range(CONFLICT_RETRIES):
            try:
                return store.with_retry(self.url, "append to the audit trail", chain)
            except IntegrityError:
                if past := self._row_past_head():
                    raise self._tampered(past) from None
                continue  # another appender took this seq; chain again from the new head
        raise AuditTrailError(
            f"could not append to {self.where}: {CONFLICT_RETRIES} conflicting appends in a row"
        )

    def _row_past_head(self) -> int | None:
        from slipway.pipelines.governance import trail_roles

        return trail_roles.row_past_head(self.url, self.trail)

    def _tampered(self, seq: int | str) -> AuditTrailError:
        from slipway.pipelines.governance import trail_roles

        return trail_roles.tampered(self.where, seq)

    def _append_through_function(self, new: NewEntry) -> dict[str, Any]:
        from slipway.pipelines.governance import trail_roles

        return trail_roles.append_through_function(self, new)

    def _records(self) -> tuple[list[tuple[int, str, str, str]], tuple[int, str] | None]:
        from sqlalchemy import text

        def fetch(conn: Connection) -> tuple[list[Any], Any]:
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            rows = conn.execute(
                text(f"SELECT seq, prev, hash, entry FROM {TABLE} WHERE trail = :t ORDER BY seq"),
                {"t": self.trail},
            ).all()
            head = conn.execute(
                text(f"SELECT seq, hash FROM {HEAD_TABLE} WHERE trail = :t"), {"t": self.trail}
            ).first()
            return list(rows), head

        rows, head = store.with_retry(self.url, "read the audit trail", fetch)
        records = [(int(r.seq), r.prev, r.hash, r.entry) for r in rows]
        return records, (None if head is None else (int(head.seq), str(head.hash)))

    def read(self) -> list[dict[str, Any]]:
        """Every readable entry; a row that is not an entry is skipped (`verify` reports it
        with its seq as tampering), never a crash of the command reading."""
        return _readable(r[3] for r in self._records()[0])

    def verify(self) -> Verification:
        records, head = self._records()
        if head is not None and head[0] == 0 and not records:
            head = None  # created by an append that never committed an entry
        entries, problems, notes = _chain_problems(
            [r[3] for r in records], lambda n: f"row {n}", head
        )
        # A transaction writes an entry and moves the head together: there are no torn
        # writes here, so a row the chain cannot read, or one past the head, is tampering.
        last = head[0] if head is not None else 0
        notes = [n for n in notes if "not an entry" not in n]
        for seq, _, _, record in records:
            if seq > last:
                problems.append(
                    f"row seq {seq}: past the trail's head (seq {last}): inserted around "
                    "`slipway`, tampering"
                )
            elif not _is_entry(record):
                problems.append(f"row seq {seq}: not an audit entry (not a JSON object)")
        if not self.managed and self._writer_owns_tables():
            notes.append(
                "the role writing this trail owns its tables (or is a superuser), so it could "
                "rewrite them; have the platform run `slipway.pipelines.governance.trail_roles."
                "migrate` as an owner role and give spokes an append-only role "
                "(docs/platform/shared-registry.md)"
            )
        for (seq, prev, hash_, _), entry in zip(records, entries, strict=False):
            if (seq, prev, hash_) != (entry.get("seq"), entry.get("prev"), entry.get("hash")):
                problems.append(
                    f"row seq {seq}: its seq/prev/hash columns differ from the entry it stores "
                    "(the row was rewritten)"
                )
        problems += _head_problems(head, entries, f"{HEAD_TABLE} row")
        return Verification(len(records), tuple(problems), tuple(notes), self.where)

    def _writer_owns_tables(self) -> bool:
        from slipway.pipelines.governance import trail_roles

        return store.with_retry(self.url, "read the audit trail", trail_roles.writer_owns_tables)

    def import_entries(self, entries: list[dict[str, Any]], source: str) -> int:
        """Copy a verified chain in as it is (hashes unchanged) into an empty shared trail,
        else re-chain each entry after the shared head with its original seq, hash and time
        kept in details.imported. Returns how many entries were written."""
        from sqlalchemy import text

        def empty(conn: Connection) -> bool:
            found = conn.execute(
                text(f"SELECT 1 FROM {TABLE} WHERE trail = :t LIMIT 1"), {"t": self.trail}
            ).first()
            return found is None

        if store.with_retry(self.url, "read the audit trail", empty) and self.managed:
            from slipway.pipelines.governance import trail_roles

            return trail_roles.copy_through_function(self, entries)
        if store.with_retry(self.url, "read the audit trail", empty):

            def copy(conn: Connection) -> int:
                conn.execute(
                    text(
                        f"INSERT INTO {HEAD_TABLE} (trail, seq, hash) VALUES (:t, 0, :g) "
                        "ON CONFLICT (trail) DO NOTHING"
                    ),
                    {"t": self.trail, "g": GENESIS},
                )
                head = conn.execute(
                    text(f"SELECT seq FROM {HEAD_TABLE} WHERE trail = :t FOR UPDATE"),
                    {"t": self.trail},
                ).one()
                if head.seq != 0:
                    raise AuditTrailError(
                        f"{self.where} gained entries while importing; run the import again"
                    )
                for entry in entries:
                    conn.execute(
                        text(
                            f"INSERT INTO {TABLE} (trail, seq, prev, hash, entry) "
                            "VALUES (:t, :seq, :prev, :hash, :entry)"
                        ),
                        {
                            "t": self.trail,
                            **{k: entry[k] for k in ("seq", "prev", "hash")},
                            "entry": _dump(entry),
                        },
                    )
                last = entries[-1]
                conn.execute(
                    text(f"UPDATE {HEAD_TABLE} SET seq = :seq, hash = :hash WHERE trail = :t"),
                    {"t": self.trail, "seq": last["seq"], "hash": last["hash"]},
                )
                return len(entries)

            return store.with_retry(self.url, "import the local audit trail", copy)
        for entry in entries:
            original = {k: entry.get(k) for k in ("seq", "hash", "at")}
            self.append(
                NewEntry(
                    action=str(entry.get("action")),
                    model=str(entry.get("model")),
                    version=entry.get("version"),
                    reason=str(entry.get("reason", "")),
                    actor=str(entry.get("actor", "")),
                    details={
                        **dict(entry.get("details") or {}),
                        "imported": {**original, "from": source},
                    },
                )
            )
        return len(entries)


def _trail(root: Path) -> FileTrail | SharedTrail:
    """The trail for `root`, chosen per call (the 0.2.0 module functions above); new code
    opens a Spoke once and uses spoke.audit."""
    return shared_trail(root) or FileTrail(root)


def _parsed(record: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(record)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _readable(records: Iterable[str]) -> list[dict[str, Any]]:
    """The records that are entries (JSON objects), in order; the rest `verify` reports."""
    return [entry for record in records if (entry := _parsed(record)) is not None]


def _is_entry(record: str) -> bool:
    return _parsed(record) is not None


def _is_managed(url: str) -> bool:
    from slipway.pipelines.governance import trail_roles

    return store.with_retry(url, "read the audit trail", trail_roles.is_managed)


def shared_trail(root: Path) -> SharedTrail | None:
    """The team's shared trail when the state store is configured, else None (files)."""
    url = store.state_url()
    return None if url is None else SharedTrail(url, store.spoke_key(root))


@dataclass(frozen=True)
class ImportResult:
    imported: int
    verbatim: bool
    where: str
    archived: Path


@spoke_or_root
def import_local(spoke: Spoke) -> ImportResult:
    """Carry this spoke's local trail (.slipway/audit.jsonl) into the shared one.

    The local chain must verify first (a broken trail is not laundered into the shared
    one). Into an empty shared trail the entries are copied as they are, so their hashes
    still verify; otherwise each is appended after the shared head with its original seq,
    hash and time in details.imported. The local files are then renamed *.imported, so a
    second import cannot copy them twice."""
    shared = spoke.audit if spoke.state_url is not None else None
    if not isinstance(shared, SharedTrail):
        raise AuditTrailError(
            f"no shared trail is configured: set {store.STATE_URL_ENV} (or a postgresql:// "
            "MLFLOW_TRACKING_URI) to the team's state database first"
        )
    local = FileTrail(spoke.root)
    if not local.path.exists():
        raise AuditTrailError(f"there is no local trail to import ({local.path} is missing)")
    checked = local.verify()
    if not checked.ok:
        problems = "\n".join(f"  - {p}" for p in checked.problems)
        raise AuditTrailError(
            f"the local trail {local.path} does not verify, so it was not imported:\n"
            f"{problems}\nRestore it from a backup, or keep it as evidence and start the "
            "shared trail without it."
        )
    entries = local.read()
    if not entries:
        raise AuditTrailError(f"the local trail {local.path} is empty: nothing to import")
    before = shared.verify()
    if not before.ok:
        raise AuditTrailError(
            f"the shared trail {shared.where} does not verify; fix that before importing "
            "into it (`slipway audit --verify` lists the problems)"
        )
    verbatim = before.entries == 0
    count = shared.import_entries(entries, source=f"{socket.gethostname()}:{local.path}")
    after = shared.verify()
    if not after.ok:
        raise AuditTrailError(
            f"the shared trail does not verify after the import: {after.problems[0]}"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    archived = local.path.with_name(f"{AUDIT_FILE}.imported-{stamp}")
    os.replace(local.path, archived)
    if local.head_file.exists():
        os.replace(local.head_file, local.head_file.with_name(f"{HEAD_FILE}.imported-{stamp}"))
    return ImportResult(count, verbatim, shared.where, archived)


def registry_says_trail_lost(spoke: Spoke) -> str | None:
    """A trail with no entries and no head, for a model the registry has versions of: the
    trail (and its head) were deleted. The one loss the trail cannot show by itself."""
    from slipway.pipelines import registry

    root, model = spoke.root, spoke.config.model_name
    if not Settings.from_env().mlflow_tracking_uri and not (state_dir(root) / "mlflow.db").exists():
        return None
    try:
        versions = registry.client(root).search_model_versions(f"name = '{model}'")
    except Exception:  # an unreachable registry is reported by other commands
        return None
    if not versions:
        return None
    return (
        f"the trail is empty, yet the registry holds {len(versions)} version(s) of {model}: "
        "the trail and its head record were deleted (or never written). Restore them from a "
        "backup or the CI artifacts"
    )
