"""The embedded rollout state (sqlite under .slipway/): the same interface as the shared one
(tests/shared/test_team_registry.py), compare-and-set updates, and state files from 0.1.0."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from slipway.pipelines.rollout import state as rollout_state


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SLIPWAY_STATE_URL", raising=False)
    return tmp_path


def open_one(root: Path) -> rollout_state.RolloutRow:
    return rollout_state.start(
        root, model="demo", version="2", champion_version="1", plan={"steps": [10]}, pid=1
    )


def test_an_update_against_a_phase_that_moved_on_does_not_apply(root: Path):
    row = open_one(root)
    assert row.owner.startswith(rollout_state.owner_id() + ":") and row.phase == "starting"
    assert rollout_state.update(root, row.id, expected_phase="starting", phase="10%", weight=10)
    assert not rollout_state.update(root, row.id, expected_phase="starting", phase="32%")
    assert not rollout_state.update(
        root, row.id, expected_status=rollout_state.PROMOTING, status=rollout_state.PROMOTED
    )
    now = rollout_state.get(root, row.id)
    assert (now.phase, now.weight, now.status) == ("10%", 10, rollout_state.RUNNING)
    assert rollout_state.update(root, row.id, status=rollout_state.ROLLED_BACK)  # unconditional
    assert rollout_state.open_rollout(root) is None
    with pytest.raises(ValueError, match="unknown rollout fields"):
        rollout_state.update(root, row.id, version="3")


def test_a_second_open_rollout_is_refused(root: Path):
    open_one(root)
    with pytest.raises(RuntimeError, match="still running"):
        open_one(root)


def test_a_state_file_from_before_the_owner_column_still_opens(root: Path):
    path = rollout_state.state_path(root)
    with sqlite3.connect(path) as conn:
        conn.executescript(
            rollout_state._SCHEMA.replace("    owner TEXT,\n", "").replace(
                "    lease_expires_at REAL,\n", ""
            )
            + "INSERT INTO rollouts (model, version, status, phase, started_at, updated_at) "
            "VALUES ('demo', '1', 'promoted', 'promote', 1, 2);"
        )
        assert "owner" not in {c[1] for c in conn.execute("PRAGMA table_info(rollouts)")}
    [old] = rollout_state.all_rollouts(root)
    assert (old.version, old.owner, old.lease_expires_at) == ("1", None, None)
    assert rollout_state.lease_expired(old)  # no lease: nobody holds it
    fresh = open_one(root)
    assert fresh.owner.startswith(rollout_state.owner_id() + ":")
    assert not rollout_state.lease_expired(fresh)
    with sqlite3.connect(path) as conn:
        columns = {c[1] for c in conn.execute("PRAGMA table_info(rollouts)")}
    assert {"owner", "lease_expires_at"} <= columns


FAR_HOST = "far-host:4242"  # another machine: its pid says nothing here


def check_two_resumers_exactly_one_wins(root: Path) -> None:
    """The lease, forced step by step (shared with the PostgreSQL test): two resumers read
    the same expired lease, both try to claim it, exactly one wins; the winner's heartbeat
    renews it, the loser's does not; a live lease on another host is never taken; once the
    winner's lease expires, a third claims it and the winner's next heartbeat fails."""
    row = rollout_state.start(
        root,
        model="demo",
        version="2",
        champion_version="1",
        plan={"steps": [10]},
        pid=4242,
        owner=f"{FAR_HOST}:dead0",
        lease=-1.0,  # the far controller died: its lease is already over
    )
    assert rollout_state.lease_expired(row)
    seen_by_a = rollout_state.get(root, row.id)
    seen_by_b = rollout_state.get(root, row.id)
    a, b, c = (rollout_state.new_owner() for _ in range(3))
    assert rollout_state.claim(root, seen_by_a, a, 60.0)
    assert not rollout_state.claim(root, seen_by_b, b, 60.0)
    held = rollout_state.get(root, row.id)
    assert held.owner == a and not rollout_state.lease_expired(held)
    assert rollout_state.renew(root, row.id, a, 60.0)
    assert not rollout_state.renew(root, row.id, b, 60.0)
    # A fresh read does not help while the lease is live (another host: no pid shortcut).
    assert not rollout_state.claim(root, rollout_state.get(root, row.id), c, 60.0)
    assert rollout_state.update(root, row.id, expected_owner=a, lease_expires_at=0.0)
    assert rollout_state.claim(root, rollout_state.get(root, row.id), c, 60.0)
    assert not rollout_state.renew(root, row.id, a, 60.0)
    assert not rollout_state.update(
        root, row.id, expected_status=rollout_state.RUNNING, expected_owner=a, phase="32%"
    )
    assert rollout_state.get(root, row.id).owner == c
    # A closed rollout is claimed by nobody.
    assert rollout_state.update(root, row.id, status=rollout_state.ROLLED_BACK, lease_expires_at=0)
    assert not rollout_state.claim(root, rollout_state.get(root, row.id), a, 60.0)


def test_two_resumers_of_an_expired_lease_exactly_one_wins(root: Path):
    check_two_resumers_exactly_one_wins(root)


def test_a_dead_controller_on_this_host_frees_its_lease_before_it_expires(root: Path):
    import socket
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = f"{socket.gethostname()}:{done.stdout.strip()}:gone"
    row = rollout_state.start(
        root,
        model="demo",
        version="2",
        champion_version="1",
        plan={},
        pid=1,
        owner=dead,
        lease=600.0,
    )
    assert not rollout_state.lease_expired(row)
    assert rollout_state.claim(root, row, rollout_state.new_owner(), 60.0)


def test_a_lease_length_that_is_not_a_positive_number_is_refused(monkeypatch):
    for bad in ("0", "-5", "nan", "inf", "soon"):
        monkeypatch.setenv(rollout_state.LEASE_ENV, bad)
        with pytest.raises(rollout_state.BadLeaseSetting, match="positive number of seconds"):
            rollout_state.lease_seconds()
    assert rollout_state.BadLeaseSetting.exit_code == 3  # a configuration error
    monkeypatch.setenv(rollout_state.LEASE_ENV, "7.5")
    assert rollout_state.lease_seconds() == 7.5


def test_a_state_url_that_is_not_postgres_is_a_config_error(root: Path, monkeypatch):
    from slipway.pipelines.store import StoreConfigError

    monkeypatch.setenv("SLIPWAY_STATE_URL", "mysql://db/x")
    with pytest.raises(StoreConfigError, match="not a postgresql:// URL"):
        rollout_state.latest(root)
