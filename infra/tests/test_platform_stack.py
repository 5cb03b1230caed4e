"""The hub platform stack (infra/platform/) under Pulumi's mock mode, a stand-in for AWS."""

from __future__ import annotations

import json
import runpy
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from slipway.infra.access import AccessScope, ci_policy
from slipway.infra.platform import (
    PLATFORM_PROJECT,
    PlatformSpecError,
    build_platform_stack,
    load_platform_spec,
)
from slipway.infra.policies import check_stack
from slipway.infra.testing import MOCK_ACCOUNT, StackRun, run_stack

SPEC_FILE = Path(__file__).resolve().parents[1] / "platform" / "spokes.toml"


@pytest.fixture(scope="module")
def platform() -> StackRun:
    # The platform project's own program, as `pulumi up` in infra/platform/ runs it.
    program = SPEC_FILE.parent / "__main__.py"
    return run_stack(
        lambda: runpy.run_path(str(program))["outputs"], project=PLATFORM_PROJECT, stack="prod"
    )


def test_the_hub_stack_passes_every_policy(platform):
    assert check_stack(platform.resources) == []


def test_shared_store_uses_the_platform_key_and_mlflow_writes_under_its_prefix(platform):
    bucket = f"{PLATFORM_PROJECT}-{MOCK_ACCOUNT}"
    key = platform.one("aws:kms/key:Key")
    sse = platform.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).props
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].endswith(
        key.name
    )
    mlflow = platform.one("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer").props
    assert mlflow["artifactStoreUri"] == f"s3://{bucket}/mlflow/"
    assert platform.outputs["bucket_name"] == bucket
    oidc = platform.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").props
    assert oidc["url"] == "https://token.actions.githubusercontent.com"
    assert oidc["clientIdLists"] == ["sts.amazonaws.com"]


def test_each_declared_spoke_gets_a_prefix_scoped_role_repository_and_budget(platform):
    spec = load_platform_spec(SPEC_FILE)
    assert [s.slug for s in spec.spokes] == ["diagnosis-assist", "claims-triage"]
    bucket = f"{PLATFORM_PROJECT}-{MOCK_ACCOUNT}"
    budgets = {b.props["name"]: b.props for b in platform.of_type("aws:budgets/budget:Budget")}
    for spoke in spec.spokes:
        assert platform.outputs["spokes"][spoke.slug]["prefix"] == (
            f"s3://{bucket}/spokes/{spoke.slug}/"
        )
        policy = next(
            p
            for p in platform.of_type("aws:iam/rolePolicy:RolePolicy")
            if p.name == f"{spoke.slug}-access-pipeline-policy"
        )
        objects = [
            r
            for s in json.loads(policy.props["policy"])["Statement"]
            for r in s["Resource"]
            if r.startswith("arn:aws:s3:::") and "/" in r
        ]
        assert objects == [f"arn:aws:s3:::{bucket}/spokes/{spoke.slug}/*"]
        budget = budgets[f"slipway-{spoke.slug}"]
        assert budget["limitAmount"] == f"{spoke.monthly_usd:.2f}"
        assert {n["threshold"] for n in budget["notifications"]} == {80.0, 100.0}
        assert budget["notifications"][0]["subscriberEmailAddresses"] == [spoke.contact]
        repo = next(
            r
            for r in platform.of_type("aws:ecr/repository:Repository")
            if r.props["name"] == f"slipway/{spoke.slug}"
        )
        assert repo.props["tags"]["risk-tier"] == spoke.risk_tier.value
        ci = next(
            r for r in platform.of_type("aws:iam/role:Role") if r.name == f"{spoke.slug}-access-ci"
        )
        trust = json.loads(ci.props["assumeRolePolicy"])["Statement"][0]
        assert trust["Condition"]["StringEquals"] == {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": (
                f"repo:{spoke.github_repository}:environment:staging"
            ),
        }
        assert "StringLike" not in trust["Condition"]


def spec_error(tmp_path: Path, text: str) -> str:
    bad = tmp_path / "spokes.toml"
    bad.write_text(text)
    with pytest.raises(PlatformSpecError) as err:
        load_platform_spec(bad)
    return str(err.value)


def test_a_bad_spokes_file_names_the_field_and_the_duplicate(tmp_path):
    text = SPEC_FILE.read_text()
    message = spec_error(
        tmp_path, text.replace('contact = "claims-ml@example.com"', 'contact = "claims-ml"')
    )
    assert "spokes.1.contact: String should match pattern" in message
    duplicate = text + (
        '\n[[spokes]]\nslug = "diagnosis-assist"\nteam = "t"\n'
        'contact = "a@b.io"\ncost_center = "c"\nmonthly_usd = 1\n'
        'github_repository = "o/r"\n'
    )
    assert "spokes declared twice: ['diagnosis-assist']" in spec_error(tmp_path, duplicate)
    assert "cannot read it as TOML" in spec_error(tmp_path, "[platform\n")


def test_a_provider_in_another_region_than_spokes_toml_fails():
    spec = load_platform_spec(SPEC_FILE)
    with pytest.raises(ValueError, match=r"spokes.toml \[platform\].region says eu-west-1"):
        run_stack(
            lambda: build_platform_stack(spec),
            project=PLATFORM_PROJECT,
            stack="prod",
            region="us-east-1",
        )


def test_a_spokes_grants_stop_at_the_separator():
    # IAM's `*` matches like fnmatch's: spoke "claims" owns "claims" and "claims-...".
    scope = AccessScope(
        name_prefix="claims",
        region="eu-west-1",
        account_id=MOCK_ACCOUNT,
        bucket_name="b",
        bucket_prefix="spokes/claims/",
        kms_key_arn="k",
        repository_arn="r",
    )
    statements = json.loads(ci_policy(scope, MOCK_ACCOUNT, "k", "r", "role"))["Statement"]
    grants = [
        r for s in statements if "sagemaker:UpdateEndpoint" in s["Action"] for r in s["Resource"]
    ]
    endpoint = f"arn:aws:sagemaker:eu-west-1:{MOCK_ACCOUNT}:endpoint/"
    assert any(fnmatchcase(endpoint + "claims", g) for g in grants)
    assert any(fnmatchcase(endpoint + "claims-v3", g) for g in grants)
    assert not any(fnmatchcase(endpoint + "claimsx", g) for g in grants)


def test_a_slug_that_extends_another_is_refused(tmp_path):
    # `claims-*` would reach claims-triage's resources, so the two cannot be onboarded.
    extra = (
        '\n[[spokes]]\nslug = "claims"\nteam = "t"\ncontact = "a@b.io"\n'
        'cost_center = "c"\nmonthly_usd = 1\ngithub_repository = "o/claims"\n'
    )
    message = spec_error(tmp_path, SPEC_FILE.read_text() + extra)
    assert "'claims-triage' extends 'claims'" in message
    assert "rename one of them" in message


def test_pipeline_and_ci_roles_use_the_teams_managed_mlflow_and_no_other(platform):
    arn = f"arn:aws:sagemaker:eu-west-1:{MOCK_ACCOUNT}:mlflow-tracking-server/{PLATFORM_PROJECT}"
    assert platform.outputs["mlflow_tracking_uri"] == arn
    server = platform.one("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer")
    assert server.props["trackingServerName"] == PLATFORM_PROJECT
    policies = {
        p.name: json.loads(p.props["policy"])
        for p in platform.of_type("aws:iam/rolePolicy:RolePolicy")
    }
    for spoke in load_platform_spec(SPEC_FILE).spokes:
        for role in ("pipeline", "ci"):
            statements = policies[f"{spoke.slug}-access-{role}-policy"]["Statement"]
            mlflow = [s for s in statements if any("mlflow" in a.lower() for a in s["Action"])]
            assert mlflow == [
                {"Effect": "Allow", "Action": ["sagemaker-mlflow:*"], "Resource": [arn]},
                {
                    "Effect": "Allow",
                    "Action": ["sagemaker:DescribeMlflowTrackingServer"],
                    "Resource": [arn],
                },
            ], role
        endpoint = policies[f"{spoke.slug}-access-endpoint-policy"]["Statement"]
        assert not any("mlflow" in a.lower() for s in endpoint for a in s["Action"])
    # The grant names one server: another tracking server in the account is not reached.
    other = arn.rsplit("/", 1)[0] + "/someone-elses"
    granted = policies["claims-triage-access-ci-policy"]["Statement"]
    assert not any(
        fnmatchcase(other, r)
        for s in granted
        if "sagemaker-mlflow:*" in s["Action"]
        for r in s["Resource"]
    )
