"""`slipway audit [--verify | --import-local]`: show the audit trail, prove it was not edited
or cut, or carry a spoke's local trail into the team's shared one."""

from __future__ import annotations

import click

from slipway.pipelines.cli._common import Spoke, fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit as trail
from slipway.pipelines.governance.trail_checkpoint import registry_checkpoint_problems


@click.command()
@click.option("--verify", is_flag=True, help="Check every hash, link and the head record.")
@click.option(
    "--import-local",
    is_flag=True,
    help="Copy .slipway/audit.jsonl into the shared trail (SLIPWAY_STATE_URL), chain checked.",
)
@click.option("--version", "version", default=None, help="Only entries about this version.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON document (shape: docs/reference/cli.md)."
)
@click.pass_context
def audit(
    ctx: click.Context, verify: bool, import_local: bool, version: str | None, as_json: bool
) -> None:
    """Who did what to which version, when and why (oldest first)."""
    spoke = spoke_from_context(ctx)
    if import_local:
        done = trail.import_local(spoke)
        how = "as they were (hashes unchanged)" if done.verbatim else "after the shared head"
        click.echo(
            f"imported {done.imported} entries into {done.where} {how}; "
            f"the local trail is kept as {done.archived}"
        )
        return
    if as_json:
        _print_json(spoke, verify=verify, version=version)
        return
    if verify:
        result = spoke.audit.verify()
        problems = list(result.problems)
        if result.entries == 0 and not problems:
            lost = trail.registry_says_trail_lost(spoke)
            problems += [lost] if lost else []
        # The checkpoints each registry change carries: what catches a rewrite by someone
        # who can write the trail's tables and its head alike (trail_checkpoint.py).
        problems += registry_checkpoint_problems(spoke)
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
    lines = trail.show_entries(spoke.audit.read(), version=version)
    if not lines:
        click.echo("the audit trail is empty" + (f" for version {version}" if version else ""))
    for line in lines:
        click.echo(line)


def _print_json(spoke: Spoke, *, verify: bool, version: str | None) -> None:
    """The trail as data; with --verify a broken chain is still exit 1, after the document."""
    from slipway.pipelines.json_output import audit_json, dumps

    verification = spoke.audit.verify() if verify else None
    click.echo(dumps(audit_json(spoke.audit.read(), version=version, verification=verification)))
    if verification is not None and not verification.ok:
        raise SystemExit(int(Exit.ERROR))
