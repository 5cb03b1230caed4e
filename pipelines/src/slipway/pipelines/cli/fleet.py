"""`slipway fleet status PATH...`: the platform team's view of which spokes lag behind."""

from __future__ import annotations

import json
from pathlib import Path

import click
from packaging.version import Version

from slipway.pipelines.cli._common import fail
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.hub.fleet import NotASpoke, SpokeStatus, spoke_status


@click.group()
def fleet() -> None:
    """The hub's view across spokes (run it from the hub, over spoke checkouts)."""


def _row(s: SpokeStatus) -> list[str]:
    latest = s.latest_version or "?"
    behind = "?" if s.behind is None else ("current" if s.behind == 0 else str(s.behind))
    conflicts = f"{len(s.conflicts)} left" if s.conflicts else "none"
    return [s.path, s.template_version, latest, behind, s.risk_tier, s.team, conflicts]


@fleet.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--template",
    default=None,
    metavar="SOURCE",
    help="Template repository to compare with (the hub checkout or its git URL); "
    "default: each spoke's own _src_path.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def status(paths: tuple[Path, ...], template: str | None, as_json: bool) -> None:
    """Template version, releases behind, risk tier, owner and leftover update conflicts
    of each spoke at PATH."""
    statuses: list[SpokeStatus] = []
    problems: list[str] = []
    cache: dict[str, list[Version]] = {}
    for path in paths:
        try:
            statuses.append(spoke_status(path, template, cache))
        except NotASpoke as exc:
            problems.append(str(exc))
    if problems:
        fail("\n".join(problems) + "\nNothing was reported: fix or drop these paths.", Exit.CONFIG)
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in statuses], indent=2))
        return
    header = ["SPOKE", "VERSION", "LATEST", "BEHIND", "TIER", "OWNER", "CONFLICTS"]
    rows = [header, *map(_row, statuses)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    for s in statuses:
        for item in s.conflicts:
            click.echo(f"{s.path}: {item}")
        if s.note:
            click.echo(f"{s.path}: {s.note}")
