"""The rollout lease in the team's PostgreSQL (the real server on 127.0.0.1): the same
forced interleaving as the embedded store's test, and a slipway_rollouts table created
before leases existed gaining the column with its rows still readable."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.pipelines.rollout import state as rollout_state
from tests.rollout.test_rollout_state import check_two_resumers_exactly_one_wins


@pytest.fixture
def shared_root(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "slipway.toml").write_text('[project]\nslug = "demo"\n', encoding="utf-8")
    monkeypatch.setenv("SLIPWAY_STATE_URL", database)
    return tmp_path


def test_two_resumers_of_an_expired_lease_exactly_one_wins_in_postgres(shared_root: Path):
    check_two_resumers_exactly_one_wins(shared_root)


def test_a_rollouts_table_from_before_leases_gains_the_column(shared_root: Path, database: str):
    from sqlalchemy import create_engine, text

    old_schema = rollout_state._SHARED_SCHEMA[0].replace("lease_expires_at DOUBLE PRECISION,", "")
    assert "lease_expires_at" not in old_schema
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(text(old_schema))
            conn.execute(
                text(
                    "INSERT INTO slipway_rollouts (model, version, status, phase, owner, "
                    "started_at, updated_at) VALUES ('demo', '1', 'running', '10%', "
                    "'far-host:1:old', 1, 2)"
                )
            )
    finally:
        engine.dispose()
    old = rollout_state.open_rollout(shared_root)
    assert (old.version, old.owner, old.lease_expires_at) == ("1", "far-host:1:old", None)
    assert rollout_state.lease_expired(old)  # written before leases: nobody holds it
    mine = rollout_state.new_owner()
    assert rollout_state.claim(shared_root, old, mine, 60.0)
    held = rollout_state.get(shared_root, old.id)
    assert held.owner == mine and not rollout_state.lease_expired(held)
