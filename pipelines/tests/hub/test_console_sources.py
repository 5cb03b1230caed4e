"""The console's reads of a spoke's team state in files (the embedded registry's world):
nothing is created by reading, and a trail reads as verified, tampered or truncated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slipway.pipelines.governance import audit
from slipway.pipelines.hub import console_sources as sources
from slipway.pipelines.hub.overview import (
    EMPTY,
    TAMPERED,
    TRUNCATED,
    VERIFIED,
    rollout_view,
    trail_status,
)
from slipway.pipelines.rollout import state
from slipway.pipelines.spoke import Spoke

VALID_TOML = Path(__file__).resolve().parents[1] / "test_config.py"


@pytest.fixture
def spoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("_valid_config", VALID_TOML)
    assert spec and spec.loader
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.delenv("SLIPWAY_STATE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "spoke"
    root.mkdir()
    (root / "slipway.toml").write_text(module.VALID)
    return root


def _fill(root: Path, n: int) -> Path:
    for i in range(1, n + 1):
        Spoke.open(root).record("note", model="churn-guard", version=i, reason=f"entry {i}")
    return root / ".slipway" / audit.AUDIT_FILE


def test_reading_a_spoke_that_never_rolled_out_creates_nothing(spoke: Path) -> None:
    assert sources.rollouts(Spoke.open(spoke)) == []
    read = sources.trail(Spoke.open(spoke))
    assert read.entries == [] and read.lost is None
    assert trail_status(read.verification, read.lost) == EMPTY
    assert not (spoke / ".slipway" / state.STATE_FILE).exists()
    assert not (spoke / ".slipway" / audit.AUDIT_FILE).exists()


def test_a_rollout_and_its_readings_are_read_back(spoke: Path) -> None:
    rollouts = Spoke.open(spoke).rollouts
    row = rollouts.start(
        model="churn-guard", version="2", champion_version="1", plan={}, pid=os.getpid()
    )
    rollouts.update(row.id, phase="canary", weight=25)
    rollouts.record_reading(row.id, "canary", 25, {"error_rate": 0.01, "psi": 0.2})
    rollouts.record_event(row.id, "canary at 25 %")
    [found] = sources.rollouts(Spoke.open(spoke))
    assert found.id == row.id
    view = rollout_view(spoke, row.id)
    assert view is not None and view.is_open and view.weight == 25
    assert view.points[0].readings["psi"] == 0.2
    assert view.points[0].readings["p95_ratio"] is None  # not judged at that poll
    assert view.events[0][1] == "canary at 25 %"


def test_verified_edited_and_cut_trails(spoke: Path) -> None:
    path = _fill(spoke, 4)
    read = sources.trail(Spoke.open(spoke))
    assert len(read.entries) == 4
    assert trail_status(read.verification, read.lost) == VERIFIED

    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # the last entry cut off
    read = sources.trail(Spoke.open(spoke))
    assert trail_status(read.verification, read.lost) == TRUNCATED, read.verification.problems

    lines[1] = lines[1].replace("entry 2", "entry two")  # an entry in the middle edited
    path.write_text("".join(lines))
    read = sources.trail(Spoke.open(spoke))
    assert trail_status(read.verification, read.lost) == TAMPERED, read.verification.problems


def test_a_trail_deleted_with_its_head_but_not_its_registry_is_lost() -> None:
    checked = audit.Verification(entries=0, problems=())
    assert trail_status(checked, "the trail is empty, yet the registry holds 3 version(s)") == (
        "lost"
    )
