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
