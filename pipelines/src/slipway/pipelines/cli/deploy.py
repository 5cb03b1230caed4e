"""`slipway deploy`: roll a version out through shadow and canary steps, or bootstrap.

Without --env the rollout runs on the local gateway. With --env staging|prod it goes to the
spoke's SageMaker stack through slipway-infra (the `infra` dependency group, which brings
Pulumi), found through its `slipway.deploy_targets` entry point: slipway-pipelines never
imports slipway-infra.
"""

from __future__ import annotations

from typing import Any

import click

from slipway.pipelines.cli._common import Spoke, fail, spoke_from_context
from slipway.pipelines.cli._gateway_opts import url_option
from slipway.pipelines.console import terminal
from slipway.pipelines.exitcodes import Exit

ENVIRONMENTS = ("staging", "prod")
# Where slipway-infra registers its SageMaker release (infra/pyproject.toml).
DEPLOY_TARGETS = "slipway.deploy_targets"
INFRA_MISSING = (
    "`slipway deploy --env` drives the spoke's Pulumi stack and needs slipway-infra, "
    "which is not installed: run `uv sync --group infra` (or `make setup`), then "
    "try again"
)


@click.command()
@click.option(
    "--version",
    "version",
    default=None,
    help="Registered version to roll out (default: the `challenger` alias).",
)
@click.option(
    "--env",
    "environment",
    type=click.Choice(ENVIRONMENTS),
    default=None,
    help="Deploy to this SageMaker stack (spoke's infra/, Pulumi) instead of the "
    "local gateway; SageMaker runs the canary and its alarms roll back.",
)
@click.option(
    "--target",
    type=click.Choice(["local", "kserve"]),
    default="local",
    help="local: the gateway (--url); kserve: the spoke's InferenceService, canaryTrafficPercent "
    "per step, judged on Prometheus readings ([deploy.kserve] in slipway.toml).",
)
@click.option("--image", default=None, help="--target kserve: the spoke's image for this commit.")
@click.option(
    "--dry-run", is_flag=True, help="--target kserve: print the InferenceService, apply nothing."
)
@click.option("--resume", is_flag=True, help="Continue the open rollout after a crash.")
@url_option
@click.option(
    "--step-seconds",
    type=click.FloatRange(min=0.5),
    default=None,
    help="Hold each step this long instead of rollout.step_seconds (demos, "
    "rehearsals); the risk tier's minimum still applies.",
)
@click.option(
    "--shadow-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Shadow phase length instead of rollout.shadow_seconds.",
)
@click.option(
    "--step-timeout",
    type=click.FloatRange(min=1),
    default=None,
    help="A step without enough traffic fails after this long "
    "(default: 3x the step, at least 30s).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Local rollout: print its outcome and readings per step as one JSON document "
    "(progress goes to stderr; shape: docs/reference/cli.md).",
)
@click.pass_context
def deploy(
    ctx: click.Context,
    as_json: bool,
    version: str | None,
    environment: str | None,
    target: str,
    image: str | None,
    dry_run: bool,
    resume: bool,
    url: str | None,
    step_seconds: float | None,
    shadow_seconds: float | None,
    step_timeout: float | None,
) -> None:
    """Shadow -> canary steps -> promote, with automatic rollback on a guardrail breach.

    Exit 0 when promoted (or deployed), 6 when rolled back, 7 when governance refuses (or,
    with --env, the version was trained from a dirty tree), 8 when the gateway (or AWS)
    cannot be reached, 1 when a SageMaker deploy failed or has not settled.
    """
    spoke = spoke_from_context(ctx)
    if (image or dry_run) and target != "kserve":
        fail("--image and --dry-run go with --target kserve", Exit.USAGE)
    if target == "kserve":
        if environment is not None or url or as_json or shadow_seconds is not None:
            fail(
                "--target kserve takes --version, --image, --dry-run, --resume, --step-seconds "
                "and --step-timeout (--env, --url, --json and --shadow-seconds are for the "
                "other targets)",
                Exit.USAGE,
            )
        from slipway.pipelines.cli._kserve import deploy_kserve

        deploy_kserve(
            spoke,
            version,
            image,
            dry_run=dry_run,
            resume=resume,
            step_seconds=step_seconds,
            step_timeout=step_timeout,
        )
        return
    if environment is not None:
        local_only = {
            "--json": as_json,
            "--resume": resume,
            "--url": url,
            "--step-seconds": step_seconds,
            "--shadow-seconds": shadow_seconds,
            "--step-timeout": step_timeout,
        }
        given = [name for name, value in local_only.items() if value]
        if given:
            fail(
                f"{', '.join(given)} drive(s) the local gateway rollout; with --env SageMaker "
                "runs the canary from slipway.toml: drop them",
                Exit.USAGE,
            )
        _deploy_to_sagemaker(spoke, environment, version)
        return
    from slipway.pipelines.rollout.controller import Controller, plan_for
    from slipway.pipelines.rollout.traffic import replay_rows
    from slipway.pipelines.serving.client import GatewayClient, GatewayUnreachable, resolve_url

    if resume and version:
        fail("--resume continues the open rollout; do not pass --version with it", Exit.USAGE)
    plan = plan_for(
        spoke.config,
        step_seconds=step_seconds,
        shadow_seconds=shadow_seconds,
        step_timeout=step_timeout,
    )
    gateway = GatewayClient(resolve_url(url, spoke.config))
    controller = Controller(
        spoke,
        gateway,
        plan,
        echo=(lambda line: click.echo(line, file=terminal())) if as_json else click.echo,
        smoke_rows=lambda: replay_rows(spoke.root, spoke.config),
    )
    try:
        outcome = controller.resume() if resume else controller.deploy(version)
    except GatewayUnreachable as exc:
        fail(
            f"{exc}. Nothing was rolled back; the rollout state is kept: fix the gateway, "
            "then `slipway deploy --resume` or `slipway rollback`",
            Exit.UNREACHABLE,
        )
    finally:
        gateway.close()
    if as_json:
        _print_json(spoke, outcome)
    if outcome.status == "promoted":
        click.echo(
            f"promoted: version {outcome.version} is the champion",
            file=terminal() if as_json else None,
        )
        return
    click.secho(
        f"rolled back: version {outcome.version}: {outcome.reason}", fg="red", file=terminal()
    )
    raise SystemExit(int(Exit.ROLLED_BACK))


def _deploy_to_sagemaker(spoke: Spoke, environment: str, version: str | None) -> None:
    """The SageMaker release of slipway-infra (found through its entry point, so this
    library never imports it); returns when the version serves, else exits with its code."""
    release = _sagemaker_release()
    result = release(
        spoke.root,
        spoke.config,
        environment,
        version,
        echo=click.echo,
        warn=lambda line: click.secho(line, fg="yellow", file=terminal()),
    )
    outcome, version = result.outcome, result.version
    if result.exit_code == Exit.OK:
        click.echo(
            f"deployed: version {version} serves on SageMaker {environment}: {outcome.message}"
        )
        return
    if result.exit_code == Exit.ROLLED_BACK:
        click.secho(
            f"rolled back: version {version} on SageMaker {environment}: {outcome.message}",
            fg="red",
            file=terminal(),
        )
        raise SystemExit(int(Exit.ROLLED_BACK))
    if outcome.status.value == "in-progress":
        fail(
            f"version {version} is still rolling out on {outcome.endpoint_name}: "
            f"{outcome.message}; nothing was recorded as deployed. Watch it with `aws "
            f"sagemaker describe-endpoint --endpoint-name {outcome.endpoint_name}` and run "
            f"`slipway deploy --env {environment} --version {version}` again once it settles",
            Exit.ERROR,
        )
    fail(
        f"deploy of version {version} to SageMaker {environment} failed: {outcome.message}",
        Exit.ERROR,
    )


def _sagemaker_release() -> Any:
    """slipway-infra's `release_to_sagemaker`, or a usage error saying how to install it."""
    from importlib.metadata import entry_points

    found = entry_points(group=DEPLOY_TARGETS, name="sagemaker")
    if not found:
        fail(INFRA_MISSING, Exit.ERROR)
    try:
        return next(iter(found)).load()
    except ImportError as exc:
        fail(f"{INFRA_MISSING} ({exc})", Exit.ERROR)


def _print_json(spoke: Spoke, outcome: Any) -> None:
    from slipway.pipelines.json_output import deploy_json, deploy_steps, dumps

    promoted = outcome.status == "promoted"
    document = deploy_json(
        outcome=outcome.status,
        model=spoke.config.model_name,
        version=outcome.version,
        reason=None if promoted else outcome.reason,
        exit_code=int(Exit.OK if promoted else Exit.ROLLED_BACK),
        steps=deploy_steps(spoke.rollouts.readings(outcome.rollout_id)),
    )
    click.echo(dumps(document))
