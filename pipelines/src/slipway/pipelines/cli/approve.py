"""`slipway approve` and `slipway reject`: a named person's decision on one model version.

Recorded as tags on the version and as an audit entry. The author of a version can neither
approve it nor record a decision on someone else's behalf. `--sign-with KEY` signs the
decision with the approver's SSH key; a tier that needs an approval counts only signed ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from slipway.pipelines.cli._common import Spoke, fail, spoke_from_context
from slipway.pipelines.cli._gateway_opts import url_option
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.approvals import (
    ApprovalError,
    Decision,
    UnknownVersionError,
    record_decision,
)
from slipway.pipelines.registry import client

if TYPE_CHECKING:
    pass


def _decide(
    ctx: click.Context,
    version: str,
    by: str,
    reason: str,
    decision: Decision,
    sign_with: Path | None,
    url: str | None = None,
) -> None:
    from slipway.pipelines.governance.blockers import release_blockers

    spoke = spoke_from_context(ctx)
    registry = client(spoke.root)
    try:
        recorded = record_decision(
            spoke,
            registry,
            version,
            decision,
            by=by,
            reason=reason,
            signing_key=sign_with,
        )
    except UnknownVersionError:
        raise  # a typo in the version: usage (2), reported as it is
    except ApprovalError as exc:
        fail(f"{exc}; nothing was recorded", Exit.NOT_APPROVED)
    proof = ", signed" if recorded.signature else ""
    click.echo(
        f"{spoke.config.model_name} version {version}: {recorded.decision} "
        f"by {recorded.by}{proof} ({recorded.reason})"
    )
    if decision is Decision.rejected:
        _stop_its_rollout(spoke, version, f"rejected by {by}: {reason}", url)
    blockers = release_blockers(spoke, registry, version)
    if not blockers:
        click.echo("governance: nothing blocks a rollout of this version")
    for blocker in blockers:
        click.echo(f"still blocking a rollout: {blocker}")


def _stop_its_rollout(spoke: Spoke, version: str, why: str, url: str | None) -> None:
    """A rejection is a compare-and-set on the open rollout of the version: marked rolling
    back at once (its controller's next change fails), or, if it got to promoting, its
    promotion reverted. The controller also re-asks governance at every step boundary and
    after promoting, so a rejection recorded anywhere (another machine) still stops it."""
    from slipway.pipelines.rollout.controller import Controller, plan_for
    from slipway.pipelines.serving.client import GatewayClient, resolve_url

    config = spoke.config
    row = spoke.rollouts.open_rollout()
    if row is None or row.version != str(version):
        return
    gateway = GatewayClient(resolve_url(url, config))
    try:
        controller = Controller(spoke, gateway, plan_for(config), echo=click.echo)
        outcome = controller.abort(f"governance: version {version} was {why}")
        click.echo(f"rollout {outcome.rollout_id} of version {version} closed: {outcome.status}")
    finally:
        gateway.close()


_version = click.argument("version")
_by = click.option("--by", required=True, help="Who decides (a name or e-mail address).")
_reason = click.option("--reason", required=True, help="Why: kept in the audit trail.")
_sign_with = click.option(
    "--sign-with",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Your SSH private key (or its .pub with the key in ssh-agent): signs the decision. "
    "Its public key must be the one the hub's governance list names for --by.",
)


@click.command()
@_version
@_by
@_reason
@_sign_with
@click.pass_context
def approve(ctx: click.Context, version: str, by: str, reason: str, sign_with: Path | None) -> None:
    """Approve VERSION for rollout (required, signed, by the high risk tier; never by its
    author)."""
    _decide(ctx, version, by, reason, Decision.approved, sign_with)


@click.command()
@_version
@_by
@_reason
@_sign_with
@url_option
@click.pass_context
def reject(
    ctx: click.Context, version: str, by: str, reason: str, sign_with: Path | None, url: str | None
) -> None:
    """Reject VERSION: no rollout until a later review approves it; an open rollout of it is
    rolled back at once (its gateway: --url)."""
    _decide(ctx, version, by, reason, Decision.rejected, sign_with, url)
