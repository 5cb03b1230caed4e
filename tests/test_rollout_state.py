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
    assert row.owner == rollout_state.owner_id() and row.phase == "starting"
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
            rollout_state._SCHEMA.replace("    owner TEXT,\n", "")
            + "INSERT INTO rollouts (model, version, status, phase, started_at, updated_at) "
            "VALUES ('demo', '1', 'promoted', 'promote', 1, 2);"
        )
        assert "owner" not in {c[1] for c in conn.execute("PRAGMA table_info(rollouts)")}
    [old] = rollout_state.all_rollouts(root)
    assert (old.version, old.owner) == ("1", None)
    assert open_one(root).owner == rollout_state.owner_id()


def test_a_state_url_that_is_not_postgres_is_a_config_error(root: Path, monkeypatch):
    from slipway.pipelines.store import StoreConfigError

    monkeypatch.setenv("SLIPWAY_STATE_URL", "mysql://db/x")
    with pytest.raises(StoreConfigError, match="not a postgresql:// URL"):
        rollout_state.latest(root)
