"""`slipway catalog [--json]`: every model in the registry and its governance state."""

from __future__ import annotations

import json
from pathlib import Path

import click

from slipway.pipelines.cli._common import fail
from slipway.pipelines.config import ConfigError, SpokeConfig, find_spoke_root, load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.redact import shown_url
from slipway.pipelines.settings import Settings


def _spoke(ctx: click.Context) -> tuple[Path, SpokeConfig] | None:
    """The spoke we run in, or None on a hub machine pointed at a shared registry."""
    project = (ctx.find_root().obj or {}).get("project")
    try:
        root = Path(project).resolve() if project else find_spoke_root()
        return root, load_config(root)
    except ConfigError as exc:
        if project or not Settings.from_env().mlflow_tracking_uri:
            fail(f"{exc}\n(or set MLFLOW_TRACKING_URI to list a shared registry)", Exit.CONFIG)
        return None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for machines.")
@click.pass_context
def catalog(ctx: click.Context, as_json: bool) -> None:
    """Every model: owner, risk tier, champion and its age, last rollout, approval, card."""
    from mlflow.exceptions import MlflowException

    from slipway.pipelines.hub.catalog import catalog as build
    from slipway.pipelines.hub.catalog import format_table
    from slipway.pipelines.registry import client, client_for, tracking_uri

    spoke = _spoke(ctx)
    if spoke is None:
        uri = Settings.from_env().mlflow_tracking_uri
        assert uri is not None  # _spoke returned None only with a tracking URI set
        registry, config = client_for(uri), None
    else:
        uri = tracking_uri(spoke[0])
        registry, config = client(spoke[0]), spoke[1]
    try:
        entries = build(registry, config)
    except MlflowException as exc:
        fail(f"cannot read the registry at {shown_url(uri)}: {exc.message}", Exit.UNREACHABLE)
    if as_json:
        click.echo(
            json.dumps(
                {"registry": shown_url(uri), "models": [e.as_dict() for e in entries]}, indent=2
            )
        )
    elif not entries:
        click.echo(f"no registered models in {shown_url(uri)}")
    else:
        click.echo(format_table(entries))
