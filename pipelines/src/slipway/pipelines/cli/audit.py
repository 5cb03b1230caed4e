"""`slipway audit [--verify]`: show the audit trail, or prove it was not edited or cut."""

from __future__ import annotations

from pathlib import Path

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit as trail


@click.command()
@click.option("--verify", is_flag=True, help="Check every hash, link and the head record.")
@click.option("--version", "version", default=None, help="Only entries about this version.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON document (shape: docs/reference/cli.md)."
)
@click.pass_context
def audit(ctx: click.Context, verify: bool, version: str | None, as_json: bool) -> None:
    """Who did what to which version, when and why (oldest first)."""
    spoke = spoke_from_context(ctx)
    if as_json:
        _print_json(spoke.root, verify=verify, version=version)
        return
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


def _print_json(root: Path, *, verify: bool, version: str | None) -> None:
    """The trail as data; with --verify a broken chain is still exit 1, after the document."""
    from slipway.pipelines.json_output import audit_json, dumps

    verification = trail.verify(root) if verify else None
    click.echo(dumps(audit_json(trail.read(root), version=version, verification=verification)))
    if verification is not None and not verification.ok:
        raise SystemExit(int(Exit.ERROR))
