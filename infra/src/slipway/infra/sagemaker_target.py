"""The SageMaker deploy target: move a stack to a model version, then check what AWS did.

`deploy_model_version` is what `slipway deploy --env staging|prod` calls (slipway.toml's
`[deploy].target` is "sagemaker"). It (1) records the serving version as
`previousModelVersion` and sets `modelVersion` in the stack configuration, (2) runs
`pulumi up` through the Automation API, which makes SageMaker perform the blue/green CANARY
deployment with its alarm-driven auto-rollback, and (3) asks SageMaker, with boto3, which
EndpointConfiguration the endpoint really runs. SageMaker's rollback is silent from Pulumi's
point of view (the endpoint ends InService, on the previous configuration), so step 3 is
what turns it into a reported rollback; the stack's `modelVersion` then goes back to the
version that serves, so the next deploy keeps the right one as `previousModelVersion`.

`pulumi up` runs with the hub's policy pack, as CD's does (`policy_pack`): the prod path
never skips the policies CD enforces, and without the pack nothing is deployed.

Steps 1-2 need the Pulumi CLI and AWS credentials; they are not run on machines without
them (this repository's CI included). The stack is passed in (`open_stack` makes the real
one), so the tests drive steps 1-3 with a stand-in for the Automation API's Stack, and
step 3 against moto's server mode on 127.0.0.1: a stand-in for AWS, not AWS.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError
from pulumi.automation import CommandError, ConfigValue

from slipway.infra.endpoint import config_name
from slipway.infra.spoke_stack import (
    CHAMPION_P95_LATENCY_MS,
    MODEL_VERSION,
    PREVIOUS_MODEL_VERSION,
)
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

# Where the hub's policy pack is: SLIPWAY_POLICY_PACK, else where cd.yml and deploy-model.yml
# fetch it (the hub at the slipway version the spoke pins), relative to the spoke.
POLICY_PACK_ENV = "SLIPWAY_POLICY_PACK"
HUB_POLICY_PACK = Path(".slipway-hub") / "infra" / "policy"


class PolicyPackMissing(SlipwayError, FileNotFoundError):
    """`pulumi up` would run without the hub's policies: refused, nothing deployed."""

    exit_code = Exit.USAGE


def policy_pack(root: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The hub's policy pack directory for a deploy from `root`, or PolicyPackMissing."""
    env = os.environ if environ is None else environ
    named = env.get(POLICY_PACK_ENV, "").strip()
    pack = Path(named) if named else root / HUB_POLICY_PACK
    if not (pack / "PulumiPolicy.yaml").is_file():
        where = f"{POLICY_PACK_ENV}={named}" if named else str(pack)
        raise PolicyPackMissing(
            f"no policy pack at {where}: `slipway deploy --env` runs `pulumi up` with the "
            "hub's policy pack, as CD does, and never without it. Fetch the hub at the "
            "slipway version pyproject.toml pins into .slipway-hub (deploy-model.yml shows "
            "how: git fetch --depth 1, then `uv venv venv && uv pip install -p "
            "venv/bin/python -r requirements.txt` in infra/policy), or set "
            f"{POLICY_PACK_ENV} to the pack's directory; nothing was deployed"
        )
    return pack.resolve()


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
            DeployStatus.failed,
            endpoint_name,
            intended_config,
            None,
            None,
            f"endpoint {endpoint_name} cannot be described ({exc.response['Error']['Message']}); "
            "check the stack's endpoint_name output and that `pulumi up` created it",
        )
    actual = described.get("EndpointConfigName")
    status = described.get("EndpointStatus")
    outcome = (endpoint_name, intended_config, actual, status)
    if status in IN_PROGRESS:
        return DeployOutcome(
            DeployStatus.in_progress, *outcome, f"endpoint is {status}; traffic is still shifting"
        )
    if status != "InService":
        reason = described.get("FailureReason") or "no reason given"
        return DeployOutcome(DeployStatus.failed, *outcome, f"endpoint is {status}: {reason}")
    if actual == intended_config:
        return DeployOutcome(DeployStatus.deployed, *outcome, f"endpoint serves {intended_config}")
    which = "the previous configuration" if actual == previous_config else "another configuration"
    return DeployOutcome(
        DeployStatus.rolled_back,
        *outcome,
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
    values = {MODEL_VERSION: str(model_version)}
    if serving_version is not None and serving_version != model_version:
        values[PREVIOUS_MODEL_VERSION] = str(serving_version)
    if champion_p95_latency_ms is not None:
        values[CHAMPION_P95_LATENCY_MS] = str(champion_p95_latency_ms)
    return values


PULUMI_NEEDS = (
    "`slipway deploy --env` needs the Pulumi CLI "
    "(https://www.pulumi.com/docs/install/), `pulumi login` to the spoke's state "
    "backend, and AWS credentials"
)


class TargetUnavailable(SlipwayError, RuntimeError):
    """The stack cannot be opened here (no Pulumi CLI, no project); the message says why."""


class PulumiStack(Protocol):
    """The part of pulumi.automation.Stack the deploy target uses: a test passes a stand-in."""

    def get_all_config(self) -> Mapping[str, Any]: ...

    def set_all_config(self, config: MutableMapping[str, ConfigValue]) -> None: ...

    def remove_config(self, key: str) -> None: ...

    def up(self, *, on_output: Callable[[str], Any], policy_packs: list[str]) -> Any: ...

    def outputs(self) -> Mapping[str, Any]: ...


def open_stack(infra_dir: Path, environment: str) -> PulumiStack:
    """The spoke's Pulumi stack `environment`, through the Automation API."""
    from pulumi import automation as auto

    try:
        return auto.select_stack(stack_name=environment, work_dir=str(infra_dir))
    except (CommandError, OSError) as exc:
        raise TargetUnavailable(
            f"cannot open Pulumi stack {environment} in {infra_dir} ({exc}); {PULUMI_NEEDS}"
        ) from exc


def sagemaker_client(region: str | None) -> Any:
    """A boto3 SageMaker client; AWS_ENDPOINT_URL (botocore's own setting) redirects it."""
    import boto3

    return boto3.client("sagemaker", region_name=region)


def stack_setting(stack: PulumiStack, key: str) -> str | None:
    """A key of the stack's own project namespace (`<project>:key`), or None when unset."""
    for name, value in stack.get_all_config().items():
        if name.partition(":")[2] == key:
            return str(value.value)
    return None


def serving_version(sagemaker: Any, endpoint_name: str) -> int | None:
    """The model version the endpoint runs now, per SageMaker; None when there is no such
    endpoint or it runs a configuration Slipway did not name."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError:
        return None
    return version_of(endpoint_name, described.get("EndpointConfigName"))


def version_of(endpoint_name: str, config: str | None) -> int | None:
    """The model version an EndpointConfiguration name stands for (see `config_name`)."""
    prefix = f"{endpoint_name}-v"
    if config is None or not config.startswith(prefix):
        return None
    tail = config.removeprefix(prefix)
    return int(tail) if tail.isdigit() else None


def write_settings(stack: PulumiStack, values: Mapping[str, str | None]) -> None:
    """Write stack settings (the deploy target and deploy_settings both write through here);
    None removes a setting that is there."""
    stack.set_all_config({k: ConfigValue(v) for k, v in values.items() if v is not None})
    for key, value in values.items():
        if value is None and stack_setting(stack, key) is not None:
            stack.remove_config(key)


def _command_failure(exc: CommandError, lines: int = 3) -> str:
    """The end of a failed Pulumi command's output, where the engine puts the error."""
    tail = [line.strip() for line in str(exc).splitlines() if line.strip()][-lines:]
    return " / ".join(tail)


def deploy_model_version(
    stack: PulumiStack,
    sagemaker: Any,
    environment: str,
    model_version: int,
    *,
    policy_pack: Path,
    champion_p95_latency_ms: float | None = None,
    on_output: Callable[[str], None] = print,
    timeout_seconds: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployOutcome:
    """Deploy `model_version` to `stack` (the spoke's `environment` stack) and verify it.

    `policy_pack` is the hub's pack (`policy_pack(root)`): every policy is mandatory, so a
    violation fails `pulumi up` before anything changes. `stack` is `open_stack(...)`
    (needs the Pulumi CLI, a backend login and AWS credentials:
    the spoke's CD job has them through GitHub OIDC); `sagemaker` is `sagemaker_client(...)`.
    The outcome's status is what `slipway deploy` reports: `rolled-back` means SageMaker's
    alarms rejected the version and the previous one serves; `failed` after a failed
    `pulumi up` restores the stack settings as they were, so a rerun starts from the truth.
    """
    before = {key: stack_setting(stack, key) for key in (MODEL_VERSION, PREVIOUS_MODEL_VERSION)}
    current = before[MODEL_VERSION] or ""
    serving = int(current) if current.isdigit() else None
    write_settings(stack, deploy_config(serving, model_version, champion_p95_latency_ms))
    try:
        stack.up(on_output=on_output, policy_packs=[str(policy_pack)])
    except CommandError as exc:
        write_settings(stack, before)
        return DeployOutcome(
            DeployStatus.failed,
            "",
            "",
            None,
            None,
            f"`pulumi up` failed on stack {environment}: {_command_failure(exc)}; the stack "
            f"settings are back to modelVersion {before[MODEL_VERSION] or '(unset)'}: fix the "
            "error above (a policy, a permission) and deploy again",
        )
    outputs = stack.outputs()
    if "endpoint_name" not in outputs:
        return DeployOutcome(
            DeployStatus.failed,
            "",
            "",
            None,
            None,
            f"stack {environment} has no endpoint after `pulumi up`; see above",
        )
    endpoint_name = str(outputs["endpoint_name"].value)
    previous = outputs.get("previous_endpoint_config_name")
    outcome = wait_for_endpoint(
        sagemaker,
        endpoint_name,
        config_name(endpoint_name, model_version),
        str(previous.value) if previous is not None and previous.value else None,
        timeout_seconds=timeout_seconds,
        sleep=sleep,
    )
    if outcome.status is DeployStatus.rolled_back:
        return _settle_on_serving(stack, outcome, endpoint_name)
    return outcome


def _settle_on_serving(
    stack: PulumiStack, outcome: DeployOutcome, endpoint_name: str
) -> DeployOutcome:
    """After SageMaker rolled back, point `modelVersion` at the version that serves, so the
    next deploy keeps it (not the rejected one) as `previousModelVersion`."""
    serving = version_of(endpoint_name, outcome.actual_config)
    if serving is None:
        return replace(
            outcome,
            message=(
                f"{outcome.message}; {outcome.actual_config} is not a Slipway configuration of "
                f"{endpoint_name}, so the stack's modelVersion still names the rejected version: "
                "set the serving one with `pulumi config set modelVersion N`"
            ),
        )
    write_settings(stack, {MODEL_VERSION: str(serving), PREVIOUS_MODEL_VERSION: None})
    return replace(outcome, message=f"{outcome.message}; stack modelVersion is {serving} again")
