"""`slipway monitor --source batch`: the rows batch jobs scored in the window, judged as
served traffic, for a batch-only team (`[monitoring] sources = ["batch"]`).

The batch jobs are real `slipway score` runs (batch.job.run: the contract check, the
champion's predictions, the MLflow run and the audit entry every batch path leaves) over the
spoke's held-out rows, scaled by 1.5 (in contract, drifted) or not at all. Retraining goes to
the stand-in KFP v2beta1 API through the real kfp.Client, as the capture tests do. A job
outside the window is an MLflow run recorded with an older start time, the only field that
places a job in time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parents[1]))
from kfp_standin import StandIn, running

from slipway.pipelines import registry
from slipway.pipelines.batch import job
from slipway.pipelines.batch.lineage import KIND_BATCH, TAG_KIND, TAG_MODEL_VERSION
from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.training.spoke_code import held_out_rows
from tests import governance_support as support

pytestmark = pytest.mark.xdist_group("monitoring-spoke")

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway/tumour-triage-staging:" + "b" * 40


def batch_spoke(rendered: Path, tmp_path: Path, drift_windows: int = 1) -> Path:
    root = support.make_spoke(rendered, tmp_path, "low")
    toml = root / "slipway.toml"
    text = toml.read_text()
    text = text.replace("id_columns = []", 'id_columns = ["request_id"]', 1)
    text = text.replace("drift_windows = 2", f"drift_windows = {drift_windows}", 1)
    text = text.replace("sources = []", 'sources = ["batch"]', 1)
    toml.write_text(text)
    assert load_config(root).monitoring.sources == ["batch"]
    return root


def score_table(root: Path, traffic: pd.DataFrame, name: str, fmt: str = "csv") -> str:
    """A real `slipway score` of `traffic` (three times over, ids in front); returns the
    input's path."""
    config = load_config(root)
    table = pd.concat([traffic] * 3, ignore_index=True)
    table.insert(0, "request_id", [f"{name}-{i}" for i in range(len(table))])
    source = root.parent / f"{name}.{fmt}"
    if fmt == "csv":
        table.to_csv(source, index=False)
    else:
        table.to_parquet(source, row_group_size=97)
    output = root.parent / f"{name}-scores.parquet"
    outcome = job.run(root, config, job.plan_for(config, str(source), str(output)))
    assert outcome.result.published and outcome.result.scored == len(table)
    return str(source)


def monitor(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        main,
        ["--project", str(root), "monitor", *args],
        env={"SLIPWAY_ACTOR": "monitor-bot", "CI": "true", **(env or {})},
    )


def windows(root: Path) -> list[tuple[str, str, str]]:
    return [
        (e["action"], e["details"].get("decision", e["details"].get("where")), e["details"]["env"])
        for e in audit.read(root)
        if e["action"] in ("drift", "monitor", "retrain")
    ]


def test_a_drifting_batch_window_submits_one_training_run_then_cools_down(
    rendered: Path, tmp_path: Path
):
    root = batch_spoke(rendered, tmp_path)
    _, traffic, _ = support.champion_traffic(root, 1.5)
    score_table(root, traffic, "nightly")
    config = load_config(root)
    truth = held_out_rows(root, config)[config.data.target].tolist() * 3
    labels = tmp_path / "labels.csv"  # ground truth that arrived later, joined on request_id
    labels.write_text(
        f"request_id,{config.data.target}\n"
        + "".join(f"nightly-{i},{y}\n" for i, y in enumerate(truth))
    )
    env = {"MLFLOW_TRACKING_URI": registry.tracking_uri(root), "KF_PIPELINES_TOKEN": "good-token"}
    page = tmp_path / "batch-window.html"
    with running(StandIn()) as api:
        kfp = ["--source", "batch", "--kfp-host", api.url, "--image", IMAGE]
        first = monitor(root, *kfp, "--report", str(page), "--labels", str(labels), env=env)
        assert first.exit_code == Exit.DRIFT, first.output
        assert (
            "batch: " in first.output and "from 1 job(s) recorded in the last 6 h" in first.output
        )
        assert "retraining started on kubeflow" in first.output
        [run] = api.runs.values()
        executors = run["pipeline_spec"]["deploymentSpec"]["executors"]
        assert {e["container"]["image"] for e in executors.values()} == {IMAGE}

        second = monitor(root, *kfp, env=env)  # the same jobs, inside the cool-down
        assert second.exit_code == Exit.DRIFT, second.output
        assert "cool-down until" in second.output
        assert len(api.runs) == 1  # nothing more submitted

    assert windows(root) == [
        ("drift", "retrain", "batch"),
        ("retrain", "kubeflow", "batch"),
        ("drift", "cooldown", "batch"),
    ]
    assert all(
        e["details"]["source"] == "batch"
        for e in audit.read(root)
        if e["action"] in ("drift", "retrain")
    )
    # The HTML report of the batch window: the contract's features, served means from the
    # scored rows, and the window named for what it judged.
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "</html>" in html
    for column in config.data.contract.columns:
        assert f"<td>{column}</td>" in html
    assert "Drift: " in html and "batch jobs of the last 6 h" in html
    assert 'src="data:image/png;base64,' in html
    # Performance once labels arrive: every scored row joined on the batch's id column.
    assert f"{len(truth):,} of {len(truth):,} served rows labelled (100.0%)" in html
    assert "<td>accuracy</td>" in html


def test_an_unshifted_batch_window_starts_nothing_and_an_older_job_is_not_read(
    rendered: Path, tmp_path: Path
):
    """The window holds one unshifted job; a drifted job recorded 10 h ago (window 6 h) is
    not read: with it, the window would drift."""
    root = batch_spoke(rendered, tmp_path)
    version, traffic, _ = support.champion_traffic(root, 1.0)
    score_table(root, traffic, "today", fmt="parquet")
    drifted = score_table(root, traffic * 1.5, "old")
    client = registry.client(root)
    config = load_config(root)
    [recorded] = [
        r
        for r in client.search_runs(
            [client.get_experiment_by_name(config.model_name).experiment_id],
            filter_string=f"params.input = '{drifted}'",
        )
    ]
    client.delete_run(recorded.info.run_id)  # recorded again below, 10 hours earlier
    older = client.create_run(
        client.get_experiment_by_name(config.model_name).experiment_id,
        start_time=int((time.time() - 10 * 3600) * 1000),
        tags={TAG_KIND: KIND_BATCH, TAG_MODEL_VERSION: version},
    )
    client.log_param(older.info.run_id, "input", drifted)
    client.log_param(older.info.run_id, "output", recorded.data.params["output"])
    client.log_metric(older.info.run_id, "scored", 3 * len(traffic))
    client.set_terminated(older.info.run_id, "FINISHED")

    result = monitor(
        root, "--source", "batch", env={"MLFLOW_TRACKING_URI": registry.tracking_uri(root)}
    )
    assert result.exit_code == 0, result.output
    assert "from 1 job(s) recorded in the last 6 h" in result.output
    assert "no drift" in result.output
    assert windows(root) == [("monitor", "no_drift", "batch")]

    # Twelve hours back, the older (drifted) job is in the window too.
    wider = monitor(
        root,
        "--source",
        "batch",
        "--window-hours",
        "12",
        "--no-retrain",
        env={"MLFLOW_TRACKING_URI": registry.tracking_uri(root)},
    )
    assert "from 2 job(s) recorded in the last 12 h" in wider.output, wider.output

    # For machines: the window's source and its rows (the one job's, every row scored).
    as_json = monitor(
        root,
        "--source",
        "batch",
        "--json",
        env={"MLFLOW_TRACKING_URI": registry.tracking_uri(root)},
    )
    document = json.loads(as_json.stdout)
    assert (document["source"], document["samples"]) == ("batch", 3 * len(traffic))


def test_a_source_the_spoke_is_not_set_up_for_is_refused_with_what_to_change(
    rendered: Path, tmp_path: Path
):
    root = batch_spoke(rendered, tmp_path)
    kserve = monitor(root, "--source", "kserve")
    assert kserve.exit_code == Exit.USAGE, kserve.output
    assert "this spoke's scheduled sources are batch ([monitoring] sources)" in kserve.output
    assert 'Add "kserve" to [monitoring] sources in slipway.toml' in kserve.output
    endpoint = monitor(root, "--env", "prod")
    assert endpoint.exit_code == Exit.USAGE, endpoint.output
    assert "pass --source batch (without --env)" in endpoint.output
    listed = monitor(root, "--list-sources")
    assert listed.exit_code == 0 and listed.output.split() == ["batch"]
    assert not [e for e in audit.read(root) if e["action"] in ("drift", "monitor")]
