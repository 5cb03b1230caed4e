"""`slipway rollback`: abort the open rollout, or revert the last promotion, at once."""

from __future__ import annotations

import click

from slipway.pipelines.cli._common import spoke_from_context
from slipway.pipelines.cli._gateway_opts import url_option
from slipway.pipelines.console import terminal


@click.command()
@click.option(
    "--reason",
    default="manual rollback",
    show_default=True,
    help="Why, for the version's tag and the audit trail.",
)
@url_option
@click.pass_context
def rollback(ctx: click.Context, reason: str, url: str | None) -> None:
    """Challenger traffic to 0 and alias removed; or, with no rollout open, `champion` back
    to `previous`."""
    spoke = spoke_from_context(ctx)
    from slipway.pipelines import registry
    from slipway.pipelines.rollout import release
    from slipway.pipelines.rollout.controller import Controller, plan_for
    from slipway.pipelines.serving.client import GatewayClient, GatewayUnreachable, resolve_url

    gateway = GatewayClient(resolve_url(url, spoke.config))
    try:
        if spoke.rollouts.open_rollout() is not None:
            controller = Controller(spoke, gateway, plan_for(spoke.config), echo=click.echo)
            outcome = controller.abort(f"manual rollback: {reason}")
            click.echo(f"rollout {outcome.rollout_id} closed: {outcome.status}")
            return
        client = registry.client(spoke.root)
        entry = release.revert_promotion(
            spoke, client, spoke.config.model_name, reason=f"manual rollback: {reason}"
        )
        click.echo(
            f"reverted: version {entry['version']} out, champion is "
            f"{entry['details']['champion']} again"
        )
        try:
            gateway.reload()
        except GatewayUnreachable as exc:
            click.echo(
                f"warning: {exc}; it serves the restored champion when it (re)starts",
                file=terminal(),
            )
    finally:
        gateway.close()
