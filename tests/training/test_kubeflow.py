"""`slipway compile --image` and `slipway train --kfp-host`, against a stand-in KFP API.

No Kubernetes runs here. The compiled IR is checked by parsing it into kfp's PipelineSpec
protobuf; submission, waiting, namespaces, tokens and every exit code are checked with the
real kfp.Client talking real HTTP to a stand-in of the KFP v2beta1 API (tests/kfp_standin.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: kfp_standin
from kfp_standin import Snapshot, StandIn, running

from slipway.pipelines import registry
from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.training.images import ImageRefError, validate_image_ref

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway/spoke-staging:0a1b2c3d"
TASKS = ["load-data", "validate-data", "train-model", "evaluate-model", "gate-model"]
ALL_TASKS = [*TASKS, "register-model"]


@pytest.fixture(autouse=True)
def isolated_kfp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kfp.Client reads and writes ~/.config/kfp/context.json: a test's HOME is its own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SLIPWAY_KFP_POLL_SECONDS", "0")
    for name in (
        "KF_PIPELINES_TOKEN",
        "KF_PIPELINES_SA_TOKEN_PATH",
        "KF_PIPELINES_UI_ENDPOINT",
        "KF_PIPELINES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def spoke(render) -> Path:
    return render()


def _spec(document: dict[str, Any]) -> pipeline_spec_pb2.PipelineSpec:
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(document.get("pipeline_spec", document), spec)
    return spec


def _images(spec: pipeline_spec_pb2.PipelineSpec) -> dict[str, str]:
    executors = json_format.MessageToDict(spec)["deploymentSpec"]["executors"]
    return {name: executor["container"]["image"] for name, executor in executors.items()}


def _train(spoke: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    uri = registry.tracking_uri(spoke)
    return CliRunner().invoke(
        main,
        ["--project", str(spoke), "train", *args],
        env={"MLFLOW_TRACKING_URI": uri, **(env or {})},
    )


def _submit(api: StandIn, spoke: Path, *args: str, token: str | None = "good-token") -> Result:
    env = {"KF_PIPELINES_TOKEN": token} if token else {}
    return _train(spoke, "--kfp-host", api.url, "--image", IMAGE, *args, env=env)


def _steps_done(*names: str, last: str = "SUCCEEDED") -> dict[str, str]:
    return {name: last if i == len(names) - 1 else "SUCCEEDED" for i, name in enumerate(names)}


# -- the image ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "python:3.11-slim",
        "ghcr.io/acme/churn:1.2.3",
        "localhost:5000/spoke",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway/churn-staging:4f2a9c1",
        "registry.example.com/a/b/c@sha256:" + "ab" * 32,
        "registry.example.com/spoke:v1@sha256:" + "0" * 64,
    ],
)
def test_image_references_that_are_valid(ref):
    assert validate_image_ref(ref) == ref


@pytest.mark.parametrize(
    "ref, why",
    [
        ("", "empty"),
        ("Registry.example.com/Spoke:1", "does not match"),
        ("https://registry.example.com/spoke:1", "no scheme"),
        ("spoke:has space", "whitespace"),
        ("spoke:", "does not match"),
        ("spoke@sha256:abc", "does not match"),
        ("spoke:" + "t" * 129, "does not match"),
    ],
)
def test_image_references_that_are_not(ref, why):
    with pytest.raises(ImageRefError, match=why) as raised:
        validate_image_ref(ref)
    assert raised.value.exit_code == Exit.USAGE


def test_compile_with_image_puts_it_on_every_executor_of_both_pipelines(spoke):
    result = CliRunner().invoke(main, ["--project", str(spoke), "compile", "--image", IMAGE])
    assert result.exit_code == 0, result.output
    for name, expected in (("training", 6), ("deploy", 4)):
        spec = _spec(yaml.safe_load((spoke / "build" / "pipelines" / f"{name}.yaml").read_text()))
        images = _images(spec)
        assert len(images) == expected, name
        assert set(images.values()) == {IMAGE}, name


def test_compile_puts_the_image_even_on_a_component_the_spoke_built_on_another(spoke):
    # A team that wires its own step on some other image: that step could not import the
    # spoke's code on a cluster, so --image goes on it too.
    (spoke / "pipelines" / "training.py").write_text(
        "from kfp import dsl\n"
        "from slipway.pipelines.training import training_pipeline\n\n"
        "@dsl.component(base_image='python:3.12', install_kfp_package=False)\n"
        "def extra() -> str:\n    return 'x'\n\n"
        "def build_pipeline(config):\n"
        "    @dsl.pipeline(name='custom')\n"
        "    def pipeline(project_root: str = '.'):\n"
        "        extra()\n"
        "    return pipeline\n"
    )
    result = CliRunner().invoke(main, ["--project", str(spoke), "compile", "--image", IMAGE])
    assert result.exit_code == 0, result.output
    spec = _spec(yaml.safe_load((spoke / "build" / "pipelines" / "training.yaml").read_text()))
    assert set(_images(spec).values()) == {IMAGE}


def test_compile_without_image_keeps_the_base_image_and_says_so(spoke):
    result = CliRunner().invoke(main, ["--project", str(spoke), "compile"])
    assert result.exit_code == 0, result.output
    spec = _spec(yaml.safe_load((spoke / "build" / "pipelines" / "training.yaml").read_text()))
    assert set(_images(spec).values()) == {"python:3.11-slim"}
    assert "for a cluster pass --image" in result.output


def test_compile_refuses_an_image_that_is_not_a_reference_and_writes_nothing(spoke):
    result = CliRunner().invoke(
        main, ["--project", str(spoke), "compile", "--image", "http://x/spoke"]
    )
    assert result.exit_code == Exit.USAGE
    assert "is not an image reference" in result.output
    assert "Traceback" not in result.output
    assert not (spoke / "build" / "pipelines").exists()


# -- submission ------------------------------------------------------------------------------


def test_submission_without_image_is_refused_naming_the_image_to_pass(spoke):
    with running(StandIn()) as api:
        result = _train(spoke, "--kfp-host", api.url, env={"KF_PIPELINES_TOKEN": "good-token"})
    assert result.exit_code == Exit.USAGE
    assert "--kfp-host needs --image" in result.output
    slug = load_config(spoke).project.slug
    assert f".dkr.ecr.eu-west-1.amazonaws.com/slipway/{slug}-staging:" in result.output
    assert "python:3.11-slim has neither" in result.output
    assert api.requests == []


def test_kubeflow_options_without_kfp_host_are_refused_not_ignored(spoke):
    result = _train(spoke, "--image", IMAGE, "--namespace", "team-a", "--wait")
    assert result.exit_code == Exit.USAGE
    assert "--image, --namespace, --wait only apply to a Kubeflow submission" in result.output
    assert not (spoke / ".slipway" / "pipeline-runs").exists()  # nothing trained locally


def test_submission_with_a_bad_image_is_refused_before_any_request(spoke):
    with running(StandIn()) as api:
        result = _train(
            spoke, "--kfp-host", api.url, "--image", "Not An Image", env={"KF_PIPELINES_TOKEN": "x"}
        )
    assert result.exit_code == Exit.USAGE
    assert "is not an image reference" in result.output
    assert api.requests == []


def test_submit_and_wait_sends_the_spec_on_the_image_with_the_parameters(spoke):
    script = [
        Snapshot("PENDING"),
        Snapshot("RUNNING", {"load-data": "RUNNING"}),
        Snapshot("RUNNING", _steps_done("load-data", "validate-data", last="RUNNING")),
        Snapshot("SUCCEEDED", _steps_done(*ALL_TASKS)),
    ]
    state = StandIn(script=script, multi_user=True, namespaces={"team-a": {"good-token"}})
    with running(state) as api:
        result = _submit(api, spoke, "--namespace", "team-a", "--experiment", "nightly", "--wait")
    # The registry is this machine's sqlite file and no step ran: nothing to read there.
    assert result.exit_code == Exit.OK, result.output
    (run,) = api.runs.values()
    spec = _spec(run["pipeline_spec"])
    assert set(_images(spec).values()) == {IMAGE}
    parameters = run["runtime_config"]["parameters"]
    assert set(parameters) == set(spec.root.input_definitions.parameters) - {"project_root"}
    assert parameters["tracking_uri"] == registry.tracking_uri(spoke)
    assert "pipeline_root" not in run["runtime_config"]
    (experiment,) = api.experiments.values()
    assert (experiment["display_name"], experiment["namespace"]) == ("nightly", "team-a")
    assert {r.authorization for r in api.requests} == {"Bearer good-token"}
    # Every task change once, in order; no root or driver nodes.
    lines = [line.split() for line in result.output.splitlines() if line.startswith("  ")]
    changes = [parts for parts in lines if len(parts) == 2 and parts[0] in ALL_TASKS]
    assert changes[:3] == [
        ["load-data", "RUNNING"],
        ["load-data", "SUCCEEDED"],
        ["validate-data", "RUNNING"],
    ]
    assert changes[-1] == ["register-model", "SUCCEEDED"]
    assert len(changes) == 2 + len(ALL_TASKS)
    assert f"{api.url}/#/runs/details/{run['run_id']}" in result.output
    assert "ended SUCCEEDED" in result.output


def test_without_wait_it_returns_after_submitting(spoke):
    state = StandIn(script=[Snapshot("RUNNING")])
    with running(state) as api:
        result = _submit(api, spoke)
    assert result.exit_code == Exit.OK, result.output
    (run_id,) = api.runs
    assert f"/#/runs/details/{run_id}" in result.output
    assert not any(r.path.endswith(run_id) for r in api.requests)
    (experiment,) = api.experiments.values()
    assert experiment["display_name"] == load_config(spoke).model_name  # by default


def test_pipeline_root_from_slipway_toml_is_sent_and_the_flag_wins(spoke):
    toml = spoke / "slipway.toml"
    toml.write_text(
        toml.read_text().replace(
            'base_image = "python:3.11-slim"',
            'base_image = "python:3.11-slim"\npipeline_root = "s3://team-artifacts/kfp"',
        )
    )
    with running(StandIn(script=[Snapshot("RUNNING")])) as api:
        assert _submit(api, spoke).exit_code == 0
        assert _submit(api, spoke, "--pipeline-root", "s3://other/x").exit_code == 0
    roots = [run["runtime_config"].get("pipeline_root") for run in api.runs.values()]
    assert roots == ["s3://team-artifacts/kfp", "s3://other/x"]


def test_a_pipeline_root_that_is_not_an_object_store_url_is_a_config_error(spoke):
    toml = spoke / "slipway.toml"
    toml.write_text(
        toml.read_text().replace(
            'base_image = "python:3.11-slim"',
            'base_image = "python:3.11-slim"\npipeline_root = "/tmp/artifacts"',
        )
    )
    result = CliRunner().invoke(main, ["--project", str(spoke), "check"])
    assert result.exit_code == Exit.CONFIG
    assert "training.pipeline_root" in result.output


# -- authentication --------------------------------------------------------------------------


def test_service_account_token_file_is_read_on_every_request(spoke, tmp_path):
    token = tmp_path / "token"
    token.write_text("sa-token-1\n")

    def rotate(run: dict[str, Any]) -> None:  # the kubelet refreshes a projected token
        token.write_text("sa-token-2\n")

    script = [Snapshot("RUNNING"), Snapshot("SUCCEEDED", _steps_done(*ALL_TASKS))]
    state = StandIn(tokens={"sa-token-1", "sa-token-2"}, script=script, on_run=rotate)
    with running(state) as api:
        result = _submit(api, spoke, "--sa-token-path", str(token), "--wait", token=None)
    assert result.exit_code == Exit.OK, result.output
    seen = [r.authorization for r in api.requests]
    assert seen[0] == "Bearer sa-token-1"
    assert seen[-1] == "Bearer sa-token-2"


def test_token_file_from_kfp_environment_variable(spoke, tmp_path):
    token = tmp_path / "token"
    token.write_text("sa-token-1")
    with running(StandIn(tokens={"sa-token-1"}, script=[Snapshot("RUNNING")])) as api:
        result = _train(
            spoke,
            "--kfp-host",
            api.url,
            "--image",
            IMAGE,
            env={"KF_PIPELINES_SA_TOKEN_PATH": str(token)},
        )
    assert result.exit_code == Exit.OK, result.output
    assert len(api.runs) == 1


def test_a_missing_token_file_is_a_usage_error(spoke, tmp_path):
    with running(StandIn()) as api:
        result = _submit(api, spoke, "--sa-token-path", str(tmp_path / "nope"), token=None)
    assert result.exit_code == Exit.USAGE
    assert "does not exist" in result.output
    assert api.requests == []


@pytest.mark.parametrize("token", [None, "stolen-token"])
def test_a_missing_or_wrong_token_is_unauthorised_and_submits_nothing(spoke, token):
    with running(StandIn()) as api:
        result = _submit(api, spoke, token=token)
    assert result.exit_code == Exit.UNAUTHORISED, result.output
    assert "did not accept" in result.output
    assert "KF_PIPELINES_TOKEN" in result.output
    assert api.runs == {}
    assert len(api.requests) == 1  # one healthz, not kfp's five retries 5 s apart


def test_a_namespace_the_token_may_not_use_is_refused_with_403(spoke):
    state = StandIn(multi_user=True, namespaces={"team-a": {"good-token"}})
    with running(state) as api:
        result = _submit(api, spoke, "--namespace", "team-b")
    assert result.exit_code == Exit.UNAUTHORISED, result.output
    assert "refused" in result.output and "'team-b'" in result.output
    assert "not authorized in namespace 'team-b'" in result.output
    assert api.runs == {}


def test_multi_user_kubeflow_without_namespace_is_a_usage_error(spoke):
    state = StandIn(multi_user=True, namespaces={"team-a": {"good-token"}})
    with running(state) as api:
        result = _submit(api, spoke)
    assert result.exit_code == Exit.USAGE
    assert "pass --namespace" in result.output
    assert api.runs == {}


def test_an_experiment_the_server_does_not_know_is_a_usage_error(spoke):
    with running(StandIn(lose_experiments=True)) as api:
        result = _submit(api, spoke, "--experiment", "gone")
    assert result.exit_code == Exit.USAGE, result.output
    assert "does not know namespace None or experiment 'gone'" not in result.output
    assert "experiment 'gone'" in result.output
    assert api.runs == {}


def test_an_ingress_login_page_is_unauthorised_not_an_empty_success(spoke):
    with running(StandIn(login_page=True)) as api:
        result = _submit(api, spoke)
    assert result.exit_code == Exit.UNAUTHORISED, result.output
    assert "login page" in result.output
    assert api.runs == {}


def test_a_redirect_to_another_origin_never_receives_the_token(spoke):
    # Reproduction: urllib followed the 302 with the Authorization header, so whatever
    # origin the redirect named (a compromised ingress, a typo'd host) got the token.
    with running(StandIn()) as elsewhere:
        target = f"{elsewhere.url}/apis/v2beta1/healthz"
        with running(StandIn(redirect_to=target)) as api:
            result = _submit(api, spoke)
        assert elsewhere.requests == []
    assert result.exit_code == Exit.UNAUTHORISED, result.output
    assert f"redirected the API call to {target}" in result.output
    assert "the token was not sent there" in result.output
    assert [r.path for r in api.requests] == ["/apis/v2beta1/healthz"] and api.runs == {}


@pytest.mark.parametrize("host", ["http://kfp.example.com/pipeline", "http://10.0.0.7:8888"])
def test_plain_http_off_loopback_is_refused_before_any_request(spoke, host):
    result = _train(spoke, "--kfp-host", host, "--image", IMAGE, env={"KF_PIPELINES_TOKEN": "t"})
    assert result.exit_code == Exit.USAGE, result.output
    assert "plain http: the token would cross the network in clear text" in result.output
    assert "--kfp-allow-http" in result.output and "nothing was submitted" in result.output


def test_plain_http_is_accepted_on_loopback_and_where_asked(spoke):
    with running(StandIn()) as api:  # http://127.0.0.1:PORT, as every test here
        assert _submit(api, spoke).exit_code == Exit.OK
        # localhost by name, and a non-loopback http with the explicit opt-in, both reach it.
        url = api.url.replace("127.0.0.1", "localhost")
        result = _train(
            spoke, "--kfp-host", url, "--image", IMAGE, env={"KF_PIPELINES_TOKEN": "good-token"}
        )
        assert result.exit_code == Exit.OK, result.output
    from slipway.pipelines.training.kubeflow import _check_transport

    _check_transport("http://ml-pipeline.kubeflow:8888", allow_http=True)  # no error


def test_an_unreachable_host_is_exit_8(spoke):
    with running(StandIn()) as api:
        url = api.url
    result = _train(spoke, "--kfp-host", url, "--image", IMAGE)
    assert result.exit_code == Exit.UNREACHABLE, result.output
    assert f"cannot reach Kubeflow Pipelines at {url}" in result.output
    assert "nothing was submitted" in result.output


# -- how runs end ----------------------------------------------------------------------------


def test_a_failed_run_names_the_failing_task_and_its_log(spoke):
    failed = {**_steps_done("load-data", "validate-data"), "train-model": "FAILED"}
    script = [Snapshot("RUNNING", {"load-data": "RUNNING"}), Snapshot("FAILED", failed)]
    state = StandIn(script=script, pods={"train-model": "spoke-training-x7k2p-3301"})
    with running(state) as api:
        result = _submit(api, spoke, "--namespace", "team-a", "--wait")
    assert result.exit_code == Exit.ERROR, result.output
    (run_id,) = api.runs
    assert "task 'train-model' failed" in result.output
    assert "kubectl logs -n team-a spoke-training-x7k2p-3301 -c main" in result.output
    assert f"/#/runs/details/{run_id}" in result.output
    assert "Traceback" not in result.output


def test_a_canceled_run_ends_the_wait(spoke):
    with running(StandIn(script=[Snapshot("RUNNING"), Snapshot("CANCELED")])) as api:
        result = _submit(api, spoke, "--wait")
    assert result.exit_code == Exit.ERROR, result.output
    assert "canceled" in result.output


def test_a_run_still_going_at_the_timeout_is_exit_10_and_left_running(spoke):
    with running(StandIn(script=[Snapshot("RUNNING", {"load-data": "RUNNING"})])) as api:
        result = _submit(api, spoke, "--wait", "--timeout", "0")
    assert result.exit_code == Exit.TIMED_OUT, result.output
    (run_id,) = api.runs
    assert "still running" in result.output and f"/#/runs/details/{run_id}" in result.output
    assert not any("terminate" in r.path for r in api.requests)


def _record_outcome(spoke: Path, status: str) -> Any:
    """What the steps on the cluster would record in the registry (here: the spoke's own
    sqlite registry, which this machine reads back) for the run just submitted."""
    from mlflow import MlflowClient

    def on_run(run: dict[str, Any]) -> None:
        uri = run["runtime_config"]["parameters"]["tracking_uri"]
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = registry.experiment_id(client, spoke, load_config(spoke).model_name)
        mlflow_run = client.create_run(
            experiment,
            tags={
                registry.TAG_RUN_KEY: run["runtime_config"]["parameters"]["run_key"],
                registry.TAG_OUTCOME: status,
                registry.TAG_GATE_VERDICT: "rejected",
                registry.TAG_GATE_BASELINE: "champion v3",
            },
        )
        for metric in ("roc_auc", "accuracy", "f1", "precision", "recall"):
            client.log_metric(mlflow_run.info.run_id, f"test_{metric}", 0.8)
            client.log_metric(mlflow_run.info.run_id, f"champion_{metric}", 0.9)
        client.log_text(mlflow_run.info.run_id, "roc_auc 0.8000 < champion 0.9000\n", "gate.txt")
        violation = {"column": "mean_radius", "rule": "max", "detail": "71.2 > 57", "count": 3}
        client.log_dict(mlflow_run.info.run_id, {"violations": [violation]}, "violations.json")

    return on_run


def test_a_gate_rejection_on_the_cluster_is_exit_5_as_locally(spoke):
    failed = {**_steps_done(*TASKS[:-1]), "gate-model": "FAILED"}
    script = [Snapshot("RUNNING"), Snapshot("FAILED", failed)]
    with running(StandIn(script=script, on_run=_record_outcome(spoke, "gate_rejected"))) as api:
        result = _submit(api, spoke, "--wait")
    assert result.exit_code == Exit.GATE_REJECTED, result.output
    assert "gate rejected the model" in result.output
    assert "roc_auc 0.8000 < champion 0.9000" in result.output


# -- the deploy pipeline on a cluster ----------------------------------------------------------


def test_every_deploy_step_gets_the_registry_from_the_run_not_from_its_disk(spoke):
    result = CliRunner().invoke(main, ["--project", str(spoke), "compile", "--image", IMAGE])
    assert result.exit_code == 0, result.output
    spec = _spec(yaml.safe_load((spoke / "build" / "pipelines" / "deploy.yaml").read_text()))
    for name, task in spec.root.dag.tasks.items():
        given = task.inputs.parameters["tracking_uri"].component_input_parameter
        assert given == "tracking_uri", name
    assert "gateway_url" in spec.root.dag.tasks["rollout"].inputs.parameters


def _registry_with_version(
    spoke: Path, monkeypatch: pytest.MonkeyPatch, tags: dict[str, str]
) -> tuple[str, str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{spoke.parent / 'team-registry.db'}"
    # The step points its process at `uri`; monkeypatch undoes that after the test.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = load_config(spoke).model_name
    client.create_registered_model(name)
    version = client.create_model_version(name, "file:///nowhere/model", tags=tags)
    return uri, str(version.version)


def test_record_step_reads_the_verdict_from_the_registry_and_readings_from_its_input(
    spoke, monkeypatch, tmp_path
):
    from slipway.pipelines.rollout import pipeline as deploy_steps

    uri, version = _registry_with_version(
        spoke,
        monkeypatch,
        {registry.TAG_ROLLOUT_OUTCOME: "promoted", registry.TAG_ROLLOUT_REASON: "all steps ok"},
    )
    readings = [{"phase": "canary-10", "weight": 10, "data": {"error_rate": 0.0}}]
    outcome = json.dumps(
        {
            "status": "promoted",
            "version": version,
            "reason": "",
            "rollout_id": 7,
            "readings": readings,
            "events": [],
        }
    )
    summary = tmp_path / "summary.json"
    # The record step's pod has an empty .slipway/: nothing may come from there.
    assert deploy_steps.record(str(spoke), outcome, str(summary), uri) == "promoted"
    written = json.loads(summary.read_text())
    assert written["readings"] == readings
    assert written["registry"] == {"outcome": "promoted", "reason": "all steps ok"}


def test_record_step_fails_the_run_on_a_rollback_or_a_registry_it_cannot_see(
    spoke, monkeypatch, tmp_path
):
    from slipway.pipelines.rollout import pipeline as deploy_steps

    uri, version = _registry_with_version(
        spoke,
        monkeypatch,
        {registry.TAG_ROLLOUT_OUTCOME: "rolled_back", registry.TAG_ROLLOUT_REASON: "psi 0.4"},
    )
    outcome = json.dumps(
        {
            "status": "rolled_back",
            "version": version,
            "reason": "x",
            "rollout_id": 1,
            "readings": [],
            "events": [],
        }
    )
    with pytest.raises(deploy_steps.DeployPipelineError, match=r"rolled back: psi 0\.4"):
        deploy_steps.record(str(spoke), outcome, str(tmp_path / "s.json"), uri)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.delete_model_version_tag(
        load_config(spoke).model_name, version, registry.TAG_ROLLOUT_OUTCOME
    )
    with pytest.raises(deploy_steps.DeployPipelineError, match="same tracking_uri"):
        deploy_steps.record(str(spoke), outcome, str(tmp_path / "s.json"), uri)


def test_data_breaking_the_contract_on_the_cluster_is_exit_4_as_locally(spoke):
    failed = {"load-data": "SUCCEEDED", "validate-data": "FAILED"}
    script = [Snapshot("RUNNING"), Snapshot("FAILED", failed)]
    with running(StandIn(script=script, on_run=_record_outcome(spoke, "data_invalid"))) as api:
        result = _submit(api, spoke, "--wait")
    assert result.exit_code == Exit.DATA_INVALID, result.output
    assert "mean_radius: rule 'max' broken (3 rows): 71.2 > 57" in result.output


def test_a_failed_run_is_never_exit_0_whatever_the_registry_says(spoke):
    # register-model recorded the version, then the run failed (a step the team added).
    script = [Snapshot("RUNNING"), Snapshot("FAILED", _steps_done(*ALL_TASKS))]
    with running(StandIn(script=script, on_run=_record_outcome(spoke, "registered"))) as api:
        result = _submit(api, spoke, "--wait")
    assert result.exit_code == Exit.ERROR, result.output
    assert "the run ended FAILED" in result.output


def test_an_old_kfp_answering_500_unauthenticated_is_unauthorised(spoke):
    with running(StandIn(auth_status=500)) as api:
        result = _submit(api, spoke, token="stolen-token")
    assert result.exit_code == Exit.UNAUTHORISED, result.output
    assert api.runs == {}


def test_losing_the_api_while_watching_says_the_run_goes_on(spoke):
    with running(StandIn(refuse_polls=True)) as api:
        result = _submit(api, spoke, "--wait")
    assert result.exit_code == Exit.UNAUTHORISED, result.output
    (run_id,) = api.runs
    assert f"lost sight of run {run_id}" in result.output
    assert f"goes on in Kubeflow: {api.url}/#/runs/details/{run_id}" in result.output
    assert "nothing was submitted" not in result.output
