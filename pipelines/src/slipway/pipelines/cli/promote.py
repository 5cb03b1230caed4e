"""`slipway promote VERSION`: make a version the champion by hand (governed and audited)."""

from __future__ import annotations

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.cli._gateway_opts import url_option
from slipway.pipelines.console import terminal
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.redact import shown_url


@click.command()
@click.argument("version")
@click.option("--reason", required=True, help="Why, for the audit trail.")
@url_option
@click.pass_context
def promote(ctx: click.Context, version: str, reason: str, url: str | None) -> None:
    """Move `champion` to VERSION now; the old champion becomes `previous`."""
    spoke = spoke_from_context(ctx)
    from slipway.pipelines import registry
    from slipway.pipelines.governance.blockers import require_release
    from slipway.pipelines.rollout import release
    from slipway.pipelines.serving.client import GatewayClient, GatewayUnreachable, resolve_url

    open_row = spoke.rollouts.open_rollout()
    if open_row is not None:
        fail(
            f"rollout {open_row.id} of version {open_row.version} is open; finish it with "
            "`slipway deploy --resume` or `slipway rollback` first",
            Exit.ERROR,
        )
    client = registry.client(spoke.root)
    model = spoke.config.model_name
    release.candidate_version(client, model, version)
    require_release(spoke, client, version, action="promotion")
    release.promote(spoke, client, model, version, reason=f"manual promotion: {reason}")
    click.echo(f"promoted: version {version} is the champion of {model}")
    gateway = GatewayClient(resolve_url(url, spoke.config))
    try:
        gateway.reload()
        click.echo(f"gateway at {shown_url(gateway.url)} now serves version {version}")
    except GatewayUnreachable as exc:
        click.echo(
            f"warning: {exc}; it serves the new champion when it (re)starts", file=terminal()
        )
    finally:
        gateway.close()
