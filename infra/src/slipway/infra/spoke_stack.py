"""The spoke's stack: everything one environment of a spoke needs, from slipway.toml.

A spoke's `infra/__main__.py` calls `spoke_program`: load slipway.toml, read the stack
inputs, call `build_spoke_stack`. dev gets storage, an image repository, roles and a budget (it
serves with the local target); staging and prod add the endpoint with canary and alarms.
With no model version in the stack configuration (a first deploy, nothing registered yet)
no endpoint is created: the stack succeeds and reports `endpoint_status = "bootstrap"`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from slipway.infra.access import AccessScope, SpokeAccess
from slipway.infra.artifact_store import ArtifactStore
from slipway.infra.budget import SpokeBudget
from slipway.infra.endpoint import (
    DataCapture,
    ModelEndpoint,
    ModelRelease,
    ServingContainer,
    guardrail_dimensions,
)
from slipway.infra.github_environment import REVIEWED, GitHubEnvironment
from slipway.infra.image_repository import ModelImageRepository
from slipway.infra.plan import (
    GITHUB_OIDC_HOST,
    Environment,
    endpoint_plan,
    environment_budget_usd,
    parse_environment,
)
from slipway.infra.tags import PROJECT_TAG, spoke_tags
from slipway.pipelines.config import SpokeConfig, load_config
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.serving.guardrail_metrics import CAPTURE_PREFIX

DEFAULT_CHAMPION_P95_MS = 100.0
GITHUB_REPOSITORY_RE = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


class StackInputError(SlipwayError, ValueError):
    """A stack configuration value is wrong; the message names the key and the fix."""

    exit_code = Exit.CONFIG


@dataclass(frozen=True)
class StackInputs:
    """What the stack configuration (Pulumi.<env>.yaml) adds to slipway.toml.

    The model version is deploy-time state, not design: `slipway deploy` sets it through
    the Automation API (sagemaker_target.deploy_model_version). An unset champion p95
    stays None (the latency alarm then starts from DEFAULT_CHAMPION_P95_MS), so the stack
    exports only the deploy settings it was really given.
    """

    model_version: int | None = None
    image_uri: str | None = None
    model_data_url: str | None = None
    previous_model_version: int | None = None
    champion_p95_latency_ms: float | None = None
    github_repository: str | None = None
    # The GitHub environment of this stack (github_environment.py): deployable from this
    # branch only; prod also needs a review by these teams (GitHub team ids).
    github_default_branch: str = "main"
    github_reviewer_teams: tuple[int, ...] = ()


def _version(raw: str | None, key: str) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise StackInputError(
            f"stack config {key} = {raw!r} is not a registered model version; set a positive "
            f"integer (`pulumi config set {key} 3`) or remove it (`pulumi config rm {key}`)"
        )
    return int(raw)


# The stack configuration keys (Pulumi.<env>.yaml) the program reads; the deploy target and
# the workflows' carry step write the deploy-time ones under the same names.
MODEL_VERSION = "modelVersion"
PREVIOUS_MODEL_VERSION = "previousModelVersion"
CHAMPION_P95_LATENCY_MS = "championP95LatencyMs"
IMAGE_URI = "imageUri"
MODEL_DATA_URL = "modelDataUrl"
GITHUB_REPOSITORY = "githubRepository"
GITHUB_DEFAULT_BRANCH = "githubDefaultBranch"
GITHUB_REVIEWER_TEAMS = "githubReviewerTeams"


def parse_stack_inputs(values: Mapping[str, str | None]) -> StackInputs:
    """Validate the raw stack configuration values (keys as in Pulumi.<env>.yaml)."""
    latency_raw = values.get(CHAMPION_P95_LATENCY_MS)
    try:
        latency = float(latency_raw) if latency_raw else None
    except ValueError:
        latency = -1.0
    if latency is not None and latency <= 0:
        raise StackInputError(
            f"stack config championP95LatencyMs = {latency_raw!r} must be a positive number "
            "of milliseconds (the serving champion's measured p95 latency)"
        )
    repo = values.get(GITHUB_REPOSITORY) or None
    if repo is not None and not re.match(GITHUB_REPOSITORY_RE, repo):
        raise StackInputError(
            f"stack config githubRepository = {repo!r} must be 'owner/name' of the GitHub "
            "repository whose Actions may deploy this spoke"
        )
    teams_raw = values.get(GITHUB_REVIEWER_TEAMS) or ""
    teams = [t.strip() for t in teams_raw.split(",") if t.strip()]
    if not all(t.isdigit() for t in teams):
        raise StackInputError(
            f"stack config {GITHUB_REVIEWER_TEAMS} = {teams_raw!r} must be GitHub team ids, "
            "comma-separated (`gh api orgs/ORG/teams/SLUG --jq .id`)"
        )
    inputs = StackInputs(
        model_version=_version(values.get(MODEL_VERSION), MODEL_VERSION),
        image_uri=values.get(IMAGE_URI) or None,
        model_data_url=values.get(MODEL_DATA_URL) or None,
        previous_model_version=_version(values.get(PREVIOUS_MODEL_VERSION), PREVIOUS_MODEL_VERSION),
        champion_p95_latency_ms=latency,
        github_repository=repo,
        github_default_branch=values.get(GITHUB_DEFAULT_BRANCH) or "main",
        github_reviewer_teams=tuple(int(t) for t in teams),
    )
    if inputs.model_version is None and inputs.previous_model_version is not None:
        raise StackInputError(
            "stack config previousModelVersion is set but modelVersion is not; set the "
            "version to serve with `pulumi config set modelVersion N`"
        )
    return inputs


# Deploy-time state: `slipway deploy` writes these, nobody commits them. The stack exports the
# ones it was given (DEPLOY_SETTINGS_OUTPUT), so a runner, which keeps no stack config, can
# carry them into its next `pulumi up` (slipway.infra.deploy_settings).
DEPLOY_SETTING_KEYS = (MODEL_VERSION, PREVIOUS_MODEL_VERSION, CHAMPION_P95_LATENCY_MS)
STACK_INPUT_KEYS = (
    *DEPLOY_SETTING_KEYS,
    IMAGE_URI,
    MODEL_DATA_URL,
    GITHUB_REPOSITORY,
    GITHUB_DEFAULT_BRANCH,
    GITHUB_REVIEWER_TEAMS,
)
DEPLOY_SETTINGS_OUTPUT = "deploy_settings"


def read_stack_inputs() -> StackInputs:
    """The current Pulumi stack's configuration, validated."""
    config = pulumi.Config()
    return parse_stack_inputs({key: config.get(key) for key in STACK_INPUT_KEYS})


def deploy_settings_of(inputs: StackInputs) -> dict[str, str]:
    """The deploy settings the stack was given, as stack config strings (only those set):
    exported so the next run can set them again, since no committed file holds them."""
    given = (inputs.model_version, inputs.previous_model_version, inputs.champion_p95_latency_ms)
    return {
        key: str(value)
        for key, value in zip(DEPLOY_SETTING_KEYS, given, strict=True)
        if value is not None
    }


def release_for(
    version: int,
    inputs_image: str | None,
    inputs_data: str | None,
    *,
    repository_url: str,
    bucket_name: str,
) -> ModelRelease:
    """A version's image and artifact: the stack config's overrides, else the conventions
    (the image tagged `v<version>` in the spoke's repository, the artifact under
    `models/v<version>/` in its bucket) that the training pipeline publishes to."""
    return ModelRelease(
        version=version,
        image_uri=inputs_image or f"{repository_url}:v{version}",
        model_data_url=inputs_data or f"s3://{bucket_name}/models/v{version}/model.tar.gz",
    )


def github_oidc_provider_arn(account_id: str) -> str:
    """The account's GitHub OIDC provider, created once by the hub platform stack."""
    return f"arn:aws:iam::{account_id}:oidc-provider/{GITHUB_OIDC_HOST}"


def require_region(expected: str, source: str) -> None:
    """Fail before creating anything when the AWS provider targets another region."""
    actual = aws.get_region().region
    if actual != expected:
        raise StackInputError(
            f"the AWS provider targets {actual} but {source} says {expected}; set "
            f"`pulumi config set aws:region {expected}` (or change {source})"
        )


def build_spoke_stack(
    config: SpokeConfig, environment: Environment, inputs: StackInputs
) -> dict[str, Any]:
    """Create the environment's resources; return the outputs to export."""
    require_region(config.deploy.region, "slipway.toml [deploy].region")
    slug = config.project.slug
    env = environment.value
    tags = spoke_tags(config, env)
    # A synchronous invoke: names below are plain strings, known even in `pulumi preview`,
    # which is what lets the policies match buckets, alarms and endpoints by name.
    account_id = aws.get_caller_identity().account_id
    prefix = f"{slug}-{env}"
    bucket_name = f"{prefix}-{account_id}"
    store = ArtifactStore(f"{prefix}-artifacts", bucket_name=bucket_name, tags=tags)
    repository_name = f"slipway/{prefix}"
    repository_url = f"{account_id}.dkr.ecr.{config.deploy.region}.amazonaws.com/{repository_name}"
    images = ModelImageRepository(
        f"{prefix}-images",
        repository_name=repository_name,
        tags=tags,
        kms_key_arn=store.kms_key_arn,
    )
    access = SpokeAccess(
        f"{prefix}-access",
        scope=AccessScope(
            name_prefix=prefix,
            region=config.deploy.region,
            account_id=account_id,
            bucket_name=bucket_name,
            bucket_prefix="",
            kms_key_arn=store.kms_key_arn,
            repository_arn=images.repository_arn,
        ),
        tags=tags,
        github_repository=inputs.github_repository,
        github_oidc_provider_arn=github_oidc_provider_arn(account_id),
        # This stack's GitHub environment only: the prod role trusts prod's jobs alone.
        github_environments=(env,),
    )
    if inputs.github_repository:
        # The environment the CI role trusts, protected where GitHub enforces it: the
        # default branch only, and for prod required reviewers (github_environment.py).
        GitHubEnvironment(
            f"{prefix}-github",
            repository=inputs.github_repository,
            environment=env,
            default_branch=inputs.github_default_branch,
            reviewer_teams=inputs.github_reviewer_teams if env in REVIEWED else (),
        )
    budget = SpokeBudget(
        f"{prefix}-budget",
        budget_name=prefix,
        match_tags={f"user:{PROJECT_TAG}": slug, "user:environment": env},
        monthly_usd=environment_budget_usd(config, environment),
        email=config.project.contact,
        tags=tags,
    )
    outputs: dict[str, Any] = {
        "environment": env,
        "bucket_name": store.bucket_name,
        "repository_url": images.repository_url,
        "pipeline_role_arn": access.pipeline_role_arn,
        "endpoint_role_arn": access.endpoint_role_arn,
        "ci_role_arn": access.ci_role_arn,
        "budget_name": budget.budget_name,
        DEPLOY_SETTINGS_OUTPUT: deploy_settings_of(inputs),
    }
    plan = endpoint_plan(config, environment)
    if plan is None:
        outputs["endpoint_status"] = "local-target"
        return outputs
    if inputs.model_version is None:
        # First deploy: nothing registered yet. Storage, images and roles exist so the
        # first training run can publish; the endpoint comes with the first modelVersion.
        outputs["endpoint_status"] = "bootstrap"
        return outputs
    known = {"repository_url": repository_url, "bucket_name": bucket_name}
    current = release_for(inputs.model_version, inputs.image_uri, inputs.model_data_url, **known)
    previous = (
        release_for(inputs.previous_model_version, None, None, **known)
        if inputs.previous_model_version is not None
        else None
    )
    endpoint = ModelEndpoint(
        f"{prefix}-serving",
        endpoint_name=prefix,
        plan=plan,
        release=current,
        previous=previous,
        execution_role_arn=access.endpoint_role_arn,
        kms_key_arn=store.kms_key_arn,
        champion_p95_latency_ms=(
            DEFAULT_CHAMPION_P95_MS
            if inputs.champion_p95_latency_ms is None
            else inputs.champion_p95_latency_ms
        ),
        # The serving container publishes PredictionPSI with exactly these dimensions.
        drift_dimensions=guardrail_dimensions(prefix),
        container=ServingContainer({"AWS_DEFAULT_REGION": config.deploy.region}),
        data_capture=DataCapture(
            destination_s3_uri=f"s3://{bucket_name}/{CAPTURE_PREFIX}",
            kms_key_id=store.kms_key_arn,
        ),
        tags=tags,
    )
    outputs.update(
        endpoint_status="serving",
        endpoint_name=endpoint.endpoint_name,
        endpoint_config_name=endpoint.endpoint_config_name,
        previous_endpoint_config_name=endpoint.previous_endpoint_config_name,
        alarm_names=endpoint.alarm_names,
        model_version=current.version,
    )
    return outputs


def spoke_program(spoke_root: Path) -> dict[str, Any]:
    """The whole of a spoke's `infra/__main__.py`: slipway.toml + stack config -> resources.

    Exports every output and returns them (the spoke's mock test reads the return value).
    """
    config = load_config(spoke_root)
    outputs = build_spoke_stack(config, parse_environment(pulumi.get_stack()), read_stack_inputs())
    for name, value in outputs.items():
        pulumi.export(name, value)
    return outputs
