"""When drifted windows start retraining: N in a row, thin windows skipped, then a cool-down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from slipway.pipelines.config import Monitoring
from slipway.pipelines.governance.drift_policy import Decision, decide

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
POLICY = Monitoring(drift_windows=3, cooldown_hours=72)


def window(drifted: bool, *, env: str = "prod", judged: bool = True, hours_ago: float = 1) -> dict:
    return {
        "action": "drift" if drifted else "monitor",
        "model": "m",
        "at": (NOW - timedelta(hours=hours_ago)).isoformat(),
        "details": {"env": env, "judged": judged},
    }


def retrain(hours_ago: float) -> dict[str, Any]:
    return {"action": "retrain", "model": "m", "at": (NOW - timedelta(hours=hours_ago)).isoformat()}


def verdict(history: list[dict[str, Any]], *, drifted: bool = True, judged: bool = True):
    return decide(
        history, model="m", env="prod", judged=judged, drifted=drifted, policy=POLICY, now=NOW
    )


def test_retrains_only_after_n_drifted_windows_in_a_row():
    assert verdict([]).decision is Decision.WAIT
    assert verdict([window(True)]).decision is Decision.WAIT
    third = verdict([window(True), window(True)])
    assert (third.decision, third.consecutive) == (Decision.RETRAIN, 3)


def test_a_clean_window_breaks_the_run():
    broken = verdict([window(True), window(False), window(True)])
    assert (broken.decision, broken.consecutive) == (Decision.WAIT, 2)
    assert verdict([window(True), window(True)], drifted=False).decision is Decision.NO_DRIFT


def test_thin_windows_neither_break_nor_extend_the_run():
    history = [window(True), window(False, judged=False), window(True)]
    assert verdict(history).consecutive == 3
    thin = verdict(history, drifted=False, judged=False)
    assert (thin.decision, thin.consecutive) == (Decision.NOT_JUDGED, 2)


def test_other_environments_and_models_do_not_count():
    history = [window(True, env="staging"), window(True, env="staging"), window(True)]
    history.append({**window(True), "model": "other"})
    assert verdict(history).consecutive == 2


def test_retraining_restarts_the_count_and_the_cool_down_holds_the_next_one():
    history = [window(True), window(True), window(True), retrain(hours_ago=10)]
    assert verdict(history).consecutive == 1  # windows before a retraining are answered
    held = verdict([retrain(hours_ago=10), window(True), window(True)])
    assert held.decision is Decision.COOLDOWN
    assert held.cooldown_until == NOW - timedelta(hours=10) + timedelta(hours=72)
    assert "cool-down until 2026-12-10T02:00" in held.sentence
    # A retraining of any environment cools the model down; after it, drift retrains again.
    late = verdict([retrain(hours_ago=73), window(True), window(True)])
    assert late.decision is Decision.RETRAIN


def test_windows_are_counted_per_source_and_older_entries_count_as_capture():
    """A quiet batch window does not break a run of drifted capture windows of the same
    environment, and entries written before sources were recorded are capture's."""
    batch_quiet = {**window(False), "details": {"env": "prod", "judged": True, "source": "batch"}}
    history = [window(True), batch_quiet, window(True)]  # the capture windows: no source
    capture = decide(
        history,
        model="m",
        env="prod",
        judged=True,
        drifted=True,
        policy=POLICY,
        now=NOW,
        source="capture",
    )
    assert (capture.decision, capture.consecutive) == (Decision.RETRAIN, 3)
    batch = decide(
        history, model="m", env="prod", judged=True, drifted=True, policy=POLICY, now=NOW,
        source="batch",
    )  # fmt: skip
    assert (batch.decision, batch.consecutive) == (Decision.WAIT, 1)
