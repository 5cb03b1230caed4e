"""The audit trail: who did what to which model version, when and why.

An append-only JSON-lines file under <spoke>/.slipway/. Each entry carries the hash of the
one before it, so an edited or deleted line breaks the chain and `verify` says where.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slipway.pipelines.registry import state_dir

AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64


def audit_path(root: Path) -> Path:
    return state_dir(root) / AUDIT_FILE


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


def entry_hash(entry: Mapping[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


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
    return entry
