"""Helpers every subcommand shares: find the spoke, load its config, fail clearly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click

from slipway.pipelines.config import ConfigError, SpokeConfig, find_spoke_root, load_config
from slipway.pipelines.exitcodes import Exit


@dataclass(frozen=True)
class Spoke:
    root: Path
    config: SpokeConfig


def fail(message: str, code: Exit) -> NoReturn:
    """Print an error that says what to do next and exit with a documented code."""
    click.secho(f"error: {message}", fg="red", err=True)
    raise SystemExit(int(code))


def spoke_from_context(ctx: click.Context) -> Spoke:
    project = (ctx.find_root().obj or {}).get("project")
    try:
        root = Path(project).resolve() if project else find_spoke_root()
        return Spoke(root=root, config=load_config(root))
    except ConfigError as exc:
        fail(str(exc), Exit.CONFIG)
