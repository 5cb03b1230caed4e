"""SpokeAccess: the IAM roles a spoke's pipelines, endpoint and CI assume, least privilege.

Every statement names its resources (the spoke's bucket prefix, its image repository, its
KMS key, SageMaker resources, alarms and log groups named `<prefix>` or `<prefix>-...`). The
separator matters: a grant on `claims*` would also reach a spoke named `claims-triage`; the
hub refuses slugs that extend another with `-` (platform.py), so `claims-*` cannot either.
The only `*` resources are on the few actions AWS defines only on `*`
(ecr:GetAuthorizationToken, two read-only autoscaling Describe calls,
cloudwatch:PutMetricData limited by a namespace condition). CI gets no long-lived keys:
GitHub's OIDC token is trusted for exactly one repository and one GitHub environment per
stack (`repo:<owner>/<name>:environment:<env>`, StringEquals, no wildcard), so a workflow on
a feature branch, or one that names no environment, cannot assume the prod role: GitHub
issues that subject only to jobs the environment's protection rules let through.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from slipway.infra.plan import DRIFT_NAMESPACE, GITHUB_OIDC_HOST
from slipway.infra.tags import GITHUB_REPOSITORY_TAG
from slipway.pipelines.config import BATCH_PREFIX
from slipway.pipelines.serving.guardrail_metrics import CAPTURE_PREFIX

_ECR_PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
_ECR_PUSH = (
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)


@dataclass(frozen=True)
class AccessScope:
    """What one spoke may touch: names and ARNs known before anything is created."""

    name_prefix: str  # SageMaker resources, alarms, log groups: this name, or it + "-..."
    region: str
    account_id: pulumi.Input[str]
    bucket_name: str
    bucket_prefix: str  # "" for a spoke's own bucket, "spokes/<slug>/" in the hub's bucket
    kms_key_arn: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    # The team's managed MLflow (the hub's SageMaker tracking server), by name: its
    # registry actions are granted on that one server, never on `*`.
    mlflow_tracking_server: str | None = None


def mlflow_tracking_server_arn(region: str, account_id: str, name: str) -> str:
    """The ARN that is also the tracking URI a spoke sets (with the sagemaker-mlflow plugin)."""
    return f"arn:aws:sagemaker:{region}:{account_id}:mlflow-tracking-server/{name}"


def _mlflow_statements(scope: AccessScope, account_id: str) -> list[dict[str, Any]]:
    """Register versions, move aliases, log runs and artifacts on the team's tracking server
    (every `sagemaker-mlflow:` action: the registry is the pipeline's and CI's job), and
    find it; on that one server only."""
    if scope.mlflow_tracking_server is None:
        return []
    arn = mlflow_tracking_server_arn(scope.region, account_id, scope.mlflow_tracking_server)
    return [
        statement(["sagemaker-mlflow:*"], [arn]),
        statement(["sagemaker:DescribeMlflowTrackingServer"], [arn]),
    ]


def statement(
    actions: Sequence[str], resources: Sequence[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    stmt: dict[str, Any] = {
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": list(resources),
    }
    if condition:
        stmt["Condition"] = condition
    return stmt


def policy_document(statements: Sequence[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def service_trust(service: str) -> str:
    """Trust policy letting an AWS service (e.g. sagemaker.amazonaws.com) assume a role."""
    return policy_document(
        [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    )


def github_subject(repository: str, environment: str) -> str:
    """The OIDC subject GitHub gives a job of `repository` that runs in `environment`."""
    return f"repo:{repository}:environment:{environment}"


def github_oidc_trust(provider_arn: str, repository: str, environments: Sequence[str]) -> str:
    """Trust policy for GitHub Actions jobs of one repository (`owner/name`) running in one
    of `environments` (GitHub environments, e.g. prod): exact subjects, never a pattern."""
    if not environments:
        raise ValueError("a GitHub OIDC trust needs at least one GitHub environment")
    subjects = [github_subject(repository, env) for env in environments]
    return policy_document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC_HOST}:sub": subjects[0] if len(subjects) == 1 else subjects,
                    },
                },
            }
        ]
    )


def _storage_statements(scope: AccessScope, kms_key_arn: str, write: bool) -> list[dict[str, Any]]:
    bucket_arn = f"arn:aws:s3:::{scope.bucket_name}"
    objects = f"{bucket_arn}/{scope.bucket_prefix}*"
    object_actions = ["s3:GetObject", *(["s3:PutObject"] if write else [])]
    kms_actions = ["kms:Decrypt", *(["kms:GenerateDataKey"] if write else [])]
    list_condition = (
        {"StringLike": {"s3:prefix": [f"{scope.bucket_prefix}*"]}} if scope.bucket_prefix else None
    )
    return [
        statement(object_actions, [objects]),
        statement(["s3:ListBucket"], [bucket_arn], list_condition),
        statement(kms_actions, [kms_key_arn]),
    ]


def _named(scope: AccessScope) -> tuple[str, str]:
    """The names a spoke owns: its prefix itself, and anything after its prefix and `-`."""
    return scope.name_prefix, f"{scope.name_prefix}-*"


_LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")


def _endpoint_logs_statement(scope: AccessScope, account_id: str) -> dict[str, Any]:
    """The endpoint's own log groups, /aws/sagemaker/Endpoints/<endpoint name>, and streams."""
    groups = f"arn:aws:logs:{scope.region}:{account_id}:log-group:/aws/sagemaker/Endpoints"
    exact, others = _named(scope)
    return statement(
        _LOG_ACTIONS, [f"{groups}/{exact}", f"{groups}/{exact}:*", f"{groups}/{others}"]
    )


def _job_logs_statement(scope: AccessScope, account_id: str) -> dict[str, Any]:
    """Training and processing jobs log to shared groups, one stream per job named after it:
    the groups may be created, and only the spoke's jobs' streams written."""
    base = f"arn:aws:logs:{scope.region}:{account_id}:log-group:/aws/sagemaker"
    groups = [f"{base}/{kind}" for kind in ("TrainingJobs", "ProcessingJobs")]
    return statement(
        _LOG_ACTIONS, [*groups, *(f"{g}:log-stream:{scope.name_prefix}-*" for g in groups)]
    )


def _sagemaker_arns(scope: AccessScope, account_id: str) -> list[str]:
    base = f"arn:aws:sagemaker:{scope.region}:{account_id}"
    return [
        f"{base}:{kind}/{name}"
        for kind in ("model", "endpoint-config", "endpoint", "training-job", "processing-job")
        for name in _named(scope)
    ]


def _alarm_arns(scope: AccessScope, account_id: str) -> list[str]:
    """The endpoint's rollback alarms: `<endpoint name>-<guardrail>` (endpoint.alarm_names)."""
    return [f"arn:aws:cloudwatch:{scope.region}:{account_id}:alarm:{scope.name_prefix}-*"]


def pipeline_policy(scope: AccessScope, account_id: str, kms: str, repo: str) -> str:
    """Training pipelines: read/write artifacts, pull images, run jobs under the prefix."""
    return policy_document(
        [
            *_storage_statements(scope, kms, write=True),
            statement(_ECR_PULL, [repo]),
            statement(["ecr:GetAuthorizationToken"], ["*"]),
            _job_logs_statement(scope, account_id),
            *_mlflow_statements(scope, account_id),
            statement(
                [
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                ],
                _sagemaker_arns(scope, account_id),
            ),
        ]
    )


def _transform_output(scope: AccessScope) -> str:
    """Where a Batch Transform job of the spoke writes: batch/<job>/output/ only."""
    return f"arn:aws:s3:::{scope.bucket_name}/{scope.bucket_prefix}{BATCH_PREFIX}/*/output/*"


def _transform_statement(scope: AccessScope, account_id: str) -> dict[str, Any]:
    """`slipway score --env`: transform jobs named after the spoke, on the spoke's Models."""
    base = f"arn:aws:sagemaker:{scope.region}:{account_id}"
    return statement(
        [
            "sagemaker:CreateTransformJob",
            "sagemaker:DescribeTransformJob",
            "sagemaker:StopTransformJob",
        ],
        [f"{base}:{kind}/{name}" for kind in ("transform-job", "model") for name in _named(scope)],
    )


def endpoint_policy(scope: AccessScope, account_id: str, kms: str, repo: str) -> str:
    """The endpoint: read model artifacts, pull its image, publish the drift metric, write
    its data capture (under CAPTURE_PREFIX only), and read its own rollback alarms
    (SageMaker's deployment guardrails check them as this role). A Batch Transform job runs
    as its Model's role, this one: it reads its staged input and writes its output under
    batch/<job>/output/, nowhere else."""
    capture = f"arn:aws:s3:::{scope.bucket_name}/{scope.bucket_prefix}{CAPTURE_PREFIX}/*"
    return policy_document(
        [
            *_storage_statements(scope, kms, write=False),
            statement(["s3:PutObject"], [capture, _transform_output(scope)]),
            statement(["kms:GenerateDataKey"], [kms]),
            statement(_ECR_PULL, [repo]),
            statement(["ecr:GetAuthorizationToken"], ["*"]),
            _endpoint_logs_statement(scope, account_id),
            statement(["cloudwatch:DescribeAlarms"], _alarm_arns(scope, account_id)),
            statement(
                ["cloudwatch:PutMetricData"],
                ["*"],
                {"StringEquals": {"cloudwatch:namespace": DRIFT_NAMESPACE}},
            ),
        ]
    )


def _volume_key_statement(kms_key_arn: str) -> dict[str, Any]:
    """CreateEndpoint with an encrypted endpoint configuration: SageMaker, as the caller,
    creates a grant on the key for the instances' volumes (and only for AWS resources)."""
    return statement(
        ["kms:CreateGrant", "kms:DescribeKey"],
        [kms_key_arn],
        {"Bool": {"kms:GrantIsForAWSResource": "true"}},
    )


def ci_policy(scope: AccessScope, account_id: str, kms: str, repo: str, pass_role: str) -> str:
    """CI deploys model versions: push images and artifacts (a version's model.tar.gz under
    models/, its image's tag vN: release_artifacts), create a version's Model and
    EndpointConfiguration, create the endpoint on the first versioned deploy (with its
    autoscaling) and roll it later, move alarm thresholds, run batch scoring as Batch
    Transform jobs on those Models (`slipway score --env`). Structural changes (roles, keys,
    buckets, budgets) stay with the platform team's credentials."""
    return policy_document(
        [
            *_storage_statements(scope, kms, write=True),
            _volume_key_statement(kms),
            # DescribeImages: `slipway deploy` checks which image a version's tag holds.
            statement([*_ECR_PULL, *_ECR_PUSH, "ecr:DescribeImages"], [repo]),
            statement(["ecr:GetAuthorizationToken"], ["*"]),
            *_mlflow_statements(scope, account_id),
            _transform_statement(scope, account_id),
            statement(
                [
                    "sagemaker:CreateModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:DeleteModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                _sagemaker_arns(scope, account_id),
            ),
            statement(
                ["iam:PassRole"],
                [pass_role],
                {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            # A new champion moves the latency alarm's threshold.
            statement(
                [
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:PutMetricAlarm",
                    "cloudwatch:ListTagsForResource",
                    "cloudwatch:TagResource",
                ],
                _alarm_arns(scope, account_id),
            ),
            *_autoscaling_statements(scope, account_id),
        ]
    )


AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"


def _autoscaling_statements(scope: AccessScope, account_id: str) -> list[dict[str, Any]]:
    """The endpoint's autoscaling, registered with it on the first versioned deploy.

    Scalable targets have random IDs, so their ARNs can be narrowed to the region and
    account and no further. The service-linked role Application Auto Scaling uses for
    SageMaker is created on first use, and only that one.
    """
    targets = f"arn:aws:application-autoscaling:{scope.region}:{account_id}:scalable-target/*"
    linked_role = (
        f"arn:aws:iam::{account_id}:role/aws-service-role/{AUTOSCALING_SERVICE}/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    return [
        statement(
            [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:ListTagsForResource",
                "application-autoscaling:TagResource",
            ],
            [targets],
        ),
        # AWS defines these read-only calls on "*" only.
        statement(
            [
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
            ],
            ["*"],
        ),
        statement(
            ["iam:CreateServiceLinkedRole"],
            [linked_role],
            {"StringEquals": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
        ),
    ]


class SpokeAccess(pulumi.ComponentResource):
    """Pipeline, endpoint and (with a GitHub repository) CI roles for one spoke.

    The CI role trusts jobs of `github_repository` running in one of `github_environments`:
    a spoke stack passes its own environment only, so staging's role cannot touch prod.
    """

    pipeline_role_arn: pulumi.Output[str]
    endpoint_role_arn: pulumi.Output[str]
    ci_role_arn: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        *,
        scope: AccessScope,
        tags: dict[str, str],
        github_repository: str | None,
        github_oidc_provider_arn: pulumi.Input[str] | None,
        github_environments: Sequence[str] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("slipway:infra:SpokeAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        refs = pulumi.Output.all(scope.account_id, scope.kms_key_arn, scope.repository_arn)

        def role(
            suffix: str,
            trust: pulumi.Input[str],
            policy: pulumi.Input[str],
            extra_tags: dict[str, str] | None = None,
        ) -> aws.iam.Role:
            created = aws.iam.Role(
                f"{name}-{suffix}",
                name=f"{scope.name_prefix}-{suffix}"[:64],
                assume_role_policy=trust,
                max_session_duration=3600,
                tags={**tags, **(extra_tags or {})},
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{suffix}-policy", role=created.id, policy=policy, opts=child
            )
            return created

        pipeline = role(
            "pipeline",
            service_trust("sagemaker.amazonaws.com"),
            refs.apply(lambda r: pipeline_policy(scope, *r)),
        )
        endpoint = role(
            "endpoint",
            service_trust("sagemaker.amazonaws.com"),
            refs.apply(lambda r: endpoint_policy(scope, *r)),
        )
        self.pipeline_role_arn = pipeline.arn
        self.endpoint_role_arn = endpoint.arn
        self.ci_role_arn = None
        if github_repository and github_oidc_provider_arn is not None:
            trust = pulumi.Output.from_input(github_oidc_provider_arn).apply(
                lambda arn: github_oidc_trust(arn, github_repository, github_environments)
            )
            ci_refs = pulumi.Output.all(refs, endpoint.arn)
            ci = role(
                "ci",
                trust,
                ci_refs.apply(lambda r: ci_policy(scope, r[0][0], r[0][1], r[0][2], r[1])),
                # The github-trust-scoped policy checks the trust names this repository only.
                {GITHUB_REPOSITORY_TAG: github_repository},
            )
            self.ci_role_arn = ci.arn
        self.register_outputs(
            {
                "pipeline_role_arn": self.pipeline_role_arn,
                "endpoint_role_arn": self.endpoint_role_arn,
                "ci_role_arn": self.ci_role_arn,
            }
        )
