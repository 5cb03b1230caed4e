"""Drift monitoring on real traffic samples: a real shift triggers retraining, no shift does not.

The champion is a real model trained by the spoke's trainer on its training split. Served
traffic is the spoke's real held-out rows (replayed twice, as the deploy pipeline replays
them), answered by the champion and captured by the gateway's own SampleWriter. The shift
is real: every feature scaled by 1.5, still inside the data contract, so only the drift
monitor can notice it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.governance.monitoring import check_drift
from slipway.pipelines.registry import CHAMPION, client
from slipway.pipelines.serving.drift_sample import SampleWriter
from tests import governance_support as support

SCALE = 1.5


@pytest.fixture(scope="module")
def rendered(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return support.render_spoke(template_repo, tmp_path_factory.mktemp("monitored") / "spoke")


def serving_spoke(rendered: Path, tmp_path: Path, *, scale: float) -> Path:
    """A low-tier spoke whose champion has served the held-out rows, scaled by `scale`."""
    root = support.make_spoke(rendered, tmp_path, "low")
    config = load_config(root)
    version, traffic, model = support.champion_traffic(root, scale)
    columns = list(config.data.contract.columns)
    writer = SampleWriter(root, columns, config.monitoring.sample_capacity)
    for _ in range(2):
        predictions = [int(p) for p in model.predict(traffic)]
        writer.write(CHAMPION, version, traffic.itertuples(index=False, name=None), predictions)
    return root


def monitor(root: Path, *args: str) -> Any:
    return CliRunner().invoke(
        main,
        ["--project", str(root), "monitor", *args],
        # A laptop: CI's own CI=true would make it a runner, where training never starts.
        env={"SLIPWAY_ACTOR": "monitor@example.com", "CI": None},
    )


def report_of(output: str) -> dict[str, Any]:
    report_md = Path(output.split(":", 1)[0])
    assert report_md.is_file() and (report_md.parent / "drift.png").stat().st_size > 0
    return json.loads((report_md.parent / "report.json").read_text())


def test_unshifted_real_traffic_is_not_drift_and_does_not_retrain(rendered: Path, tmp_path: Path):
    """Run as a team does, in a fresh process started elsewhere: the champion must be
    loaded from the spoke's registry, never from MLflow's default `./mlflow.db`."""
    root = serving_spoke(rendered, tmp_path, scale=1.0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("slipway")), "--project", str(root), "monitor"],
        cwd=elsewhere,
        env={**env, "SLIPWAY_ACTOR": "monitor@example.com"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no drift" in result.stdout
    assert not (elsewhere / "mlflow.db").exists() and not (root / "mlflow.db").exists()
    report = report_of(result.stdout)
    assert report["samples"] == 2 * 143 and not report["drifted"]
    assert max(f["psi"] for f in report["features"]) < load_config(root).monitoring.max_feature_psi
    assert report["contract_violations"] == []
    # Nothing retrained; the window's decision is recorded (scheduled runs count on it).
    [entry] = audit.read(root)
    assert (entry["action"], entry["details"]["decision"]) == ("monitor", "no_drift")
    assert len(client(root).search_model_versions("name='tumour-triage'")) == 1


def test_shifted_traffic_is_drift_and_says_why(rendered: Path, tmp_path: Path):
    root = serving_spoke(rendered, tmp_path, scale=SCALE)
    config = load_config(root)
    report = check_drift(root, config, client(root))
    assert report.drifted and report.contract_violations == []  # in contract, yet drifted
    breached = [f for f in report.features if f.breached]
    assert len(breached) >= len(config.data.contract.columns) // 2
    assert report.prediction_psi is not None
    assert report.prediction_psi > config.monitoring.max_prediction_psi
    assert report.prediction_served["1"] > report.prediction_reference["1"]

    result = monitor(root, "--no-retrain")
    assert result.exit_code == Exit.DRIFT, result.output
    assert "drift found: " in result.output
    assert "drifted window 1 of 2 in a row: not retraining yet" in result.output
    assert f"of {len(config.data.contract.columns)} features over PSI 0.25" in result.output
    [entry] = audit.read(root)
    assert (entry["action"], entry["version"], entry["actor"]) == (
        "drift",
        "1",
        "monitor@example.com",
    )
    assert "predictions PSI" in entry["reason"]
    assert entry["details"]["breaches"] == report.breaches


def test_too_few_samples_are_not_judged(rendered: Path, tmp_path: Path):
    root = serving_spoke(rendered, tmp_path, scale=SCALE)
    toml = root / "slipway.toml"
    toml.write_text(toml.read_text().replace("min_samples = 200", "min_samples = 1000"))
    result = monitor(root)
    assert result.exit_code == 0, result.output
    assert "not judged: fewer than 1000 served rows" in result.output
    [entry] = audit.read(root)
    assert (entry["action"], entry["details"]["judged"]) == ("monitor", False)


@pytest.mark.slow
def test_shifted_traffic_starts_local_retraining_and_records_why(rendered: Path, tmp_path: Path):
    """One real local training run (the expensive part), so the card of the retrained
    version is checked here too."""
    root = serving_spoke(rendered, tmp_path, scale=SCALE)
    toml = root / "slipway.toml"
    toml.write_text(toml.read_text().replace("drift_windows = 2", "drift_windows = 1"))
    result = monitor(root)
    assert result.exit_code == Exit.DRIFT, result.output
    assert "starting local training because of the drift above" in result.output
    assert "retrained: version 2 registered" in result.output
    actions = [(e["action"], e["version"]) for e in audit.read(root)]
    assert actions[:2] == [("drift", "1"), ("retrain", "1")]
    assert ("register", "2") in actions
    retrain = audit.read(root)[1]
    assert retrain["reason"].startswith("drift: ") and "features over PSI" in retrain["reason"]
    assert retrain["details"]["report"].endswith("report.md")
    versions = client(root).search_model_versions("name='tumour-triage'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert audit.verify(root).ok

    # The retrained version is carded from what training recorded: both plots, the
    # champion's metrics on the same rows, the lineage.
    carded = CliRunner().invoke(main, ["--project", str(root), "card", "2"])
    assert carded.exit_code == 0, carded.output
    card = (root / "docs" / "model_card.md").read_text()
    gaps = card.split("## Gaps")[1]
    assert "plot" not in gaps and "champion" not in gaps and "digest" not in gaps, gaps
    assert "no limitations declared" in gaps  # the template declares none: a real gap
    assert "no git commit recorded" in gaps  # this test's spoke is not a git repository
    assert "![confusion matrix](model_card/confusion_matrix.png)" in card
    assert "![roc curve](model_card/roc_curve.png)" in card
    metrics = card.split("## Metrics against the champion")[1].split("##")[0]
    assert "| roc_auc |" in metrics and "| n/a |" not in metrics
