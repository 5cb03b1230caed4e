"""Carry a stack's deploy-time settings from its last deployment into this run's config.

`slipway deploy --env` writes modelVersion, previousModelVersion and championP95LatencyMs
into the stack configuration (sagemaker_target.deploy_model_version). Nobody commits them
(they are deploy-time state, not design), and a CI runner keeps nothing between runs: from
the committed Pulumi.<env>.yaml alone the spoke's program would bootstrap, and `pulumi up`
would delete the serving endpoint. So the stack exports the settings it was deployed with
(spoke_stack.DEPLOY_SETTINGS_OUTPUT), and this module writes them back into the stack
configuration before `pulumi preview/up` or `slipway deploy`. Every other setting stays as
committed, which `pulumi config refresh --force` (the whole config of the last deployment)
would not do.

From the spoke's infra/ directory, after `pulumi login`:

    python -m slipway.infra.deploy_settings staging
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError
from pulumi.automation import CommandError

from slipway.infra import sagemaker_target
from slipway.infra.sagemaker_target import PulumiStack, TargetUnavailable, write_settings
from slipway.infra.spoke_stack import (
    DEPLOY_SETTING_KEYS,
    DEPLOY_SETTINGS_OUTPUT,
    MODEL_VERSION,
    PREVIOUS_MODEL_VERSION,
)
from slipway.pipelines.errors import SlipwayError

ENVIRONMENTS = ("staging", "prod")
USAGE = "usage: python -m slipway.infra.deploy_settings {staging|prod}"


class NothingToCarryFrom(SlipwayError, RuntimeError):
    """The stack was deployed, but not by a program that exports its deploy settings."""


def carry_deploy_settings(
    stack: PulumiStack, *, sagemaker: Any = None, on_output: Callable[[str], None] = print
) -> dict[str, str]:
    """Set the deploy settings of the stack's last deployment in its config; return them.

    A never-deployed stack carries nothing: its committed config is the whole truth, and
    without modelVersion it bootstraps as it should. A deployed stack without the output
    is refused rather than run from the committed config, which would delete its endpoint.
    With `sagemaker` (a boto3 client), what the endpoint really runs wins: after SageMaker's
    alarms rolled a version back, the last deployment still names the rejected version, and
    carrying it would deploy that version again.
    """
    outputs = stack.outputs()
    if not outputs:
        on_output("never deployed: nothing to carry, the committed stack config applies")
        return {}
    if DEPLOY_SETTINGS_OUTPUT not in outputs:
        raise NothingToCarryFrom(
            f"its last deployment has no `{DEPLOY_SETTINGS_OUTPUT}` output (it predates "
            "slipway-infra exporting it), so its modelVersion is unknown here and `pulumi up` "
            "would remove the endpoint. Recover once, in infra/: `pulumi config refresh "
            "--force` (that deployment's whole config), `pulumi preview`, `pulumi up`; from "
            "then on the stack exports its deploy settings"
        )
    exported = outputs[DEPLOY_SETTINGS_OUTPUT].value or {}
    carried: dict[str, str | None] = {
        key: str(exported[key]) for key in DEPLOY_SETTING_KEYS if key in exported
    }
    endpoint = outputs.get("endpoint_name")
    serving = (
        sagemaker_target.serving_version(sagemaker, str(endpoint.value))
        if sagemaker is not None and endpoint is not None
        else None
    )
    if serving is not None and carried.get(MODEL_VERSION) != str(serving):
        on_output(
            f"SageMaker serves version {serving}, not the {carried.get(MODEL_VERSION)} "
            "the last deployment asked for (its alarms rolled that one back)"
        )
        carried.update({MODEL_VERSION: str(serving), PREVIOUS_MODEL_VERSION: None})
    write_settings(stack, carried)
    kept = {key: value for key, value in carried.items() if value is not None}
    listed = ", ".join(f"{key}={value}" for key, value in kept.items())
    on_output(f"carried from the last deployment: {listed or 'nothing (it bootstrapped)'}")
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    """Carry the settings of stack `argv[0]`, opened from the current directory (infra/)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in ENVIRONMENTS:
        print(
            f"{USAGE}\nerror: got {' '.join(args) or 'no stack'}; name the SageMaker stack to "
            "carry, staging or prod (dev serves locally and has no deploy settings)",
            file=sys.stderr,
        )
        return 2
    environment = args[0]
    try:
        stack = sagemaker_target.open_stack(Path.cwd(), environment)
        region = stack.get_all_config().get("aws:region")
        sagemaker = sagemaker_target.sagemaker_client(region.value if region else None)
        carry_deploy_settings(
            stack, sagemaker=sagemaker, on_output=lambda line: print(f"stack {environment}: {line}")
        )
    except (TargetUnavailable, NothingToCarryFrom, CommandError, BotoCoreError) as exc:
        print(f"error: stack {environment}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
