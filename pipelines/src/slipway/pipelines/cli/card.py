"""`slipway card [VERSION]`: generate the model card from the registry and slipway.toml."""

from __future__ import annotations

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.approvals import get_version
from slipway.pipelines.registry import CHALLENGER, client, version_by_alias


@click.command()
@click.argument("version", required=False)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON document (shape: docs/reference/cli.md)."
)
@click.pass_context
def card(ctx: click.Context, version: str | None, as_json: bool) -> None:
    """Write docs/model_card.md for VERSION (default: the challenger, else the newest
    version) and log it to the version's run. Gaps are listed on the card and here."""
    from slipway.pipelines.governance.model_card import write_card

    spoke = spoke_from_context(ctx)
    registry = client(spoke.root)
    model = spoke.config.model_name
    if version is None:
        chosen = version_by_alias(registry, model, CHALLENGER)
        if chosen is None:
            versions = registry.search_model_versions(f"name='{model}'")
            if not versions:
                fail(
                    f"model {model!r} has no registered version yet; run `slipway train`",
                    Exit.USAGE,
                )
            chosen = max(versions, key=lambda v: int(v.version))
    else:
        chosen = get_version(registry, model, version)
    result = write_card(spoke, registry, chosen)
    if as_json:
        from slipway.pipelines.json_output import card_json, dumps

        click.echo(dumps(card_json(model, result)))
        return
    click.echo(
        f"{result.path}: model card of {model} version {result.version} "
        f"(logged to its run; fingerprint {result.fingerprint[:12]})"
    )
    if result.gaps:
        click.echo(f"{len(result.gaps)} gap(s) listed on the card:")
        for gap in result.gaps:
            click.echo(f"  - {gap}")
