"""The `--url` option every command that talks to the gateway shares."""

from __future__ import annotations

import click

from slipway.pipelines.config import gateway_url_problem


def _valid_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # A URL that does not parse is a usage error (exit 2) before anything is contacted.
    if value is not None and (problem := gateway_url_problem(value)):
        raise click.BadParameter(problem)
    return value


url_option = click.option(
    "--url",
    default=None,
    callback=_valid_url,
    help="Gateway URL (default: $SLIPWAY_GATEWAY_URL, then deploy.gateway_url in slipway.toml).",
)
