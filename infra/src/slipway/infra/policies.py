"""Policies: plain functions over resource properties, returning what is wrong.

One implementation, two callers: the mock tests run `check_stack` over every stack the
components build, and the Pulumi policy pack in infra/policy/ wraps the same functions so
`pulumi preview` in CI refuses the same mistakes. Properties are Pulumi's (camelCase) names,
as both the mocks and the policy engine see them. This module imports no Pulumi and no AWS
SDK, so the policy pack's own environment needs only pulumi-policy and the config model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from slipway.infra.github_environment import github_environment_protected
from slipway.infra.plan import (
    BUDGET_ALERT_PERCENTS,
    DRIFT_METRIC,
    GITHUB_OIDC_HOST,
    MAX_CANARY_PERCENT,
    MAX_CAPTURE_RETENTION_DAYS,
    MODEL_ERRORS_METRIC,
)
from slipway.infra.tags import GITHUB_REPOSITORY_TAG, REQUIRED_TAGS
from slipway.pipelines.config import RiskTier
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.settings import Settings

BUCKET = "aws:s3/bucket:Bucket"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
KMS_KEY = "aws:kms/key:Key"
ECR_REPO = "aws:ecr/repository:Repository"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
IAM_POLICY = "aws:iam/policy:Policy"
# Resources attaching a managed policy by ARN (property policyArn).
POLICY_ATTACHMENTS = frozenset(
    {
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/userPolicyAttachment:UserPolicyAttachment",
        "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
    }
)
# AWS-managed policies that grant administration or a whole service: never least privilege.
# Every partition (aws, aws-us-gov, aws-cn...) and every path (job-function/...).
AWS_MANAGED = re.compile(r"^arn:aws(-[a-z-]+)?:iam::aws:policy/(?P<path>.+)$")
BROAD_MANAGED_POLICIES = frozenset(
    {
        "AdministratorAccess",
        "PowerUserAccess",
        "IAMFullAccess",
        "job-function/SystemAdministrator",
        "job-function/NetworkAdministrator",
        "job-function/DatabaseAdministrator",
    }
)
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
BUDGET = "aws:budgets/budget:Budget"

# Resource types that carry tags and therefore must carry the required ones.
TAGGABLE = frozenset(
    {
        BUCKET,
        KMS_KEY,
        ECR_REPO,
        ROLE,
        ENDPOINT,
        ENDPOINT_CONFIG,
        ALARM,
        BUDGET,
        "aws:sagemaker/model:Model",
        "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer",
        "aws:appautoscaling/target:Target",
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    }
)
# In CD the workflow sets SLIPWAY_GITHUB_REPOSITORY from github.repository, which GitHub
# itself fills in: it wins over the CI role's GITHUB_REPOSITORY_TAG, which the stack's own
# program could set to anything.
GITHUB_REPOSITORY_ENV = "SLIPWAY_GITHUB_REPOSITORY"
# A rollback must watch each guardrail: errors, latency, and the drift metric.
# Errors are the model's own (ModelErrors, published by the serving container): SageMaker's
# Invocation5XXErrors also counts the gateway's load shedding and no-model 503s.
ROLLBACK_METRICS = frozenset({MODEL_ERRORS_METRIC, "ModelLatency", DRIFT_METRIC})


class ResourceLike(Protocol):
    """What a policy reads: the mock recording and the policy pack's resources both fit."""

    @property
    def type(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def props(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str
    message: str  # what is wrong, then "; fix: " and what to do about it

    def __str__(self) -> str:
        return f"[{self.policy}] {self.resource}: {self.message}"


def _violation(policy: str, resource: str, problem: str, fix: str) -> Violation:
    """Every report ends with what to do: a failed preview should not need this file."""
    return Violation(policy, resource, f"{problem}; fix: {fix}")


Policy = Callable[[Sequence[ResourceLike]], list[Violation]]


def _of(resources: Iterable[ResourceLike], type_token: str) -> list[ResourceLike]:
    return [r for r in resources if r.type == type_token]


def _by_bucket(resources: Sequence[ResourceLike], type_token: str) -> dict[str, ResourceLike]:
    return {str(r.props.get("bucket")): r for r in _of(resources, type_token)}


def _statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return []
    if not isinstance(document, Mapping):
        return []
    stmts = document.get("Statement", [])
    listed = [stmts] if isinstance(stmts, Mapping) else stmts
    return [dict(s) for s in listed if isinstance(s, Mapping)]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    # Any sequence but a string: the policy engine hands lists over as its own read-only
    # Sequence proxy, not `list`; taken for one value, a list of rules read as none.
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return [value]


def encryption_on(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every bucket is encrypted with a KMS key; every KMS key rotates."""
    found: list[Violation] = []
    sse = _by_bucket(resources, SSE)
    for bucket in _of(resources, BUCKET):
        config = sse.get(str(bucket.props.get("bucket")))
        rules = _as_list(config.props.get("rules")) if config else []
        defaults = [r.get("applyServerSideEncryptionByDefault") or {} for r in rules]
        if not any(
            d.get("sseAlgorithm") == "aws:kms" and d.get("kmsMasterKeyId") for d in defaults
        ):
            found.append(
                _violation(
                    "encryption-on",
                    bucket.name,
                    "bucket has no SSE-KMS default encryption with a key",
                    "use slipway.infra.artifact_store.ArtifactStore",
                )
            )
    for key in _of(resources, KMS_KEY):
        if not key.props.get("enableKeyRotation"):
            found.append(
                _violation(
                    "encryption-on",
                    key.name,
                    "KMS key rotation is off",
                    "set enable_key_rotation=True",
                )
            )
    return found


def versioning_on(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every bucket keeps versions: no artifact is lost to an overwrite or a delete."""
    versioning = _by_bucket(resources, VERSIONING)
    found = []
    for bucket in _of(resources, BUCKET):
        config = versioning.get(str(bucket.props.get("bucket")))
        status = (
            (config.props.get("versioningConfiguration") or {}).get("status") if config else None
        )
        if status != "Enabled":
            found.append(
                _violation(
                    "versioning-on",
                    bucket.name,
                    f"versioning is {status or 'not configured'}",
                    "add aws.s3.BucketVersioning with status Enabled (ArtifactStore does)",
                )
            )
    return found


def public_access_blocked(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every bucket blocks all four public access paths and refuses plain HTTP."""
    blocks = _by_bucket(resources, PUBLIC_ACCESS)
    policies = _by_bucket(resources, BUCKET_POLICY)
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    found = []
    for bucket in _of(resources, BUCKET):
        name = str(bucket.props.get("bucket"))
        block = blocks.get(name)
        missing = [f for f in flags if not (block and block.props.get(f) is True)]
        if missing:
            found.append(
                _violation(
                    "public-access-blocked",
                    bucket.name,
                    f"public access not blocked: {', '.join(missing)}",
                    "set all four flags of aws.s3.BucketPublicAccessBlock to True",
                )
            )
        policy = policies.get(name)
        denies_http = any(
            s.get("Effect") == "Deny"
            and (s.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in _statements(policy.props.get("policy") if policy else None)
        )
        if not denies_http:
            found.append(
                _violation(
                    "public-access-blocked",
                    bucket.name,
                    "no bucket policy denying aws:SecureTransport=false",
                    "add a TLS-only bucket policy (ArtifactStore does)",
                )
            )
    return found


def _documents(resources: Sequence[ResourceLike]) -> list[tuple[str, Any]]:
    """Every policy document in the stack with the resource that holds it: role, user and
    group inline policies, managed policies, and a role's inline_policies."""
    held = [
        (r.name, r.props.get("policy"))
        for r in resources
        if r.type in (ROLE_POLICY, USER_POLICY, GROUP_POLICY, IAM_POLICY)
    ]
    held += [
        (role.name, inline.get("policy"))
        for role in _of(resources, ROLE)
        for inline in _as_list(role.props.get("inlinePolicies"))
        if isinstance(inline, Mapping)
    ]
    return held


# IAM actions that hand out privileges: on a resource pattern, any of them is a path to
# admin (pass an admin role to a service, create one, attach a policy to one...). All but
# the last two (GRANTING_ACTIONS) grant privileges on any resource, even one named: a role
# allowed iam:PutRolePolicy on its own ARN writes itself an admin policy, and CreateRole +
# AttachRolePolicy on a named role makes an admin role under that name. A spoke stack never
# needs them: its roles are made by the hub's components, not by a role of the spoke.
ESCALATION_ACTIONS = (
    "iam:CreateRole",
    "iam:AttachRolePolicy",
    "iam:PutRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:CreateUser",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AttachUserPolicy",
    "iam:PutUserPolicy",
    "iam:AddUserToGroup",
    "iam:AttachGroupPolicy",
    "iam:PutGroupPolicy",
    "iam:PassRole",
    "sts:AssumeRole",
)
GRANTING_ACTIONS = ESCALATION_ACTIONS[:-2]
# Actions that read secrets, decrypt, run commands or touch data: never on every resource,
# even named one by one (no wildcard in the action, so the rule below did not see them).
DATA_ACTIONS = (
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "ssm:SendCommand",
    "ssm:StartSession",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:GenerateDataKey",
    "kms:CreateGrant",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteBucket",
    "lambda:InvokeFunction",
    "ec2:RunInstances",
)
# An ARN whose resource part is only a wildcard: every resource of the service (in the
# account), e.g. `arn:aws:s3:::*` is every bucket, as wide as "*" for s3 actions.
_EVERY_RESOURCE = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:[^:]*:[*?/]*$")
# The same, for every resource of one type: `...:secret:*`, `...:parameter/*`, `...:key/*`.
_EVERY_OF_TYPE = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:[^:]*:([A-Za-z-]+[:/])?[*?/]*$")


def _matches(pattern: str, action: str) -> bool:
    """IAM's own matching: case-insensitive, `*` and `?` wildcards."""
    regex = re.escape(pattern.casefold()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, action.casefold()) is not None


def _is_pattern(value: str) -> bool:
    return "*" in value or "?" in value


def _wildcard_problem(stmt: Mapping[str, Any]) -> str | None:
    if stmt.get("Effect") != "Allow":
        return None
    # Allow + NotAction (or NotResource) grants everything but a list: `NotAction: iam:*` on
    # `*` is every other service's every action.
    for negated in ("NotAction", "NotResource"):
        if negated in stmt:
            listed = [str(a) for a in _as_list(stmt.get(negated))]
            return f"allows everything except {listed} ({negated} with Effect Allow)"
    actions = [str(a) for a in _as_list(stmt.get("Action"))]
    if "*" in actions:
        return "allows Action '*'"
    resources = [str(r) for r in _as_list(stmt.get("Resource"))]
    patterned = [r for r in resources if _is_pattern(r)]
    escalating = _matching(actions, ESCALATION_ACTIONS)
    if escalating and patterned:
        return f"allows {escalating} on {patterned}: a path to administrator"
    if granting := _matching(actions, GRANTING_ACTIONS):
        return (
            f"allows {granting} on {resources}: it can grant privileges (to itself, or to a "
            "role it makes), a path to administrator"
        )
    broad = [r for r in resources if r == "*" or _EVERY_RESOURCE.match(r)]
    wide = [a for a in actions if _is_pattern(a)]
    if broad and wide:
        where = "Resource '*'" if broad == ["*"] else f"every resource of {broad}"
        return f"allows {wide} on {where}"
    every = [r for r in resources if r == "*" or _EVERY_OF_TYPE.match(r)]
    data = _matching(actions, DATA_ACTIONS)
    if every and data:
        where = "Resource '*'" if every == ["*"] else f"every resource of {every}"
        return f"allows {data} on {where}: every secret, key or object of the account"
    return None


def _matching(actions: list[str], dangerous: Sequence[str]) -> list[str]:
    """The statement's actions (as written) that cover any of `dangerous`, in their order."""
    return sorted({a for a in actions for d in dangerous if _matches(a, d)}, key=actions.index)


def _broad_managed(arn: Any) -> str | None:
    """The name of an AWS-managed admin or full-access policy, else None."""
    found = AWS_MANAGED.match(arn) if isinstance(arn, str) else None
    if found is None:
        return None
    path = found["path"]
    name = path.rsplit("/", 1)[-1]
    broad = (
        path in BROAD_MANAGED_POLICIES
        or name.startswith(("AdministratorAccess", "PowerUserAccess"))  # -Amplify and kin
        or name.endswith("FullAccess")
    )
    return path if broad else None


def no_wildcard_iam(resources: Sequence[ResourceLike]) -> list[Violation]:
    """No IAM statement allows every action, or a whole service on every resource, and no
    principal gets an AWS-managed admin or full-access policy."""
    fix = "name the actions and the resources (see slipway.infra.access)"
    found = [
        _violation("no-wildcard-iam", holder, problem, fix)
        for holder, document in _documents(resources)
        for stmt in _statements(document)
        if (problem := _wildcard_problem(stmt))
    ]
    attached = [
        (r.name, r.props.get("policyArn")) for r in resources if r.type in POLICY_ATTACHMENTS
    ]
    attached += [
        (role.name, arn)
        for role in _of(resources, ROLE)
        for arn in _as_list(role.props.get("managedPolicyArns"))
    ]
    found += [
        _violation(
            "no-wildcard-iam",
            holder,
            f"attaches AWS-managed {name}",
            "attach a policy of your own naming the actions and resources needed",
        )
        for holder, arn in attached
        if (name := _broad_managed(arn))
    ]
    return found


_EXACT_SUBJECT = "trust exactly repo:<owner>/<name>:environment:<env> with StringEquals " + (
    "(slipway.infra.access.github_oidc_trust)"
)


def _subject_problem(role: ResourceLike, subjects: list[str], pattern_ops: bool) -> str | None:
    """Why these OIDC subjects let more than one GitHub environment's jobs in, or None."""
    if any(_is_pattern(v) for v in subjects) or pattern_ops:
        shown = [v for v in subjects if _is_pattern(v)] or subjects
        return (
            f"GitHub OIDC subject {shown} is a pattern: a workflow on any branch, with no "
            "environment and no reviewers, can assume the role"
        )
    if not all(":environment:" in v for v in subjects):
        others = [v for v in subjects if ":environment:" not in v]
        return (
            f"GitHub OIDC subject {others} is not a GitHub environment, so no environment "
            "protection rule (branches, required reviewers) stands before the role"
        )
    tags = role.props.get("tags") or {}
    repository = Settings.from_env().github_repository or tags.get(GITHUB_REPOSITORY_TAG)
    if not repository:
        return (
            f"the role trusts GitHub subjects {subjects} but does not say which repository it "
            f"serves (tag {GITHUB_REPOSITORY_TAG}), so another repository's jobs cannot be told "
            "apart"
        )
    foreign_repo = [v for v in subjects if not v.startswith(f"repo:{repository}:")]
    if foreign_repo:
        return f"the role of {repository} trusts {foreign_repo}: another repository's jobs"
    stack_env = tags.get("environment")
    if stack_env in ("staging", "prod"):
        foreign = [v for v in subjects if not v.endswith(f":environment:{stack_env}")]
        if foreign:
            return f"the {stack_env} role trusts {foreign}: another environment's jobs"
    return None


def github_trust_scoped(resources: Sequence[ResourceLike]) -> list[Violation]:
    """A role trusting GitHub's OIDC provider is scoped to one repository, to exact GitHub
    environment subjects (its own stack's environment), and to STS."""
    found = []
    for role in _of(resources, ROLE):
        for stmt in _statements(role.props.get("assumeRolePolicy")):
            federated = str((stmt.get("Principal") or {}).get("Federated", ""))
            if GITHUB_OIDC_HOST not in federated:
                continue
            cond = stmt.get("Condition") or {}
            # Every operator that can carry the subject: StringLike, StringEquals, and their
            # ForAnyValue:/ForAllValues: and IfExists forms.
            by_op = {
                op: [str(v) for v in _as_list((block or {}).get(f"{GITHUB_OIDC_HOST}:sub"))]
                for op, block in cond.items()
                if isinstance(block, Mapping)
            }
            sub = [v for values in by_op.values() for v in values]
            pattern_ops = any("Like" in op and values for op, values in by_op.items())
            aud = (cond.get("StringEquals") or {}).get(f"{GITHUB_OIDC_HOST}:aud")
            if not sub or any(not v.startswith("repo:") or v.startswith("repo:*") for v in sub):
                found.append(
                    _violation(
                        "github-trust-scoped",
                        role.name,
                        "GitHub OIDC trust is not limited to one repository",
                        _EXACT_SUBJECT,
                    )
                )
            elif problem := _subject_problem(role, sub, pattern_ops):
                found.append(_violation("github-trust-scoped", role.name, problem, _EXACT_SUBJECT))
            if aud != "sts.amazonaws.com":
                found.append(
                    _violation(
                        "github-trust-scoped",
                        role.name,
                        "GitHub OIDC trust does not require aud=sts.amazonaws.com",
                        "add the condition StringEquals "
                        "token.actions.githubusercontent.com:aud = "
                        "sts.amazonaws.com",
                    )
                )
    return found


def _open_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any("*" in [str(p) for p in _as_list(v)] for v in principal.values())
    return False


def role_trust_named(resources: Sequence[ResourceLike]) -> list[Violation]:
    """No role trusts every AWS principal (`Principal: "*"` or `{"AWS": "*"}`): anyone in any
    account could assume it; a condition is one typo from open."""
    return [
        _violation(
            "role-trust-named",
            role.name,
            f"trust policy allows {stmt.get('Action')} to Principal "
            f"{json.dumps(stmt.get('Principal'))}: any AWS account",
            "name the service, the account or the OIDC provider that may assume the role",
        )
        for role in _of(resources, ROLE)
        for stmt in _statements(role.props.get("assumeRolePolicy"))
        if stmt.get("Effect") == "Allow" and _open_principal(stmt.get("Principal"))
    ]


def endpoint_config_encrypted(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every endpoint configuration encrypts its instances' storage volume with a KMS key."""
    return [
        _violation(
            "endpoint-config-encrypted",
            config.name,
            "endpoint configuration has no kmsKeyArn: its instances' volumes use no key of "
            "the spoke's",
            "pass kms_key_arn (ModelEndpoint does, with the spoke's artifact key)",
        )
        for config in _of(resources, ENDPOINT_CONFIG)
        if not config.props.get("kmsKeyArn")
    ]


def _expires_within(rule: Mapping[str, Any], key_prefix: str) -> bool:
    """An enabled rule deleting every object under `key_prefix` within the allowed days."""
    if rule.get("status") != "Enabled":
        return False
    prefix = str((rule.get("filter") or {}).get("prefix") or rule.get("prefix") or "")
    days = (rule.get("expiration") or {}).get("days")
    return key_prefix.startswith(prefix) and (
        isinstance(days, int | float) and 0 < days <= MAX_CAPTURE_RETENTION_DAYS
    )


def capture_expires(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every endpoint's data capture (raw requests, possibly personal data) is deleted within
    MAX_CAPTURE_RETENTION_DAYS by a lifecycle rule of its bucket: never kept for good."""
    found = []
    lifecycles = _by_bucket(resources, LIFECYCLE)
    for config in _of(resources, ENDPOINT_CONFIG):
        capture = config.props.get("dataCaptureConfig") or {}
        uri = str(capture.get("destinationS3Uri") or "")
        if not capture or capture.get("enableCapture") is False or not uri.startswith("s3://"):
            continue
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        key_prefix = key.rstrip("/") + "/" if key else ""
        lifecycle = lifecycles.get(bucket)
        rules = _as_list(lifecycle.props.get("rules")) if lifecycle else []
        if not any(_expires_within(r, key_prefix) for r in rules if isinstance(r, Mapping)):
            found.append(
                _violation(
                    "capture-expires",
                    config.name,
                    f"data capture to {uri} is kept for good: no lifecycle rule of bucket "
                    f"{bucket} expires {key_prefix or 'its objects'} within "
                    f"{MAX_CAPTURE_RETENTION_DAYS} days",
                    "pass expiring_prefixes to ArtifactStore (the spoke stack does)",
                )
            )
    return found


def required_tags(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every taggable resource says who owns it and who pays."""
    found = []
    for res in resources:
        if res.type not in TAGGABLE:
            continue
        tags = res.props.get("tags") or {}
        missing = [k for k in REQUIRED_TAGS if not tags.get(k)]
        if missing:
            found.append(
                _violation(
                    "required-tags",
                    res.name,
                    f"missing tags {missing}",
                    "pass tags=spoke_tags(...) (slipway.infra.tags)",
                )
            )
    return found


def budget_present(resources: Sequence[ResourceLike]) -> list[Violation]:
    """The stack has a cost budget alerting someone at 80% and at 100%."""
    budgets = _of(resources, BUDGET)
    if not budgets:
        return [
            _violation(
                "budget-present",
                "(stack)",
                "no aws.budgets.Budget in the stack",
                "add slipway.infra.budget.SpokeBudget",
            )
        ]
    found = []
    for budget in budgets:
        alerts = {
            float(n.get("threshold", -1))
            for n in _as_list(budget.props.get("notifications"))
            if n.get("thresholdType") == "PERCENTAGE" and n.get("subscriberEmailAddresses")
        }
        missing = [t for t in BUDGET_ALERT_PERCENTS if t not in alerts]
        if missing:
            found.append(
                _violation(
                    "budget-present",
                    budget.name,
                    f"no email alert at {missing} percent of the budget",
                    "add PERCENTAGE notifications with subscriber emails (SpokeBudget does)",
                )
            )
    return found


def _tier_of(res: ResourceLike) -> RiskTier:
    tag = (res.props.get("tags") or {}).get("risk-tier")
    # An untagged resource is judged by the strictest tier (and flagged by required-tags).
    return RiskTier(tag) if tag in RiskTier.__members__ else RiskTier.high


def instance_types_allowed(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Endpoint instances come from the risk tier's allow-list (governance.tiers)."""
    found = []
    for config in _of(resources, ENDPOINT_CONFIG):
        tier = _tier_of(config)
        allowed = rules_for(tier).instance_types
        for variant in _as_list(config.props.get("productionVariants")):
            itype = variant.get("instanceType")
            if itype not in allowed:
                found.append(
                    _violation(
                        "instance-types-allowed",
                        config.name,
                        f"{itype} is not allowed for risk tier {tier.value}",
                        f"use one of {', '.join(allowed)}",
                    )
                )
    return found


def canary_capped(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every endpoint deploys blue/green by CANARY of at most 50% of capacity."""
    found = []
    for endpoint in _of(resources, ENDPOINT):
        policy = (endpoint.props.get("deploymentConfig") or {}).get("blueGreenUpdatePolicy") or {}
        routing = policy.get("trafficRoutingConfiguration") or {}
        size = routing.get("canarySize") or {}
        if routing.get("type") != "CANARY":
            found.append(
                _violation(
                    "canary-capped",
                    endpoint.name,
                    f"traffic routing is {routing.get('type') or 'not set'}, "
                    "not a blue/green CANARY",
                    "deploy through slipway.infra.endpoint.ModelEndpoint",
                )
            )
        elif size.get("type") != "CAPACITY_PERCENT" or not (
            0 < float(size.get("value", 0)) <= MAX_CANARY_PERCENT
        ):
            found.append(
                _violation(
                    "canary-capped",
                    endpoint.name,
                    f"canary size {size.get('value')} "
                    f"{size.get('type') or '(no type)'} is not 1 to "
                    f"{MAX_CANARY_PERCENT} CAPACITY_PERCENT",
                    f"make rollout.canary_steps[0] at most {MAX_CANARY_PERCENT} in slipway.toml",
                )
            )
    return found


def rollback_alarms_wired(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every endpoint rolls back on alarms that exist in the stack and watch each guardrail."""
    alarms = {str(a.props.get("name")): a for a in _of(resources, ALARM)}
    found = []
    for endpoint in _of(resources, ENDPOINT):
        rollback = (endpoint.props.get("deploymentConfig") or {}).get(
            "autoRollbackConfiguration"
        ) or {}
        names = [str(a.get("alarmName")) for a in _as_list(rollback.get("alarms"))]
        unknown = [n for n in names if n not in alarms]
        if unknown:
            found.append(
                _violation(
                    "rollback-alarms-wired",
                    endpoint.name,
                    f"rollback names alarms not in the stack: {unknown}",
                    "name the alarms ModelEndpoint creates (slipway.infra.endpoint.alarm_names)",
                )
            )
        watched = set()
        for name in names:
            alarm = alarms.get(name)
            if alarm is None:
                continue
            watched.add(alarm.props.get("metricName"))
            watched.update(
                (q.get("metric") or {}).get("metricName")
                for q in _as_list(alarm.props.get("metricQueries"))
            )
        missing = sorted(ROLLBACK_METRICS - watched)
        if missing:
            found.append(
                _violation(
                    "rollback-alarms-wired",
                    endpoint.name,
                    f"no rollback alarm watches {missing}",
                    "wire one alarm per guardrail into "
                    "auto_rollback_configuration (ModelEndpoint does)",
                )
            )
    return found


def images_scanned_immutable(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every image repository scans on push and never lets a tag move."""
    found = []
    for repo in _of(resources, ECR_REPO):
        if not (repo.props.get("imageScanningConfiguration") or {}).get("scanOnPush"):
            found.append(
                _violation(
                    "images-scanned-immutable",
                    repo.name,
                    "scan on push is off",
                    "set scan_on_push=True",
                )
            )
        if repo.props.get("imageTagMutability") != "IMMUTABLE":
            found.append(
                _violation(
                    "images-scanned-immutable",
                    repo.name,
                    "image tags are mutable",
                    "set image_tag_mutability=IMMUTABLE",
                )
            )
    return found


ALL_POLICIES: dict[str, Policy] = {
    "encryption-on": encryption_on,
    "versioning-on": versioning_on,
    "public-access-blocked": public_access_blocked,
    "no-wildcard-iam": no_wildcard_iam,
    "github-trust-scoped": github_trust_scoped,
    "role-trust-named": role_trust_named,
    "endpoint-config-encrypted": endpoint_config_encrypted,
    "capture-expires": capture_expires,
    "required-tags": required_tags,
    "budget-present": budget_present,
    "instance-types-allowed": instance_types_allowed,
    "canary-capped": canary_capped,
    "rollback-alarms-wired": rollback_alarms_wired,
    "images-scanned-immutable": images_scanned_immutable,
    "github-environment-protected": github_environment_protected,
}


def check_stack(resources: Sequence[ResourceLike]) -> list[Violation]:
    """Every policy over one stack's resources; an empty list means compliant."""
    return [v for policy in ALL_POLICIES.values() for v in policy(resources)]
