"""The training pipeline end to end on kfp.local, against MLflow on sqlite and a real server.

One spoke is rendered and committed for the module; the runs build on each other in
order (a first version, a worse challenger, broken data), so the module stays in one
xdist worker. The spoke runs in the hub's venv: its package is found through src/, which
the pipeline steps put on sys.path themselves (no install needed).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.registry import fluent_registry
from slipway.pipelines.training.lineage import data_digest, file_sha256
from slipway.pipelines.training.pipeline import COMPILED_FILE, run_local_training
from slipway.pipelines.training.spoke_code import held_out_rows, load_frame
from tests import hub
from tests.hub import VERSION as HUB_VERSION
from tests.hub import mlflow_server as start_mlflow_server

if TYPE_CHECKING:
    from mlflow import MlflowClient

pytestmark = pytest.mark.xdist_group("training-spoke")

VENV_BIN = Path(sys.executable).parent
AUTHOR = "data-scientist@example.com"
MODEL = "diagnosis-assist"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Spoke Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Spoke Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}

WEAK_TRAINER = '''"""A deliberately weak model: one split on one feature."""

from sklearn.tree import DecisionTreeClassifier


def train(features, labels, params):
    return DecisionTreeClassifier(max_depth=1, random_state=0).fit(features, labels)
'''

BROKEN_LOADER = '''"""Too few rows, a missing column and a value out of range."""

from diagnosis_assist.data import load as load_real


def load():
    frame = load_real().head(60).drop(columns=["mean_texture"])
    frame.loc[frame.index[0], "mean_radius"] = 99.0
    return frame
'''


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment minus any registry override, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(GIT_ENV, SLIPWAY_ACTOR=AUTHOR, **extra)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=_env(), check=True, capture_output=True, text=True
    ).stdout.strip()


def slipway(spoke: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """tests.hub.slipway with this file's environment (its actor, git identity, no
    inherited registry) plus `env`."""
    return hub.slipway(spoke, *args, env=_env(**env), inherit=False)


def _client(spoke: Path) -> MlflowClient:
    from mlflow import MlflowClient

    uri = registry.embedded_tracking_uri(spoke)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(spoke: Path) -> dict[str, list[str]]:
    """Every registered version of the model -> the aliases it holds."""
    client = _client(spoke)
    aliases = client.get_registered_model(MODEL).aliases
    return {
        str(v.version): sorted(a for a, held in aliases.items() if str(held) == str(v.version))
        for v in client.search_model_versions(f"name='{MODEL}'")
    }


def test_first_run_registers_version_1_with_full_lineage(spoke, first_run):
    assert first_run.returncode == 0, first_run.stdout + first_run.stderr
    out = first_run.stdout
    for step in (
        "load-data",
        "validate-data",
        "train-model",
        "evaluate-model",
        "gate-model",
        "register-model",
    ):
        assert re.search(rf"(?m)^\s*{step}\s+ok\b", out), f"{step} not reported ok:\n{out}"
    assert f"registered {MODEL} v1 as challenger (gate: bootstrap)" in out
    assert f"mlflow ui --backend-store-uri {registry.embedded_tracking_uri(spoke)}" in out

    client = _client(spoke)
    assert _versions(spoke) == {"1": ["challenger"]}
    version = client.get_model_version(MODEL, "1")
    tags = version.tags
    config = load_config(spoke)
    assert tags[registry.TAG_GIT_SHA] == git(spoke, "rev-parse", "HEAD")
    assert tags[registry.TAG_GIT_DIRTY] == "false"
    assert tags[registry.TAG_DATA_DIGEST] == data_digest(load_frame(spoke, config))
    assert tags[registry.TAG_PIPELINE_SHA256] == file_sha256(spoke / COMPILED_FILE)
    assert tags[registry.TAG_TEMPLATE_VERSION] == f"v{HUB_VERSION}"
    from slipway.pipelines import __version__

    assert tags[registry.TAG_SLIPWAY_VERSION] == __version__
    assert tags[registry.TAG_RISK_TIER] == "medium"
    assert tags[registry.TAG_KPI_NAME] == "second-read turnaround hours"
    assert float(tags[registry.TAG_KPI_BASELINE]) == 48.0
    assert float(tags[registry.TAG_KPI_TARGET]) == 24.0
    assert tags[registry.TAG_AUTHOR] == AUTHOR
    assert tags[registry.TAG_GATE_VERDICT] == "bootstrap"

    run = client.get_run(version.run_id)
    for metric in ("roc_auc", "accuracy", "f1", "precision", "recall"):
        assert 0.0 <= run.data.metrics[f"test_{metric}"] <= 1.0
    assert not any(k.startswith("champion_") for k in run.data.metrics)
    assert run.data.params["C"] == "1.0"
    assert run.data.tags[registry.TAG_OUTCOME] == "registered"
    # Two inputs: the data trained on (its digest is the version's), and the held-out rows
    # mlflow.models.evaluate scored (logged by MLflow's evaluation itself).
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {f"{MODEL}-training", f"{MODEL}-held-out"}
    assert tags[registry.TAG_DATA_DIGEST].startswith(inputs[f"{MODEL}-training"].digest)
    # MLflow's own evaluation metrics are on the run too, under its names.
    assert run.data.metrics["roc_auc"] == run.data.metrics["test_roc_auc"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/confusion_matrix.png", "plots/roc_curve.png"}

    from slipway.pipelines.governance import audit

    (entry,) = [e for e in audit.read(spoke) if e["action"] == "register"]
    assert (entry["model"], entry["version"], entry["actor"]) == (MODEL, "1", AUTHOR)


def test_registered_model_serves_with_its_signature(spoke, first_run):
    import mlflow

    assert first_run.returncode == 0
    with fluent_registry(spoke):
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}@challenger")
    inputs = model.metadata.get_input_schema().input_names()
    assert inputs == list(load_config(spoke).data.contract.columns)
    rows = held_out_rows(spoke, load_config(spoke))
    predictions = model.predict(rows[inputs].head(20))
    assert set(predictions) <= {0, 1}


def test_held_out_rows_are_reproducible_and_never_trained_on(spoke):
    config = load_config(spoke)
    first, second = held_out_rows(spoke, config), held_out_rows(spoke, config)
    assert first.equals(second)
    total = len(load_frame(spoke, config))
    assert len(first) == math.ceil(total * config.training.test_size)
    assert config.data.target in first.columns


def test_worse_model_is_rejected_against_the_champion(spoke, first_run):
    assert first_run.returncode == 0
    client = _client(spoke)
    # What a first deploy does: version 1 serves as champion.
    client.set_registered_model_alias(MODEL, registry.CHAMPION, "1")
    package = spoke / "src" / "diagnosis_assist"
    (package / "weak.py").write_text(WEAK_TRAINER)
    toml = spoke / "slipway.toml"
    original = toml.read_text()
    # Floors low enough for the stump, so only the comparison with the champion can reject.
    toml.write_text(
        original.replace(
            'trainer = "diagnosis_assist.train:train"', 'trainer = "diagnosis_assist.weak:train"'
        ).replace("roc_auc = 0.95\naccuracy = 0.9", "roc_auc = 0.5\naccuracy = 0.5")
    )
    steps: list[tuple[str, str]] = []
    try:
        outcome = run_local_training(spoke, on_step=lambda s, st: steps.append((s, st)))
    finally:
        toml.write_text(original)
    assert outcome.status == "gate_rejected"
    assert outcome.exit_code == Exit.GATE_REJECTED
    assert outcome.verdict == "rejected"
    assert outcome.baseline == "champion v1"
    assert ("gate-model", "failed") in steps
    assert not any(step == "register-model" for step, _ in steps)
    # The champion was scored by loading it: its numbers are v1's, not the stump's.
    v1_run = client.get_run(client.get_model_version(MODEL, "1").run_id)
    for metric in ("roc_auc", "accuracy"):
        assert outcome.baseline_metrics[metric] == pytest.approx(
            v1_run.data.metrics[f"test_{metric}"]
        )
    assert outcome.metrics["roc_auc"] < outcome.baseline_metrics["roc_auc"]
    assert all("floor" not in r or ">=" in r for r in outcome.reasons)
    assert any("champion v1" in r and "<" in r for r in outcome.reasons)
    rejected = client.get_run(outcome.run_id)
    assert rejected.data.tags[registry.TAG_GATE_VERDICT] == "rejected"
    assert "champion_roc_auc" in rejected.data.metrics
    assert _versions(spoke) == {"1": ["challenger", "champion"]}


def test_invalid_data_fails_at_validate_and_changes_nothing(spoke, first_run):
    assert first_run.returncode == 0
    before = _versions(spoke)
    (spoke / "src" / "diagnosis_assist" / "broken.py").write_text(BROKEN_LOADER)
    toml = spoke / "slipway.toml"
    original = toml.read_text()
    toml.write_text(
        original.replace(
            'loader = "diagnosis_assist.data:load"', 'loader = "diagnosis_assist.broken:load"'
        )
    )
    try:
        result = slipway(spoke, "train")
    finally:
        toml.write_text(original)
    assert result.returncode == Exit.DATA_INVALID, result.stdout + result.stderr
    out = result.stdout
    assert "validate-data    FAILED" in out
    assert "train-model" not in out
    assert "mean_texture: rule 'required' broken" in out
    assert "mean_radius: rule 'max' broken: above max 57; offending values: 99.0" in out
    assert "(table): rule 'min_rows' broken: 60 rows" in out
    assert "Nothing was registered" in out
    assert _versions(spoke) == before


def test_a_crashing_loader_names_the_step_and_the_cause(spoke, first_run):
    assert first_run.returncode == 0
    before = _versions(spoke)
    toml = spoke / "slipway.toml"
    original = toml.read_text()
    toml.write_text(
        original.replace(
            'loader = "diagnosis_assist.data:load"', 'loader = "diagnosis_assist.data:missing"'
        )
    )
    try:
        result = slipway(spoke, "train")
    finally:
        toml.write_text(original)
    assert result.returncode == Exit.ERROR, result.stdout + result.stderr
    assert "load-data        FAILED" in result.stdout
    assert (
        "step 'load-data' failed: SpokeCodeError: data.loader = "
        "'diagnosis_assist.data:missing': diagnosis_assist.data has no function 'missing'"
        in result.stderr
    )
    assert "nothing was registered" in result.stderr
    assert _versions(spoke) == before


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on loopback: sqlite backend, local artifacts; always stopped."""
    with start_mlflow_server(tmp_path / "server", env=_env()) as url:
        yield url


def test_run_against_a_real_mlflow_server(spoke, first_run, mlflow_server):
    from mlflow import MlflowClient

    embedded_before = _versions(spoke)
    result = slipway(spoke, "train", MLFLOW_TRACKING_URI=mlflow_server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"registered {MODEL} v1 as challenger (gate: bootstrap)" in result.stdout
    assert f"mlflow ui --backend-store-uri {mlflow_server}" in result.stdout
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    version = client.get_model_version_by_alias(MODEL, registry.CHALLENGER)
    assert version.version == "1"
    assert version.tags[registry.TAG_GIT_SHA] == git(spoke, "rev-parse", "HEAD")
    run = client.get_run(version.run_id)
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/confusion_matrix.png", "plots/roc_curve.png"}
    # The artifacts went through the server, and the spoke's own registry was left alone.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert _versions(spoke) == embedded_before
    assert run.data.metrics["test_roc_auc"] > 0.9
