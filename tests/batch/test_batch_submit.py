"""`slipway score --kfp-host`: the batch pipeline submitted through the real kfp.Client to a
stand-in of the KFP v2beta1 API (tests/kfp_standin.py; no cluster runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.exitcodes import Exit
from tests.kfp_standin import Snapshot, StandIn, running

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway/spoke-staging:0a1b2c3d"
REGISTRY = "https://mlflow.example.com"


@pytest.fixture(autouse=True)
def isolated_kfp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kfp.Client reads and writes ~/.config/kfp/context.json: a test's HOME is its own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KF_PIPELINES_TOKEN", "KF_PIPELINES_SA_TOKEN_PATH", "KF_PIPELINES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def _score(spoke: Path, *args: str, env: dict[str, str]):
    return CliRunner().invoke(
        main,
        [
            "--project",
            str(spoke),
            "score",
            "s3://team/in.parquet",
            "-o",
            "s3://team/out.parquet",
            *args,
        ],
        env=env,
    )


def test_score_submits_the_batch_pipeline_on_the_image_with_its_parameters(render):
    spoke = render()
    state = StandIn(
        script=[Snapshot("RUNNING")], multi_user=True, namespaces={"team-a": {"good-token"}}
    )
    with running(state) as api:
        result = _score(
            spoke,
            "--kfp-host",
            api.url,
            "--image",
            IMAGE,
            "--namespace",
            "team-a",
            "--alias",
            "champion",
            env={"KF_PIPELINES_TOKEN": "good-token", "MLFLOW_TRACKING_URI": REGISTRY},
        )
    assert result.exit_code == Exit.OK, result.output
    (run,) = api.runs.values()
    spec = run["pipeline_spec"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE}
    assert set(spec["root"]["dag"]["tasks"]) == {"plan-batch", "score-shards", "merge-batch"}
    assert run["runtime_config"]["parameters"] == {
        "input": "s3://team/in.parquet",
        "output": "s3://team/out.parquet",
        "version": "",
        "alias": "champion",
        "tracking_uri": REGISTRY,
    }
    assert f"run {run['run_id']}" in result.output
    compiled = yaml.safe_load((spoke / "build" / "pipelines" / "batch.yaml").read_text())
    assert compiled["pipelineInfo"]["name"].endswith("-batch")


def test_a_submission_without_the_teams_registry_or_image_sends_nothing(render):
    spoke = render()
    with running(StandIn()) as api:
        no_registry = _score(
            spoke, "--kfp-host", api.url, "--image", IMAGE, env={"KF_PIPELINES_TOKEN": "x"}
        )
        no_image = _score(spoke, "--kfp-host", api.url, env={"MLFLOW_TRACKING_URI": REGISTRY})
        stray = _score(spoke, "--image", IMAGE, env={})
    assert no_registry.exit_code == Exit.USAGE and "MLFLOW_TRACKING_URI" in no_registry.output
    assert no_image.exit_code == Exit.USAGE and "needs --image" in no_image.output
    assert stray.exit_code == Exit.USAGE and "only apply with --kfp-host" in stray.output
    assert api.requests == []


def test_schedule_creates_one_recurring_run_at_a_time_without_backfill(render):
    spoke = render()
    with running(StandIn()) as api:
        result = _score(
            spoke,
            "--kfp-host",
            api.url,
            "--image",
            IMAGE,
            "--schedule",
            "0 0 2 * * *",
            env={"KF_PIPELINES_TOKEN": "good-token", "MLFLOW_TRACKING_URI": REGISTRY},
        )
        crontab = _score(
            spoke,
            "--kfp-host",
            api.url,
            "--image",
            IMAGE,
            "--schedule",
            "0 2 * * *",
            env={"KF_PIPELINES_TOKEN": "good-token", "MLFLOW_TRACKING_URI": REGISTRY},
        )
    assert result.exit_code == Exit.OK, result.output
    (recurring,) = api.recurring_runs.values()
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert int(recurring["max_concurrency"]) == 1
    assert recurring["no_catchup"] is True
    assert recurring["runtime_config"]["parameters"]["output"] == "s3://team/out.parquet"
    images = {
        e["container"]["image"]
        for e in recurring["pipeline_spec"]["deploymentSpec"]["executors"].values()
    }
    assert images == {IMAGE}
    assert f"recurring run {recurring['recurring_run_id']}" in result.output
    assert api.runs == {}  # a schedule, not a run now
    assert crontab.exit_code == Exit.USAGE
    assert "Kubeflow's cron has six, seconds first: '0 0 2 * * *'" in crontab.output
    assert len(api.recurring_runs) == 1
