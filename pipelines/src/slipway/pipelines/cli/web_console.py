"""`slipway console PATH...`: the hub's read-only web console over the fleet's spokes.

(Named web_console so it is not confused with slipway.pipelines.console, the terminal output.)
"""

from __future__ import annotations

import errno
import ipaddress
import sys
from pathlib import Path

import click

from slipway.pipelines.cli._common import fail
from slipway.pipelines.exitcodes import Exit

IDENTITY_HEADER_HELP = (
    "The header the single sign-on proxy sets to the signed-in person (oauth2-proxy: "
    "X-Forwarded-User or X-Forwarded-Email; an AWS ALB with OIDC: X-Amzn-Oidc-Identity). "
    "Requests without it are refused."
)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8790,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one (the URL is printed first).",
)
@click.option(
    "--identity-header",
    default="X-Forwarded-User",
    show_default=True,
    envvar="SLIPWAY_CONSOLE_IDENTITY_HEADER",
    help=IDENTITY_HEADER_HELP,
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDRESS",
    envvar="SLIPWAY_CONSOLE_TRUSTED_PROXIES",
    help="Only this peer (the SSO proxy) may call the console; repeat for several.",
)
@click.option(
    "--local",
    is_flag=True,
    help="No single sign-on, for one person on their own machine: loopback addresses only.",
)
@click.option(
    "--template",
    default=None,
    metavar="SOURCE",
    help="Template repository to compare versions with (default: each spoke's _src_path).",
)
@click.option(
    "--refresh",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.5, 600),
    help="Seconds between two readings of an open rollout's chart.",
)
def console(
    paths: tuple[Path, ...],
    host: str,
    port: int,
    identity_header: str,
    trusted_proxies: tuple[str, ...],
    local: bool,
    template: str | None,
    refresh: float,
) -> None:
    """Serve a read-only web console over the spokes at PATH: versions and aliases, risk
    tiers, template versions, open rollouts with a live chart, what waits for a decision,
    model cards and verified audit trails. The registry and team state are the ones the
    spokes use (MLFLOW_TRACKING_URI and SLIPWAY_STATE_URL for a shared server)."""
    import uvicorn

    from slipway.pipelines.hub.console_app import ConsoleSettings, create_app

    if local and not _loopback(host):
        fail(
            f"--local turns single sign-on off, so it serves loopback only, not {host}; "
            "drop --local and put the console behind the SSO proxy (--identity-header)",
            Exit.USAGE,
        )
    if not local and not identity_header.strip():
        fail("--identity-header is empty: name the header your SSO proxy sets", Exit.USAGE)
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        fail(f"no such spoke directory: {', '.join(missing)}", Exit.CONFIG)
    settings = ConsoleSettings(
        spokes=tuple(p.resolve() for p in paths),
        template=template,
        identity_header=None if local else identity_header.strip(),
        trusted_proxies=trusted_proxies,
        refresh_seconds=refresh,
    )
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    try:
        sockets = [config.bind_socket()]
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        fail(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port", Exit.USAGE)
    # Listen before announcing: a client that reads the URL and connects at once waits in
    # the backlog while uvicorn starts, instead of being refused.
    sockets[0].listen(config.backlog)
    bound = sockets[0].getsockname()[1]
    sso = "no single sign-on (--local)" if local else f"identity from {identity_header}"
    click.echo(f"slipway console listening on http://{host}:{bound}/ ({sso})")
    sys.stdout.flush()
    server.run(sockets=sockets)
