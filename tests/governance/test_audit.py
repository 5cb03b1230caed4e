"""The audit trail is tamper-evident: `slipway audit --verify` catches edited and deleted entries.

Each test writes a real trail through audit.append, tampers with the file the way a person
with a text editor would, and checks both the library verdict and the command's exit code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from tests.hub import VALID_SPOKE_TOML


@pytest.fixture
def spoke(tmp_path: Path) -> Path:
    """A spoke directory with a valid slipway.toml and a trail of five real entries."""
    (tmp_path / "slipway.toml").write_text(VALID_SPOKE_TOML)
    for action, version, reason in [
        ("register", 1, "first model"),
        ("promote", 1, "canary passed"),
        ("register", 2, "retrained on March data"),
        ("approve", 2, "bias review done"),
        ("rollback", 2, "error rate 0.2 > 0.01"),
    ]:
        audit.append(
            tmp_path, action, model="demo", version=version, reason=reason, actor="ada@example.com"
        )
    return tmp_path


def lines_of(root: Path) -> list[str]:
    return audit.audit_path(root).read_text().splitlines()


def write_lines(root: Path, lines: list[str]) -> None:
    audit.audit_path(root).write_text("".join(f"{line}\n" for line in lines))


def verify_cli(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--project", str(root), "audit", "--verify"])
    return result.exit_code, result.output


def test_an_untouched_trail_verifies_and_shows_who_did_what(spoke: Path):
    result = audit.verify(spoke)
    assert result.ok and result.entries == 5, result.problems
    code, output = verify_cli(spoke)
    assert code == 0 and "audit trail intact: 5 entries" in output
    shown = CliRunner().invoke(main, ["--project", str(spoke), "audit", "--version", "2"])
    assert shown.exit_code == 0
    rows = shown.output.splitlines()
    assert len(rows) == 3
    assert "ada@example.com" in rows[2] and "rollback" in rows[2]
    assert rows[2].endswith("demo v2: error rate 0.2 > 0.01")


def test_an_edited_entry_is_caught(spoke: Path):
    lines = lines_of(spoke)
    entry = json.loads(lines[3])
    entry["details"] = {"by": "someone-else@example.com"}
    lines[3] = json.dumps(entry, sort_keys=True)
    write_lines(spoke, lines)
    [problem] = audit.verify(spoke).problems
    assert problem.startswith("line 4 (seq 4, approve): content does not match its hash")
    code, output = verify_cli(spoke)
    assert code == Exit.ERROR and "tampered with" in output and "line 4" in output


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(spoke: Path):
    lines = lines_of(spoke)
    entry = json.loads(lines[1])
    entry["reason"] = "promoted by hand, no canary"
    entry["hash"] = audit.entry_hash(entry)
    lines[1] = json.dumps(entry, sort_keys=True)
    write_lines(spoke, lines)
    [problem] = audit.verify(spoke).problems
    assert problem.startswith("line 3 (seq 3, register): does not chain to the entry before it")


def test_a_deleted_entry_in_the_middle_is_caught(spoke: Path):
    lines = lines_of(spoke)
    del lines[2]
    write_lines(spoke, lines)
    problems = audit.verify(spoke).problems
    assert problems == (
        "line 3 (seq 4, approve): seq jumps from 2 to 4: 1 entr(y/ies) deleted before it",
        "line 3 (seq 4, approve): does not chain to the entry before it (an entry before it "
        "was deleted, inserted or rewritten)",
    )
    assert verify_cli(spoke)[0] == Exit.ERROR


def test_deleted_last_entries_are_caught_by_the_head_record(spoke: Path):
    write_lines(spoke, lines_of(spoke)[:3])
    [problem] = audit.verify(spoke).problems
    assert "ends at seq 3 but the head record says 5: the last 2 entr(y/ies) were deleted" in (
        problem
    )
    code, output = verify_cli(spoke)
    assert code == Exit.ERROR and "were deleted" in output


def test_an_emptied_trail_and_a_removed_head_are_caught(spoke: Path):
    write_lines(spoke, [])
    assert "the last 5 entr(y/ies) were deleted" in audit.verify(spoke).problems[0]
    audit.head_path(spoke).unlink()
    assert audit.verify(spoke).ok  # no trail, no head: a fresh spoke, nothing to check
    audit.append(spoke, "register", model="demo", version=3, reason="again")
    audit.head_path(spoke).unlink()
    [problem] = audit.verify(spoke).problems
    assert "head record audit.head is missing" in problem


WRITER = """
import sys
from pathlib import Path
from slipway.pipelines.governance import audit
for i in range(10):
    audit.append(Path(sys.argv[1]), "note", model="demo", reason=f"entry {i}", actor=sys.argv[2])
"""


def test_concurrent_writers_keep_the_chain_and_head_intact(spoke: Path):
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(spoke), f"writer-{n}"])
        for n in range(3)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0]
    result = audit.verify(spoke)
    assert result.ok and result.entries == 35, result.problems
    actors = [entry["actor"] for entry in audit.read(spoke)[5:]]
    assert sorted(set(actors)) == ["writer-0", "writer-1", "writer-2"]


def test_an_append_after_cutting_the_last_entries_never_re_anchors(spoke: Path):
    write_lines(spoke, lines_of(spoke)[:3])
    audit.append(spoke, "promote", model="demo", version=3, reason="after the cut")
    problems = audit.verify(spoke).problems
    # The new entry chains from the head record (seq 5), so the cut stays a visible gap.
    assert problems and "seq jumps from 3 to 6" in problems[0], problems
    code, output = verify_cli(spoke)
    assert code == Exit.ERROR and "seq jumps" in output


def test_a_removed_head_is_not_silently_replaced_by_the_next_append(spoke: Path):
    write_lines(spoke, lines_of(spoke)[:3])
    audit.head_path(spoke).unlink()  # both cut: the trail alone cannot see the cut...
    audit.append(spoke, "promote", model="demo", version=3, reason="after the cut")
    [problem] = audit.verify(spoke).problems
    # ...but the append that found no head says so in its own (hashed) entry, for good.
    assert "line 4 (seq 4, promote): appended while the head record was missing" in problem


def test_a_torn_last_line_is_a_note_and_appends_carry_on(spoke: Path):
    with audit.audit_path(spoke).open("a") as handle:
        handle.write('{"seq": 6, "action": "promo')  # a crash in the middle of a write
    assert audit.verify(spoke).ok
    audit.append(spoke, "promote", model="demo", version=2, reason="after the crash")
    result = audit.verify(spoke)
    assert result.ok and result.entries == 7, result.problems
    assert result.notes == (
        "line 6: not an entry (a write cut short by a crash, or a line added by hand); the "
        "chain runs on past it, nothing is missing",
    )
    assert [e["seq"] for e in audit.read(spoke)] == [1, 2, 3, 4, 5, 6]
    code, output = verify_cli(spoke)
    assert code == 0 and "note: line 6: not an entry" in output


def test_an_overwritten_line_is_a_problem_not_a_torn_write(spoke: Path):
    lines = lines_of(spoke)
    lines[1] = "garbage"
    write_lines(spoke, lines)
    problems = audit.verify(spoke).problems
    assert any("line 3 (seq 3, register): does not chain" in p for p in problems), problems
    assert any("line 2: not valid JSON" in p for p in problems), problems
    # Reading and showing the trail still work: governance never crashes on a bad line.
    assert len(audit.show(spoke)) == 4


def test_an_unreadable_head_does_not_block_an_approval_or_rollback(spoke: Path):
    audit.head_path(spoke).write_text("{not json")
    assert "unreadable" in audit.verify(spoke).problems[0]
    entry = audit.append(spoke, "rollback", model="demo", version=2, reason="still recorded")
    assert entry["seq"] == 6 and "unreadable" in entry["unanchored"]
    [problem] = audit.verify(spoke).problems
    assert "line 6 (seq 6, rollback): appended while the head record was missing" in problem


def test_append_reads_only_the_head_not_the_trail(spoke: Path, monkeypatch: pytest.MonkeyPatch):
    def no_full_read(*args: object, **kwargs: object) -> str:
        raise AssertionError("append re-read the whole trail")

    monkeypatch.setattr(Path, "read_text", no_full_read, raising=True)
    monkeypatch.setattr(audit.FileTrail, "lines", no_full_read)
    monkeypatch.setattr(audit.FileTrail, "_head", lambda self: (5, audit.read.__name__))
    entry = audit.append(spoke, "note", model="demo", reason="O(1)", actor="ada@example.com")
    assert entry["seq"] == 6 and entry["prev"] == "read"
