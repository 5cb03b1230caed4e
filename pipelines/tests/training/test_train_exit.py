"""`slipway train` never reports success when a step failed.

The review's reproduction: an audit trail that refused the registration's entry made
register-model fail after the outcome was tagged; `slipway train` printed
"register-model FAILED" and exited 0. The outcome reader is given exactly that case.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from slipway.pipelines.training import pipeline
from slipway.pipelines.training.pipeline import TrainingError, TrainingOutcome, _outcome


def registered(log: Path) -> TrainingOutcome:
    return TrainingOutcome(
        status="registered", run_id="r1", tracking_uri="sqlite:///x", log_path=log, version=3
    )


def test_a_failed_step_after_the_outcome_was_recorded_is_a_failure(tmp_path: Path):
    log = tmp_path / "run.log"
    log.write_text(
        "slipway.pipelines.governance.audit.AuditTrailError: the audit trail ... was tampered "
        "with: row seq 8 sits past the trail's head\n"
    )
    with pytest.raises(TrainingError) as failed:
        _outcome(log, "register-model", registered(log))
    message = str(failed.value)
    assert "step 'register-model' failed" in message
    assert "AuditTrailError" in message and "recorded registered (version 3)" in message
    assert failed.value.exit_code != 0
    # With every step succeeded, the recorded outcome stands.
    assert _outcome(log, None, registered(log)).version == 3


def test_slipway_train_exits_non_zero_when_a_step_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from slipway.pipelines.cli import main

    root = tmp_path / "spoke"
    root.mkdir()
    spec = Path(__file__).parents[1] / "test_config.py"
    namespace: dict[str, object] = {}
    exec(compile(spec.read_text(), str(spec), "exec"), namespace)  # VALID, as test_config has it
    (root / "slipway.toml").write_text(str(namespace["VALID"]))
    log = tmp_path / "run.log"
    log.write_text("")

    def run(root: Path, on_step: object = None) -> TrainingOutcome:
        return _outcome(log, "register-model", registered(log))

    monkeypatch.setattr(pipeline, "run_local_training", run)
    result = CliRunner().invoke(main, ["--project", str(root), "train"])
    assert result.exit_code != 0, result.output
    assert "step 'register-model' failed" in result.output
