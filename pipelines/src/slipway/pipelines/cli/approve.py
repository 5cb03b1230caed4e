"""`slipway approve` and `slipway reject`: a named person's decision on one model version.

Recorded as tags on the version and as an audit entry. The author of a version can neither
approve it nor record a decision on someone else's behalf.
"""

from __future__ import annotations

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.approvals import (
    ApprovalError,
    Decision,
    UnknownVersionError,
    record_decision,
)
from slipway.pipelines.registry import client


def _decide(ctx: click.Context, version: str, by: str, reason: str, decision: Decision) -> None:
    from slipway.pipelines.governance.blockers import release_blockers

    spoke = spoke_from_context(ctx)
    registry = client(spoke.root)
    try:
        recorded = record_decision(
            spoke.root, spoke.config, registry, version, decision, by=by, reason=reason
        )
    except UnknownVersionError:
        raise  # a typo in the version: usage (2), reported as it is
    except ApprovalError as exc:
        fail(f"{exc}; nothing was recorded", Exit.NOT_APPROVED)
    click.echo(
        f"{spoke.config.model_name} version {version}: {recorded.decision} "
        f"by {recorded.by} ({recorded.reason})"
    )
    blockers = release_blockers(spoke.root, spoke.config, registry, version)
    if not blockers:
        click.echo("governance: nothing blocks a rollout of this version")
    for blocker in blockers:
        click.echo(f"still blocking a rollout: {blocker}")


_version = click.argument("version")
_by = click.option("--by", required=True, help="Who decides (a name or e-mail address).")
_reason = click.option("--reason", required=True, help="Why: kept in the audit trail.")


@click.command()
@_version
@_by
@_reason
@click.pass_context
def approve(ctx: click.Context, version: str, by: str, reason: str) -> None:
    """Approve VERSION for rollout (required by the high risk tier; never by its author)."""
    _decide(ctx, version, by, reason, Decision.approved)


@click.command()
@_version
@_by
@_reason
@click.pass_context
def reject(ctx: click.Context, version: str, by: str, reason: str) -> None:
    """Reject VERSION: no rollout until a later review approves it."""
    _decide(ctx, version, by, reason, Decision.rejected)
