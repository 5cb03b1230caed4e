"""`slipway train`: run the training pipeline locally (kfp.local) or submit it to Kubeflow."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit

if TYPE_CHECKING:
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.training.pipeline import TrainingOutcome

_MARKS = {"succeeded": ("ok", "green"), "failed": ("FAILED", "red")}


class _Progress:
    """One line per finished step, with its wall time (works in a terminal and in CI logs)."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def __call__(self, step: str, status: str) -> None:
        now = time.monotonic()
        if status == "running":
            self._started[step] = now
            return
        word, colour = _MARKS.get(status, (status, "yellow"))
        took = now - self._started.get(step, now)
        click.echo(f"  {step:<16} " + click.style(f"{word:<6}", fg=colour) + f" {took:5.1f}s")


def _summary(outcome: TrainingOutcome, config: SpokeConfig) -> None:
    from slipway.pipelines.training.evaluation import METRICS

    name = config.model_name
    if outcome.status == "data_invalid":
        click.secho("data invalid: the data breaks the contract in slipway.toml", fg="red")
        for reason in outcome.reasons:
            click.echo(f"  - {reason}")
        click.echo(
            "Nothing was registered. Fix the data source, or update [data.contract] "
            "if the data is right."
        )
    else:
        if outcome.status == "registered":
            click.secho(
                f"registered {name} v{outcome.version} as challenger (gate: {outcome.verdict})",
                fg="green",
                bold=True,
            )
        else:
            click.secho(
                f"gate rejected the model: nothing was registered "
                f"(compared with {outcome.baseline})",
                fg="red",
                bold=True,
            )
        click.echo(
            f"  {'metric':<10} {'held-out':>9} {'baseline':>9}   "
            f"(baseline: {outcome.baseline}, scored on the same rows)"
        )
        for metric in METRICS:
            theirs = outcome.baseline_metrics.get(metric)
            shown = f"{theirs:9.4f}" if theirs is not None else f"{'-':>9}"
            click.echo(f"  {metric:<10} {outcome.metrics[metric]:9.4f} {shown}")
        click.echo("gate:")
        for reason in outcome.reasons:
            click.echo(f"  - {reason}")
    click.echo(f"run {outcome.run_id}; step output in {outcome.log_path}")
    click.echo(f"look: mlflow ui --backend-store-uri {outcome.tracking_uri}")


@click.command()
@click.option(
    "--kfp-host",
    metavar="URL",
    default=None,
    help="Submit to this Kubeflow Pipelines endpoint instead of running locally "
    "(the registry is MLFLOW_TRACKING_URI, which the cluster must reach).",
)
@click.pass_context
def train(ctx: click.Context, kfp_host: str | None) -> None:
    """Load, validate, train, evaluate, gate and register this spoke's model.

    Exit codes: 0 registered, 4 the data broke the contract, 5 the gate rejected the model.
    """
    import urllib3.exceptions  # with kfp, in the runtime extra like the rest of this command

    from slipway.pipelines import registry
    from slipway.pipelines.training.pipeline import (
        TrainingError,
        run_local_training,
        submit_training,
    )
    from slipway.pipelines.training.spoke_code import SpokeCodeError

    spoke = spoke_from_context(ctx)
    config = spoke.config
    try:
        if kfp_host:
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:
                fail(
                    "--kfp-host needs MLFLOW_TRACKING_URI: the URL of the MLflow server the "
                    "cluster's steps register to (the embedded sqlite registry lives on this "
                    "machine only).",
                    Exit.USAGE,
                )
            try:
                run_id = submit_training(spoke.root, config, kfp_host, tracking_uri=uri)
            except urllib3.exceptions.HTTPError as exc:
                fail(
                    f"cannot reach Kubeflow Pipelines at {kfp_host} ({exc.__class__.__name__})"
                    ": check the URL, your VPN or port-forward, then submit again; nothing "
                    "was submitted",
                    Exit.UNREACHABLE,
                )
            click.echo(f"submitted {config.model_name} training to {kfp_host}: run {run_id}")
            return
        click.echo(
            f"training {config.model_name} on kfp.local, registry "
            f"{registry.tracking_uri(spoke.root)}"
        )
        outcome = run_local_training(spoke.root, on_step=_Progress())
    except (TrainingError, SpokeCodeError) as exc:
        fail(str(exc), Exit.ERROR)
    _summary(outcome, config)
    if outcome.exit_code != Exit.OK:
        raise SystemExit(int(outcome.exit_code))
