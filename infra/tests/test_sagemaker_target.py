"""The SageMaker deploy target, against two stand-ins: moto in server mode on 127.0.0.1 for
AWS, and `FakeStack` for Pulumi's Automation API.

moto is a stand-in for AWS, not AWS: it serves SageMaker's DescribeEndpoint over real HTTP
with the states a deployment ends in. moto has no UpdateEndpoint, so a test (or FakeStack's
`up`) puts the endpoint directly in the state SageMaker leaves it: on the intended
configuration after a successful canary, or still on the previous one after an alarm-driven
(silent) rollback. The Pulumi CLI, which the real Automation API drives, is not installed
here; FakeStack keeps the stack settings and does to moto what `pulumi up` asks SageMaker to.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from pulumi.automation import CommandError, CommandResult, ConfigValue, OutputValue

from slipway.infra import deploy_settings, sagemaker_target
from slipway.infra.deploy_settings import NothingToCarryFrom, carry_deploy_settings
from slipway.infra.endpoint import config_name
from slipway.infra.sagemaker_target import (
    DeployStatus,
    TargetUnavailable,
    deploy_config,
    deploy_model_version,
    open_stack,
    verify_endpoint,
    wait_for_endpoint,
)
from slipway.infra.spoke_stack import (
    DEPLOY_SETTINGS_OUTPUT,
    StackInputs,
    deploy_settings_of,
    parse_stack_inputs,
)
from slipway.pipelines import registry
from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.rollout import release
from tests.hub import seed_registry

ENDPOINT = "diagnosis-assist-prod"
# The hub's own policy pack (this checkout's): what CD passes to `pulumi preview/up`.
HUB_PACK = Path(__file__).resolve().parents[1] / "policy"
REGION = "eu-west-1"
ACCESS_DENIED = (
    "error: creating SageMaker Model (diagnosis-assist-prod-v2): AccessDenied: "
    "ci role is not authorized to perform: sagemaker:CreateModel"
)


def create_version_config(client: Any, endpoint_name: str, version: int) -> str:
    """A version's Model and EndpointConfiguration, named as ModelEndpoint names them."""
    name = config_name(endpoint_name, version)
    try:
        client.describe_endpoint_config(EndpointConfigName=name)
        return name
    except ClientError:
        pass
    client.create_model(
        ModelName=name,
        ExecutionRoleArn=f"arn:aws:iam::123456789012:role/{endpoint_name}-endpoint",
        PrimaryContainer={"Image": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/m:v{version}"},
    )
    client.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    return name


@pytest.fixture
def sagemaker(aws_stand_in: str) -> Any:
    """A SageMaker client of the moto stand-in, with versions 1 and 2 of ENDPOINT defined."""
    client = boto3.client("sagemaker", region_name=REGION)
    for version in (1, 2):
        create_version_config(client, ENDPOINT, version)
    return client


class FakeStack:
    """A stand-in for pulumi.automation.Stack (the Pulumi CLI it drives is absent here).

    It keeps the stack settings as `pulumi config` would (namespaced by project), and its
    `up` does to the moto stand-in what the spoke's program asks SageMaker for: the
    version's Model and EndpointConfiguration, then the endpoint's blue/green deployment,
    which ends on the new configuration, or, when `alarm_fires`, silently on the previous
    one. With `up_error` it fails as `pulumi up` does, before touching anything. Its outputs
    are what the spoke's program exports, deploy settings included (spoke_stack's own
    `deploy_settings_of`); `outputs` are a last deployment's, as the state backend keeps them.
    """

    def __init__(
        self,
        sagemaker: Any,
        endpoint: Callable[[str, str], Any],
        endpoint_name: str,
        *,
        settings: Mapping[str, str] | None = None,
        alarm_fires: bool = False,
        up_error: str | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        self.sagemaker, self.endpoint, self.endpoint_name = sagemaker, endpoint, endpoint_name
        self.settings = dict(settings or {})
        self.alarm_fires, self.up_error = alarm_fires, up_error
        self.ups = 0
        self.policy_packs: list[str] = []
        self._outputs = dict(outputs or {})

    def get_all_config(self) -> dict[str, ConfigValue]:
        return {
            "aws:region": ConfigValue(REGION),
            **{f"demo:{k}": ConfigValue(v) for k, v in self.settings.items()},
        }

    def set_all_config(self, config: MutableMapping[str, ConfigValue]) -> None:
        self.settings.update({key: value.value for key, value in config.items()})

    def remove_config(self, key: str) -> None:
        del self.settings[key]

    def up(self, *, on_output: Callable[[str], Any], policy_packs: list[str]) -> None:
        self.ups += 1
        self.policy_packs = policy_packs
        if self.up_error:
            raise CommandError(
                CommandResult(stdout="Updating (prod)\n", stderr=self.up_error, code=255)
            )
        version = int(self.settings["modelVersion"])
        previous = self.settings.get("previousModelVersion")
        new = create_version_config(self.sagemaker, self.endpoint_name, version)
        old = config_name(self.endpoint_name, int(previous)) if previous else None
        lands_on = old if self.alarm_fires and old else new
        try:
            self.sagemaker.describe_endpoint(EndpointName=self.endpoint_name)
            self.endpoint(self.endpoint_name, REGION).endpoint_config_name = lands_on
        except ClientError:
            self.sagemaker.create_endpoint(
                EndpointName=self.endpoint_name, EndpointConfigName=lands_on
            )
        on_output(f"endpoint {self.endpoint_name}: {lands_on}")
        self._outputs = {
            "endpoint_name": self.endpoint_name,
            "model_version": version,
            "previous_endpoint_config_name": old,
            DEPLOY_SETTINGS_OUTPUT: deploy_settings_of(parse_stack_inputs(self.settings)),
        }

    def on_another_runner(self, committed: Mapping[str, str]) -> FakeStack:
        """The same stack opened by a fresh CI job: the last deployment's outputs (the state
        backend keeps them), and only the settings committed in Pulumi.<env>.yaml."""
        return FakeStack(
            self.sagemaker,
            self.endpoint,
            self.endpoint_name,
            settings=committed,
            outputs=self._outputs,
        )

    def outputs(self) -> dict[str, OutputValue]:
        return {key: OutputValue(value, False) for key, value in self._outputs.items()}


def serving(sagemaker: Any, endpoint_name: str, version: int) -> None:
    """The endpoint as a previous deploy left it: InService on `version`."""
    sagemaker.create_endpoint(
        EndpointName=endpoint_name,
        EndpointConfigName=create_version_config(sagemaker, endpoint_name, version),
    )


def test_endpoint_on_the_intended_configuration_is_deployed(sagemaker):
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 2))
    outcome = verify_endpoint(
        sagemaker, ENDPOINT, config_name(ENDPOINT, 2), config_name(ENDPOINT, 1)
    )
    assert outcome.status is DeployStatus.deployed
    assert (outcome.actual_config, outcome.endpoint_status) == (f"{ENDPOINT}-v2", "InService")


def test_endpoint_back_on_the_previous_configuration_is_reported_as_a_rollback(sagemaker):
    # SageMaker's alarm-driven rollback leaves the endpoint InService on the old config.
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 1))
    outcome = verify_endpoint(
        sagemaker, ENDPOINT, config_name(ENDPOINT, 2), config_name(ENDPOINT, 1)
    )
    assert outcome.status is DeployStatus.rolled_back
    assert outcome.actual_config == f"{ENDPOINT}-v1"
    assert "SageMaker rolled back" in outcome.message
    assert "the previous configuration" in outcome.message


def test_a_missing_endpoint_fails_with_what_to_check(sagemaker):
    outcome = verify_endpoint(sagemaker, ENDPOINT, config_name(ENDPOINT, 2))
    assert outcome.status is DeployStatus.failed
    assert "cannot be described" in outcome.message
    assert "endpoint_name output" in outcome.message


def test_waiting_returns_once_settled_without_sleeping(sagemaker):
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 1))
    sleeps: list[float] = []
    outcome = wait_for_endpoint(
        sagemaker, ENDPOINT, config_name(ENDPOINT, 2), config_name(ENDPOINT, 1), sleep=sleeps.append
    )
    assert outcome.status is DeployStatus.rolled_back
    assert sleeps == []


def test_waiting_polls_through_an_update_until_the_endpoint_settles(sagemaker, moto_endpoint):
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 1))
    record = moto_endpoint(ENDPOINT, REGION)
    record.endpoint_status = "Updating"
    polls: list[float] = []

    def canary_finishes(seconds: float) -> None:
        # One poll later SageMaker has shifted all traffic to the new configuration.
        polls.append(seconds)
        record.endpoint_config_name = config_name(ENDPOINT, 2)
        record.endpoint_status = "InService"

    outcome = wait_for_endpoint(
        sagemaker,
        ENDPOINT,
        config_name(ENDPOINT, 2),
        config_name(ENDPOINT, 1),
        poll_seconds=7,
        sleep=canary_finishes,
    )
    assert polls == [7]
    assert outcome.status is DeployStatus.deployed


def test_a_failed_endpoint_reports_sagemakers_reason(sagemaker, moto_endpoint):
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 2))
    record = moto_endpoint(ENDPOINT, REGION)
    record.endpoint_status = "Failed"
    record.failure_reason = "The primary container did not pass the ping health check."
    outcome = verify_endpoint(sagemaker, ENDPOINT, config_name(ENDPOINT, 2))
    assert outcome.status is DeployStatus.failed
    assert outcome.message == (
        "endpoint is Failed: The primary container did not pass the ping health check."
    )


def test_deploy_config_keeps_the_serving_version_for_rollback():
    # What deploy_model_version writes before `pulumi up` (the Automation API itself needs the
    # Pulumi CLI, absent here); the stack reads it back through the same validation.
    moved = deploy_config(2, 3, 41.5)
    assert moved == {
        "modelVersion": "3",
        "previousModelVersion": "2",
        "championP95LatencyMs": "41.5",
    }
    assert parse_stack_inputs(moved) == StackInputs(
        model_version=3, previous_model_version=2, champion_p95_latency_ms=41.5
    )
    assert deploy_config(None, 1, None) == {"modelVersion": "1"}  # first deploy
    assert deploy_config(3, 3, None) == {"modelVersion": "3"}  # redeploy: nothing to keep


# -- deploy_model_version: the stack settings, `pulumi up` and the verification together ------


def stack_serving_v1(sagemaker: Any, moto_endpoint: Any, **behaviour: Any) -> FakeStack:
    serving(sagemaker, ENDPOINT, 1)
    return FakeStack(
        sagemaker, moto_endpoint, ENDPOINT, settings={"modelVersion": "1"}, **behaviour
    )


def deploy(stack: FakeStack, sagemaker: Any, version: int) -> sagemaker_target.DeployOutcome:
    return deploy_model_version(
        stack,
        sagemaker,
        "prod",
        version,
        policy_pack=HUB_PACK,
        on_output=lambda _: None,
        sleep=pytest.fail,
    )  # a settled endpoint needs no polling


def test_a_healthy_canary_is_deployed_and_the_stack_keeps_the_old_version(sagemaker, moto_endpoint):
    stack = stack_serving_v1(sagemaker, moto_endpoint)
    outcome = deploy(stack, sagemaker, 2)
    assert (outcome.status, outcome.actual_config) == (DeployStatus.deployed, f"{ENDPOINT}-v2")
    assert stack.settings == {"modelVersion": "2", "previousModelVersion": "1"}


def test_a_silent_rollback_puts_the_serving_version_back_in_the_stack(sagemaker, moto_endpoint):
    stack = stack_serving_v1(sagemaker, moto_endpoint, alarm_fires=True)
    outcome = deploy(stack, sagemaker, 2)
    assert (outcome.status, outcome.actual_config) == (DeployStatus.rolled_back, f"{ENDPOINT}-v1")
    assert outcome.message.endswith("; stack modelVersion is 1 again")
    assert stack.settings == {"modelVersion": "1"}
    # The next deploy keeps the version that really served, not the rejected v2.
    stack.alarm_fires = False
    assert deploy(stack, sagemaker, 3).status is DeployStatus.deployed
    assert stack.settings == {"modelVersion": "3", "previousModelVersion": "1"}


def test_a_failed_pulumi_up_is_a_failure_with_its_error_not_a_rollback(sagemaker, moto_endpoint):
    stack = stack_serving_v1(sagemaker, moto_endpoint, up_error=ACCESS_DENIED)
    outcome = deploy(stack, sagemaker, 2)
    assert outcome.status is DeployStatus.failed
    assert "not authorized to perform: sagemaker:CreateModel" in outcome.message
    assert "rolled back" not in outcome.message and "alarm" not in outcome.message
    # Settings as they were, so a rerun after the fix records v1 as previous again.
    assert stack.settings == {"modelVersion": "1"}
    described = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointConfigName"] == f"{ENDPOINT}-v1"


def test_a_first_deploy_creates_the_endpoint_with_nothing_to_keep(aws_stand_in, moto_endpoint):
    client = boto3.client("sagemaker", region_name=REGION)
    stack = FakeStack(client, moto_endpoint, ENDPOINT)
    outcome = deploy(stack, client, 1)
    assert (outcome.status, outcome.actual_config) == (DeployStatus.deployed, f"{ENDPOINT}-v1")
    assert stack.settings == {"modelVersion": "1"}


def test_a_stack_that_cannot_be_opened_says_what_the_target_needs(tmp_path):
    # On this machine the Pulumi CLI is absent; with one, tmp_path has no Pulumi project.
    with pytest.raises(TargetUnavailable, match=r"needs the Pulumi CLI .*AWS credentials"):
        open_stack(tmp_path, "staging")


# -- `slipway deploy --env`: governance, the stack, exit codes, registry and audit trail ------


@pytest.fixture
def spoke_with_versions(spokes, tmp_path, monkeypatch) -> Callable[[str], Path]:
    """A private copy of the rendered spoke of a tier, whose registry holds v1 (champion)
    and v2 (challenger), trained from COMMIT. The versions are registered without training:
    the SageMaker path packages a version's files (here just an MLmodel) and never loads
    them; SageMaker does, from the stack's image."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def make(tier: str) -> Path:
        root = tmp_path / f"spoke-{tier}"
        shutil.copytree(spokes[tier], root, ignore=shutil.ignore_patterns(".slipway"))
        seed_registry(root)  # MLflow's migrations, once per worker: not under test here
        model = load_config(root).model_name
        client = registry.client(root)
        client.create_registered_model(model)
        for version in ("1", "2"):
            files = root / f"model-v{version}"
            files.mkdir()
            (files / "MLmodel").write_text(f"flavors: {{}}\nmodel_uuid: v{version}\n")
            client.create_model_version(model, source=files.as_uri())
            client.set_model_version_tag(model, version, registry.TAG_GIT_SHA, COMMIT)
            client.set_model_version_tag(model, version, registry.TAG_GIT_DIRTY, "false")
        release.promote(root, client, model, "1", reason="test fixture: first champion")
        client.set_registered_model_alias(model, registry.CHALLENGER, "2")
        return root

    return make


@pytest.fixture
def stacks(monkeypatch) -> dict[str, Any]:
    """Replace the Automation API's stack (open_stack) by the FakeStack a test puts here."""
    opened: dict[str, Any] = {}

    def open_fake(infra_dir: Path, environment: str) -> FakeStack:
        assert infra_dir.name == "infra"
        opened.setdefault("opened", []).append(environment)
        return opened[environment]

    monkeypatch.setattr(sagemaker_target, "open_stack", open_fake)
    monkeypatch.setenv(sagemaker_target.POLICY_PACK_ENV, str(HUB_PACK))
    return opened


def slipway_deploy(root: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--project", str(root), "deploy", *args])


def version_tags(root: Path, version: str) -> tuple[str | None, str | None]:
    mv = registry.client(root).get_model_version(load_config(root).model_name, version)
    return mv.tags.get(registry.TAG_ROLLOUT_OUTCOME), mv.tags.get(registry.TAG_ROLLOUT_REASON)


def alias(root: Path, name: str) -> str | None:
    found = registry.version_by_alias(registry.client(root), load_config(root).model_name, name)
    return None if found is None else str(found.version)


# What cd.yml pushes for a commit, as moto keeps it: a manifest, no layers.
COMMIT = "9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b1c3d5e7f"
COMMIT_IMAGE = (
    '{"schemaVersion": 2, "mediaType": '
    '"application/vnd.docker.distribution.manifest.v2+json", "layers": []}'
)


def release_stand_in(slug: str, env: str) -> dict[str, str]:
    """The stack's bucket and image repository in the moto stand-in, holding the image cd.yml
    pushed for COMMIT; returns the stack outputs that name them."""
    bucket, repository = f"{slug}-{env}-123456789012", f"slipway/{slug}-{env}"
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE")
    ecr.put_image(repositoryName=repository, imageManifest=COMMIT_IMAGE, imageTag=COMMIT)
    return {
        "bucket_name": bucket,
        "repository_url": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{repository}",
    }


def fake_stack_for(
    root: Path, sagemaker: Any, moto_endpoint: Any, env: str, **behaviour: Any
) -> FakeStack:
    endpoint_name = f"{load_config(root).project.slug}-{env}"
    serving(sagemaker, endpoint_name, 1)
    # The outputs its earlier `pulumi up` left name where a release is published.
    behaviour.setdefault("outputs", release_stand_in(load_config(root).project.slug, env))
    return FakeStack(
        sagemaker, moto_endpoint, endpoint_name, settings={"modelVersion": "1"}, **behaviour
    )


def test_deploy_env_prod_promotes_the_challenger_sagemaker_serves(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("low")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["prod"] = stack = fake_stack_for(root, client, moto_endpoint, "prod")
    result = slipway_deploy(root, "--env", "prod")
    assert result.exit_code == Exit.OK, result.output
    assert "deployed: version 2 serves on SageMaker prod" in result.output
    assert stack.settings == {"modelVersion": "2", "previousModelVersion": "1"}
    assert (alias(root, "champion"), alias(root, "previous"), alias(root, "challenger")) == (
        "2",
        "1",
        None,
    )
    assert version_tags(root, "2")[0] == "promoted"
    last = audit.read(root)[-1]
    assert (last["action"], last["version"], last["details"]["environment"]) == (
        "promote",
        "2",
        "prod",
    )


def test_deploy_env_reports_a_silent_rollback_as_rolled_back(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("low")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["prod"] = stack = fake_stack_for(root, client, moto_endpoint, "prod", alarm_fires=True)
    result = slipway_deploy(root, "--env", "prod")
    assert result.exit_code == Exit.ROLLED_BACK, result.output
    assert "rolled back: version 2 on SageMaker prod" in result.output
    assert stack.settings == {"modelVersion": "1"}
    assert (alias(root, "champion"), alias(root, "challenger")) == ("1", None)
    outcome, reason = version_tags(root, "2")
    assert outcome == "rolled_back"
    assert reason.startswith("SageMaker prod: SageMaker rolled back: endpoint serves")
    last = audit.read(root)[-1]
    assert (last["action"], last["version"], last["details"]["serving_config"]) == (
        "rollback",
        "2",
        f"{load_config(root).project.slug}-prod-v1",
    )


def test_deploy_env_refuses_an_unapproved_high_risk_version_before_the_stack(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("high")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["prod"] = stack = fake_stack_for(root, client, moto_endpoint, "prod")
    trail = len(audit.read(root))
    result = slipway_deploy(root, "--env", "prod", "--version", "2")
    assert result.exit_code == Exit.NOT_APPROVED, result.output
    assert "refused by governance" in result.output
    assert "slipway approve 2 --by NAME --reason TEXT" in result.output
    assert "opened" not in stacks  # the stack was never opened, let alone updated
    assert (stack.ups, stack.settings) == (0, {"modelVersion": "1"})
    assert len(audit.read(root)) == trail
    assert alias(root, "challenger") == "2"


def test_deploy_env_with_a_failing_pulumi_up_exits_with_the_error(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("low")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["staging"] = fake_stack_for(
        root, client, moto_endpoint, "staging", up_error=ACCESS_DENIED
    )
    result = slipway_deploy(root, "--env", "staging")
    assert result.exit_code == Exit.ERROR, result.output
    assert "failed: `pulumi up` failed on stack staging" in result.output
    assert "deploy again" in result.output
    # Nothing was decided about the model: it stays the challenger, untagged.
    assert (alias(root, "challenger"), version_tags(root, "2")) == ("2", (None, None))
    last = audit.read(root)[-1]
    assert (last["action"], last["details"]["status"]) == ("deploy", "failed")


def test_deploy_env_staging_records_the_outcome_and_keeps_the_challenger_for_prod(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("low")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["staging"] = fake_stack_for(root, client, moto_endpoint, "staging")
    result = slipway_deploy(root, "--env", "staging")
    assert result.exit_code == Exit.OK, result.output
    assert (alias(root, "champion"), alias(root, "challenger")) == ("1", "2")
    assert version_tags(root, "2")[0] == "staged"
    last = audit.read(root)[-1]
    assert (last["action"], last["details"]["status"], last["details"]["environment"]) == (
        "deploy",
        "deployed",
        "staging",
    )


def test_deploy_env_without_slipway_infra_says_how_to_install_it(
    spoke_with_versions, stacks, monkeypatch
):
    root = spoke_with_versions("low")
    # The entry point's module fails to import as it does without the `infra` group: None
    # in sys.modules, and the package no longer holding the submodule already imported.
    monkeypatch.setitem(sys.modules, "slipway.infra.model_release", None)
    if hasattr(sys.modules["slipway.infra"], "model_release"):
        monkeypatch.delattr(sys.modules["slipway.infra"], "model_release")
    result = slipway_deploy(root, "--env", "prod")
    assert result.exit_code == Exit.ERROR
    assert "run `uv sync --group infra` (or `make setup`)" in result.output
    assert "opened" not in stacks


def test_deploy_env_without_the_entry_point_says_how_to_install_it(
    spoke_with_versions, stacks, monkeypatch
):
    """Without slipway-infra installed there is no `slipway.deploy_targets` entry point."""
    import importlib.metadata

    root = spoke_with_versions("low")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: ())
    result = slipway_deploy(root, "--env", "staging")
    assert result.exit_code == Exit.ERROR
    assert "needs slipway-infra, which is not installed" in result.output
    assert "opened" not in stacks


def test_deploy_env_refuses_the_local_rollout_options(spoke_with_versions, stacks):
    root = spoke_with_versions("low")
    result = slipway_deploy(root, "--env", "prod", "--resume", "--step-seconds", "2")
    assert result.exit_code == Exit.USAGE
    assert "--resume, --step-seconds drive(s) the local gateway rollout" in result.output
    assert "opened" not in stacks


# -- carrying the deploy settings of the last deployment into a runner that keeps none ---------

COMMITTED = {"githubRepository": "example-org/demo", "imageUri": "registry.example/m@sha256:new"}


def test_the_last_deployments_settings_are_carried_and_committed_ones_kept(
    sagemaker, moto_endpoint
):
    stack = stack_serving_v1(sagemaker, moto_endpoint)
    stack.settings["imageUri"] = "registry.example/m@sha256:old"
    outcome = deploy_model_version(
        stack,
        sagemaker,
        "prod",
        2,
        policy_pack=HUB_PACK,
        champion_p95_latency_ms=41.5,
        on_output=lambda _: None,
        sleep=pytest.fail,
    )
    assert outcome.status is DeployStatus.deployed
    # A fresh CD job: the state backend's outputs, and Pulumi.prod.yaml as committed.
    runner = stack.on_another_runner(COMMITTED)
    said: list[str] = []
    carried = carry_deploy_settings(runner, on_output=said.append)
    deployed = {"modelVersion": "2", "previousModelVersion": "1", "championP95LatencyMs": "41.5"}
    assert carried == deployed
    # The committed imageUri wins over the last deployment's (`config refresh` would not).
    assert runner.settings == {**COMMITTED, **deployed}
    assert parse_stack_inputs(runner.settings) == StackInputs(
        model_version=2,
        previous_model_version=1,
        champion_p95_latency_ms=41.5,
        image_uri=COMMITTED["imageUri"],
        github_repository="example-org/demo",
    )
    assert said == [
        "carried from the last deployment: modelVersion=2, previousModelVersion=1, "
        "championP95LatencyMs=41.5"
    ]


def test_after_an_alarm_rollback_the_serving_version_is_carried_not_the_rejected_one(
    sagemaker, moto_endpoint
):
    """SageMaker rolled v2 back: the last deployment's export still names v2, and carrying
    that into the next CD run would deploy the rejected version again."""
    stack = stack_serving_v1(sagemaker, moto_endpoint, alarm_fires=True)
    assert deploy(stack, sagemaker, 2).status is DeployStatus.rolled_back
    runner = stack.on_another_runner(COMMITTED)
    said: list[str] = []
    carried = carry_deploy_settings(runner, sagemaker=sagemaker, on_output=said.append)
    assert carried["modelVersion"] == "1" and "previousModelVersion" not in carried
    assert runner.settings["modelVersion"] == "1"
    assert "previousModelVersion" not in runner.settings
    assert said[0] == (
        "SageMaker serves version 1, not the 2 the last deployment asked for "
        "(its alarms rolled that one back)"
    )
    # Without asking SageMaker, the export alone would have carried the rejected version.
    blind = stack.on_another_runner(COMMITTED)
    assert carry_deploy_settings(blind, on_output=lambda _: None)["modelVersion"] == "2"


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({}, "never deployed: nothing to carry, the committed stack config applies"),
        (
            {"endpoint_status": "bootstrap", DEPLOY_SETTINGS_OUTPUT: {}},
            "carried from the last deployment: nothing (it bootstrapped)",
        ),
    ],
    ids=["never-deployed", "bootstrapped"],
)
def test_a_stack_without_deploy_settings_carries_nothing_and_says_so(outputs, message):
    stack = FakeStack(None, None, ENDPOINT, settings=COMMITTED, outputs=outputs)
    said: list[str] = []
    assert carry_deploy_settings(stack, on_output=said.append) == {}
    assert stack.settings == COMMITTED
    assert said == [message]


def test_a_deployment_without_the_output_is_refused_rather_than_bootstrapped():
    # Deployed by an older slipway-infra: running from the committed config would delete
    # the endpoint, so nothing is written and the message says how to recover.
    stack = FakeStack(
        None,
        None,
        ENDPOINT,
        settings=COMMITTED,
        outputs={"endpoint_status": "serving", "model_version": 4},
    )
    with pytest.raises(NothingToCarryFrom, match=r"no `deploy_settings` output.*config refresh"):
        carry_deploy_settings(stack)
    assert stack.settings == COMMITTED


@pytest.mark.parametrize("argv", [[], ["dev"], ["production"], ["staging", "prod"]])
def test_the_entry_point_names_the_stacks_it_carries_for(argv, capsys):
    assert deploy_settings.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m slipway.infra.deploy_settings {staging|prod}\n")
    assert "name the SageMaker stack to carry, staging or prod" in err


def test_the_entry_point_carries_into_the_stack_of_the_infra_directory(
    stacks, tmp_path, monkeypatch, capsys
):
    deployed = {"modelVersion": "3", "previousModelVersion": "2"}
    stacks["staging"] = runner = FakeStack(
        None,
        None,
        ENDPOINT,
        settings=COMMITTED,
        outputs={"endpoint_status": "serving", DEPLOY_SETTINGS_OUTPUT: deployed},
    )
    (tmp_path / "infra").mkdir()
    monkeypatch.chdir(tmp_path / "infra")
    assert deploy_settings.main(["staging"]) == 0
    assert capsys.readouterr().out == (
        "stack staging: carried from the last deployment: modelVersion=3, previousModelVersion=2\n"
    )
    assert runner.settings == {**COMMITTED, **deployed}


def test_the_entry_point_fails_clearly_when_the_stack_cannot_be_opened(tmp_path):
    # As `python -m` runs it in CI; here the Pulumi CLI is absent (or tmp_path no project).
    run = subprocess.run(
        [sys.executable, "-m", "slipway.infra.deploy_settings", "prod"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith("error: stack prod: cannot open Pulumi stack prod")
    assert "needs the Pulumi CLI" in run.stderr


# -- `slipway deploy --env` publishes the version's image tag and model.tar.gz first ----------


def published_objects(root: Path, env: str) -> list[str]:
    bucket = f"{load_config(root).project.slug}-{env}-123456789012"
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_deploy_env_publishes_the_versions_image_and_model_before_pulumi_up(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint, tmp_path
):
    root = spoke_with_versions("low")
    slug = load_config(root).project.slug
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["staging"] = stack = fake_stack_for(root, client, moto_endpoint, "staging")
    published_at_up: list[list[str]] = []
    up = stack.up
    stack.up = lambda *, on_output, policy_packs: (
        published_at_up.append(published_objects(root, "staging")),
        up(on_output=on_output, policy_packs=policy_packs),
    )
    result = slipway_deploy(root, "--env", "staging")
    assert result.exit_code == Exit.OK, result.output
    repository = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/slipway/{slug}-staging"
    assert (
        f"published version 2: image {repository}:v2 (commit {COMMIT}), model "
        f"s3://{slug}-staging-123456789012/models/v2/model.tar.gz"
    ) in result.output
    assert published_at_up == [["models/v2/model.tar.gz"]]
    ecr = boto3.client("ecr", region_name=REGION)
    digests = {
        tag: ecr.describe_images(
            repositoryName=f"slipway/{slug}-staging", imageIds=[{"imageTag": tag}]
        )["imageDetails"][0]["imageDigest"]
        for tag in (COMMIT, "v2")
    }
    assert digests["v2"] == digests[COMMIT]
    tarball = tmp_path / "model.tar.gz"
    boto3.client("s3", region_name=REGION).download_file(
        f"{slug}-staging-123456789012", "models/v2/model.tar.gz", str(tarball)
    )
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        assert "MLmodel" in names and all("/" not in name for name in names), names
        assert archive.extractfile("MLmodel").read() == b"flavors: {}\nmodel_uuid: v2\n"


def test_deploy_env_refuses_a_version_trained_from_a_dirty_tree_before_the_stack(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("low")
    registry.client(root).set_model_version_tag(
        load_config(root).model_name, "2", registry.TAG_GIT_DIRTY, "true"
    )
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["prod"] = stack = fake_stack_for(root, client, moto_endpoint, "prod")
    result = slipway_deploy(root, "--env", "prod")
    assert result.exit_code == Exit.NOT_APPROVED, result.output
    assert "uncommitted changes" in result.output
    assert "retrain it from a clean checkout" in result.output
    assert "opened" not in stacks
    assert (stack.ups, stack.settings, published_objects(root, "prod")) == (
        0,
        {"modelVersion": "1"},
        [],
    )
    assert alias(root, "challenger") == "2"


def test_deploy_env_without_the_commits_image_says_to_push_it_and_deploys_nothing(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("low")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["prod"] = stack = fake_stack_for(root, client, moto_endpoint, "prod")
    boto3.client("ecr", region_name=REGION).batch_delete_image(  # expired, or never built
        repositoryName=f"slipway/{load_config(root).project.slug}-prod",
        imageIds=[{"imageTag": COMMIT}],
    )
    trail = len(audit.read(root))
    result = slipway_deploy(root, "--env", "prod")
    assert result.exit_code == Exit.ERROR, result.output
    assert f"no image for commit {COMMIT}" in result.output
    assert "Push that commit to main so cd.yml builds its image, then deploy again" in (
        " ".join(result.output.split())
    )
    assert (stack.ups, stack.settings, published_objects(root, "prod")) == (
        0,
        {"modelVersion": "1"},
        [],
    )
    assert (alias(root, "challenger"), len(audit.read(root))) == ("2", trail)


def test_deploy_env_to_a_stack_never_deployed_names_cd_yml_first_run(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("low")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["staging"] = stack = fake_stack_for(
        root, client, moto_endpoint, "staging", outputs={}
    )  # no `pulumi up` ever ran
    result = slipway_deploy(root, "--env", "staging")
    assert result.exit_code == Exit.ERROR, result.output
    assert "stack staging has no outputs" in result.output
    assert "cd.yml's first run on main" in result.output
    assert stack.ups == 0


def test_deploy_env_says_when_a_stack_setting_overrides_the_published_image(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("low")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["staging"] = stack = fake_stack_for(root, client, moto_endpoint, "staging")
    stack.settings["imageUri"] = "registry.example/m:latest"
    result = slipway_deploy(root, "--env", "staging")
    assert result.exit_code == Exit.OK, result.output
    assert (
        "note: stack setting imageUri = registry.example/m:latest replaces the published "
        "image: version 2 will run with it, not its own"
    ) in result.output
    assert "modelDataUrl" not in result.output


def test_deploy_env_runs_pulumi_up_with_the_hubs_policy_pack(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint
):
    root = spoke_with_versions("low")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["prod"] = stack = fake_stack_for(root, client, moto_endpoint, "prod")
    assert slipway_deploy(root, "--env", "prod").exit_code == Exit.OK
    # Before, `pulumi up` ran through the Automation API with no policy pack at all.
    assert stack.policy_packs == [str(HUB_PACK)]


def test_deploy_env_without_the_policy_pack_deploys_nothing(
    spoke_with_versions, stacks, aws_stand_in, moto_endpoint, monkeypatch
):
    root = spoke_with_versions("low")
    client = boto3.client("sagemaker", region_name=REGION)
    stacks["prod"] = stack = fake_stack_for(root, client, moto_endpoint, "prod")
    monkeypatch.delenv(sagemaker_target.POLICY_PACK_ENV)  # and no .slipway-hub in the spoke
    result = slipway_deploy(root, "--env", "prod")
    assert result.exit_code == Exit.USAGE, result.output
    assert f"no policy pack at {root / '.slipway-hub' / 'infra' / 'policy'}" in result.output
    assert "never without it" in result.output and "nothing was deployed" in result.output
    assert stack.ups == 0 and "opened" not in stacks  # not even opened
    assert (alias(root, "champion"), alias(root, "challenger")) == ("1", "2")
    # Where the workflows fetch it, it is found without the variable.
    fetched = root / sagemaker_target.HUB_POLICY_PACK
    fetched.mkdir(parents=True)
    (fetched / "PulumiPolicy.yaml").write_text((HUB_PACK / "PulumiPolicy.yaml").read_text())
    assert sagemaker_target.policy_pack(root, {}) == fetched.resolve()
