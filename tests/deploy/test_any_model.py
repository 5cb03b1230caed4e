"""Any tabular model end to end: a multiclass spoke and a regression spoke whose trainer
returns a LightGBM model train through the real pipeline (kfp.local, MLflow's evaluation,
the gate), and the LightGBM version is deployed by the real gateway, then a challenger
whose predictions shift is rolled back by the prediction-drift guardrail over binned values.

The binary task trains end to end in tests/training/test_training_pipeline.py. One spoke per task,
rendered once for the module; the steps build on each other in order.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.rollout.rehearsal import register_faulty

from .conftest import SLIPWAY, GatewayProcess, Load, Spoke, slipway

pytestmark = pytest.mark.xdist_group("any-model")

LIGHTGBM_TRAINER = '''"""A gradient-boosted regressor: the team brought its own library."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from lightgbm import LGBMRegressor


def train(features: pd.DataFrame, target: pd.Series, params: Mapping[str, Any]) -> LGBMRegressor:
    model = LGBMRegressor(
        n_estimators=int(params.get("n_estimators", 150)),
        learning_rate=0.03,
        num_leaves=4,
        min_child_samples=20,
        random_state=0,
        verbose=-1,
    )
    return model.fit(features, target)
'''


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=dev@example.com", "-c", "user.name=Spoke Dev", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def _spoke(template_repo: Path, root: Path, task: str, trainer: str | None = None) -> Spoke:
    from copier import run_copy

    run_copy(
        str(template_repo),
        root,
        # Its own project name: the spoke's package is imported by name in this process (the
        # gateway, rehearsals), and the default spoke's `diagnosis_assist` holds other data.
        data={"task": task, "risk_tier": "low", "project_name": f"Any Model {task}"},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
        unsafe=False,
    )
    config = load_config(root)
    if trainer is not None:
        (root / "src" / config.project.package / "train.py").write_text(trainer)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "copied from the template")
    return Spoke(root, config)


def _train(spoke: Spoke) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [SLIPWAY, "-C", str(spoke.root), "train"],
        capture_output=True,
        text=True,
        env={**env, "SLIPWAY_ACTOR": "dev@example.com"},
        timeout=600,
    )


def _registered_run(spoke: Spoke, version: str):  # the version, its MLflow run, a client
    client = registry.client(spoke.root)
    mv = client.get_model_version(spoke.config.model_name, version)
    return mv, client.get_run(mv.run_id), client


@pytest.fixture(scope="module")
def multiclass(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Spoke:
    return _spoke(template_repo, tmp_path_factory.mktemp("multiclass") / "spoke", "multiclass")


@pytest.fixture(scope="module")
def boosted(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Spoke:
    root = tmp_path_factory.mktemp("regression") / "spoke"
    return _spoke(template_repo, root, "regression", LIGHTGBM_TRAINER)


def test_a_multiclass_spoke_trains_gates_and_registers(multiclass):
    done = _train(multiclass)
    assert done.returncode == 0, done.stdout + done.stderr
    # The summary table lists the task's metrics, not the binary ones.
    assert "roc_auc_ovr" in done.stdout and "f1_weighted" in done.stdout
    assert "recall " not in done.stdout

    mv, run, client = _registered_run(multiclass, "1")
    assert mv.tags[registry.TAG_GATE_VERDICT] == "bootstrap"
    metrics = run.data.metrics
    assert metrics["test_accuracy"] >= 0.9 and metrics["test_roc_auc_ovr"] >= 0.9
    assert metrics["test_log_loss"] > 0
    assert metrics["test_accuracy"] == metrics["accuracy_score"]  # MLflow's own evaluation
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/confusion_matrix.png", "plots/roc_curve.png"}
    gate = client.download_artifacts(run.info.run_id, "gate.txt")
    assert "accuracy" in Path(gate).read_text() and "f1_weighted" in Path(gate).read_text()


def test_a_lightgbm_regressor_trains_is_gated_and_logs_its_flavor(boosted):
    done = _train(boosted)
    assert done.returncode == 0, done.stdout + done.stderr
    mv, run, client = _registered_run(boosted, "1")
    assert mv.tags[registry.TAG_GATE_VERDICT] == "bootstrap"
    metrics = run.data.metrics
    assert 0 < metrics["test_rmse"] <= 65.0 and metrics["test_r2"] >= 0.3
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/residuals.png", "plots/predicted_vs_actual.png"}
    gate = Path(client.download_artifacts(run.info.run_id, "gate.txt")).read_text()
    assert "rmse" in gate and "<= floor 65.0000" in gate

    import mlflow.pyfunc

    with registry.fluent_registry(boosted.root):
        model = mlflow.pyfunc.load_model(f"models:/{boosted.config.model_name}/1")
    assert "lightgbm" in model.metadata.flavors
    assert model.metadata.flavors["python_function"]["loader_module"] == "mlflow.lightgbm"

    # The model card carries the task's plots and says which way each gate points.
    slipway(boosted.root, "card", "1", check=True)
    card = (boosted.root / "docs" / "model_card.md").read_text()
    assert "![residuals](model_card/residuals.png)" in card
    assert "![predicted vs actual](model_card/predicted_vs_actual.png)" in card
    assert "Task: regression" in card and "rmse <= 65" in card
    assert "rmse <= the champion's rmse - 0" in card
    assert "| rmse |" in card
    # (An error's comparison with a champion points down:
    # pipelines/tests/training/test_training_units.py; a second full training run here
    # would cost the CI budget ~40 s for the same check.)


def test_the_lightgbm_version_deploys_and_a_shifted_canary_is_rolled_back(boosted):
    spoke = Spoke(boosted.root, load_config(boosted.root))
    gateway = GatewayProcess(spoke.root)
    try:
        slipway(spoke.root, "deploy", "--version", "1", "--url", gateway.url, check=True)
        client = registry.client(spoke.root)
        champion = registry.version_by_alias(client, spoke.config.model_name, registry.CHAMPION)
        assert champion is not None and str(champion.version) == "1"

        shifted = register_faulty(spoke.root, spoke.config, "shift", base_version="1")
        with Load(gateway.url, spoke, concurrency=8, rate=150.0) as load:
            done = slipway(
                spoke.root, "deploy", "--version", shifted, "--url", gateway.url,
                "--step-seconds", "1",
            )  # fmt: skip
        assert done.returncode == Exit.ROLLED_BACK, done.stdout + done.stderr
        assert "prediction drift" in done.stderr
        assert load.report is not None and load.report.failed == 0
        mv = client.get_model_version(spoke.config.model_name, shifted)
        assert mv.tags.get(registry.TAG_ROLLOUT_OUTCOME) == "rolled_back"
        champion = registry.version_by_alias(client, spoke.config.model_name, registry.CHAMPION)
        assert champion is not None and str(champion.version) == "1"
        assert registry.version_by_alias(client, spoke.config.model_name, "challenger") is None
    finally:
        gateway.stop()
