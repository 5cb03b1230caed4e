"""`slipway audit [--verify | --import-local]`: show the audit trail, prove it was not edited
or cut, or carry a spoke's local trail into the team's shared one."""

from __future__ import annotations

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit as trail


@click.command()
@click.option("--verify", is_flag=True, help="Check every hash, link and the head record.")
@click.option(
    "--import-local",
    is_flag=True,
    help="Copy .slipway/audit.jsonl into the shared trail (SLIPWAY_STATE_URL), chain checked.",
)
@click.option("--version", "version", default=None, help="Only entries about this version.")
@click.pass_context
def audit(ctx: click.Context, verify: bool, import_local: bool, version: str | None) -> None:
    """Who did what to which version, when and why (oldest first)."""
    spoke = spoke_from_context(ctx)
    if import_local:
        done = trail.import_local(spoke.root)
        how = "as they were (hashes unchanged)" if done.verbatim else "after the shared head"
        click.echo(
            f"imported {done.imported} entries into {done.where} {how}; "
            f"the local trail is kept as {done.archived}"
        )
        return
    if verify:
        result = trail.verify(spoke.root)
        problems = list(result.problems)
        if result.entries == 0 and not problems:
            lost = trail.registry_says_trail_lost(spoke.root, spoke.config.model_name)
            problems += [lost] if lost else []
        for note in result.notes:
            click.echo(f"note: {note}")
        if problems:
            listed = "\n".join(f"  - {p}" for p in problems)
            fail(
                f"the audit trail {result.where} was tampered with or damaged "
                f"({len(problems)} problem(s)):\n{listed}\n"
                "Restore it from a backup and find out who changed it; do not repair the chain "
                "by hand.",
                Exit.ERROR,
            )
        click.echo(
            f"audit trail intact: {result.entries} entries, chain and head agree ({result.where})"
        )
        return
    lines = trail.show(spoke.root, version=version)
    if not lines:
        click.echo("the audit trail is empty" + (f" for version {version}" if version else ""))
    for line in lines:
        click.echo(line)
