"""Each policy fires on a deliberately bad property and stays quiet on the real stack.

The bad stacks are the real (mock-mode) prod stack of the demo spoke with exactly one
property broken (or one bad resource added), so each case shows the policy can fire and
what it says. NEGATIVE holds one case per policy, keyed by the policy's name: a policy added
to ALL_POLICIES without a case fails `test_every_policy_has_a_negative_case`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from slipway.infra import policies
from slipway.infra.plan import MAX_CAPTURE_RETENTION_DAYS, Environment
from slipway.infra.policies import ALL_POLICIES, check_stack
from slipway.infra.spoke_stack import StackInputs, build_spoke_stack
from slipway.infra.tags import GITHUB_REPOSITORY_TAG
from slipway.infra.testing import RecordedResource, run_stack
from slipway.pipelines.governance.tiers import rules_for

# One worker builds the module's stack (`good`); the session's rendered spokes are per worker.
pytestmark = pytest.mark.xdist_group("infra-policies")


@pytest.fixture(scope="module")
def good(configs) -> list[RecordedResource]:
    config = configs["medium"]
    inputs = StackInputs(
        model_version=2,
        previous_model_version=1,
        github_repository="example-org/demo",
        github_reviewer_teams=(4242,),
    )
    result = run_stack(
        lambda: build_spoke_stack(config, Environment.prod, inputs),
        project=config.project.slug,
        stack="prod",
    )
    assert check_stack(result.resources) == []
    return result.resources


def broken(
    resources: list[RecordedResource],
    type_token: str,
    change: Callable[[dict[str, Any]], None],
    pick: int = 0,
) -> list[RecordedResource]:
    """A copy of the stack with one property of the `pick`-th resource of a type changed."""
    out, seen = [], 0
    for res in resources:
        if res.type == type_token:
            if seen == pick:
                props = copy.deepcopy(dict(res.props))
                change(props)
                res = replace(res, props=props)
            seen += 1
        out.append(res)
    return out


def edit_policy_json(field: str, edit: Callable[[dict[str, Any]], None]):
    def change(props: dict[str, Any]) -> None:
        doc = json.loads(props[field])
        edit(doc)
        props[field] = json.dumps(doc)

    return change


def fired(name: str, resources: list[RecordedResource]) -> list[str]:
    return [v.message for v in ALL_POLICIES[name](resources)]


def added(
    resources: list[RecordedResource], type_token: str, name: str, **props: Any
) -> list[RecordedResource]:
    """A copy of the stack with one more resource, as a careless program would add it."""
    return [*resources, RecordedResource(type_token, name, props, f"{name}-id")]


# A case returns (bad stack, exactly what the policy must report) pairs.
Case = Callable[[list[RecordedResource]], list[tuple[list[RecordedResource], list[str]]]]
NEGATIVE: dict[str, Case] = {}


def negative(policy: str) -> Callable[[Case], Case]:
    def register(case: Case) -> Case:
        NEGATIVE[policy] = case
        return case

    return register


@negative("encryption-on")
def aes256_and_an_unrotated_key(good):
    def aes(props):
        props["rules"][0]["applyServerSideEncryptionByDefault"] = {"sseAlgorithm": "AES256"}

    unrotated = broken(good, policies.KMS_KEY, lambda p: p.update(enableKeyRotation=False))
    return [
        (
            broken(good, policies.SSE, aes),
            [
                "bucket has no SSE-KMS default encryption with a key; "
                "fix: use slipway.infra.artifact_store.ArtifactStore"
            ],
        ),
        (unrotated, ["KMS key rotation is off; fix: set enable_key_rotation=True"]),
    ]


@negative("versioning-on")
def suspended_versioning(good):
    bad = broken(
        good,
        policies.VERSIONING,
        lambda p: p.update(versioningConfiguration={"status": "Suspended"}),
    )
    return [
        (
            bad,
            [
                "versioning is Suspended; fix: add aws.s3.BucketVersioning with status "
                "Enabled (ArtifactStore does)"
            ],
        )
    ]


@negative("public-access-blocked")
def an_open_flag_and_no_tls_policy(good):
    bad = broken(good, policies.PUBLIC_ACCESS, lambda p: p.update(restrictPublicBuckets=False))
    return [
        (
            bad,
            [
                "public access not blocked: restrictPublicBuckets; fix: set all four flags of "
                "aws.s3.BucketPublicAccessBlock to True"
            ],
        ),
        (
            [r for r in good if r.type != policies.BUCKET_POLICY],
            [
                "no bucket policy denying aws:SecureTransport=false; fix: add a TLS-only bucket "
                "policy (ArtifactStore does)"
            ],
        ),
    ]


STAR = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
NAME_THEM = "fix: name the actions and the resources (see slipway.infra.access)"
OWN_POLICY = "fix: attach a policy of your own naming the actions and resources needed"


@negative("no-wildcard-iam")
def wildcards_inline_attached_and_on_users(good):
    def star(doc):
        doc["Statement"].append({"Effect": "Allow", "Action": "*", "Resource": "*"})

    def s3_star(doc):
        doc["Statement"].append({"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"})

    def inline_star(props):
        props["inlinePolicies"] = [{"name": "debug", "policy": json.dumps(STAR)}]

    def allow(doc, **stmt):
        doc["Statement"].append({"Effect": "Allow", **stmt})

    def not_iam(doc):
        allow(doc, NotAction="iam:*", Resource="*")

    def escalate(doc):
        allow(doc, Action=["iam:PassRole", "iam:CreateRole", "iam:AttachRolePolicy"], Resource="*")

    def pass_any_role(doc):
        allow(doc, Action="iam:Pass*", Resource="arn:aws:iam::*:role/*")

    def every_bucket(doc):
        allow(doc, Action="s3:*", Resource="arn:aws:s3:::*")

    role = next(r.name for r in good if r.type == policies.ROLE)
    attach = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    managed = "arn:aws:iam::aws:policy/"
    return [
        (
            broken(good, policies.ROLE_POLICY, edit_policy_json("policy", star)),
            [f"allows Action '*'; {NAME_THEM}"],
        ),
        (
            broken(good, policies.ROLE_POLICY, edit_policy_json("policy", s3_star)),
            [f"allows ['s3:*'] on Resource '*'; {NAME_THEM}"],
        ),
        (broken(good, policies.ROLE, inline_star), [f"allows Action '*'; {NAME_THEM}"]),
        (
            added(good, attach, "admin", role=role, policyArn=f"{managed}AdministratorAccess"),
            [f"attaches AWS-managed AdministratorAccess; {OWN_POLICY}"],
        ),
        (
            added(good, attach, "s3-all", role=role, policyArn=f"{managed}AmazonS3FullAccess"),
            [f"attaches AWS-managed AmazonS3FullAccess; {OWN_POLICY}"],
        ),
        (
            added(
                good,
                "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
                "power",
                group="ops",
                policyArn=f"{managed}PowerUserAccess",
            ),
            [f"attaches AWS-managed PowerUserAccess; {OWN_POLICY}"],
        ),
        (
            added(good, policies.USER_POLICY, "deployer", user="ci", policy=json.dumps(STAR)),
            [f"allows Action '*'; {NAME_THEM}"],
        ),
        (
            added(good, policies.GROUP_POLICY, "team", group="ops", policy=json.dumps(STAR)),
            [f"allows Action '*'; {NAME_THEM}"],
        ),
        # The holes the security review found, each passing the checks before.
        (
            broken(good, policies.ROLE_POLICY, edit_policy_json("policy", not_iam)),
            [f"allows everything except ['iam:*'] (NotAction with Effect Allow); {NAME_THEM}"],
        ),
        (
            broken(good, policies.ROLE_POLICY, edit_policy_json("policy", escalate)),
            [
                "allows ['iam:PassRole', 'iam:CreateRole', 'iam:AttachRolePolicy'] on ['*']: "
                f"a path to administrator; {NAME_THEM}"
            ],
        ),
        (
            broken(good, policies.ROLE_POLICY, edit_policy_json("policy", pass_any_role)),
            [
                f"allows ['iam:Pass*'] on ['arn:aws:iam::*:role/*']: a path to administrator; "
                f"{NAME_THEM}"
            ],
        ),
        (
            broken(good, policies.ROLE_POLICY, edit_policy_json("policy", every_bucket)),
            [f"allows ['s3:*'] on every resource of ['arn:aws:s3:::*']; {NAME_THEM}"],
        ),
        # Issue 22: holes that still passed, each now firing.
        *[
            (
                broken(good, policies.ROLE_POLICY, edit_policy_json("policy", adds(**stmt))),
                [f"{message}; {NAME_THEM}"],
            )
            for stmt, message in HOLES
        ],
        *[
            (
                added(good, attach, name.replace("/", "-"), role=role, policyArn=arn),
                [f"attaches AWS-managed {name}; {OWN_POLICY}"],
            )
            for arn, name in [
                ("arn:aws-us-gov:iam::aws:policy/AdministratorAccess", "AdministratorAccess"),
                (f"{managed}AdministratorAccess-Amplify", "AdministratorAccess-Amplify"),
                (f"{managed}job-function/SystemAdministrator", "job-function/SystemAdministrator"),
                ("arn:aws-cn:iam::aws:policy/PowerUserAccess", "PowerUserAccess"),
            ]
        ],
    ]


CI_ROLE = "arn:aws:iam::123456789012:role/diagnosis-assist-prod-ci"
GRANTS = "it can grant privileges (to itself, or to a role it makes), a path to administrator"
EVERY = "every secret, key or object of the account"
HOLES: list[tuple[dict[str, Any], str]] = [
    # A CI role that may write itself a policy: admin in one call.
    ({"Action": "iam:*", "Resource": CI_ROLE}, f"allows ['iam:*'] on ['{CI_ROLE}']: {GRANTS}"),
    (
        {"Action": "iam:PutRolePolicy", "Resource": CI_ROLE},
        f"allows ['iam:PutRolePolicy'] on ['{CI_ROLE}']: {GRANTS}",
    ),
    # Make a role under a fixed name and attach anything to it.
    (
        {"Action": ["iam:CreateRole", "iam:AttachRolePolicy"], "Resource": CI_ROLE + "-x"},
        f"allows ['iam:CreateRole', 'iam:AttachRolePolicy'] on ['{CI_ROLE}-x']: {GRANTS}",
    ),
    (
        {"Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        f"allows ['secretsmanager:GetSecretValue'] on Resource '*': {EVERY}",
    ),
    (
        {"Action": "kms:Decrypt", "Resource": "arn:aws:kms:us-east-1:123456789012:key/*"},
        "allows ['kms:Decrypt'] on every resource of "
        f"['arn:aws:kms:us-east-1:123456789012:key/*']: {EVERY}",
    ),
    (
        {"Action": "ssm:SendCommand", "Resource": "*"},
        f"allows ['ssm:SendCommand'] on Resource '*': {EVERY}",
    ),
    (
        {"Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": "*"},
        f"allows ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'] on Resource '*': {EVERY}",
    ),
]


def adds(**stmt: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["Statement"].append({"Effect": "Allow", **stmt})

    return edit


@negative("github-trust-scoped")
def a_trust_open_to_any_repository(good):
    ci_index = [r.name for r in good if r.type == policies.ROLE].index(
        next(r.name for r in good if r.type == policies.ROLE and r.name.endswith("-ci"))
    )

    sub = "token.actions.githubusercontent.com:sub"

    def subject(value, op="StringEquals"):
        def edit(doc):
            cond = doc["Statement"][0]["Condition"]
            del cond["StringEquals"][sub]
            cond.setdefault(op, {})[sub] = value

        return edit

    def no_condition(doc):
        del doc["Statement"][0]["Condition"]

    fix = (
        "fix: trust exactly repo:<owner>/<name>:environment:<env> with StringEquals "
        "(slipway.infra.access.github_oidc_trust)"
    )
    one_repo = f"GitHub OIDC trust is not limited to one repository; {fix}"

    def trust(edit):
        return broken(good, policies.ROLE, edit_policy_json("assumeRolePolicy", edit), ci_index)

    audience = (
        "GitHub OIDC trust does not require aud=sts.amazonaws.com; fix: add the "
        "condition StringEquals token.actions.githubusercontent.com:aud = "
        "sts.amazonaws.com"
    )
    return [
        (trust(subject("repo:*", "StringLike")), [one_repo]),
        (trust(no_condition), [one_repo, audience]),
        # Reproduction: the prod role trusted any branch's workflow of the repository.
        (
            trust(subject("repo:example-org/demo:*", "StringLike")),
            [
                "GitHub OIDC subject ['repo:example-org/demo:*'] is a pattern: a workflow on "
                f"any branch, with no environment and no reviewers, can assume the role; {fix}"
            ],
        ),
        (
            trust(subject("repo:example-org/demo:ref:refs/heads/main")),
            [
                "GitHub OIDC subject ['repo:example-org/demo:ref:refs/heads/main'] is not a "
                "GitHub environment, so no environment protection rule (branches, required "
                f"reviewers) stands before the role; {fix}"
            ],
        ),
        (
            trust(subject("repo:example-org/demo:environment:staging")),
            [
                "the prod role trusts ['repo:example-org/demo:environment:staging']: another "
                f"environment's jobs; {fix}"
            ],
        ),
        # Issue 22: another repository's prod jobs, alone or beside this one's.
        (
            trust(subject("repo:other-org/payments:environment:prod")),
            [
                "the role of example-org/demo trusts "
                f"['repo:other-org/payments:environment:prod']: another repository's jobs; {fix}"
            ],
        ),
        (
            trust(
                subject(
                    [
                        "repo:example-org/demo:environment:prod",
                        "repo:other-org/payments:environment:prod",
                    ]
                )
            ),
            [
                "the role of example-org/demo trusts "
                f"['repo:other-org/payments:environment:prod']: another repository's jobs; {fix}"
            ],
        ),
        # A role that does not say which repository it serves cannot be checked: refused.
        (
            broken(good, policies.ROLE, untagged, ci_index),
            [
                "the role trusts GitHub subjects ['repo:example-org/demo:environment:prod'] "
                f"but does not say which repository it serves (tag {GITHUB_REPOSITORY_TAG}), "
                f"so another repository's jobs cannot be told apart; {fix}"
            ],
        ),
    ]


def untagged(props: dict[str, Any]) -> None:
    del props["tags"][GITHUB_REPOSITORY_TAG]


def test_in_cd_the_repository_github_names_wins_over_the_roles_tag(good, monkeypatch):
    # The stack's program sets the tag; GitHub sets github.repository, which CD passes on.
    monkeypatch.setenv(policies.GITHUB_REPOSITORY_ENV, "other-org/payments")
    [violation] = policies.github_trust_scoped(good)
    assert "the role of other-org/payments trusts ['repo:example-org/demo:" in violation.message
    monkeypatch.setenv(policies.GITHUB_REPOSITORY_ENV, "example-org/demo")
    assert policies.github_trust_scoped(good) == []


@negative("role-trust-named")
def a_role_anyone_may_assume(good):
    def anyone(doc):
        doc["Statement"].append(
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
        )

    return [
        (
            broken(good, policies.ROLE, edit_policy_json("assumeRolePolicy", anyone)),
            [
                'trust policy allows sts:AssumeRole to Principal {"AWS": "*"}: any AWS '
                "account; fix: name the service, the account or the OIDC provider that may "
                "assume the role"
            ],
        )
    ]


@negative("endpoint-config-encrypted")
def an_endpoint_config_without_a_key(good):
    return [
        (
            broken(good, policies.ENDPOINT_CONFIG, lambda p: p.pop("kmsKeyArn")),
            [
                "endpoint configuration has no kmsKeyArn: its instances' volumes use no key of "
                "the spoke's; fix: pass kms_key_arn (ModelEndpoint does, with the spoke's "
                "artifact key)"
            ],
        )
    ]


@negative("capture-expires")
def a_capture_kept_for_good(good):
    configs = [r for r in good if r.type == policies.ENDPOINT_CONFIG]
    capturing = [
        c for c in configs if (c.props.get("dataCaptureConfig") or {}).get("enableCapture")
    ]
    assert capturing  # the prod stack captures: the case below is a real one
    uri = capturing[0].props["dataCaptureConfig"]["destinationS3Uri"]
    bucket = uri.removeprefix("s3://").split("/")[0]

    def only_versions_rule(props):  # the lifecycle as it was before issue 22
        props["rules"] = [r for r in props["rules"] if "expiration" not in r]

    def kept_a_year(props):
        for rule in props["rules"]:
            if "expiration" in rule:
                rule["expiration"]["days"] = 365

    message = (
        f"data capture to {uri} is kept for good: no lifecycle rule of bucket {bucket} "
        f"expires data-capture/ within {MAX_CAPTURE_RETENTION_DAYS} days; fix: pass "
        "expiring_prefixes to ArtifactStore (the spoke stack does)"
    )
    return [
        (broken(good, policies.LIFECYCLE, only_versions_rule), [message] * len(capturing)),
        (broken(good, policies.LIFECYCLE, kept_a_year), [message] * len(capturing)),
    ]


@negative("required-tags")
def owner_and_cost_center_missing(good):
    bad = broken(
        good,
        policies.ENDPOINT,
        lambda p: p.update(
            tags={k: v for k, v in p["tags"].items() if k not in ("owner", "cost-center")}
        ),
    )
    return [
        (
            bad,
            [
                "missing tags ['owner', 'cost-center']; fix: pass tags=spoke_tags(...) "
                "(slipway.infra.tags)"
            ],
        )
    ]


@negative("budget-present")
def no_budget_and_a_missing_alert(good):
    bad = broken(good, policies.BUDGET, lambda p: p.update(notifications=p["notifications"][:1]))
    return [
        (
            [r for r in good if r.type != policies.BUDGET],
            ["no aws.budgets.Budget in the stack; fix: add slipway.infra.budget.SpokeBudget"],
        ),
        (
            bad,
            [
                "no email alert at [100.0] percent of the budget; fix: add PERCENTAGE "
                "notifications with subscriber emails (SpokeBudget does)"
            ],
        ),
    ]


@negative("instance-types-allowed")
def types_outside_the_tier(good):
    def big(props):
        props["productionVariants"][0]["instanceType"] = "ml.p4d.24xlarge"

    def high_tier_medium_type(props):
        props["tags"]["risk-tier"] = "high"
        props["productionVariants"][0]["instanceType"] = "ml.m5.2xlarge"

    return [
        (
            broken(good, policies.ENDPOINT_CONFIG, big),
            [
                f"ml.p4d.24xlarge is not allowed for risk tier medium; fix: use one of "
                f"{', '.join(rules_for('medium').instance_types)}"
            ],
        ),
        (
            broken(good, policies.ENDPOINT_CONFIG, high_tier_medium_type),
            [
                f"ml.m5.2xlarge is not allowed for risk tier high; fix: use one of "
                f"{', '.join(rules_for('high').instance_types)}"
            ],
        ),
    ]


@negative("canary-capped")
def a_large_canary_and_all_at_once(good):
    def half_plus(props):
        props["deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"][
            "canarySize"
        ]["value"] = 60

    def all_at_once(props):
        props["deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"] = {
            "type": "ALL_AT_ONCE",
            "waitIntervalInSeconds": 0,
        }

    return [
        (
            broken(good, policies.ENDPOINT, half_plus),
            [
                "canary size 60 CAPACITY_PERCENT is not 1 to 50 "
                "CAPACITY_PERCENT; fix: make rollout.canary_steps[0] at most 50 in slipway.toml"
            ],
        ),
        (
            broken(good, policies.ENDPOINT, all_at_once),
            [
                "traffic routing is ALL_AT_ONCE, not a blue/green CANARY; fix: deploy through "
                "slipway.infra.endpoint.ModelEndpoint"
            ],
        ),
    ]


@negative("rollback-alarms-wired")
def an_unknown_alarm_and_an_unwatched_guardrail(good):
    def typo(props):
        props["deploymentConfig"]["autoRollbackConfiguration"]["alarms"][0]["alarmName"] += "x"

    endpoint = next(r for r in good if r.type == policies.ENDPOINT).props
    first = endpoint["deploymentConfig"]["autoRollbackConfiguration"]["alarms"][0]["alarmName"]
    drift = next(
        r for r in good if r.type == policies.ALARM and r.props.get("metricName") == "PredictionPSI"
    )
    unknown = (
        "rollback names alarms not in the stack: [{!r}]; fix: name the alarms "
        "ModelEndpoint creates (slipway.infra.endpoint.alarm_names)"
    )
    wire = "fix: wire one alarm per guardrail into auto_rollback_configuration (ModelEndpoint does)"
    return [
        (
            broken(good, policies.ENDPOINT, typo),
            [
                unknown.format(f"{first}x"),
                f"no rollback alarm watches ['ModelErrors']; {wire}",
            ],
        ),
        (
            [r for r in good if r is not drift],
            [
                unknown.format(drift.props["name"]),
                f"no rollback alarm watches ['PredictionPSI']; {wire}",
            ],
        ),
    ]


@negative("images-scanned-immutable")
def a_mutable_unscanned_repository(good):
    bad = broken(
        good,
        policies.ECR_REPO,
        lambda p: p.update(
            imageTagMutability="MUTABLE", imageScanningConfiguration={"scanOnPush": False}
        ),
    )
    return [
        (
            bad,
            [
                "scan on push is off; fix: set scan_on_push=True",
                "image tags are mutable; fix: set image_tag_mutability=IMMUTABLE",
            ],
        )
    ]


@negative("github-environment-protected")
def an_unprotected_or_missing_github_environment(good):
    """The review's reproduction: the prod role's OIDC trust relied on a deployment-branch
    rule on the prod environment that nothing created or checked."""
    from slipway.infra.github_environment import BRANCH_POLICY, ENVIRONMENT

    fix = (
        "fix: create it with slipway.infra.github_environment.GitHubEnvironment (stack config "
        "githubReviewerTeams for prod; docs/spoke/security.md)"
    )
    missing = [r for r in good if r.type not in (ENVIRONMENT, BRANCH_POLICY)]
    opened = broken(
        good,
        ENVIRONMENT,
        lambda p: p.update(
            deploymentBranchPolicy={"protectedBranches": True, "customBranchPolicies": False},
            canAdminsBypass=True,
            reviewers=[],
            preventSelfReview=False,
        ),
    )
    env = "GitHub environment 'prod'"
    return [
        (
            missing,
            [
                "trusts GitHub environment 'prod', which this stack does not create or protect: "
                f"any branch's workflow can enter it and assume the role; {fix}"
            ],
        ),
        (
            opened,
            [
                f"{env}: its deployment-branch policy does not name the default branch alone; "
                + fix,
                f"{env}: administrators may bypass its protection; {fix}",
                f"{env}: it has no required reviewers; {fix}",
                f"{env}: the person who started a run may approve it; {fix}",
            ],
        ),
    ]


def test_the_oidc_trust_and_the_deploy_workflow_name_the_same_protected_environments(good):
    """The environments deploy-model.yml deploys into are the ones the CI roles trust, and
    each is created with a branch rule for the default branch (prod: with reviewers)."""
    from slipway.infra.github_environment import BRANCH_POLICY, ENVIRONMENT
    from tests.hub import HUB

    workflow = (HUB / "template/.github/workflows/deploy-model.yml.jinja").read_text()
    assert "options: [staging, prod]" in workflow
    assert "environment: {{ '${{ inputs.environment }}' }}" in workflow
    [env] = [r.props for r in good if r.type == ENVIRONMENT]
    [rule] = [r.props for r in good if r.type == BRANCH_POLICY]
    [role] = [r for r in good if r.type == policies.ROLE and "-ci" in r.name]
    assert "repo:example-org/demo:environment:prod" in json.dumps(role.props["assumeRolePolicy"])
    assert env["environment"] == "prod" and env["repository"] == "demo"
    assert env["reviewers"] == [{"teams": [4242], "users": []}]
    assert rule == {**rule, "environment": "prod", "branchPattern": "main"}


def test_every_policy_has_a_negative_case():
    assert set(NEGATIVE) == set(ALL_POLICIES)


@pytest.mark.parametrize("policy", sorted(NEGATIVE))
def test_the_policy_reports_a_bad_property_and_says_how_to_fix_it(policy, good):
    cases = NEGATIVE[policy](good)
    assert cases
    for bad, expected in cases:
        assert fired(policy, bad) == expected
        assert all("; fix: " in message for message in expected)


def test_check_stack_names_policy_and_resource(good):
    bad = broken(good, policies.ECR_REPO, lambda p: p.update(imageTagMutability="MUTABLE"))
    [violation] = check_stack(bad)
    assert str(violation).startswith("[images-scanned-immutable] ")
    assert violation.resource.endswith("-images-repo")
