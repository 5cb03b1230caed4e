"""The hub platform stack: what every spoke shares, and the onboarding of each spoke.

One KMS key, one shared artifact store, a managed MLflow tracking server
(aws.sagemaker.MlflowTrackingServer) as the shared registry, the account's GitHub OIDC
provider, and for each spoke declared in infra/platform/spokes.toml: its image
repository, one role scoped to its prefix `spokes/<slug>/` of the shared bucket, and a
budget. The declared list is validated here, once, like slipway.toml.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import pulumi
import pulumi_aws as aws
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from slipway.infra.access import (
    AccessScope,
    SpokeAccess,
    mlflow_tracking_server_arn,
    policy_document,
    service_trust,
    statement,
)
from slipway.infra.artifact_store import ArtifactStore
from slipway.infra.budget import SpokeBudget
from slipway.infra.image_repository import ModelImageRepository
from slipway.infra.plan import GITHUB_OIDC_HOST
from slipway.infra.spoke_stack import GITHUB_REPOSITORY_RE, require_region
from slipway.infra.tags import PROJECT_TAG
from slipway.pipelines.config import EMAIL_RE, REGION_RE, SLUG_RE, RiskTier
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

PLATFORM_PROJECT = "slipway-hub"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpokeEntry(_Strict):
    """One onboarded spoke: who owns it, what it may spend, which repository deploys it."""

    slug: Annotated[str, Field(pattern=SLUG_RE, max_length=40)]
    team: str = Field(min_length=1)
    contact: Annotated[str, Field(pattern=EMAIL_RE)]
    cost_center: str = Field(min_length=1)
    risk_tier: RiskTier = RiskTier.medium
    monthly_usd: float = Field(gt=0)
    github_repository: Annotated[str, Field(pattern=GITHUB_REPOSITORY_RE)]


class Platform(_Strict):
    team: str = Field(min_length=1)
    contact: Annotated[str, Field(pattern=EMAIL_RE)]
    cost_center: str = Field(min_length=1)
    region: Annotated[str, Field(pattern=REGION_RE)] = "eu-west-1"
    monthly_usd: float = Field(gt=0)
    mlflow_size: str = Field(default="Small", pattern="^(Small|Medium|Large)$")


class PlatformSpec(_Strict):
    platform: Platform
    spokes: list[SpokeEntry] = []

    @model_validator(mode="after")
    def _unique_slugs(self) -> PlatformSpec:
        slugs = [s.slug for s in self.spokes]
        duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
        if duplicates:
            raise ValueError(f"spokes declared twice: {duplicates}; keep one entry per slug")
        return self

    @model_validator(mode="after")
    def _slugs_apart(self) -> PlatformSpec:
        """IAM grants a spoke the names `<slug>` and `<slug>-*`: a slug that extends another
        with `-` would fall inside the other's grant."""
        slugs = sorted(s.slug for s in self.spokes)
        clashes = [(a, b) for a in slugs for b in slugs if b.startswith(f"{a}-")]
        if clashes:
            pairs = ", ".join(f"{b!r} extends {a!r}" for a, b in clashes)
            raise ValueError(
                f"{pairs}: the IAM grant on '<slug>-*' of the first would reach "
                "the second's resources; rename one of them"
            )
        return self


class PlatformSpecError(SlipwayError, ValueError):
    """spokes.toml is invalid; the message names each field and what is allowed."""

    exit_code = Exit.CONFIG


def load_platform_spec(path: Path) -> PlatformSpec:
    """Parse and validate the hub's declared platform and spokes (infra/platform/spokes.toml)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlatformSpecError(f"{path}: cannot read it as TOML: {exc}") from exc
    try:
        return PlatformSpec.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"  - {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise PlatformSpecError(
            "\n".join([f"{path}: {exc.error_count()} problem(s)", *problems])
        ) from exc


def platform_tags(platform: Platform) -> dict[str, str]:
    # The shared platform holds every spoke's artifacts: it is governed as high risk.
    return {
        "owner": platform.contact,
        "team": platform.team,
        "risk-tier": RiskTier.high.value,
        "cost-center": platform.cost_center,
        PROJECT_TAG: PLATFORM_PROJECT,
        "managed-by": "slipway",
    }


def spoke_entry_tags(spoke: SpokeEntry) -> dict[str, str]:
    return {
        "owner": spoke.contact,
        "team": spoke.team,
        "risk-tier": spoke.risk_tier.value,
        "cost-center": spoke.cost_center,
        PROJECT_TAG: spoke.slug,
        "managed-by": "slipway",
    }


def _mlflow(
    bucket_name: str, kms_key_arn: pulumi.Output[str], size: str, tags: dict[str, str]
) -> aws.sagemaker.MlflowTrackingServer:
    """The shared registry: SageMaker's managed MLflow, artifacts under mlflow/ in the bucket."""
    prefix = "mlflow/"
    role = aws.iam.Role(
        "mlflow-role",
        name=f"{PLATFORM_PROJECT}-mlflow",
        assume_role_policy=service_trust("sagemaker.amazonaws.com"),
        tags=tags,
    )
    bucket_arn = f"arn:aws:s3:::{bucket_name}"
    aws.iam.RolePolicy(
        "mlflow-role-policy",
        role=role.id,
        policy=kms_key_arn.apply(
            lambda key: policy_document(
                [
                    statement(
                        ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        [f"{bucket_arn}/{prefix}*"],
                    ),
                    statement(["s3:ListBucket", "s3:GetBucketLocation"], [bucket_arn]),
                    statement(["kms:Decrypt", "kms:GenerateDataKey"], [key]),
                ]
            )
        ),
    )
    return aws.sagemaker.MlflowTrackingServer(
        "mlflow",
        tracking_server_name=PLATFORM_PROJECT,
        artifact_store_uri=f"s3://{bucket_name}/{prefix}",
        role_arn=role.arn,
        tracking_server_size=size,
        automatic_model_registration=False,
        tags=tags,
    )


def build_platform_stack(spec: PlatformSpec) -> dict[str, Any]:
    """Create the hub's shared resources and onboard every declared spoke."""
    require_region(spec.platform.region, "spokes.toml [platform].region")
    tags = platform_tags(spec.platform)
    account_id = aws.get_caller_identity().account_id
    key = aws.kms.Key(
        "platform-key",
        description="Slipway hub: artifacts, images, registry",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        tags=tags,
    )
    aws.kms.Alias("platform-key-alias", name=f"alias/{PLATFORM_PROJECT}", target_key_id=key.id)
    bucket_name = f"{PLATFORM_PROJECT}-{account_id}"
    store = ArtifactStore(
        "shared-artifacts", bucket_name=bucket_name, tags=tags, kms_key_arn=key.arn
    )
    oidc = aws.iam.OpenIdConnectProvider(
        "github-oidc",
        url=f"https://{GITHUB_OIDC_HOST}",
        client_id_lists=["sts.amazonaws.com"],
        tags=tags,
    )
    mlflow = _mlflow(bucket_name, key.arn, spec.platform.mlflow_size, tags)
    SpokeBudget(
        "platform-budget",
        budget_name=PLATFORM_PROJECT,
        match_tags={f"user:{PROJECT_TAG}": PLATFORM_PROJECT},
        monthly_usd=spec.platform.monthly_usd,
        email=spec.platform.contact,
        tags=tags,
    )
    onboarded: dict[str, Any] = {}
    for spoke in spec.spokes:
        stags = spoke_entry_tags(spoke)
        images = ModelImageRepository(
            f"{spoke.slug}-images",
            repository_name=f"slipway/{spoke.slug}",
            tags=stags,
            kms_key_arn=key.arn,
        )
        access = SpokeAccess(
            f"{spoke.slug}-access",
            scope=AccessScope(
                name_prefix=spoke.slug,
                region=spec.platform.region,
                account_id=account_id,
                bucket_name=bucket_name,
                bucket_prefix=f"spokes/{spoke.slug}/",
                kms_key_arn=key.arn,
                repository_arn=images.repository_arn,
                mlflow_tracking_server=PLATFORM_PROJECT,
            ),
            tags=stags,
            github_repository=spoke.github_repository,
            github_oidc_provider_arn=oidc.arn,
            # The hub's role set publishes to the shared store: CD's image and train jobs,
            # which run in the spoke's staging environment. Prod is deployed by the prod
            # stack's own role, trusted by prod's jobs alone.
            github_environments=("staging",),
        )
        SpokeBudget(
            f"{spoke.slug}-budget",
            budget_name=f"slipway-{spoke.slug}",
            match_tags={f"user:{PROJECT_TAG}": spoke.slug},
            monthly_usd=spoke.monthly_usd,
            email=spoke.contact,
            tags=stags,
        )
        onboarded[spoke.slug] = {
            "prefix": f"s3://{bucket_name}/spokes/{spoke.slug}/",
            "repository_url": images.repository_url,
            "ci_role_arn": access.ci_role_arn,
        }
    return {
        "bucket_name": store.bucket_name,
        "kms_key_arn": key.arn,
        "github_oidc_provider_arn": oidc.arn,
        "mlflow_tracking_server_url": mlflow.tracking_server_url,
        # What a spoke sets MLFLOW_TRACKING_URI to (docs/spoke/getting-started.md).
        "mlflow_tracking_uri": mlflow_tracking_server_arn(
            spec.platform.region, account_id, PLATFORM_PROJECT
        ),
        "spokes": onboarded,
    }
