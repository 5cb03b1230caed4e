"""`slipway deploy`: roll a version out through shadow and canary steps, or bootstrap.

Without --env the rollout runs on the local gateway. With --env staging|prod it goes to the
spoke's SageMaker stack through slipway-infra (the `infra` dependency group, which brings
Pulumi), imported only then: slipway-pipelines itself never depends on Pulumi.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slipway.pipelines.cli._common import Spoke, fail, spoke_from_context
from slipway.pipelines.cli._gateway_opts import url_option
from slipway.pipelines.exitcodes import Exit

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from slipway.infra.sagemaker_target import DeployOutcome, PulumiStack
    from slipway.pipelines.rollout.packaging import ModelPackage

ENVIRONMENTS = ("staging", "prod")
# The registry outcome of a version that passed SageMaker's canary in staging: not promoted
# (prod decides that), but recorded, like every rollout outcome.
STAGED = "staged"
INFRA_MISSING = (
    "`slipway deploy --env` drives the spoke's Pulumi stack and needs slipway-infra, "
    "which is not installed: run `uv sync --group infra` (or `make setup`), then "
    "try again"
)


@click.command()
@click.option(
    "--version",
    "version",
    default=None,
    help="Registered version to roll out (default: the `challenger` alias).",
)
@click.option(
    "--env",
    "environment",
    type=click.Choice(ENVIRONMENTS),
    default=None,
    help="Deploy to this SageMaker stack (spoke's infra/, Pulumi) instead of the "
    "local gateway; SageMaker runs the canary and its alarms roll back.",
)
@click.option("--resume", is_flag=True, help="Continue the open rollout after a crash.")
@url_option
@click.option(
    "--step-seconds",
    type=click.FloatRange(min=0.5),
    default=None,
    help="Hold each step this long instead of rollout.step_seconds (demos, "
    "rehearsals); the risk tier's minimum still applies.",
)
@click.option(
    "--shadow-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Shadow phase length instead of rollout.shadow_seconds.",
)
@click.option(
    "--step-timeout",
    type=click.FloatRange(min=1),
    default=None,
    help="A step without enough traffic fails after this long "
    "(default: 3x the step, at least 30s).",
)
@click.pass_context
def deploy(
    ctx: click.Context,
    version: str | None,
    environment: str | None,
    resume: bool,
    url: str | None,
    step_seconds: float | None,
    shadow_seconds: float | None,
    step_timeout: float | None,
) -> None:
    """Shadow -> canary steps -> promote, with automatic rollback on a guardrail breach.

    Exit 0 when promoted (or deployed), 6 when rolled back, 7 when governance refuses (or,
    with --env, the version was trained from a dirty tree), 8 when the gateway (or AWS)
    cannot be reached, 1 when a SageMaker deploy failed or has not settled.
    """
    spoke = spoke_from_context(ctx)
    if environment is not None:
        local_only = {
            "--resume": resume,
            "--url": url,
            "--step-seconds": step_seconds,
            "--shadow-seconds": shadow_seconds,
            "--step-timeout": step_timeout,
        }
        given = [name for name, value in local_only.items() if value]
        if given:
            fail(
                f"{', '.join(given)} drive(s) the local gateway rollout; with --env SageMaker "
                "runs the canary from slipway.toml: drop them",
                Exit.USAGE,
            )
        _deploy_to_sagemaker(spoke, environment, version)
        return
    from slipway.pipelines.rollout.controller import Controller, NotApproved, plan_for
    from slipway.pipelines.rollout.traffic import replay_rows
    from slipway.pipelines.serving.client import GatewayClient, GatewayUnreachable, resolve_url

    if resume and version:
        fail("--resume continues the open rollout; do not pass --version with it", Exit.USAGE)
    plan = plan_for(
        spoke.config,
        step_seconds=step_seconds,
        shadow_seconds=shadow_seconds,
        step_timeout=step_timeout,
    )
    gateway = GatewayClient(resolve_url(url, spoke.config))
    controller = Controller(
        spoke.root,
        spoke.config,
        gateway,
        plan,
        echo=click.echo,
        smoke_rows=lambda: replay_rows(spoke.root, spoke.config),
    )
    try:
        outcome = controller.resume() if resume else controller.deploy(version)
    except GatewayUnreachable as exc:
        fail(
            f"{exc}. Nothing was rolled back; the rollout state is kept: fix the gateway, "
            "then `slipway deploy --resume` or `slipway rollback`",
            Exit.UNREACHABLE,
        )
    except NotApproved as exc:
        fail(str(exc), Exit.NOT_APPROVED)
    except RuntimeError as exc:
        fail(str(exc), Exit.ERROR)
    finally:
        gateway.close()
    if outcome.status == "promoted":
        click.echo(f"promoted: version {outcome.version} is the champion")
        return
    click.secho(f"rolled back: version {outcome.version}: {outcome.reason}", fg="red", err=True)
    raise SystemExit(int(Exit.ROLLED_BACK))


def _deploy_to_sagemaker(spoke: Spoke, environment: str, version: str | None) -> None:
    """Governance first, then the release's image and model, then the stack: a refused
    version never reaches `pulumi up`, and `pulumi up` never points SageMaker at an image or
    a model.tar.gz that is not there.

    Returns when the version serves; any other outcome exits with its documented code."""
    try:
        from slipway.infra import sagemaker_target as target
    except ImportError as exc:
        fail(f"{INFRA_MISSING} ({exc})", Exit.ERROR)
    from slipway.pipelines import registry
    from slipway.pipelines.governance.blockers import release_blockers
    from slipway.pipelines.rollout import release

    client = registry.client(spoke.root)
    try:
        version = release.candidate_version(client, spoke.config.model_name, version)
    except release.ReleaseError as exc:
        fail(str(exc), Exit.ERROR)
    blockers = release_blockers(spoke.root, spoke.config, client, version)
    if blockers:
        fail(
            f"deploy of version {version} to SageMaker {environment} refused by governance:"
            "\n  - " + "\n  - ".join(blockers),
            Exit.NOT_APPROVED,
        )
    with tempfile.TemporaryDirectory(prefix="slipway-release-") as workdir:
        package = _package(spoke, client, version, Path(workdir))
        try:
            stack = target.open_stack(spoke.root / "infra", environment)
        except target.TargetUnavailable as exc:
            fail(str(exc), Exit.ERROR)
        _publish(spoke, stack, environment, package)
    click.echo(
        f"deploying version {version} to SageMaker {environment} (Pulumi stack "
        f"{environment}); SageMaker runs the canary, its alarms roll back"
    )
    outcome = target.deploy_model_version(
        stack,
        target.sagemaker_client(spoke.config.deploy.region),
        environment,
        int(version),
        on_output=click.echo,
    )
    _record(spoke, client, version, environment, outcome)
    status = target.DeployStatus
    if outcome.status is status.deployed:
        click.echo(
            f"deployed: version {version} serves on SageMaker {environment}: {outcome.message}"
        )
        return
    if outcome.status is status.rolled_back:
        click.secho(
            f"rolled back: version {version} on SageMaker {environment}: {outcome.message}",
            fg="red",
            err=True,
        )
        raise SystemExit(int(Exit.ROLLED_BACK))
    if outcome.status is status.in_progress:
        fail(
            f"version {version} is still rolling out on {outcome.endpoint_name}: "
            f"{outcome.message}; nothing was recorded as deployed. Watch it with `aws "
            f"sagemaker describe-endpoint --endpoint-name {outcome.endpoint_name}` and run "
            f"`slipway deploy --env {environment} --version {version}` again once it settles",
            Exit.ERROR,
        )
    fail(
        f"deploy of version {version} to SageMaker {environment} failed: {outcome.message}",
        Exit.ERROR,
    )


def _package(spoke: Spoke, client: MlflowClient, version: str, workdir: Path) -> ModelPackage:
    """The version's model.tar.gz and the commit of its image, or an exit saying why not."""
    from mlflow.exceptions import MlflowException

    from slipway.pipelines.rollout.packaging import NotReleasable, package_version

    try:
        return package_version(spoke.root, client, spoke.config.model_name, version, workdir)
    except NotReleasable as exc:
        fail(f"version {version} cannot go to SageMaker: {exc}", Exit.NOT_APPROVED)
    except (MlflowException, OSError) as exc:
        fail(
            f"cannot download version {version}'s model from the registry ({exc}); check "
            "MLFLOW_TRACKING_URI and your access to its artifact store, then deploy again",
            Exit.ERROR,
        )


def _publish(spoke: Spoke, stack: PulumiStack, environment: str, package: ModelPackage) -> None:
    """Put the version's image tag and model.tar.gz where the stack's release will look."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pulumi.automation import CommandError

    from slipway.infra import release_artifacts as artifacts
    from slipway.infra.sagemaker_target import stack_setting
    from slipway.infra.spoke_stack import IMAGE_URI, MODEL_DATA_URL

    version = package.version
    s3, ecr = artifacts.release_clients(spoke.config.deploy.region)
    try:
        published = artifacts.publish_release(
            s3, ecr, stack.outputs(), environment, version, package.tarball, package.commit_sha
        )
    except artifacts.ReleaseRefused as exc:
        fail(
            f"version {version} was not published to stack {environment}, nothing was "
            f"deployed: {exc}",
            Exit.ERROR,
        )
    except (ClientError, CommandError) as exc:
        fail(
            f"publishing version {version} to stack {environment} failed, nothing was "
            f"deployed: {exc}. A permission error means the role deploying lacks the stack's "
            "CI role grants (slipway.infra.access): use that role, then deploy again",
            Exit.ERROR,
        )
    except BotoCoreError as exc:
        fail(
            f"cannot reach AWS to publish version {version} ({exc}); nothing was deployed: "
            "check the credentials and the network, then deploy again",
            Exit.UNREACHABLE,
        )
    click.echo(
        f"published version {version}: image {published.image_uri} (commit "
        f"{package.commit_sha}), model {published.model_data_url}"
    )
    # Stack settings that replace a release's image or model (spoke_stack.release_for).
    for key, what in ((IMAGE_URI, "image"), (MODEL_DATA_URL, "model")):
        value = stack_setting(stack, key)
        if value:
            click.secho(
                f"note: stack setting {key} = {value} replaces the published {what}: "
                f"version {version} will run with it, not its own; remove it (`pulumi "
                f"config rm {key} --stack {environment}` in infra/) unless you meant it",
                fg="yellow",
                err=True,
            )


def _record(
    spoke: Spoke, client: MlflowClient, version: str, environment: str, outcome: DeployOutcome
) -> None:
    """Registry and audit trail, as the local rollout records them: a rollback takes the
    `challenger` alias away, a prod deploy promotes, the rest is an audit line (and a tag)."""
    from slipway.infra.sagemaker_target import DeployStatus
    from slipway.pipelines.governance import audit
    from slipway.pipelines.rollout import release

    model = spoke.config.model_name
    reason = f"SageMaker {environment}: {outcome.message}"
    details = {
        "target": "sagemaker",
        "environment": environment,
        "status": outcome.status.value,
        "endpoint": outcome.endpoint_name,
        "serving_config": outcome.actual_config,
    }
    if outcome.status is DeployStatus.rolled_back:
        release.reject_challenger(
            spoke.root, client, model, version, reason=reason, details=details
        )
    elif outcome.status is DeployStatus.deployed and environment == "prod":
        release.promote(spoke.root, client, model, version, reason=reason, details=details)
    else:
        if outcome.status is DeployStatus.deployed:
            release.tag_outcome(client, model, version, STAGED, reason)
        audit.append(
            spoke.root, "deploy", model=model, version=version, reason=reason, details=details
        )
