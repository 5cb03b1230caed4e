"""The audit trail: who did what to which model version, when and why.

An append-only JSON-lines file under <spoke>/.slipway/. Each entry carries the hash of the
one before it, so an edited or deleted line breaks the chain and `verify` says where. A chain
alone cannot show that its last lines were cut off, so every append also rewrites a small head
file (audit.head: the last seq and hash) that `verify` compares with the end of the chain.

Limits, stated plainly: someone who can write both files can rewrite the whole trail and its
head consistently; the chain proves integrity against edits by hand and partial tampering,
not against a determined administrator of the machine. Copy the head hash somewhere they
cannot write (CI logs, a ticket, the registry) to anchor it.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slipway.pipelines.registry import state_dir

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
GENESIS = "0" * 64


def audit_path(root: Path) -> Path:
    return state_dir(root) / AUDIT_FILE


def head_path(root: Path) -> Path:
    return state_dir(root) / HEAD_FILE


def _write_head(root: Path, entry: Mapping[str, Any]) -> None:
    """Replace the head record atomically: a crash leaves the old head or the new one."""
    path = head_path(root)
    tmp = path.with_suffix(".head.tmp")
    tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}) + "\n")
    os.replace(tmp, path)


def current_actor(root: Path | None = None) -> str:
    """SLIPWAY_ACTOR (CI sets it), else git's user.email, else the login name."""
    if actor := os.environ.get("SLIPWAY_ACTOR"):
        return actor
    try:
        email = subprocess.run(
            ["git", "config", "user.email"], cwd=root, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        email = ""
    return email or getpass.getuser()


def canonical_sha256(payload: Any) -> str:
    """sha256 of `payload` as canonical JSON (sorted keys, no spaces): the same facts give
    the same digest whatever order they were built in (audit entries, model cards)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return canonical_sha256({k: v for k, v in entry.items() if k != "hash"})


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read(root: Path) -> list[dict[str, Any]]:
    path = audit_path(root)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append(
    root: Path,
    action: str,
    *,
    model: str,
    version: str | int | None = None,
    reason: str = "",
    actor: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Add one entry, chained to the last; safe against concurrent writers on one machine."""
    path = audit_path(root)
    with _locked(path):
        entries = read(root)
        entry: dict[str, Any] = {
            "seq": len(entries) + 1,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "actor": actor or current_actor(root),
            "action": action,
            "model": model,
            "version": None if version is None else str(version),
            "reason": reason,
            "details": dict(details or {}),
            "prev": entries[-1]["hash"] if entries else GENESIS,
        }
        entry["hash"] = entry_hash(entry)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        _write_head(root, entry)
    return entry


@dataclass(frozen=True)
class Verification:
    entries: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_head(root: Path) -> dict[str, Any] | None:
    path = head_path(root)
    if not path.exists():
        return None
    try:
        head = json.loads(path.read_text())
        return {"seq": int(head["seq"]), "hash": str(head["hash"])}
    except (ValueError, KeyError, TypeError):
        return {"seq": -1, "hash": "unreadable"}


def _chain_problems(lines: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Walk the lines in order; each must parse, hash to itself and point at the one before."""
    problems: list[str] = []
    entries: list[dict[str, Any]] = []
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"line {number}: not valid JSON (edited by hand?)")
            prev = "unknown"
            continue
        seq = entry.get("seq")
        where = f"line {number} (seq {seq}, {entry.get('action')})"
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
        if entry.get("prev") != prev and prev != "unknown":
            problems.append(
                f"{where}: does not chain to the entry before it (an entry before it was "
                "deleted, inserted or rewritten)"
            )
        entries.append(entry)
        prev = entry.get("hash", "unknown")
    return entries, problems


def verify(root: Path) -> Verification:
    """Check the whole trail: every hash, every link, and the end against the head record."""
    path = audit_path(root)
    lines = (
        [line for line in path.read_text().splitlines() if line.strip()] if (path.exists()) else []
    )
    entries, problems = _chain_problems(lines)
    head = _read_head(root)
    if head is None:
        if entries:
            problems.append(
                f"the head record {HEAD_FILE} is missing, so deleted last entries could not be "
                "detected; restore it from a backup"
            )
    elif head["seq"] == -1:
        problems.append(f"the head record {HEAD_FILE} is unreadable (edited by hand?)")
    else:
        last_seq = entries[-1].get("seq") if entries else 0
        last_hash = entries[-1].get("hash") if entries else GENESIS
        if head["seq"] != last_seq or head["hash"] != last_hash:
            if isinstance(last_seq, int) and head["seq"] > last_seq:
                problems.append(
                    f"the trail ends at seq {last_seq} but the head record says "
                    f"{head['seq']}: the last {head['seq'] - last_seq} entr(y/ies) were deleted"
                )
            else:
                problems.append(
                    f"the last entry (seq {last_seq}) is not the one the head record names "
                    f"(seq {head['seq']}): the end of the trail was rewritten"
                )
    return Verification(entries=len(lines), problems=tuple(problems))


def show(root: Path, *, model: str | None = None, version: str | None = None) -> list[str]:
    """One readable line per entry (oldest first): when, who, what, which version, why."""
    lines = []
    for entry in read(root):
        if model and entry.get("model") != model:
            continue
        if version and entry.get("version") != str(version):
            continue
        target = entry["model"] + (f" v{entry['version']}" if entry.get("version") else "")
        why = f": {entry['reason']}" if entry.get("reason") else ""
        lines.append(
            f"#{entry['seq']:<4} {entry['at']}  {entry['actor']:<24} {entry['action']:<16} "
            f"{target}{why}"
        )
    return lines
