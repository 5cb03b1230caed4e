"""Each policy fires on a deliberately bad property and stays quiet on the real stack.

The bad stacks are the real (mock-mode) prod stack of the demo spoke with exactly one
property broken, so each test shows the policy can fire and what it says.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from slipway.infra import policies
from slipway.infra.plan import Environment
from slipway.infra.policies import ALL_POLICIES, check_stack
from slipway.infra.spoke_stack import StackInputs, build_spoke_stack
from slipway.infra.testing import RecordedResource, run_stack

pytestmark = pytest.mark.xdist_group("infra-spokes")


@pytest.fixture(scope="module")
def good(configs) -> list[RecordedResource]:
    config = configs["medium"]
    inputs = StackInputs(model_version=2, previous_model_version=1,
                         github_repository="example-org/demo")
    result = run_stack(lambda: build_spoke_stack(config, Environment.prod, inputs),
                       project=config.project.slug, stack="prod")
    assert check_stack(result.resources) == []
    return result.resources


def broken(resources: list[RecordedResource], type_token: str,
           change: Callable[[dict[str, Any]], None], pick: int = 0) -> list[RecordedResource]:
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


def test_every_policy_has_a_negative_test_below():
    tested = {"encryption-on", "versioning-on", "public-access-blocked", "no-wildcard-iam",
              "github-trust-scoped", "required-tags", "budget-present", "instance-types-allowed",
              "canary-capped", "rollback-alarms-wired", "images-scanned-immutable"}
    assert set(ALL_POLICIES) == tested


def test_encryption_on_reports_aes256_and_unrotated_keys(good):
    def aes(props):
        props["rules"][0]["applyServerSideEncryptionByDefault"] = {"sseAlgorithm": "AES256"}
    assert fired("encryption-on", broken(good, policies.SSE, aes)) == [
        "bucket has no SSE-KMS default encryption with a key; "
        "use slipway.infra.artifact_store.ArtifactStore"]
    unrotated = broken(good, policies.KMS_KEY, lambda p: p.update(enableKeyRotation=False))
    assert "rotation is off" in fired("encryption-on", unrotated)[0]


def test_versioning_on_reports_suspended(good):
    bad = broken(good, policies.VERSIONING,
                 lambda p: p.update(versioningConfiguration={"status": "Suspended"}))
    assert fired("versioning-on", bad) == ["versioning is Suspended; enable it"]


def test_public_access_blocked_reports_an_open_flag_and_a_missing_tls_policy(good):
    bad = broken(good, policies.PUBLIC_ACCESS, lambda p: p.update(restrictPublicBuckets=False))
    assert fired("public-access-blocked", bad) == [
        "public access not blocked: restrictPublicBuckets"]
    no_tls = [r for r in good if r.type != policies.BUCKET_POLICY]
    assert "TLS only" in fired("public-access-blocked", no_tls)[0]


def test_no_wildcard_iam_reports_star_action_and_service_star_on_star(good):
    def star(doc):
        doc["Statement"].append({"Effect": "Allow", "Action": "*", "Resource": "*"})
    bad = broken(good, policies.ROLE_POLICY, edit_policy_json("policy", star))
    assert fired("no-wildcard-iam", bad) == ["allows Action '*'"]

    def s3_star(doc):
        doc["Statement"].append({"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"})
    bad = broken(good, policies.ROLE_POLICY, edit_policy_json("policy", s3_star))
    assert fired("no-wildcard-iam", bad) == ["allows ['s3:*'] on Resource '*'"]


def test_github_trust_scoped_reports_an_unscoped_trust(good):
    ci_index = [r.name for r in good if r.type == policies.ROLE].index(
        next(r.name for r in good if r.type == policies.ROLE and r.name.endswith("-ci")))

    def any_repo(doc):
        doc["Statement"][0]["Condition"]["StringLike"][
            "token.actions.githubusercontent.com:sub"] = "repo:*"
    bad = broken(good, policies.ROLE, edit_policy_json("assumeRolePolicy", any_repo), ci_index)
    assert "not limited to one repository" in fired("github-trust-scoped", bad)[0]

    def no_condition(doc):
        del doc["Statement"][0]["Condition"]
    bad = broken(good, policies.ROLE, edit_policy_json("assumeRolePolicy", no_condition),
                 ci_index)
    assert len(fired("github-trust-scoped", bad)) == 2


def test_required_tags_reports_the_missing_keys(good):
    bad = broken(good, policies.ENDPOINT,
                 lambda p: p.update(tags={k: v for k, v in p["tags"].items()
                                          if k not in ("owner", "cost-center")}))
    assert fired("required-tags", bad) == ["missing tags ['owner', 'cost-center']"]


def test_budget_present_reports_no_budget_and_a_missing_alert(good):
    assert "no aws.budgets.Budget" in fired(
        "budget-present", [r for r in good if r.type != policies.BUDGET])[0]
    bad = broken(good, policies.BUDGET,
                 lambda p: p.update(notifications=p["notifications"][:1]))
    assert fired("budget-present", bad) == ["no email alert at [100.0] percent of the budget"]


def test_instance_types_allowed_reports_a_type_outside_the_tier(good):
    def big(props):
        props["productionVariants"][0]["instanceType"] = "ml.p4d.24xlarge"
    assert "ml.p4d.24xlarge is not allowed for risk tier medium" in fired(
        "instance-types-allowed", broken(good, policies.ENDPOINT_CONFIG, big))[0]

    def high_tier_medium_type(props):
        props["tags"]["risk-tier"] = "high"
        props["productionVariants"][0]["instanceType"] = "ml.m5.2xlarge"
    assert "not allowed for risk tier high" in fired(
        "instance-types-allowed", broken(good, policies.ENDPOINT_CONFIG, high_tier_medium_type))[0]


def test_canary_capped_reports_a_large_canary_and_all_at_once(good):
    def half_plus(props):
        props["deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"][
            "canarySize"]["value"] = 60
    assert "must be 1 to 50 CAPACITY_PERCENT" in fired(
        "canary-capped", broken(good, policies.ENDPOINT, half_plus))[0]

    def all_at_once(props):
        props["deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"] = {
            "type": "ALL_AT_ONCE", "waitIntervalInSeconds": 0}
    assert fired("canary-capped", broken(good, policies.ENDPOINT, all_at_once)) == [
        "traffic routing is ALL_AT_ONCE, not a blue/green CANARY"]


def test_rollback_alarms_wired_reports_unknown_and_missing_guardrails(good):
    def typo(props):
        props["deploymentConfig"]["autoRollbackConfiguration"]["alarms"][0]["alarmName"] += "x"
    messages = fired("rollback-alarms-wired", broken(good, policies.ENDPOINT, typo))
    assert "rollback names alarms not in the stack" in messages[0]
    assert messages[1] == "no rollback alarm watches ['Invocation5XXErrors']"
    no_drift = [r for r in good if not (r.type == policies.ALARM
                                        and r.props.get("metricName") == "PredictionPSI")]
    assert "no rollback alarm watches ['PredictionPSI']" in fired(
        "rollback-alarms-wired", no_drift)


def test_images_scanned_immutable_reports_mutable_and_unscanned(good):
    bad = broken(good, policies.ECR_REPO, lambda p: p.update(
        imageTagMutability="MUTABLE", imageScanningConfiguration={"scanOnPush": False}))
    assert fired("images-scanned-immutable", bad) == [
        "scan on push is off", "image tags are mutable; set IMMUTABLE"]


def test_check_stack_names_policy_and_resource(good):
    bad = broken(good, policies.ECR_REPO, lambda p: p.update(imageTagMutability="MUTABLE"))
    [violation] = check_stack(bad)
    assert str(violation).startswith("[images-scanned-immutable] ")
    assert violation.resource.endswith("-images-repo")
