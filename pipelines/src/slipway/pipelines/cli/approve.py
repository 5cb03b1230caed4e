"""`slipway approve` and `slipway reject`: a named person's decision on one model version.

Recorded as tags on the version and as an audit entry. The author of a version can neither
approve it nor record a decision on someone else's behalf. `--sign-with KEY` signs the
decision with the approver's SSH key; a tier that needs an approval counts only signed ones.
"""

from __future__ import annotations

from pathlib import Path

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


def _decide(
    ctx: click.Context,
    version: str,
    by: str,
    reason: str,
    decision: Decision,
    sign_with: Path | None,
) -> None:
    from slipway.pipelines.governance.blockers import release_blockers

    spoke = spoke_from_context(ctx)
    registry = client(spoke.root)
    try:
        recorded = record_decision(
            spoke.root,
            spoke.config,
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
    blockers = release_blockers(spoke.root, spoke.config, registry, version)
    if not blockers:
        click.echo("governance: nothing blocks a rollout of this version")
    for blocker in blockers:
        click.echo(f"still blocking a rollout: {blocker}")


_version = click.argument("version")
_by = click.option("--by", required=True, help="Who decides (a name or e-mail address).")
_reason = click.option("--reason", required=True, help="Why: kept in the audit trail.")
_sign_with = click.option(
    "--sign-with",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Your SSH private key (or its .pub with the key in ssh-agent): signs the decision. "
    "Its public key must be listed for --by in [governance] allowed_signers.",
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
@click.pass_context
def reject(ctx: click.Context, version: str, by: str, reason: str, sign_with: Path | None) -> None:
    """Reject VERSION: no rollout until a later review approves it."""
    _decide(ctx, version, by, reason, Decision.rejected, sign_with)
