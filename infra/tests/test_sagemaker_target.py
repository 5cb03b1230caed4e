"""The SageMaker deploy target's verification, against moto in server mode on 127.0.0.1.

moto is a stand-in for AWS, not AWS: it serves SageMaker's DescribeEndpoint over real HTTP
with the states a deployment ends in. moto has no UpdateEndpoint, so each test creates the
endpoint directly in the state SageMaker leaves it: on the intended configuration after a
successful canary, or still on the previous one after an alarm-driven (silent) rollback.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.request import Request, urlopen

import boto3
import pytest
from moto.server import ThreadedMotoServer

from slipway.infra.endpoint import config_name
from slipway.infra.sagemaker_target import (
    DeployStatus,
    deploy_config,
    verify_endpoint,
    wait_for_endpoint,
)
from slipway.infra.spoke_stack import StackInputs, parse_stack_inputs

ENDPOINT = "diagnosis-assist-prod"
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def sagemaker(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    client = boto3.client(
        "sagemaker", region_name="eu-west-1", endpoint_url=moto_url,
        aws_access_key_id="moto", aws_secret_access_key="moto",
    )
    # Each test starts from an empty moto account.
    urlopen(Request(f"{moto_url}/moto-api/reset", method="POST")).close()
    for version in (1, 2):
        name = config_name(ENDPOINT, version)
        client.create_model(
            ModelName=name,
            ExecutionRoleArn="arn:aws:iam::123456789012:role/diagnosis-assist-prod-endpoint",
            PrimaryContainer={"Image": f"{REGISTRY}/m:v{version}"},
        )
        client.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name,
                                 "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        )
    return client


def test_endpoint_on_the_intended_configuration_is_deployed(sagemaker):
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 2))
    outcome = verify_endpoint(sagemaker, ENDPOINT, config_name(ENDPOINT, 2),
                              config_name(ENDPOINT, 1))
    assert outcome.status is DeployStatus.deployed
    assert (outcome.actual_config, outcome.endpoint_status) == (f"{ENDPOINT}-v2", "InService")


def test_endpoint_back_on_the_previous_configuration_is_reported_as_a_rollback(sagemaker):
    # SageMaker's alarm-driven rollback leaves the endpoint InService on the old config.
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 1))
    outcome = verify_endpoint(sagemaker, ENDPOINT, config_name(ENDPOINT, 2),
                              config_name(ENDPOINT, 1))
    assert outcome.status is DeployStatus.rolled_back
    assert outcome.actual_config == f"{ENDPOINT}-v1"
    assert "SageMaker rolled back" in outcome.message
    assert "the previous configuration" in outcome.message


def test_a_missing_endpoint_fails_with_what_to_check(sagemaker):
    outcome = verify_endpoint(sagemaker, ENDPOINT, config_name(ENDPOINT, 2))
    assert outcome.status is DeployStatus.failed
    assert "cannot be described" in outcome.message
    assert "endpoint_name output" in outcome.message


def test_waiting_returns_once_settled_without_sleeping(sagemaker):
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 1))
    sleeps: list[float] = []
    outcome = wait_for_endpoint(sagemaker, ENDPOINT, config_name(ENDPOINT, 2),
                                config_name(ENDPOINT, 1), sleep=sleeps.append)
    assert outcome.status is DeployStatus.rolled_back
    assert sleeps == []


def moto_endpoint(name: str) -> Any:
    """The stand-in's own record of an endpoint (moto runs in this process), so a test can put
    it in the states SageMaker passes through during a deployment, which moto never does."""
    from moto.backends import get_backend

    return get_backend("sagemaker")["123456789012"]["eu-west-1"].endpoints[name]


def test_waiting_polls_through_an_update_until_the_endpoint_settles(sagemaker):
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 1))
    record = moto_endpoint(ENDPOINT)
    record.endpoint_status = "Updating"
    polls: list[float] = []

    def canary_finishes(seconds: float) -> None:
        # One poll later SageMaker has shifted all traffic to the new configuration.
        polls.append(seconds)
        record.endpoint_config_name = config_name(ENDPOINT, 2)
        record.endpoint_status = "InService"

    outcome = wait_for_endpoint(sagemaker, ENDPOINT, config_name(ENDPOINT, 2),
                                config_name(ENDPOINT, 1), poll_seconds=7, sleep=canary_finishes)
    assert polls == [7]
    assert outcome.status is DeployStatus.deployed


def test_a_failed_endpoint_reports_sagemakers_reason(sagemaker):
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config_name(ENDPOINT, 2))
    record = moto_endpoint(ENDPOINT)
    record.endpoint_status = "Failed"
    record.failure_reason = "The primary container did not pass the ping health check."
    outcome = verify_endpoint(sagemaker, ENDPOINT, config_name(ENDPOINT, 2))
    assert outcome.status is DeployStatus.failed
    assert outcome.message == (
        "endpoint is Failed: The primary container did not pass the ping health check.")


def test_deploy_config_keeps_the_serving_version_for_rollback():
    # What deploy_model_version writes before `pulumi up` (the Automation API itself needs the
    # Pulumi CLI, absent here); the stack reads it back through the same validation.
    moved = deploy_config(2, 3, 41.5)
    assert moved == {"modelVersion": "3", "previousModelVersion": "2",
                     "championP95LatencyMs": "41.5"}
    assert parse_stack_inputs(moved) == StackInputs(
        model_version=3, previous_model_version=2, champion_p95_latency_ms=41.5)
    assert deploy_config(None, 1, None) == {"modelVersion": "1"}  # first deploy
    assert deploy_config(3, 3, None) == {"modelVersion": "3"}  # redeploy: nothing to keep
