"""`slipway traffic`: replay held-out rows against the gateway and report what clients saw."""

from __future__ import annotations

import json

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.cli._gateway_opts import url_option
from slipway.pipelines.exitcodes import Exit


@click.command()
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=50.0,
    show_default=True,
    help="Requests per second in total; 0 = as fast as the clients go.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to send for.",
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=20, show_default=True)
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def traffic(
    ctx: click.Context,
    rate: float,
    duration: float,
    concurrency: int,
    url: str | None,
    as_json: bool,
) -> None:
    """Send held-out rows (one per request) to /invocations on a loopback gateway."""
    spoke = spoke_from_context(ctx)
    from slipway.pipelines.rollout.traffic import replay_rows, run_traffic
    from slipway.pipelines.serving.client import resolve_url

    target = resolve_url(url, spoke.config)
    try:
        report = run_traffic(
            target,
            replay_rows(spoke.root, spoke.config),
            rate=rate,
            duration=duration,
            concurrency=concurrency,
        )
    except ValueError as exc:
        fail(str(exc), Exit.USAGE)
    summary = report.summary()
    if summary["statuses"].get("0") == report.sent:
        fail(f"no gateway answers at {target}; start one with `slipway serve`", Exit.UNREACHABLE)
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"sent {report.sent} in {summary['seconds']}s ({summary['rps']} req/s): "
        f"{report.ok} ok, {report.failed} failed {summary['statuses']}"
    )
    click.echo(
        f"latency ms p50 {summary['p50_ms']}  p95 {summary['p95_ms']}  "
        f"p99 {summary['p99_ms']}; served by {summary['variants']}"
    )
