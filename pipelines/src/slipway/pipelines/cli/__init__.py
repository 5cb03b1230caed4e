"""The `slipway` command. Subcommands load lazily so `slipway --help` stays instant.

Add a command by naming its module and function in COMMANDS; the module imports
its heavy dependencies (kfp, mlflow) itself.
"""

from __future__ import annotations

import importlib

import click

from slipway.pipelines import __version__

# name -> "module:function" under slipway.pipelines.cli, listed in --help in this order.
COMMANDS: dict[str, str] = {
    "check": "check:check",
    "train": "train:train",
    "compile": "compile:compile_pipelines",
    "serve": "serve:serve",
    "deploy": "deploy:deploy",
    "traffic": "traffic:traffic",
    "promote": "promote:promote",
    "rollback": "rollback:rollback",
    "status": "status:status",
    "approve": "approve:approve",
    "reject": "approve:reject",
    "card": "card:card",
    "audit": "audit:audit",
    "catalog": "catalog:catalog",
    "monitor": "monitor:monitor",
    "score": "score:score",
    "fleet": "fleet:fleet",
    "console": "web_console:console",
}


class LazyGroup(click.Group):
    """Loads a subcommand's module only when it runs, and turns every SlipwayError a command
    raises into its message and exit code (commands do not translate errors themselves); a
    registry that cannot be reached, wherever a command first calls it, is exit 8, and one
    written by another MLflow version is exit 12."""

    def invoke(self, ctx: click.Context) -> object:
        from slipway.pipelines.cli._common import report
        from slipway.pipelines.errors import SlipwayError

        try:
            return super().invoke(ctx)
        except SlipwayError as error:
            report(error)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            import os

            from slipway.pipelines import registry
            from slipway.pipelines.registry_versions import from_mlflow_error
            from slipway.pipelines.settings import Settings

            uri = Settings.from_env().mlflow_tracking_uri or "the spoke's registry (.slipway/)"
            known = registry.unreachable(exc) or from_mlflow_error(exc, uri)
            if known is None:
                raise
            report(known)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(f"slipway.pipelines.cli.{module_name}")
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slipway")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Also show what the libraries say (MLflow, kfp warnings and logs); it always goes "
    "to the log file (a training run's own log, else .slipway/logs/slipway.log).",
)
@click.option(
    "--project",
    "-C",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="The spoke directory (default: the nearest one at or above the current directory).",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool, project: str | None) -> None:
    """Slipway: train, gate, register, roll out and roll back a spoke's model."""
    from slipway.pipelines import console, registry

    registry.bound_registry_calls()

    ctx.ensure_object(dict)
    ctx.obj["project"] = project
    ctx.obj["verbose"] = verbose
    ctx.with_resource(console.quiet_libraries(verbose=verbose))
    if (log := console.command_log(project)) is not None:
        ctx.with_resource(log)
        ctx.with_resource(console.attach_log(log))
