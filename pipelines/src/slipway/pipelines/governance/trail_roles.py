"""The shared audit trail's roles: an owner creates and migrates, the app role only appends.

Why: a trail whose writer owns its tables rests on the writer's goodwill. The owner of a
table can disable its triggers, delete the last entries and set the head back, and
`--verify` cannot tell. So the tables belong to an owner role (the platform's, used by
`slipway audit migrate` and nothing else), and the role every `slipway` command connects
as has exactly this:

- SELECT on the entries and heads, filtered by row-level security to the trails it is
  registered for in ``slipway_audit_writers`` (one team cannot read another's trail);
- EXECUTE on ``slipway_audit_append``, a SECURITY DEFINER function that checks the caller
  is registered for the trail, that the entry chains from the head (seq = head + 1, prev =
  head hash, the columns equal to the JSON it stores), inserts it and moves the head, in one
  transaction. No INSERT, UPDATE, DELETE, TRUNCATE, ALTER or trigger right on any table.

A rewrite by the owner itself is found by the checkpoint kept outside the database
(trail_checkpoint.py). Creating the login roles is the database administrator's (or the
platform stack's) job; this module grants them what they need.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slipway.pipelines import store
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.audit import (
    _SCHEMA,
    CONFLICT_RETRIES,
    GENESIS,
    HEAD_TABLE,
    TABLE,
    AuditTrailError,
    NewEntry,
    _dump,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from slipway.pipelines.governance.audit import SharedTrail

WRITERS = "slipway_audit_writers"
APPEND_FUNCTION = "slipway_audit_append"
APPEND_SIGNATURE = f"{APPEND_FUNCTION}(text,bigint,text,text,text)"
# SQLSTATEs the append function raises, which SharedTrail turns into clear errors.
NOT_A_WRITER = "42501"  # insufficient_privilege
OUT_OF_TURN = "40001"  # serialization_failure: another appender moved the head; chain again
TAMPERED = "SL001"  # a row sits after the head: written around the function


class TrailRoleError(SlipwayError):
    """The trail's roles could not be set up as asked; the message says what to do."""

    exit_code = Exit.CONFIG


_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_MANAGED = (
    f"""CREATE TABLE IF NOT EXISTS {WRITERS} (
        trail TEXT NOT NULL,
        role NAME NOT NULL,
        PRIMARY KEY (trail, role)
    )""",
    f"""CREATE OR REPLACE FUNCTION {APPEND_FUNCTION}(
        p_trail TEXT, p_seq BIGINT, p_prev TEXT, p_hash TEXT, p_entry TEXT
    ) RETURNS VOID LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    DECLARE
        head RECORD;
        doc JSONB;
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM {WRITERS} w WHERE w.trail = p_trail AND w.role = session_user
        ) THEN
            RAISE EXCEPTION 'role % may not append to the audit trail %', session_user, p_trail
                USING ERRCODE = '{NOT_A_WRITER}';
        END IF;
        INSERT INTO {HEAD_TABLE} (trail, seq, hash) VALUES (p_trail, 0, '{GENESIS}')
            ON CONFLICT (trail) DO NOTHING;
        SELECT seq, hash INTO head FROM {HEAD_TABLE} WHERE trail = p_trail FOR UPDATE;
        IF p_seq <> head.seq + 1 OR p_prev <> head.hash THEN
            RAISE EXCEPTION 'out of turn: the head of % is seq %', p_trail, head.seq
                USING ERRCODE = '{OUT_OF_TURN}';
        END IF;
        IF EXISTS (SELECT 1 FROM {TABLE} WHERE trail = p_trail AND seq > head.seq) THEN
            RAISE EXCEPTION 'row seq % of % is past its head (seq %): written around the '
                'append function', head.seq + 1, p_trail, head.seq USING ERRCODE = '{TAMPERED}';
        END IF;
        BEGIN
            doc := p_entry::jsonb;
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'the entry is not JSON' USING ERRCODE = '22023';
        END;
        IF jsonb_typeof(doc) <> 'object' OR (doc ->> 'seq') IS DISTINCT FROM p_seq::text
            OR (doc ->> 'prev') IS DISTINCT FROM p_prev
            OR (doc ->> 'hash') IS DISTINCT FROM p_hash THEN
            RAISE EXCEPTION 'the entry''s seq/prev/hash differ from its columns'
                USING ERRCODE = '22023';
        END IF;
        INSERT INTO {TABLE} (trail, seq, prev, hash, entry)
            VALUES (p_trail, p_seq, p_prev, p_hash, p_entry);
        UPDATE {HEAD_TABLE} SET seq = p_seq, hash = p_hash WHERE trail = p_trail;
    END $$""",
    f"REVOKE ALL ON FUNCTION {APPEND_SIGNATURE} FROM PUBLIC",
    f"REVOKE ALL ON {TABLE}, {HEAD_TABLE}, {WRITERS} FROM PUBLIC",
    f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY",
    f"ALTER TABLE {HEAD_TABLE} ENABLE ROW LEVEL SECURITY",
    f"DROP POLICY IF EXISTS slipway_audit_own_trail ON {TABLE}",
    f"""CREATE POLICY slipway_audit_own_trail ON {TABLE} FOR SELECT USING (EXISTS (
        SELECT 1 FROM {WRITERS} w WHERE w.trail = {TABLE}.trail AND w.role = current_user))""",
    f"DROP POLICY IF EXISTS slipway_audit_head_own_trail ON {HEAD_TABLE}",
    f"""CREATE POLICY slipway_audit_head_own_trail ON {HEAD_TABLE} FOR SELECT USING (EXISTS (
        SELECT 1 FROM {WRITERS} w WHERE w.trail = {HEAD_TABLE}.trail AND w.role = current_user))""",
)


def migrate(owner_url: str) -> None:
    """Create (or bring up to date) the trail's tables, its append function and its policies,
    connected as the owner role. Safe to run again: every statement is idempotent."""
    from sqlalchemy import text

    def run(conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('slipway:audit'))"))
        for statement in (*_SCHEMA, *_MANAGED):
            conn.execute(text(statement))

    store.with_retry(owner_url, "migrate the audit trail's tables", run)


def grant_writer(owner_url: str, trail: str, role: str) -> None:
    """Let login role `role` read and append to `trail` (a spoke's key), and nothing else."""
    if not _ROLE.match(role):
        raise TrailRoleError(
            f"{role!r} is not a plain PostgreSQL role name (lower case, digits, _): create the "
            "role with such a name and grant it again"
        )
    from sqlalchemy import text

    def run(conn: Connection) -> None:
        conn.execute(
            text(f"INSERT INTO {WRITERS} (trail, role) VALUES (:t, :r) ON CONFLICT DO NOTHING"),
            {"t": trail, "r": role},
        )
        conn.execute(text(f"GRANT SELECT ON {TABLE}, {HEAD_TABLE}, {WRITERS} TO {role}"))
        conn.execute(text(f"GRANT EXECUTE ON FUNCTION {APPEND_SIGNATURE} TO {role}"))

    store.with_retry(owner_url, f"grant {role} the audit trail {trail!r}", run)


def is_managed(conn: Connection) -> bool:
    """True when the owner's append function exists: appends go through it alone."""
    from sqlalchemy import text

    found = conn.execute(text("SELECT to_regprocedure(:f)"), {"f": APPEND_SIGNATURE}).scalar()
    return found is not None


def writer_owns_tables(conn: Connection) -> bool:
    """True when the connected role can rewrite the trail (it owns the table or is a
    superuser): the unmanaged set-up `slipway audit --verify` warns about."""
    from sqlalchemy import text

    return bool(
        conn.execute(
            text(
                "SELECT pg_has_role(current_user, c.relowner, 'USAGE') "
                "OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
                "FROM pg_class c WHERE c.oid = to_regclass(:t)"
            ),
            {"t": TABLE},
        ).scalar()
    )


def row_past_head(url: str, trail: str) -> int | None:
    """The seq of a row beyond the trail's head record: never written by an append (which
    moves the head in the same transaction), so inserted around it."""
    from sqlalchemy import text

    def find(conn: Connection) -> int | None:
        return conn.execute(
            text(
                f"SELECT min(a.seq) FROM {TABLE} a JOIN {HEAD_TABLE} h USING (trail) "
                "WHERE a.trail = :t AND a.seq > h.seq"
            ),
            {"t": trail},
        ).scalar()

    return store.with_retry(url, "read the audit trail", find)


def tampered(where: str, seq: int | str) -> AuditTrailError:
    return AuditTrailError(
        f"the audit trail {where} was tampered with: row seq {seq} sits past the trail's "
        "head, written around `slipway`; nothing was recorded. Run `slipway audit --verify`, "
        "find out who wrote it, and have the trail's owner restore it from a backup before "
        "acting again"
    )


def append_through_function(trail: SharedTrail, new: NewEntry) -> dict[str, Any]:
    """Append through the owner's SECURITY DEFINER function: it checks this role may write
    the trail and that the entry chains from the head, then moves the head."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    def chain(conn: Connection) -> dict[str, Any]:
        head = conn.execute(
            text(f"SELECT seq, hash FROM {HEAD_TABLE} WHERE trail = :t"), {"t": trail.trail}
        ).first()
        seq, prev = (int(head.seq), str(head.hash)) if head is not None else (0, GENESIS)
        entry = new.chained(seq + 1, prev, None)
        conn.execute(
            text(f"SELECT {APPEND_FUNCTION}(:t, :seq, :prev, :hash, :entry)"),
            {
                "t": trail.trail,
                **{k: entry[k] for k in ("seq", "prev", "hash")},
                "entry": _dump(entry),
            },
        )
        return entry

    for _ in range(CONFLICT_RETRIES):
        try:
            return store.with_retry(trail.url, "append to the audit trail", chain)
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state == OUT_OF_TURN:
                continue  # another appender moved the head; chain again
            if state == TAMPERED:
                raise tampered(trail.where, row_past_head(trail.url, trail.trail) or "?") from None
            if state == NOT_A_WRITER:
                raise AuditTrailError(
                    f"this database role may not append to {trail.where}: the trail's owner "
                    "must grant it (trail_roles.grant_writer, docs/platform/shared-registry.md)"
                ) from None
            raise
    raise AuditTrailError(
        f"could not append to {trail.where}: {CONFLICT_RETRIES} conflicting appends in a row"
    )


def copy_through_function(trail: SharedTrail, entries: list[dict[str, Any]]) -> int:
    """An import of a verified local chain into an empty managed trail, hashes unchanged: the
    append function accepts it entry by entry (it chains from the genesis hash), in one
    transaction, so a failure leaves the shared trail empty."""
    from sqlalchemy import text

    def copy(conn: Connection) -> int:
        for entry in entries:
            conn.execute(
                text(f"SELECT {APPEND_FUNCTION}(:t, :seq, :prev, :hash, :entry)"),
                {
                    "t": trail.trail,
                    **{k: entry[k] for k in ("seq", "prev", "hash")},
                    "entry": _dump(entry),
                },
            )
        return len(entries)

    return store.with_retry(trail.url, "import the local audit trail", copy)
