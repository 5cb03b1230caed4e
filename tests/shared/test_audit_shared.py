"""One audit trail per team in PostgreSQL: appends from many processes chain without a fork,
and truncation, an emptied trail, edited entries and a lost head are all detected.

The tampering here is done the way a database administrator would do it: with SQL, after
disabling the append-only trigger that refuses it to everyone else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from tests.hub import VALID_SPOKE_TOML


def _valid_toml() -> str:
    return VALID_SPOKE_TOML


@pytest.fixture
def spoke(tmp_path: Path) -> Path:
    root = tmp_path / "spoke"
    root.mkdir()
    (root / "slipway.toml").write_text(_valid_toml())
    return root


@pytest.fixture
def shared(spoke: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The spoke's trail goes to the test's own database (MLFLOW_TRACKING_URI unset)."""
    monkeypatch.setenv("SLIPWAY_STATE_URL", database)
    monkeypatch.setenv("SLIPWAY_STATE_RETRIES", "0")
    return database


def fill(root: Path, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        audit.append(root, "note", model="demo", version=i, reason=f"entry {i}", actor="ada@x")


def sql(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE slipway_audit DISABLE TRIGGER USER")
        for statement in statements:
            conn.execute(statement)
        conn.execute("ALTER TABLE slipway_audit ENABLE TRIGGER USER")


def verify_cli(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--project", str(root), "audit", "--verify"])
    return result.exit_code, result.output


def test_the_shared_trail_lives_in_postgres_and_verifies(spoke: Path, shared: str):
    fill(spoke, 3)
    assert not audit.audit_path(spoke).exists()  # nothing on this machine's disk
    result = audit.verify(spoke)
    assert result.ok and result.entries == 3, result.problems
    assert "slipway_audit" in result.where and "churn-guard" in result.where
    code, output = verify_cli(spoke)
    assert code == 0 and "audit trail intact: 3 entries" in output
    assert [e["seq"] for e in audit.read(spoke)] == [1, 2, 3]


def test_the_database_refuses_edits_and_deletes(spoke: Path, shared: str):
    fill(spoke, 2)
    with psycopg.connect(shared, autocommit=True) as conn:
        for statement in (
            "DELETE FROM slipway_audit WHERE seq = 2",
            "UPDATE slipway_audit SET entry = '{}' WHERE seq = 1",
            "TRUNCATE slipway_audit",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
        # Two rows with one seq, or two rows chained to one predecessor, cannot exist.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO slipway_audit (trail, seq, prev, hash, entry) "
                "SELECT trail, 2, 'x', 'y', entry FROM slipway_audit WHERE seq = 1"
            )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO slipway_audit (trail, seq, prev, hash, entry) "
                "SELECT trail, 3, prev, 'y', entry FROM slipway_audit WHERE seq = 2"
            )
    assert audit.verify(spoke).ok


def test_cut_last_entries_stay_a_gap_after_the_next_append(spoke: Path, shared: str):
    fill(spoke, 5)
    sql(shared, "DELETE FROM slipway_audit WHERE seq > 3")
    assert "the last 2 entr(y/ies) were deleted" in audit.verify(spoke).problems[0]
    fill(spoke, 1, start=6)  # chains from the head (seq 5), never re-anchors on seq 3
    problems = audit.verify(spoke).problems
    assert any("seq jumps from 3 to 6" in p for p in problems), problems
    assert verify_cli(spoke)[0] == Exit.ERROR


def test_an_emptied_trail_an_edited_row_and_a_lost_head_are_caught(spoke: Path, shared: str):
    fill(spoke, 3)
    entry = audit.read(spoke)[1]
    entry["reason"] = "approved by nobody"
    sql(shared, f"UPDATE slipway_audit SET entry = '{json.dumps(entry)}' WHERE seq = 2")
    [problem] = audit.verify(spoke).problems
    assert problem.startswith("row 2 (seq 2, note): content does not match its hash")

    sql(shared, "DELETE FROM slipway_audit")
    [problem] = audit.verify(spoke).problems
    assert "ends at seq 0 but the head record says 3" in problem

    # The head row deleted too: the trail alone cannot tell (a fresh trail looks the same);
    # the next append chains from what is left and marks itself unanchored.
    sql(shared, "DELETE FROM slipway_audit_head")
    assert audit.verify(spoke).ok
    fill(spoke, 2)
    sql(shared, "DELETE FROM slipway_audit_head")
    fill(spoke, 1, start=3)
    problems = audit.verify(spoke).problems
    assert any("appended while the head record was missing" in p for p in problems), problems


WRITER = """
import sys
from pathlib import Path
from slipway.pipelines.governance import audit
for i in range(int(sys.argv[2])):
    audit.append(Path(sys.argv[1]), "note", model="demo", reason=f"entry {i}", actor=sys.argv[3])
"""


def test_concurrent_appenders_on_many_processes_never_fork_the_chain(spoke: Path, shared: str):
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(spoke), "25", f"writer-{n}"])
        for n in range(4)
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0, 0, 0]
    result = audit.verify(spoke)
    assert result.ok and result.entries == 100, result.problems
    actors = [e["actor"] for e in audit.read(spoke)]
    assert sorted(actors.count(f"writer-{n}") for n in range(4)) == [25, 25, 25, 25]


def test_a_local_trail_is_imported_with_its_chain_checked(spoke: Path, database: str, monkeypatch):
    monkeypatch.setenv("SLIPWAY_STATE_URL", "local")
    fill(spoke, 4)
    local_head = audit.read(spoke)[-1]["hash"]
    monkeypatch.setenv("SLIPWAY_STATE_URL", database)
    done = CliRunner().invoke(main, ["--project", str(spoke), "audit", "--import-local"])
    assert done.exit_code == 0 and "imported 4 entries" in done.output, done.output
    assert "as they were" in done.output
    assert audit.verify(spoke).ok and audit.read(spoke)[-1]["hash"] == local_head
    assert not audit.audit_path(spoke).exists()  # archived: a second import finds nothing
    again = CliRunner().invoke(main, ["--project", str(spoke), "audit", "--import-local"])
    assert again.exit_code == Exit.ERROR and "no local trail" in again.output

    # A second machine's trail joins after the shared head, its originals kept.
    other = spoke.parent / "laptop-2"
    other.mkdir()
    (other / "slipway.toml").write_text((spoke / "slipway.toml").read_text())
    monkeypatch.setenv("SLIPWAY_STATE_URL", "local")
    fill(other, 2)
    monkeypatch.setenv("SLIPWAY_STATE_URL", database)
    done = CliRunner().invoke(main, ["--project", str(other), "audit", "--import-local"])
    assert done.exit_code == 0 and "after the shared head" in done.output, done.output
    entries = audit.read(spoke)
    assert len(entries) == 6 and entries[-1]["details"]["imported"]["seq"] == 2
    assert audit.verify(spoke).ok


def test_a_broken_local_trail_is_not_imported(spoke: Path, database: str, monkeypatch):
    monkeypatch.setenv("SLIPWAY_STATE_URL", "local")
    fill(spoke, 3)
    lines = audit.audit_path(spoke).read_text().splitlines()
    audit.audit_path(spoke).write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    monkeypatch.setenv("SLIPWAY_STATE_URL", database)
    done = CliRunner().invoke(main, ["--project", str(spoke), "audit", "--import-local"])
    assert done.exit_code == Exit.ERROR and "does not verify, so it was not imported" in done.output
    assert "Traceback" not in done.output
    assert audit.audit_path(spoke).exists() and audit.verify(spoke).entries == 0


def test_an_unreachable_state_database_has_its_exit_code(spoke: Path, monkeypatch):
    monkeypatch.setenv("SLIPWAY_STATE_URL", "postgresql://postgres@127.0.0.1:9/nowhere")
    monkeypatch.setenv("SLIPWAY_STATE_RETRIES", "1")
    code, output = verify_cli(spoke)
    assert code == Exit.UNREACHABLE and "could not be reached" in output, output
    assert "Traceback" not in output


def test_a_dropped_database_connection_is_retried_not_reported(spoke: Path, shared: str):
    """The server closing every connection (a restart, a failover) is not an error: the pool
    pings the dead connection before use and opens a fresh one (with no retries allowed
    here, so it is the ping that saves the append)."""
    fill(spoke, 1)
    with psycopg.connect(shared.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (shared.rsplit("/", 1)[1],),
        ).fetchone()
    assert killed is not None and killed[0] >= 1  # the pool's connection was there, and is gone
    fill(spoke, 1, start=2)
    result = audit.verify(spoke)
    assert result.ok and result.entries == 2, result.problems
