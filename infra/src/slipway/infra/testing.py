"""Pulumi's mock mode as a harness: run a stack program in-process and record every resource.

The Pulumi CLI is not needed: `pulumi.runtime.set_mocks` replaces the engine, and our mocks
echo each resource's inputs back as its state, adding the `id` and `arn` a provider would.
That is exactly what Pulumi documents for unit tests; it proves what the program *asks* AWS
for (the properties our policies check), never that AWS accepts it. `pulumi preview/up` in
the spoke's CI is where a real account answers.

Several stacks run in one process: each `run_stack` resets Pulumi's global settings and
root stack resource (what the Automation API does between runs) before installing new mocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import wait_for_rpcs

MOCK_ACCOUNT = "123456789012"
MOCK_REGION = "eu-west-1"


@dataclass(frozen=True)
class RecordedResource:
    """One resource as the engine saw it: Pulumi type token, logical name, input properties."""

    type: str
    name: str
    props: Mapping[str, Any]
    id: str


@dataclass
class StackRun:
    """Everything a mock run produced: the resources in creation order and resolved outputs."""

    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> RecordedResource:
        found = self.of_type(type_token)
        if len(found) != 1:
            names = [r.name for r in found]
            raise AssertionError(f"expected one {type_token}, found {len(found)}: {names}")
        return found[0]


def _physical_id(type_token: str, name: str, inputs: Mapping[str, Any]) -> str:
    # AWS returns the bucket name as an S3 bucket's id; name-keyed resources likewise.
    for key in ("bucket", "name", "endpointName", "alarmName", "trackingServerName"):
        value = inputs.get(key)
        if isinstance(value, str) and value:
            return value
    return f"{name}-id"


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs, add id/arn like AWS would, and remember every resource."""

    def __init__(self, region: str = MOCK_REGION) -> None:
        self.region = region
        self.resources: list[RecordedResource] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        rid = _physical_id(args.typ, args.name, inputs)
        service = args.typ.split(":")[1].split("/")[0] if args.typ.startswith("aws:") else "x"
        state = {
            **inputs,
            "arn": f"arn:aws:{service}:{self.region}:{MOCK_ACCOUNT}:{args.name}",
        }
        if args.typ == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = (
                f"{MOCK_ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/{inputs.get('name')}"
            )
        if args.typ == "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer":
            state["trackingServerUrl"] = f"https://{rid}.mlflow.example.invalid"
        self.resources.append(RecordedResource(args.typ, args.name, inputs, rid))
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": MOCK_ACCOUNT,
                "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/x",
                "userId": "mock",
                "id": MOCK_ACCOUNT,
            }
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        return {}


def run_stack(
    program: Callable[[], Mapping[str, Any]],
    *,
    project: str,
    stack: str,
    config: Mapping[str, str] | None = None,
    region: str = MOCK_REGION,
) -> StackRun:
    """Run `program` under mocks as stack `project/stack`; return its resources and outputs.

    `program` builds resources and returns the outputs it would `pulumi.export`; `config`
    is the stack configuration with fully qualified keys (`project:key`), as Pulumi.<stack>.yaml
    would give it; `region` is the region the mocked AWS provider reports.
    """
    # Pulumi binds its root stack resource to the current event loop: give each run its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi_settings.reset_options(project=project, stack=stack, preview=False)
    mocks = RecordingMocks(region)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False)
    pulumi.runtime.set_all_config(dict(config or {}))

    async def resolve() -> dict[str, Any]:
        exported = dict(program())
        keys = list(exported)
        values = await asyncio.gather(*(_await_value(exported[k]) for k in keys))
        # Let every registration finish so the recording is complete.
        await wait_for_rpcs()
        return dict(zip(keys, values, strict=True))

    try:
        outputs = loop.run_until_complete(resolve())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return StackRun(resources=list(mocks.resources), outputs=outputs)


async def _await_value(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return await value.future()
    return value
