"""The two store Protocols of a Spoke, one suite each, run against both back ends: the files
under .slipway/ and the team's PostgreSQL. A caller holding `spoke.rollouts` or
`spoke.audit` must not be able to tell which one it has."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.pipelines.governance.audit import FileTrail, NewEntry, SharedTrail
from slipway.pipelines.rollout.state import (
    RUNNING,
    FileRollouts,
    RolloutOpen,
    SharedRollouts,
)
from slipway.pipelines.spoke import AuditTrail, RolloutStore

BACKENDS = ["files", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(kind, database URL or None); the PostgreSQL case gets a database of its own."""
    if request.param == "files":
        yield "files", None
    else:
        yield "postgresql", request.getfixturevalue("database")


@pytest.fixture
def rollouts(backend: tuple[str, str | None], tmp_path: Path) -> RolloutStore:
    _kind, url = backend
    if url is None:
        (tmp_path / ".slipway").mkdir()
        return FileRollouts(tmp_path)
    return SharedRollouts(url, "demo")  # the spoke's key is its model's name


@pytest.fixture
def trail(backend: tuple[str, str | None], tmp_path: Path) -> AuditTrail:
    _kind, url = backend
    if url is None:
        (tmp_path / ".slipway").mkdir()
        return FileTrail(tmp_path)
    return SharedTrail(url, "demo")


def _start(store: RolloutStore, version: str = "2", owner: str = "host:1:a") -> int:
    row = store.start(
        model="demo",
        version=version,
        champion_version="1",
        plan={"steps": [10, 50]},
        pid=os.getpid(),
        owner=owner,
        lease=60.0,
    )
    return row.id


def test_a_rollout_store_is_the_protocol_and_says_where_it_lives(rollouts: RolloutStore):
    assert isinstance(rollouts, RolloutStore)
    assert rollouts.where
    assert rollouts.latest() is None and rollouts.open_rollout() is None


def test_one_open_rollout_at_a_time(rollouts: RolloutStore):
    first = _start(rollouts)
    row = rollouts.open_rollout()
    assert row is not None and row.id == first and row.status == RUNNING
    assert row.plan == {"steps": [10, 50]} and row.owner == "host:1:a"
    with pytest.raises(RolloutOpen):
        _start(rollouts, version="3")
    assert rollouts.update(first, expected_status=RUNNING, status="promoted")
    assert rollouts.open_rollout() is None
    second = _start(rollouts, version="3")
    assert [r.id for r in rollouts.all_rollouts()] == [first, second]
    latest = rollouts.latest()
    assert latest is not None and latest.id == second


def test_changes_are_compare_and_set(rollouts: RolloutStore):
    rid = _start(rollouts)
    assert not rollouts.update(rid, expected_phase="canary", weight=50)  # it is not canary
    assert rollouts.update(rid, expected_owner="host:1:a", phase="canary", weight=50)
    row = rollouts.get(rid)
    assert row is not None and (row.phase, row.weight) == ("canary", 50)
    assert not rollouts.renew(rid, "host:2:b", 60.0)  # not its owner: stop
    assert rollouts.renew(rid, "host:1:a", 60.0)


def test_a_held_lease_is_claimed_only_once_it_expires(rollouts: RolloutStore):
    rid = _start(rollouts)
    row = rollouts.get(rid)
    assert row is not None
    assert not rollouts.claim(row, "host:2:b", 60.0)  # still held
    assert rollouts.claim(row, "host:2:b", 60.0, now=time.time() + 3600)
    taken = rollouts.get(rid)
    assert taken is not None and taken.owner == "host:2:b"
    assert not rollouts.claim(row, "host:3:c", 60.0, now=time.time() + 7200)  # row is stale


def test_readings_and_events_come_back_in_order(rollouts: RolloutStore):
    rid = _start(rollouts)
    rollouts.record_reading(rid, "canary", 10, {"error_rate": 0.0, "psi": 0.01})
    rollouts.record_reading(rid, "canary", 50, {"error_rate": 0.1})
    rollouts.record_event(rid, "step 10% passed")
    readings = rollouts.readings(rid)
    assert [(r["phase"], r["weight"]) for r in readings] == [("canary", 10), ("canary", 50)]
    assert readings[0]["psi"] == 0.01 and readings[1]["error_rate"] == 0.1
    assert [e["message"] for e in rollouts.events(rid)] == ["step 10% passed"]


def _entry(action: str, version: str) -> NewEntry:
    return NewEntry(
        action=action, model="demo", version=version, reason="", actor="tester", details={}
    )


def test_an_audit_trail_is_the_protocol_and_chains_its_entries(trail: AuditTrail):
    assert isinstance(trail, AuditTrail)
    assert trail.where
    first = trail.append(_entry("register", "1"))
    second = trail.append(_entry("promote", "1"))
    assert second["seq"] == first["seq"] + 1
    assert second["prev"] == first["hash"]
    assert [e["action"] for e in trail.read()] == ["register", "promote"]
    verdict = trail.verify()
    assert verdict.ok, verdict.problems
