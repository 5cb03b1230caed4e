"""Release one registered version to a spoke's SageMaker stack: governance, packaging,
publishing, `pulumi up`, verification, and the registry and audit records of the outcome.

This is what `slipway deploy --env staging|prod` runs. It lives in slipway-infra because it
drives Pulumi; slipway-pipelines finds it through the `slipway.deploy_targets` entry point,
so the pipelines library never imports this one (the dependency goes one way). Every refusal
is a SlipwayError with its exit code; the outcome of a release that ran is returned.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slipway.infra import sagemaker_target as target
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.spoke import Spoke

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from slipway.infra.sagemaker_target import DeployOutcome, PulumiStack
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.rollout.packaging import ModelPackage

__all__ = ["STAGED", "ReleaseFailed", "ReleaseResult", "release_to_sagemaker"]

# The registry outcome of a version that passed SageMaker's canary in staging: not promoted
# (prod decides that), but recorded, like every rollout outcome.
STAGED = "staged"

Echo = Callable[[str], None]


class ReleaseFailed(SlipwayError):
    """The release stopped before or during `pulumi up`; the message says what to do."""


@dataclass(frozen=True)
class ReleaseResult:
    """What SageMaker did with the version, and the exit code `slipway deploy` ends with."""

    version: str
    environment: str
    outcome: DeployOutcome

    @property
    def exit_code(self) -> Exit:
        status = target.DeployStatus
        if self.outcome.status is status.deployed:
            return Exit.OK
        if self.outcome.status is status.rolled_back:
            return Exit.ROLLED_BACK
        return Exit.ERROR


def release_to_sagemaker(
    root: Path,
    config: SpokeConfig,
    environment: str,
    version: str | None,
    *,
    echo: Echo,
    warn: Echo,
) -> ReleaseResult:
    """Governance first, then the release's image and model, then the stack: a refused
    version never reaches `pulumi up`, and `pulumi up` never points SageMaker at an image or
    a model.tar.gz that is not there."""
    from slipway.pipelines import registry
    from slipway.pipelines.governance.blockers import require_release
    from slipway.pipelines.rollout import release

    pack = target.policy_pack(root)  # before anything is published: no pack, no change
    client = registry.client(root)
    version = release.candidate_version(client, config.model_name, version)
    spoke = Spoke(root, config)  # the spoke as the deploy command opened it
    require_release(
        spoke,
        client,
        version,
        action=f"deploy of version {version} to SageMaker {environment}",
    )
    with tempfile.TemporaryDirectory(prefix="slipway-release-") as workdir:
        package = _package(root, config, client, version, Path(workdir))
        stack = target.open_stack(root / "infra", environment)
        _publish(config, stack, environment, package, echo=echo, warn=warn)
    echo(
        f"deploying version {version} to SageMaker {environment} (Pulumi stack "
        f"{environment}); SageMaker runs the canary, its alarms roll back"
    )
    outcome = target.deploy_model_version(
        stack,
        target.sagemaker_client(config.deploy.region),
        environment,
        int(version),
        policy_pack=pack,
        on_output=echo,
    )
    _record(spoke, client, version, environment, outcome)
    return ReleaseResult(version=version, environment=environment, outcome=outcome)


def _package(
    root: Path, config: SpokeConfig, client: MlflowClient, version: str, workdir: Path
) -> ModelPackage:
    """The version's model.tar.gz and the commit of its image, or an error saying why not."""
    from mlflow.exceptions import MlflowException

    from slipway.pipelines.rollout.packaging import NotReleasable, package_version

    try:
        return package_version(root, client, config.model_name, version, workdir)
    except NotReleasable as exc:
        raise NotReleasable(f"version {version} cannot go to SageMaker: {exc}") from exc
    except (MlflowException, OSError) as exc:
        raise ReleaseFailed(
            f"cannot download version {version}'s model from the registry ({exc}); check "
            "MLFLOW_TRACKING_URI and your access to its artifact store, then deploy again"
        ) from exc


def _publish(
    config: SpokeConfig,
    stack: PulumiStack,
    environment: str,
    package: ModelPackage,
    *,
    echo: Echo,
    warn: Echo,
) -> None:
    """Put the version's image tag and model.tar.gz where the stack's release will look."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pulumi.automation import CommandError

    from slipway.infra import release_artifacts as artifacts
    from slipway.infra.spoke_stack import IMAGE_URI, MODEL_DATA_URL

    version = package.version
    s3, ecr = artifacts.release_clients(config.deploy.region)
    try:
        published = artifacts.publish_release(
            s3, ecr, stack.outputs(), environment, version, package.tarball, package.commit_sha
        )
    except artifacts.ReleaseRefused as exc:
        raise ReleaseFailed(
            f"version {version} was not published to stack {environment}, nothing was "
            f"deployed: {exc}"
        ) from exc
    except (ClientError, CommandError) as exc:
        raise ReleaseFailed(
            f"publishing version {version} to stack {environment} failed, nothing was "
            f"deployed: {exc}. A permission error means the role deploying lacks the stack's "
            "CI role grants (slipway.infra.access): use that role, then deploy again"
        ) from exc
    except BotoCoreError as exc:
        raise ReleaseFailed(
            f"cannot reach AWS to publish version {version} ({exc}); nothing was deployed: "
            "check the credentials and the network, then deploy again",
            exit_code=Exit.UNREACHABLE,
        ) from exc
    echo(
        f"published version {version}: image {published.image_uri} (commit "
        f"{package.commit_sha}), model {published.model_data_url}"
    )
    # Stack settings that replace a release's image or model (spoke_stack.release_for).
    for key, what in ((IMAGE_URI, "image"), (MODEL_DATA_URL, "model")):
        value = target.stack_setting(stack, key)
        if value:
            warn(
                f"note: stack setting {key} = {value} replaces the published {what}: "
                f"version {version} will run with it, not its own; remove it (`pulumi "
                f"config rm {key} --stack {environment}` in infra/) unless you meant it"
            )


def _record(
    spoke: Spoke,
    client: MlflowClient,
    version: str,
    environment: str,
    outcome: DeployOutcome,
) -> None:
    """Registry and audit trail, as the local rollout records them: a rollback takes the
    `challenger` alias away, a prod deploy promotes, the rest is an audit line (and a tag)."""
    from slipway.pipelines.rollout import release

    status = target.DeployStatus
    model = spoke.config.model_name
    reason = f"SageMaker {environment}: {outcome.message}"
    details = {
        "target": "sagemaker",
        "environment": environment,
        "status": outcome.status.value,
        "endpoint": outcome.endpoint_name,
        "serving_config": outcome.actual_config,
    }
    if outcome.status is status.rolled_back:
        release.reject_challenger(spoke, client, model, version, reason=reason, details=details)
    elif outcome.status is status.deployed and environment == "prod":
        release.promote(spoke, client, model, version, reason=reason, details=details)
    else:
        if outcome.status is status.deployed:
            release.tag_outcome(client, model, version, STAGED, reason)
        spoke.record("deploy", model=model, version=version, reason=reason, details=details)
