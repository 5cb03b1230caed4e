"""Helpers every subcommand shares: find the spoke, load its config, fail clearly."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click

from slipway.pipelines.config import find_spoke_root, load_config
from slipway.pipelines.errors import CommandError, SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.spoke import Spoke


def fail(message: str, code: Exit) -> NoReturn:
    """Stop the command with an error that says what to do next and a documented code
    (printed by `report`, like every other SlipwayError)."""
    raise CommandError(message, exit_code=code)


def report(error: SlipwayError) -> NoReturn:
    """The one place an error becomes a command-line outcome: `error: ...` on stderr, then
    the error's exit code."""
    from slipway.pipelines.console import terminal

    click.secho(f"error: {error}", fg="red", file=terminal())
    raise SystemExit(int(error.exit_code))


def spoke_from_context(ctx: click.Context) -> Spoke:
    project = (ctx.find_root().obj or {}).get("project")
    root = Path(project).resolve() if project else find_spoke_root()
    return Spoke.open(root, load_config(root))
