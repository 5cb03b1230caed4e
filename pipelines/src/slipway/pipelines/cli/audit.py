"""`slipway audit [--verify]`: show the audit trail, or prove it was not edited or cut."""

from __future__ import annotations

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit as trail


@click.command()
@click.option("--verify", is_flag=True, help="Check every hash, link and the head record.")
@click.option("--version", "version", default=None, help="Only entries about this version.")
@click.pass_context
def audit(ctx: click.Context, verify: bool, version: str | None) -> None:
    """Who did what to which version, when and why (oldest first)."""
    spoke = spoke_from_context(ctx)
    if verify:
        result = trail.verify(spoke.root)
        if not result.ok:
            problems = "\n".join(f"  - {p}" for p in result.problems)
            fail(
                f"the audit trail {trail.audit_path(spoke.root)} was tampered with "
                f"({len(result.problems)} problem(s)):\n{problems}\n"
                "Restore .slipway/audit.jsonl and audit.head from a backup and find out who "
                "changed them; do not repair the chain by hand.",
                Exit.ERROR,
            )
        click.echo(f"audit trail intact: {result.entries} entries, chain and head agree")
        return
    lines = trail.show(spoke.root, version=version)
    if not lines:
        click.echo("the audit trail is empty" + (f" for version {version}" if version else ""))
    for line in lines:
        click.echo(line)
