"""`slipway status`: aliases, gateway weights, the rollout in progress and its readings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from slipway.pipelines import console
from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.cli._gateway_opts import url_option
from slipway.pipelines.exitcodes import Exit


def reading_line(reading: dict[str, Any]) -> str:
    """One stored guardrail reading for people: its phase and time, then each number in its
    unit (3.4 ms, 1.2%, 1.08x), never a raw dict of floats."""
    head = f"{reading.get('phase', '?')} at {reading.get('weight', '?')}%"
    at = reading.get("at")
    if isinstance(at, int | float):
        head += f", {datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M:%S} UTC"
    parts = []
    for name, value in reading.items():
        if name in ("at", "phase", "weight"):
            continue
        if value is None:
            shown = "-"
        elif isinstance(value, int | float) and not isinstance(value, bool):
            shown = console.reading(name, value)
        else:
            shown = str(value)
        parts.append(f"{name} {shown}")
    return f"{head}: {', '.join(parts)}" if parts else head


@click.command()
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the rollouts' weights and error rates over time to this PNG.",
)
@click.pass_context
def status(ctx: click.Context, url: str | None, as_json: bool, chart: Path | None) -> None:
    """Show what serves now and where the last rollout stands (open ones need action)."""
    spoke = spoke_from_context(ctx)
    from slipway.pipelines.rollout.status import collect

    report = collect(spoke, url)
    if chart is not None:
        from slipway.pipelines.rollout.chart import draw_rollouts

        try:
            draw_rollouts(spoke, chart)
        except ValueError as exc:
            fail(str(exc), Exit.ERROR)
        report["chart"] = str(chart)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    aliases = report["aliases"]
    click.echo(
        f"model      {report['model']}: champion {aliases['champion']}, challenger "
        f"{aliases['challenger']}, previous {aliases['previous']}"
    )
    gw = report["gateway"]
    if gw.get("reachable"):
        click.echo(
            f"gateway    {gw['url']}: champion {gw['champion']}, challenger "
            f"{gw['challenger']} at {gw['weight']}%{' (shadow)' if gw['shadow'] else ''}"
        )
    else:
        click.echo(f"gateway    {gw['url']}: not reachable")
    ro = report["rollout"]
    if ro is None:
        click.echo("rollout    none yet")
    else:
        reason = f"  {ro['reason']}" if ro["reason"] else ""
        click.echo(
            f"rollout    #{ro['id']} version {ro['version']}: {ro['status']}, phase "
            f"{ro['phase']}, weight {ro['weight']}%{reason}"
        )
        if ro.get("last_reading"):
            click.echo(f"readings   {reading_line(ro['last_reading'])}")
        if report.get("action"):
            click.secho(f"action     {report['action']}", fg="yellow")
    if chart is not None:
        click.echo(f"chart      {chart}")
