"""The SageMaker deploy target: move a stack to a model version, then check what AWS did.

`deploy_model_version` is what `slipway deploy --env staging|prod` calls when slipway.toml
says `target = "sagemaker"`. It (1) records the serving version as `previousModelVersion`
and sets `modelVersion` in the stack configuration, (2) runs `pulumi up` through the
Automation API, which makes SageMaker perform the blue/green CANARY deployment with its
alarm-driven auto-rollback, and (3) asks SageMaker, with boto3, which EndpointConfiguration
the endpoint really runs. SageMaker's rollback is silent from Pulumi's point of view (the
endpoint ends InService, on the previous configuration), so step 3 is what turns it into a
reported rollback.

Steps 1-2 need the Pulumi CLI and AWS credentials; they are not run on machines without
them (this repository's CI included). Step 3, `verify_endpoint`, is tested against moto's
server mode on 127.0.0.1: a stand-in for AWS, not AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from slipway.infra.endpoint import config_name

IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


class DeployStatus(StrEnum):
    deployed = "deployed"  # InService on the intended configuration
    rolled_back = "rolled-back"  # InService, but on another (the previous) configuration
    in_progress = "in-progress"  # SageMaker is still shifting traffic
    failed = "failed"  # no endpoint, or SageMaker reports Failed/OutOfService


@dataclass(frozen=True)
class DeployOutcome:
    status: DeployStatus
    endpoint_name: str
    intended_config: str
    actual_config: str | None
    endpoint_status: str | None
    message: str


def verify_endpoint(
    client: Any, endpoint_name: str, intended_config: str, previous_config: str | None = None
) -> DeployOutcome:
    """What the endpoint runs now, judged against what was deployed.

    `client` is a boto3 SageMaker client. A rollback is any InService endpoint on a
    configuration other than the intended one (naming the previous one when it is it).
    """
    try:
        described = client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as exc:
        return DeployOutcome(
            DeployStatus.failed, endpoint_name, intended_config, None, None,
            f"endpoint {endpoint_name} cannot be described ({exc.response['Error']['Message']}); "
            "check the stack's endpoint_name output and that `pulumi up` created it",
        )
    actual = described.get("EndpointConfigName")
    status = described.get("EndpointStatus")
    outcome = (endpoint_name, intended_config, actual, status)
    if status in IN_PROGRESS:
        return DeployOutcome(DeployStatus.in_progress, *outcome,
                             f"endpoint is {status}; traffic is still shifting")
    if status != "InService":
        reason = described.get("FailureReason") or "no reason given"
        return DeployOutcome(DeployStatus.failed, *outcome,
                             f"endpoint is {status}: {reason}")
    if actual == intended_config:
        return DeployOutcome(DeployStatus.deployed, *outcome,
                             f"endpoint serves {intended_config}")
    which = "the previous configuration" if actual == previous_config else "another configuration"
    return DeployOutcome(
        DeployStatus.rolled_back, *outcome,
        f"SageMaker rolled back: endpoint serves {actual} ({which}), not {intended_config}; "
        "a rollback alarm fired during the canary (see the alarms in the stack outputs)",
    )


def wait_for_endpoint(
    client: Any,
    endpoint_name: str,
    intended_config: str,
    previous_config: str | None = None,
    *,
    timeout_seconds: float = 3600.0,
    poll_seconds: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployOutcome:
    """Poll `verify_endpoint` until the deployment settles or the timeout passes."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        outcome = verify_endpoint(client, endpoint_name, intended_config, previous_config)
        if outcome.status is not DeployStatus.in_progress or time.monotonic() >= deadline:
            return outcome
        sleep(poll_seconds)


def deploy_config(
    serving_version: int | None, model_version: int, champion_p95_latency_ms: float | None
) -> dict[str, str]:
    """The stack settings that move a stack from the serving version to `model_version`.

    The serving version becomes `previousModelVersion`, so its Model and EndpointConfiguration
    stay in the stack while SageMaker may still roll back to them.
    """
    values = {"modelVersion": str(model_version)}
    if serving_version is not None and serving_version != model_version:
        values["previousModelVersion"] = str(serving_version)
    if champion_p95_latency_ms is not None:
        values["championP95LatencyMs"] = str(champion_p95_latency_ms)
    return values


def deploy_model_version(
    infra_dir: Path,
    environment: str,
    model_version: int,
    *,
    region: str,
    champion_p95_latency_ms: float | None = None,
    on_output: Callable[[str], None] = print,
) -> DeployOutcome:
    """Deploy `model_version` to the `environment` stack of the spoke in `infra_dir`.

    Needs the Pulumi CLI, a Pulumi backend login and AWS credentials (the spoke's CD job
    has them through GitHub OIDC). The outcome's status is what `slipway deploy` reports;
    `rolled-back` means SageMaker's alarms rejected the version and the champion serves.
    """
    import boto3
    from pulumi import automation as auto

    stack = auto.select_stack(stack_name=environment, work_dir=str(infra_dir))
    serving = stack.outputs().get("model_version")
    values = deploy_config(int(serving.value) if serving is not None else None, model_version,
                           champion_p95_latency_ms)
    stack.set_all_config({key: auto.ConfigValue(value) for key, value in values.items()})
    try:
        stack.up(on_output=on_output)
    except auto.errors.CommandError as exc:
        # A rollback can surface as a failed update: what the endpoint runs decides.
        on_output(f"pulumi up failed: {exc}")
    outputs = stack.outputs()
    if "endpoint_name" not in outputs:
        return DeployOutcome(DeployStatus.failed, "", "", None, None,
                             f"stack {environment} has no endpoint after `pulumi up`; see above")
    endpoint_name = str(outputs["endpoint_name"].value)
    previous = outputs.get("previous_endpoint_config_name")
    client = boto3.client("sagemaker", region_name=region)
    return wait_for_endpoint(
        client, endpoint_name, config_name(endpoint_name, model_version),
        str(previous.value) if previous is not None and previous.value else None,
    )
