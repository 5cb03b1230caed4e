"""The `--url` option every command that talks to the gateway shares."""

from __future__ import annotations

import click

url_option = click.option(
    "--url",
    default=None,
    help="Gateway URL (default: $SLIPWAY_GATEWAY_URL, then deploy.gateway_url in slipway.toml).",
)
