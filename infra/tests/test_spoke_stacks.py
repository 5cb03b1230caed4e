"""Every environment of the demo spoke, for every risk tier, under Pulumi's mock mode.

Pulumi's mocks stand in for AWS: they record what the stack asks for. The assertions are on
the properties that carry the safety (canary, rollback alarms, encryption, least privilege,
budget), compared with the values in the rendered slipway.toml.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

import pytest

from slipway.infra import policies
from slipway.infra.plan import (
    CAPTURE_RETENTION_DAYS,
    Environment,
    endpoint_plan,
    parse_environment,
    smallest_instance_type,
)
from slipway.infra.policies import check_stack
from slipway.infra.spoke_stack import (
    StackInputError,
    StackInputs,
    build_spoke_stack,
    parse_stack_inputs,
)
from slipway.infra.testing import MOCK_ACCOUNT, MOCK_REGION, StackRun, run_stack
from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.serving.guardrail_metrics import (
    CAPTURE_PREFIX,
    ENDPOINT_ENV,
    MODEL_ERRORS,
    NAMESPACE,
    PREDICTION_PSI,
    VARIANT_ENV,
    VERSION_ENV,
    dimensions,
)

SERVING = StackInputs(
    model_version=3,
    previous_model_version=2,
    champion_p95_latency_ms=40.0,
    github_repository="example-org/demo",
    github_reviewer_teams=(4242,),
)


def run(config: SpokeConfig, env: str, inputs: StackInputs = SERVING) -> StackRun:
    return run_stack(
        lambda: build_spoke_stack(config, Environment(env), inputs),
        project=config.project.slug,
        stack=env,
    )


@pytest.mark.parametrize("tier", ["low", "medium", "high"])
@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_every_stack_of_every_tier_passes_every_policy(configs, tier, env):
    result = run(configs[tier], env)
    assert check_stack(result.resources) == []
    status = "local-target" if env == "dev" else "serving"
    assert result.outputs["endpoint_status"] == status


def test_prod_canary_and_wait_come_from_the_rollout_plan(configs):
    config = configs["medium"]
    endpoint = run(config, "prod").one("aws:sagemaker/endpoint:Endpoint").props
    policy = endpoint["deploymentConfig"]["blueGreenUpdatePolicy"]
    assert dict(policy["trafficRoutingConfiguration"]) == {
        "type": "CANARY",
        "canarySize": {"type": "CAPACITY_PERCENT", "value": config.rollout.canary_steps[0]},
        "waitIntervalInSeconds": config.rollout.step_seconds,
    }
    assert policy["terminationWaitInSeconds"] == 300
    assert endpoint["endpointConfigName"] == f"{config.project.slug}-prod-v3"


def test_rollback_alarms_are_the_real_alarms_of_the_stack_with_guardrail_thresholds(configs):
    config = configs["medium"]
    result = run(config, "prod")
    endpoint = result.one("aws:sagemaker/endpoint:Endpoint").props
    wired = [
        a["alarmName"] for a in endpoint["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    ]
    alarms = {
        a.props["name"]: a.props for a in result.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert sorted(wired) == sorted(alarms) == sorted(result.outputs["alarm_names"])
    guard = config.rollout.guardrails
    slug = config.project.slug
    errors = alarms[f"{slug}-prod-model-error-rate"]
    assert errors["threshold"] == guard.max_error_rate
    # The model's own errors, exactly as the container publishes them (namespace, name and the
    # whole dimension set), as a rate (Average = failed / given). Before, the alarm read
    # SageMaker's Invocation5XXErrors: the gateway's shed and no-model 503s rolled a healthy
    # canary back, and the published ModelErrors was watched by no alarm.
    assert (errors["namespace"], errors["metricName"], errors["statistic"]) == (
        NAMESPACE,
        MODEL_ERRORS,
        "Average",
    )
    assert errors["dimensions"] == dimensions(f"{slug}-prod", "AllTraffic")
    assert "metricQueries" not in errors
    # Data capture (raw request bodies) expires; the artifacts' versions are kept as before.
    [lifecycle] = result.of_type(policies.LIFECYCLE)
    expiring = [r for r in lifecycle.props["rules"] if "expiration" in r]
    assert [(r["filter"]["prefix"], r["expiration"]["days"]) for r in expiring] == [
        ("data-capture/", CAPTURE_RETENTION_DAYS)
    ]
    assert expiring[0]["noncurrentVersionExpiration"]["noncurrentDays"] == 1
    latency = alarms[f"{slug}-prod-p95-latency"]
    assert (latency["metricName"], latency["extendedStatistic"]) == ("ModelLatency", "p95")
    assert latency["threshold"] == pytest.approx(40.0 * guard.max_p95_latency_ratio * 1000)
    drift = alarms[f"{slug}-prod-prediction-psi"]
    assert (drift["namespace"], drift["metricName"]) == (NAMESPACE, PREDICTION_PSI)
    assert drift["threshold"] == guard.max_prediction_psi
    # M of N minutes from the same false-rollback budget: a healthy endpoint (the ceiling
    # minus the tolerated increase, at the planned load) fires within the errors' share.
    plan = endpoint_plan(config, Environment.prod)
    assert (errors["evaluationPeriods"], errors["datapointsToAlarm"]) == (
        plan.error_alarm.evaluation_periods,
        plan.error_alarm.datapoints_to_alarm,
    )
    assert plan.error_alarm.false_alarm <= guard.false_rollback_budget / 2
    assert plan.error_alarm.period_false_alarm > guard.false_rollback_budget / 2  # so M-of-N
    assert errors["evaluationPeriods"] * 60 <= plan.wait_seconds + plan.termination_wait_seconds
    for metric_alarm in (latency, drift):
        assert metric_alarm["datapointsToAlarm"] == plan.metric_alarm.datapoints_to_alarm


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_the_container_is_told_the_names_its_drift_alarm_watches_and_captures_traffic(configs, env):
    config = configs["medium"]
    result = run(config, env)
    endpoint_name = f"{config.project.slug}-{env}"
    drift = next(
        a.props
        for a in result.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.props.get("metricName") == PREDICTION_PSI
    )
    models = {m.props["name"]: m.props for m in result.of_type("aws:sagemaker/model:Model")}
    current = models[f"{endpoint_name}-v3"]["primaryContainer"]["environment"]
    variant = result.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration")[0]
    # The alarm's dimensions are exactly what the container will publish with.
    assert dict(drift["dimensions"]) == {
        "EndpointName": current[ENDPOINT_ENV],
        "VariantName": current[VARIANT_ENV],
    }
    assert current[VARIANT_ENV] == variant.props["productionVariants"][0]["variantName"]
    assert current[VERSION_ENV] == "3"
    assert models[f"{endpoint_name}-v2"]["primaryContainer"]["environment"][VERSION_ENV] == "2"
    bucket = result.one("aws:s3/bucket:Bucket").props["bucket"]
    for config_resource in result.of_type(
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
    ):
        capture = config_resource.props["dataCaptureConfig"]
        assert capture["enableCapture"] is True
        assert capture["destinationS3Uri"] == f"s3://{bucket}/{CAPTURE_PREFIX}"
        assert capture["kmsKeyId"].startswith("arn:aws:kms:")
        assert {o["captureMode"] for o in capture["captureOptions"]} == {"Input", "Output"}


def alarm_thresholds(result: StackRun) -> dict[str, float]:
    return {
        a.props["metricName"]: a.props["threshold"]
        for a in result.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }


def test_high_risk_tier_tightens_alarm_thresholds(configs):
    medium = alarm_thresholds(run(configs["medium"], "prod"))
    high = alarm_thresholds(run(configs["high"], "prod"))
    assert high["ModelErrors"] == pytest.approx(medium["ModelErrors"] / 2)
    assert high["PredictionPSI"] == pytest.approx(medium["PredictionPSI"] / 2)
    assert high["ModelLatency"] < medium["ModelLatency"]


def test_previous_configuration_is_kept_for_rollback(configs):
    result = run(configs["low"], "staging")
    names = sorted(
        c.props["name"]
        for c in result.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    )
    slug = configs["low"].project.slug
    assert names == [f"{slug}-staging-v2", f"{slug}-staging-v3"]
    assert result.outputs["previous_endpoint_config_name"] == f"{slug}-staging-v2"


def test_autoscaling_bounds_per_environment_come_from_slipway_toml(configs):
    config = configs["medium"]
    for env, scaling in (("staging", config.deploy.staging), ("prod", config.deploy.prod)):
        target = run(config, env).one("aws:appautoscaling/target:Target").props
        assert (target["minCapacity"], target["maxCapacity"]) == (
            scaling.min_instances,
            scaling.max_instances,
        )
        assert target["resourceId"] == f"endpoint/{config.project.slug}-{env}/variant/AllTraffic"


def test_artifact_store_is_versioned_kms_encrypted_private_and_tls_only(configs):
    result = run(configs["medium"], "dev")
    bucket = result.one("aws:s3/bucket:Bucket").props["bucket"]
    assert bucket == f"{configs['medium'].project.slug}-dev-{MOCK_ACCOUNT}"
    sse = result.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).props
    default = sse["rules"][0]["applyServerSideEncryptionByDefault"]
    key = result.one("aws:kms/key:Key")
    assert default["sseAlgorithm"] == "aws:kms"
    assert default["kmsMasterKeyId"].endswith(key.name)
    assert key.props["enableKeyRotation"] is True
    versioning = result.one("aws:s3/bucketVersioning:BucketVersioning").props
    assert (versioning["bucket"], versioning["versioningConfiguration"]) == (
        bucket,
        {"status": "Enabled"},
    )
    block = result.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").props
    assert all(
        block[f] is True
        for f in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    policy = json.loads(result.one("aws:s3/bucketPolicy:BucketPolicy").props["policy"])
    [deny] = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = result.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert lifecycle.props["rules"][0]["noncurrentVersionExpiration"]["noncurrentDays"] == 90


def test_image_repository_scans_on_push_and_is_immutable(configs):
    repo = run(configs["medium"], "dev").one("aws:ecr/repository:Repository").props
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["imageTagMutability"] == "IMMUTABLE"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_roles_have_no_wildcards_and_ci_trusts_only_its_repository_and_environment(configs, env):
    result = run(configs["medium"], env)
    for rp in result.of_type("aws:iam/rolePolicy:RolePolicy"):
        for stmt in json.loads(rp.props["policy"])["Statement"]:
            assert "*" not in stmt["Action"], rp.name
            if stmt["Resource"] == ["*"]:
                assert stmt["Action"] in (
                    ["ecr:GetAuthorizationToken"],
                    ["cloudwatch:PutMetricData"],
                    [
                        "application-autoscaling:DescribeScalableTargets",
                        "application-autoscaling:DescribeScalingPolicies",
                    ],
                ), rp.name
    ci = next(r for r in result.of_type("aws:iam/role:Role") if r.name.endswith("-ci"))
    [trust] = json.loads(ci.props["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {
        "Federated": f"arn:aws:iam::{MOCK_ACCOUNT}:oidc-provider/"
        "token.actions.githubusercontent.com"
    }
    # Reproduction: the prod role trusted `repo:<owner>/<name>:*`, so a workflow on any
    # branch, with no environment and no reviewers, could assume it. Now one exact subject.
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": f"repo:example-org/demo:environment:{env}",
        },
    }


def test_endpoint_configurations_encrypt_their_volumes_with_the_spokes_key(configs):
    result = run(configs["medium"], "prod", StackInputs(model_version=2, previous_model_version=1))
    key = result.one("aws:kms/key:Key")
    versions = result.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    assert len(versions) == 2  # the serving version and the previous one
    # The mock gives every resource the ARN AWS would: `arn:aws:<service>:...:<name>`.
    assert {c.props.get("kmsKeyArn") for c in versions} == {
        f"arn:aws:kms:{MOCK_REGION}:{MOCK_ACCOUNT}:{key.name}"
    }


def test_without_a_github_repository_no_ci_role_is_trusted(configs):
    result = run(configs["medium"], "dev", StackInputs())
    assert [r.name for r in result.of_type("aws:iam/role:Role") if r.name.endswith("-ci")] == []
    assert result.outputs["ci_role_arn"] is None


def test_budget_alerts_the_contact_at_80_and_100_percent_of_its_share(configs):
    config = configs["medium"]
    budget = run(config, "prod").one("aws:budgets/budget:Budget").props
    assert budget["limitAmount"] == f"{config.budget.monthly_usd * 0.7:.2f}"
    assert (budget["limitUnit"], budget["timeUnit"]) == ("USD", "MONTHLY")
    assert [
        (n["threshold"], n["thresholdType"], n["subscriberEmailAddresses"])
        for n in budget["notifications"]
    ] == [
        (80.0, "PERCENTAGE", [config.project.contact]),
        (100.0, "PERCENTAGE", [config.project.contact]),
    ]


def test_every_taggable_resource_carries_owner_team_tier_and_cost_center(configs):
    config = configs["high"]
    result = run(config, "prod")
    tagged = [r for r in result.resources if "tags" in r.props]
    assert len(tagged) >= 12
    for res in tagged:
        tags = res.props["tags"]
        assert (tags["owner"], tags["team"], tags["risk-tier"], tags["cost-center"]) == (
            config.project.contact,
            config.project.team,
            "high",
            config.project.cost_center,
        )


def test_outputs_by_value(configs):
    config = configs["medium"]
    slug = config.project.slug
    outputs = run(config, "prod").outputs
    expected = {
        "environment": "prod",
        "bucket_name": f"{slug}-prod-{MOCK_ACCOUNT}",
        "repository_url": f"{MOCK_ACCOUNT}.dkr.ecr.{MOCK_REGION}.amazonaws.com/slipway/{slug}-prod",
        "budget_name": f"{slug}-prod",
        "endpoint_status": "serving",
        "endpoint_name": f"{slug}-prod",
        "endpoint_config_name": f"{slug}-prod-v3",
        "previous_endpoint_config_name": f"{slug}-prod-v2",
        "alarm_names": [
            f"{slug}-prod-model-error-rate",
            f"{slug}-prod-p95-latency",
            f"{slug}-prod-prediction-psi",
        ],
        "model_version": 3,
        # What `slipway deploy` set, so the next CD run can carry it (deploy_settings.py).
        "deploy_settings": {
            "modelVersion": "3",
            "previousModelVersion": "2",
            "championP95LatencyMs": "40.0",
        },
    }
    assert {k: outputs[k] for k in expected} == expected
    assert outputs["endpoint_role_arn"].startswith("arn:aws:iam")


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_first_deploy_without_a_registered_model_bootstraps(configs, env):
    result = run(configs["medium"], env, StackInputs())
    assert result.outputs["endpoint_status"] == "bootstrap"
    assert result.outputs["deploy_settings"] == {}  # a next run carries nothing
    for kind in ("endpoint:Endpoint", "model:Model", "endpointConfiguration:EndpointConfiguration"):
        assert result.of_type(f"aws:sagemaker/{kind}") == []
    # What the first training run needs is there, and compliant.
    assert len(result.of_type("aws:s3/bucket:Bucket")) == 1
    assert len(result.of_type("aws:ecr/repository:Repository")) == 1
    assert check_stack(result.resources) == []


def test_stack_config_overrides_image_and_artifact(configs):
    inputs = StackInputs(
        model_version=7,
        image_uri="registry.example/model@sha256:abc",
        model_data_url="s3://elsewhere/model.tar.gz",
    )
    result = run(configs["low"], "staging", inputs)
    model = result.one("aws:sagemaker/model:Model").props
    # Only the deploy settings given are exported: the default champion p95 is not one.
    assert result.outputs["deploy_settings"] == {"modelVersion": "7"}
    container = dict(model["primaryContainer"])
    assert container.pop("environment")[VERSION_ENV] == "7"
    assert container == {
        "image": "registry.example/model@sha256:abc",
        "modelDataUrl": "s3://elsewhere/model.tar.gz",
    }


def test_stack_inputs_are_validated_with_errors_that_say_what_to_do():
    assert parse_stack_inputs({"modelVersion": "4", "previousModelVersion": "3"}) == StackInputs(
        model_version=4, previous_model_version=3
    )
    with pytest.raises(StackInputError, match=r"modelVersion = 'latest'.*pulumi config set"):
        parse_stack_inputs({"modelVersion": "latest"})
    with pytest.raises(StackInputError, match="previousModelVersion is set but modelVersion"):
        parse_stack_inputs({"previousModelVersion": "2"})
    with pytest.raises(StackInputError, match="championP95LatencyMs"):
        parse_stack_inputs({"championP95LatencyMs": "-5"})
    with pytest.raises(StackInputError, match="owner/name"):
        parse_stack_inputs({"githubRepository": "just-a-name"})
    with pytest.raises(ValueError, match="use one of: dev, staging, prod"):
        parse_environment("production")


def test_a_provider_in_another_region_fails_before_creating_anything(configs):
    config = configs["low"]
    expected = config.deploy.region
    with pytest.raises(
        StackInputError,
        match=f"targets eu-central-1 but .* says {expected}; set `pulumi config set "
        f"aws:region {expected}`",
    ):
        run_stack(
            lambda: build_spoke_stack(config, Environment.dev, StackInputs()),
            project=config.project.slug,
            stack="dev",
            region="eu-central-1",
        )


def role_statements(result: StackRun, role: str) -> list[dict]:
    [policy] = [
        r
        for r in result.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name.endswith(f"-{role}-policy")
    ]
    return json.loads(policy.props["policy"])["Statement"]


def granting(statements: list[dict], action: str) -> dict:
    [found] = [s for s in statements if action in s["Action"]]
    return found


def test_endpoint_role_reads_its_rollback_alarms_and_writes_only_its_log_groups(configs):
    config = configs["medium"]
    prefix = f"{config.project.slug}-prod"
    result = run(config, "prod")
    statements = role_statements(result, "endpoint")
    alarms = granting(statements, "cloudwatch:DescribeAlarms")
    assert alarms == {
        "Effect": "Allow",
        "Action": ["cloudwatch:DescribeAlarms"],
        "Resource": [f"arn:aws:cloudwatch:{MOCK_REGION}:{MOCK_ACCOUNT}:alarm:{prefix}-*"],
    }
    # The pattern covers exactly the alarms the endpoint rolls back on.
    assert all(
        fnmatchcase(
            f"arn:aws:cloudwatch:{MOCK_REGION}:{MOCK_ACCOUNT}:alarm:{name}", alarms["Resource"][0]
        )
        for name in result.outputs["alarm_names"]
    )
    groups = (
        f"arn:aws:logs:{MOCK_REGION}:{MOCK_ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{prefix}"
    )
    assert granting(statements, "logs:PutLogEvents")["Resource"] == [
        groups,
        f"{groups}:*",
        f"{groups}-*",
    ]


def test_ci_role_can_create_the_endpoint_and_its_autoscaling_on_the_first_deploy(configs):
    config = configs["medium"]
    prefix = f"{config.project.slug}-prod"
    statements = role_statements(run(config, "prod"), "ci")
    sagemaker = granting(statements, "sagemaker:CreateEndpoint")
    assert sagemaker["Resource"] == [
        f"arn:aws:sagemaker:{MOCK_REGION}:{MOCK_ACCOUNT}:{kind}/{name}"
        for kind in ("model", "endpoint-config", "endpoint", "training-job", "processing-job")
        for name in (prefix, f"{prefix}-*")
    ]
    assert granting(statements, "application-autoscaling:RegisterScalableTarget") == {
        "Effect": "Allow",
        "Action": [
            "application-autoscaling:ListTagsForResource",
            "application-autoscaling:PutScalingPolicy",
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:TagResource",
        ],
        "Resource": [
            f"arn:aws:application-autoscaling:{MOCK_REGION}:{MOCK_ACCOUNT}:scalable-target/*"
        ],
    }
    assert granting(statements, "iam:CreateServiceLinkedRole") == {
        "Effect": "Allow",
        "Action": ["iam:CreateServiceLinkedRole"],
        "Resource": [
            f"arn:aws:iam::{MOCK_ACCOUNT}:role/aws-service-role/"
            "sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
        ],
        "Condition": {
            "StringEquals": {
                "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
            }
        },
    }


def test_pipeline_role_writes_only_its_own_jobs_log_streams(configs):
    config = configs["low"]
    prefix = f"{config.project.slug}-staging"
    logs = granting(role_statements(run(config, "staging"), "pipeline"), "logs:PutLogEvents")
    base = f"arn:aws:logs:{MOCK_REGION}:{MOCK_ACCOUNT}:log-group:/aws/sagemaker"
    assert logs["Resource"] == [
        f"{base}/TrainingJobs",
        f"{base}/ProcessingJobs",
        f"{base}/TrainingJobs:log-stream:{prefix}-*",
        f"{base}/ProcessingJobs:log-stream:{prefix}-*",
    ]


@pytest.mark.parametrize("tier", ["low", "medium", "high"])
def test_staging_serves_on_the_tiers_smallest_type_and_prod_on_slipway_toml(configs, tier):
    config = configs[tier]
    types = {}
    for env in ("staging", "prod"):
        configs_ = run(config, env).of_type(
            "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
        )
        types[env] = {v["instanceType"] for c in configs_ for v in c.props["productionVariants"]}
    assert types == {"staging": {"ml.t2.medium"}, "prod": {config.deploy.instance_type}}


def test_the_smallest_type_is_found_by_size_not_by_listing_order():
    assert (
        smallest_instance_type(("ml.m5.2xlarge", "ml.c5.xlarge", "ml.c5.large", "ml.m5.large"))
        == "ml.c5.large"
    )
    assert smallest_instance_type(("ml.m5.12xlarge", "ml.m5.4xlarge")) == "ml.m5.4xlarge"
