"""The training pipeline's pure parts: the data contract, the gate's judgement, lineage facts.

Fast and exhaustive where the end-to-end tests are slow and representative.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from slipway.pipelines.config import DataContract, Gates
from slipway.pipelines.training.data_contract import Violation, format_report, validate_frame
from slipway.pipelines.training.lineage import UNKNOWN, data_digest, git_state, template_version
from slipway.pipelines.training.quality_gate import Baseline, check_gates
from slipway.pipelines.training.spoke_code import SpokeCodeError, resolve

CONTRACT = DataContract.model_validate(
    {
        "min_rows": 5,
        "columns": {
            "radius": {"dtype": "float", "min": 0, "max": 30},
            "site": {"dtype": "str", "allowed": ["left", "right"], "nullable": True},
            "count": {"dtype": "int", "min": 0},
        },
    }
)


def _frame(rows: int = 6, **overrides: list[object]) -> pd.DataFrame:
    data: dict[str, list[object]] = {
        "radius": [10.0] * rows,
        "site": ["left"] * rows,
        "count": [1] * rows,
        "label": [0, 1] * (rows // 2) + [0] * (rows % 2),
    }
    data.update(overrides)
    return pd.DataFrame(data)


def _rules(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.column, v.rule) for v in violations}


def test_a_valid_frame_has_no_violations():
    assert validate_frame(_frame(), CONTRACT, require_target="label", enforce_min_rows=True) == []


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (_frame().drop(columns=["count"]), ("count", "required")),
        (_frame().drop(columns=["label"]), ("label", "required")),
        (_frame(radius=[10.0, 31.5, 1, 2, 3, 4]), ("radius", "max")),
        (_frame(radius=[-1.0, 1, 1, 2, 3, 4]), ("radius", "min")),
        (_frame(radius=[None, 1, 1, 2, 3, 4]), ("radius", "nullable")),
        (_frame(site=["left", "middle", None, "right", "left", "left"]), ("site", "allowed")),
        (_frame(radius=["ten", 1, 1, 2, 3, 4]), ("radius", "dtype")),
        (_frame(rows=3), ("(table)", "min_rows")),
    ],
)
def test_each_broken_rule_is_named_with_its_column(frame, expected):
    violations = validate_frame(frame, CONTRACT, require_target="label", enforce_min_rows=True)
    assert _rules(violations) == {expected}
    assert f"{expected[0]}: rule {expected[1]!r} broken" in format_report(violations)


def test_offending_values_and_counts_are_reported():
    frame = _frame(radius=[10.0, 31.5, 40.0, 2, 3, 4])
    (violation,) = validate_frame(frame, CONTRACT)
    assert violation.count == 2
    assert "above max 30" in violation.detail and "31.5" in violation.detail


def test_a_single_request_row_is_checked_without_target_or_row_count():
    row = pd.DataFrame([{"radius": 12.5, "site": "right", "count": 3}])
    assert validate_frame(row, CONTRACT) == []
    bad = pd.DataFrame([{"radius": 99.0, "site": "right"}])
    assert _rules(validate_frame(bad, CONTRACT)) == {("radius", "max"), ("count", "required")}


def test_validation_never_modifies_the_frame():
    frame = _frame(radius=["10", "11", "12", "13", "14", "15"])
    before = frame.copy()
    assert validate_frame(frame, CONTRACT) == []  # coerced for the check only
    pd.testing.assert_frame_equal(frame, before)


def test_the_real_demo_data_meets_a_contract_and_breaks_a_stricter_one():
    frame = load_breast_cancer(as_frame=True).data.rename(columns=lambda c: c.replace(" ", "_"))
    loose = DataContract.model_validate({"columns": {"mean_radius": {"min": 0, "max": 57}}})
    strict = DataContract.model_validate({"columns": {"mean_radius": {"min": 0, "max": 20}}})
    assert validate_frame(frame, loose, enforce_min_rows=True) == []
    (violation,) = validate_frame(frame, strict)
    assert (violation.column, violation.rule) == ("mean_radius", "max")
    assert violation.count == int((frame["mean_radius"] > 20).sum())


GATES = Gates(
    primary_metric="roc_auc", minimum={"roc_auc": 0.9, "accuracy": 0.85}, champion_margin=0.01
)
GOOD = {"roc_auc": 0.97, "accuracy": 0.93, "f1": 0.9, "precision": 0.9, "recall": 0.9}


def test_first_model_bootstraps_and_says_so():
    verdict = check_gates(GOOD, None, GATES)
    assert verdict.passed and verdict.bootstrap and verdict.label == "bootstrap"
    assert any("bootstraps" in reason for reason in verdict.reasons)


def test_first_model_below_a_floor_is_rejected_even_without_champion():
    verdict = check_gates({**GOOD, "accuracy": 0.8}, None, GATES)
    assert not verdict.passed and verdict.label == "rejected"
    assert any("accuracy 0.8000 < floor 0.8500" in reason for reason in verdict.reasons)


def test_challenger_must_beat_the_champion_by_the_margin():
    champion = Baseline(alias="champion", version="3", metrics={**GOOD, "roc_auc": 0.965})
    assert not check_gates(GOOD, champion, GATES).passed  # 0.97 < 0.965 + 0.01
    better = {**GOOD, "roc_auc": 0.98}
    verdict = check_gates(better, champion, GATES)
    assert verdict.passed and verdict.label == "passed"
    assert any("champion v3 0.9650 + margin 0.01" in reason for reason in verdict.reasons)


REGRESSION_GATES = Gates(primary_metric="rmse", minimum={"rmse": 60.0, "r2": 0.3})


def test_a_lower_is_better_floor_rejects_a_larger_error():
    verdict = check_gates({"rmse": 61.5, "r2": 0.45}, None, REGRESSION_GATES, task="regression")
    assert not verdict.passed
    assert "rmse 61.5000 > floor 60.0000 (gates.minimum)" in verdict.reasons
    assert "r2 0.4500 >= floor 0.3000" in verdict.reasons


def test_a_regression_challenger_must_not_have_a_larger_error_than_the_champion():
    champion = Baseline(alias="champion", version="2", metrics={"rmse": 52.0, "r2": 0.5})
    worse = check_gates({"rmse": 53.0, "r2": 0.48}, champion, REGRESSION_GATES, task="regression")
    assert not worse.passed
    assert any(
        "rmse 53.0000 > 52.0000 = champion v2 52.0000 - margin 0" in r for r in worse.reasons
    )
    # Equal is "no worse": a retrain on the same data passes (margin 0 is not an MLflow change).
    assert check_gates(
        {"rmse": 52.0, "r2": 0.5}, champion, REGRESSION_GATES, task="regression"
    ).passed
    demanding = Gates(primary_metric="rmse", minimum={}, champion_margin=2.0)
    assert not check_gates(
        {"rmse": 51.0}, champion, demanding, task="regression"
    ).passed  # > 52 - 2
    assert check_gates({"rmse": 49.5}, champion, demanding, task="regression").passed


def test_a_gated_metric_the_model_cannot_give_is_a_rejection_that_says_why():
    gates = Gates(primary_metric="accuracy", minimum={"roc_auc_ovr": 0.9})
    verdict = check_gates({"accuracy": 0.95}, None, gates, task="multiclass")
    assert not verdict.passed
    assert "predict_proba" in verdict.reasons[0]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_git_state_reports_head_and_dirty_tracked_files(tmp_path):
    assert git_state(tmp_path) == git_state(tmp_path).__class__(sha=UNKNOWN, dirty=True)
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("1")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    (tmp_path / "untracked.txt").write_text("ignored for the dirty flag")
    assert git_state(tmp_path).sha == head and not git_state(tmp_path).dirty
    (tmp_path / "a.txt").write_text("2")
    assert git_state(tmp_path).dirty


def test_template_version_comes_from_the_copier_answers(tmp_path):
    assert template_version(tmp_path) == UNKNOWN
    (tmp_path / ".copier-answers.yml").write_text("# generated\n_commit: v1.4.0\n_src_path: x\n")
    assert template_version(tmp_path) == "v1.4.0"


def test_data_digest_changes_with_one_value_and_not_with_a_copy():
    frame = _frame()
    assert data_digest(frame) == data_digest(frame.copy())
    changed = frame.copy()
    changed.loc[0, "radius"] = 10.5
    assert data_digest(changed) != data_digest(frame)


def test_a_wrong_entrypoint_names_the_field_and_the_fix(tmp_path):
    with pytest.raises(SpokeCodeError, match=r"data.loader = 'nowhere.data:load'.*cannot import"):
        resolve(tmp_path, "nowhere.data:load", "data.loader")
    with pytest.raises(SpokeCodeError, match="has no function 'nothing'"):
        resolve(tmp_path, "json:nothing", "training.trainer")


def test_a_step_is_forked_only_once_the_imports_it_needs_are_done() -> None:
    """The gate step is not forked while the session still has MLflow's modules to import
    (it would import them a second time itself); a cheap step is forked at once."""
    from slipway.pipelines.training import zygote

    done: list[str] = []
    pending = [
        lambda: done.append("a"),
        lambda: sys.modules.setdefault(zygote.NEEDS["gate_model"], types.ModuleType("stand-in")),
        lambda: done.append("after"),
    ]
    module = zygote.NEEDS["gate_model"]
    saved = sys.modules.pop(module, None)
    try:
        zygote._ready_for({"arguments": ["--function_to_execute", "train_model"]}, pending)
        assert (done, len(pending)) == ([], 3)  # train needs none of it: forked at once
        zygote._ready_for({"arguments": ["--function_to_execute", "gate_model"]}, pending)
        assert (done, len(pending)) == (["a"], 1)  # up to the gate's last module, no further
        zygote._ready_for({"call": "m:f", "arguments": {}}, pending)
        assert (done, pending) == (["a", "after"], [])  # reading the outcome: everything
    finally:
        sys.modules.pop(module, None)
        if saved is not None:
            sys.modules[module] = saved
