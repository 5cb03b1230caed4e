"""`slipway deploy`: roll a version out through shadow and canary steps, or bootstrap."""

from __future__ import annotations

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.cli._gateway_opts import url_option
from slipway.pipelines.exitcodes import Exit


@click.command()
@click.option("--version", "version", default=None,
              help="Registered version to roll out (default: the `challenger` alias).")
@click.option("--resume", is_flag=True, help="Continue the open rollout after a crash.")
@url_option
@click.option("--step-seconds", type=click.FloatRange(min=0.5), default=None,
              help="Hold each step this long instead of rollout.step_seconds (demos, "
                   "rehearsals); the risk tier's minimum still applies.")
@click.option("--shadow-seconds", type=click.FloatRange(min=0), default=None,
              help="Shadow phase length instead of rollout.shadow_seconds.")
@click.option("--step-timeout", type=click.FloatRange(min=1), default=None,
              help="A step without enough traffic fails after this long "
                   "(default: 3x the step, at least 30s).")
@click.pass_context
def deploy(ctx: click.Context, version: str | None, resume: bool, url: str | None,
           step_seconds: float | None, shadow_seconds: float | None,
           step_timeout: float | None) -> None:
    """Shadow -> canary steps -> promote, with automatic rollback on a guardrail breach.

    Exit 0 when promoted, 6 when rolled back, 7 when governance refuses, 8 when the gateway
    cannot be reached.
    """
    spoke = spoke_from_context(ctx)
    from slipway.pipelines.gateway_client import GatewayClient, GatewayUnreachable, resolve_url
    from slipway.pipelines.rollout import Controller, NotApproved, plan_for
    from slipway.pipelines.traffic import replay_rows

    if resume and version:
        fail("--resume continues the open rollout; do not pass --version with it", Exit.USAGE)
    plan = plan_for(spoke.config, step_seconds=step_seconds, shadow_seconds=shadow_seconds,
                    step_timeout=step_timeout)
    gateway = GatewayClient(resolve_url(url, spoke.config))
    controller = Controller(spoke.root, spoke.config, gateway, plan, echo=click.echo,
                            smoke_rows=lambda: replay_rows(spoke.root, spoke.config))
    try:
        outcome = controller.resume() if resume else controller.deploy(version)
    except GatewayUnreachable as exc:
        fail(f"{exc}. Nothing was rolled back; the rollout state is kept: fix the gateway, "
             "then `slipway deploy --resume` or `slipway rollback`", Exit.UNREACHABLE)
    except NotApproved as exc:
        fail(str(exc), Exit.NOT_APPROVED)
    except RuntimeError as exc:
        fail(str(exc), Exit.ERROR)
    finally:
        gateway.close()
    if outcome.status == "promoted":
        click.echo(f"promoted: version {outcome.version} is the champion")
        return
    click.secho(f"rolled back: version {outcome.version}: {outcome.reason}", fg="red", err=True)
    raise SystemExit(int(Exit.ROLLED_BACK))
