"""The schedule's command, `slipway monitor --env prod`, as the monitor workflow runs it.

The served traffic is SageMaker data capture in moto's S3 (the stand-in AWS forces), written
in SageMaker's own capture format: the spoke's held-out rows scaled by 1.5 (in contract,
drifted), answered by the real champion. Retraining goes to the stand-in KFP v2beta1 API
through the real kfp.Client; alerts go to a real HTTP server on 127.0.0.1 standing in for a
Slack incoming webhook. Windows are successive runs of the command: the count of drifted
windows and the cool-down live in the spoke's audit trail, as they do between CI runners.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parents[1]))
from kfp_standin import StandIn, running

from slipway.pipelines import registry
from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.registry import client
from slipway.pipelines.training.spoke_code import held_out_rows
from tests import governance_support as support

if TYPE_CHECKING:
    from tests.monitoring.conftest import Hook

# One worker renders the module's spoke once (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("monitoring-spoke")

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway/tumour-triage-staging:" + "a" * 40
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for key, value in AWS.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


def capture_traffic(root: Path, scale: float) -> tuple[str, list[str]]:
    """Write the champion's answers to the held-out rows (x scale) as SageMaker capture in
    moto's S3, one request per row with an InferenceId; returns the bucket and the ids."""
    import boto3

    columns = list(load_config(root).data.contract.columns)
    _, traffic, model = support.champion_traffic(root, scale)
    now = datetime.now(UTC)
    lines, ids = [], []
    for repeat in range(2):  # the held-out rows twice: past min_samples
        for i, (row, prediction) in enumerate(
            zip(traffic.itertuples(index=False), model.predict(traffic), strict=True)
        ):
            request = {"dataframe_split": {"columns": columns, "data": [list(row)]}}
            ids.append(f"req-{repeat}-{i}")
            lines.append(
                json.dumps(
                    {
                        "captureData": {
                            "endpointInput": {
                                "observedContentType": "application/json",
                                "mode": "INPUT",
                                "data": json.dumps(request),
                                "encoding": "JSON",
                            },
                            "endpointOutput": {
                                "observedContentType": "application/json",
                                "mode": "OUTPUT",
                                "data": json.dumps({"predictions": [int(prediction)]}),
                                "encoding": "JSON",
                            },
                        },
                        "eventMetadata": {
                            "eventId": f"e-{len(ids)}",
                            "inferenceId": ids[-1],
                            "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        },
                        "eventVersion": "0",
                    }
                )
            )
    bucket = "tumour-triage-prod-123456789012"
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    key = f"data-capture/tumour-triage-prod/AllTraffic/{now:%Y/%m/%d/%H}/00-capture.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode())
    return bucket, ids


def spoke(rendered: Path, tmp_path: Path, extra: str = "") -> Path:
    root = support.make_spoke(rendered, tmp_path, "low")
    toml = root / "slipway.toml"
    toml.write_text(toml.read_text() + extra)
    return root


def monitor(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        main,
        ["--project", str(root), "monitor", "--env", "prod", *args],
        env={"SLIPWAY_ACTOR": "monitor-bot", "CI": "true", **(env or {})},
    )


def test_lasting_drift_submits_one_training_run_then_cools_down(
    rendered: Path, tmp_path: Path, aws: None, hook: Hook
):
    """Window 1 drifts: wait (drift_windows = 2). Window 2 drifts: one Kubeflow run on the
    commit's image. Windows 3 and 4 drift inside the cool-down: nothing submitted. Each window
    writes an HTML report logged to the champion's run; labels joined on the request ids
    give the performance section."""
    root = spoke(rendered, tmp_path)
    toml = root / "slipway.toml"  # the template's [batch] section names no id column yet
    toml.write_text(toml.read_text().replace("id_columns = []", 'id_columns = ["request_id"]', 1))
    _, ids = capture_traffic(root, scale=1.5)
    config = load_config(root)
    truth = held_out_rows(root, config)[config.data.target].tolist() * 2
    labels = tmp_path / "labels.csv"
    labels.write_text(
        f"request_id,{config.data.target}\n"
        + "".join(f"{i},{y}\n" for i, y in zip(ids, truth, strict=True))
    )
    uri = registry.tracking_uri(root)
    env = {
        "MLFLOW_TRACKING_URI": uri,
        "KF_PIPELINES_TOKEN": "good-token",
        "SLIPWAY_ALERT_WEBHOOK": hook.url,
    }
    with running(StandIn()) as api:
        kfp = ["--kfp-host", api.url, "--image", IMAGE]
        reports = [tmp_path / f"window-{n}.html" for n in (1, 2, 3)]
        first = monitor(root, *kfp, "--report", str(reports[0]), "--labels", str(labels), env=env)
        assert first.exit_code == Exit.DRIFT, first.output
        assert "drifted window 1 of 2 in a row: not retraining yet" in first.output
        assert api.runs == {}

        second = monitor(root, *kfp, "--report", str(reports[1]), env=env)
        assert second.exit_code == Exit.DRIFT, second.output
        assert "retraining started on kubeflow" in second.output
        [run] = api.runs.values()
        executors = run["pipeline_spec"]["deploymentSpec"]["executors"]
        assert {e["container"]["image"] for e in executors.values()} == {IMAGE}

        # The run of drifted windows starts again after retraining...
        third = monitor(root, *kfp, "--report", str(reports[2]), env=env)
        assert third.exit_code == Exit.DRIFT, third.output
        assert "drifted window 1 of 2 in a row" in third.output
        # ...and when it is long enough again, the cool-down holds it.
        fourth = monitor(root, *kfp, env=env)
        assert fourth.exit_code == Exit.DRIFT, fourth.output
        assert "2 drifted window(s) in a row, but retraining started at" in fourth.output
        assert "cool-down until" in fourth.output
        assert len(api.runs) == 1  # nothing more submitted

    entries = [e for e in audit.read(root) if e["action"] in ("drift", "monitor", "retrain")]
    assert [
        (
            e["action"],
            e["details"]["decision"] if e["action"] != "retrain" else e["details"]["where"],
        )
        for e in entries
    ] == [
        ("drift", "wait"),
        ("drift", "retrain"),
        ("retrain", "kubeflow"),
        ("drift", "wait"),
        ("drift", "cooldown"),
    ]
    started = entries[2]
    assert started["details"]["run_id"] == run["run_id"] and started["actor"] == "monitor-bot"
    assert all(e["details"]["env"] == "prod" for e in entries)

    # The alerts: drift in each window, one retraining started (with the run's page).
    assert sum("*tumour-triage*: drift. prod" in t for t in hook.texts) == 4, hook.texts
    [retraining] = [t for t in hook.texts if "*tumour-triage*: retraining started." in t]
    assert run["run_id"] in retraining and "drift in 2 window(s) in a row (prod)" in retraining

    # The first window's report: a real page with the contract's features, the prediction
    # drift and the performance on the labelled rows.
    page = reports[0].read_text()
    assert page.startswith("<!doctype html>") and "</html>" in page
    for column in config.data.contract.columns:
        assert f"<td>{column}</td>" in page
    assert "Prediction drift (PSI" in page and 'src="data:image/png;base64,' in page
    assert f"{len(ids):,} of {len(ids):,} served rows labelled (100.0%)" in page
    assert "<td>accuracy</td>" in page and "drifted window 1 of 2" in page
    assert "No labels given yet" in reports[1].read_text()
    # ...logged to the champion's run, and named in the audit entry.
    version = client(root).get_model_version(config.model_name, "1")
    listed = client(root).list_artifacts(str(version.run_id), "monitoring/prod")
    assert len(listed) >= 1 and all(a.path.endswith(".html") for a in listed)
    assert entries[0]["details"]["html"].startswith(f"runs:/{version.run_id}/monitoring/prod/")

    # The model card links the windows' reports.
    carded = CliRunner().invoke(main, ["--project", str(root), "card", "1"])
    assert carded.exit_code == 0, carded.output
    card = (root / "docs" / "model_card.md").read_text()
    section = card.split("## Monitoring")[1].split("## Gaps")[0]
    assert "4 window(s) monitored, 4 with drift" in section
    assert f"[report](runs:/{version.run_id}/monitoring/prod/" in section
    assert "| prod | drift | cooldown |" in section
    rollouts = card.split("## Rollout history")[1].split("## Monitoring")[0]
    assert "| drift |" not in rollouts and "| retrain |" in rollouts


def test_a_ci_runner_never_trains_when_retraining_is_due(rendered: Path, tmp_path: Path, aws: None):
    root = spoke(rendered, tmp_path)
    toml = root / "slipway.toml"
    toml.write_text(toml.read_text().replace("drift_windows = 2", "drift_windows = 1"))
    capture_traffic(root, scale=1.5)
    result = monitor(root)
    assert result.exit_code == Exit.USAGE, result.output
    assert "training never runs here: pass --kfp-host URL --image REF" in result.output
    assert "warning: the audit trail is" in result.output and "SLIPWAY_STATE_URL" in result.output
    actions = [e["action"] for e in audit.read(root)]
    assert "drift" in actions and "retrain" not in actions
    versions = client(root).search_model_versions("name='tumour-triage'")
    assert len(versions) == 1  # nothing trained on the runner


def test_unshifted_window_is_recorded_and_starts_nothing(rendered: Path, tmp_path: Path, aws: None):
    root = spoke(rendered, tmp_path)
    capture_traffic(root, scale=1.0)
    result = monitor(root, "--window-hours", "1")
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output and "captured in the last 1 h" in result.output
    [entry] = [e for e in audit.read(root) if e["action"] in ("drift", "monitor")]
    assert entry["action"] == "monitor" and entry["details"]["decision"] == "no_drift"


def test_the_kubeflow_schedule_runs_the_same_command_with_its_secrets_out_of_the_spec(
    rendered: Path, tmp_path: Path
):
    """`--kfp-schedule`: a recurring run (one at a time, no catch-up) of a one-step pipeline
    that runs the workflow's command in the commit's image; secrets come from the namespace's
    Kubernetes Secret, the spec holds none."""
    root = spoke(rendered, tmp_path)
    uri = "https://mlflow.example.com"
    with running(StandIn(multi_user=True, namespaces={"team-a": {"good-token"}})) as api:
        result = CliRunner().invoke(
            main,
            [
                "--project", str(root), "monitor", "--env", "prod", "--kfp-host", api.url,
                "--image", IMAGE, "--namespace", "team-a", "--kfp-schedule", "0 17 */6 * * *",
                "--service-account", "monitor-irsa",
            ],
            env={"MLFLOW_TRACKING_URI": uri, "KF_PIPELINES_TOKEN": "good-token"},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        [recurring] = api.recurring_runs.values()
    assert "scheduled tumour-triage-monitor-prod" in result.output
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 17 */6 * * *"
    assert (int(recurring["max_concurrency"]), recurring["no_catchup"]) == (1, True)
    assert recurring["service_account"] == "monitor-irsa"
    assert recurring["mode"] == "ENABLE" and api.runs == {}  # nothing judged or trained now
    # With a platform spec, kfp sends the IR and the Kubernetes config side by side.
    spec, platform = (recurring["pipeline_spec"][k] for k in ("pipeline_spec", "platform_spec"))
    [executor] = spec["deploymentSpec"]["executors"].values()
    container = executor["container"]
    assert container["image"] == IMAGE and container["command"] == ["sh", "-c"]
    [script] = container["args"]
    assert script.startswith("slipway --project /app monitor --env prod --source capture --kfp")
    assert (
        f"--image {IMAGE} --report /tmp/monitor-prod-capture.html --namespace team-a" in script
        and script.endswith('[ "$?" -eq 9 ]')
    )
    assert {e["name"]: e["value"] for e in container["env"]}["MLFLOW_TRACKING_URI"] == uri
    secrets = json.dumps(platform)
    assert '"secretName": "slipway-monitor"' in secrets and "SLIPWAY_STATE_URL" in secrets
    assert "good-token" not in json.dumps(recurring)  # the token is not in the spec

    wrong = CliRunner().invoke(
        main,
        ["--project", str(root), "monitor", "--env", "prod", "--kfp-host", "http://x",
         "--image", IMAGE, "--kfp-schedule", "17 */6 * * *"],
    )  # fmt: skip
    assert wrong.exit_code == 2 and "six fields, seconds first" in wrong.output


def test_the_kubeflow_schedule_of_a_kserve_and_batch_team_has_one_step_per_source(
    rendered: Path, tmp_path: Path
):
    """A team serving on KServe that also scores batches: one recurring run, a step per
    source, neither per environment; a source it is not set up for is refused first."""
    root = spoke(rendered, tmp_path)
    toml = root / "slipway.toml"
    text = toml.read_text().replace("sources = []", 'sources = ["kserve", "batch"]', 1)
    toml.write_text(
        text.replace('sample_store = ""', 'sample_store = "s3://team-samples/slipway/samples"', 1)
    )
    assert load_config(root).monitoring.sources == ["kserve", "batch"]
    schedule = ["--kfp-host", "", "--image", IMAGE, "--kfp-schedule", "0 17 */6 * * *"]
    with running(StandIn()) as api:
        schedule[1] = api.url
        refused = CliRunner().invoke(
            main, ["--project", str(root), "monitor", "--source", "capture", *schedule]
        )
        assert refused.exit_code == Exit.USAGE, refused.output
        assert "scheduled sources are kserve, batch" in refused.output
        assert "nothing was scheduled" in refused.output and api.recurring_runs == {}
        result = CliRunner().invoke(
            main,
            ["--project", str(root), "monitor", *schedule],
            env={
                "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
                "KF_PIPELINES_TOKEN": "good-token",
            },
        )
        assert result.exit_code == 0, result.output
        [recurring] = api.recurring_runs.values()
    assert "scheduled tumour-triage-monitor " in result.output
    assert "sources kserve, batch, one step each" in result.output
    executors = recurring["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"]
    scripts = sorted(e["container"]["args"][0] for e in executors.values())
    assert [s.split(" --kfp-host")[0] for s in scripts] == [
        "slipway --project /app monitor --source batch",
        "slipway --project /app monitor --source kserve",
    ]
    assert all("--env" not in s and s.endswith('[ "$?" -eq 9 ]') for s in scripts)
