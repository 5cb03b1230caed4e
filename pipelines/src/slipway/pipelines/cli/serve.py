"""`slipway serve`: the embedded gateway on this machine (champion + challenger, one process)."""

from __future__ import annotations

import errno
import sys

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.settings import Settings


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. Anything but loopback needs SLIPWAY_ADMIN_TOKEN for /admin.",
)
@click.option(
    "--port",
    default=8780,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one (the URL is printed first).",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the champion and challenger on /invocations (MLflow's scoring protocol)."""
    spoke = spoke_from_context(ctx)
    from slipway.pipelines.serving.gateway import serve as run

    token = Settings.from_env().admin_token

    def announce(url: str) -> None:
        click.echo(f"slipway gateway listening on {url}", nl=True)
        sys.stdout.flush()

    try:
        run(spoke.root, spoke.config, host=host, port=port, admin_token=token, announce=announce)
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        why = {
            errno.EADDRINUSE: "is already in use (another `slipway serve`?)",
            errno.EACCES: "needs privileges this user lacks",
            errno.EADDRNOTAVAIL: "is not an address of this machine",
        }[exc.errno]
        fail(
            f"cannot listen on {host}:{port}: it {why}; pick another with --port (or --host)",
            Exit.USAGE,
        )
