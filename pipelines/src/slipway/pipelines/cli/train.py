"""`slipway train`: run the training pipeline locally (kfp.local) or submit it to Kubeflow.

The Kubeflow path (submit, watch, verdict) lives in slipway.pipelines.training.kubeflow."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.redact import shown_url
from slipway.pipelines.settings import Settings

if TYPE_CHECKING:
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.training import kubeflow
    from slipway.pipelines.training.pipeline import TrainingOutcome

_MARKS = {"succeeded": ("ok", "green"), "failed": ("FAILED", "red")}


class _Progress:
    """One line per finished step with its wall time; while a step runs, a spinner with the
    elapsed time on a terminal, or a plain `running` line in a CI log."""

    def __init__(self) -> None:
        from slipway.pipelines.console import Ticker

        self._started: dict[str, float] = {}
        self._ticker = Ticker()

    def __call__(self, step: str, status: str) -> None:
        from slipway.pipelines.console import duration

        now = time.monotonic()
        if status == "running":
            self._started[step] = now
            self._ticker.start(f"  {step:<16}")
            return
        self._ticker.stop()
        word, colour = _MARKS.get(status, (status, "yellow"))
        took = duration(now - self._started.get(step, now))
        click.echo(f"  {step:<16} " + click.style(f"{word:<6}", fg=colour) + f" {took:>6}")


def _summary(outcome: TrainingOutcome, config: SpokeConfig, *, on_kubeflow: bool = False) -> None:
    from slipway.pipelines.config import metrics_for

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
        names = [m.name for m in metrics_for(config.training.task) if m.name in outcome.metrics]
        width = max([10, *map(len, names)])
        click.echo(
            f"  {'metric':<{width}} {'held-out':>9} {'baseline':>9}   "
            f"(baseline: {outcome.baseline}, scored on the same rows)"
        )
        for metric in names:
            theirs = outcome.baseline_metrics.get(metric)
            shown = f"{theirs:9.4f}" if theirs is not None else f"{'-':>9}"
            click.echo(f"  {metric:<{width}} {outcome.metrics[metric]:9.4f} {shown}")
        click.echo("gate:")
        for reason in outcome.reasons:
            click.echo(f"  - {reason}")
    click.echo(f"run {outcome.run_id}; step output in {outcome.log_path}")
    if not on_kubeflow:
        click.echo(f"look: mlflow ui --backend-store-uri {shown_url(outcome.tracking_uri)}")


@click.command()
@click.option(
    "--kfp-host",
    metavar="URL",
    default=None,
    help="Submit to this Kubeflow Pipelines API instead of running locally "
    "(the registry is MLFLOW_TRACKING_URI, which the cluster must reach).",
)
@click.option(
    "--image",
    metavar="REF",
    default=None,
    help="With --kfp-host (required): the spoke's image for this commit, run by every step.",
)
@click.option("--namespace", default=None, help="Kubeflow namespace (your profile's).")
@click.option(
    "--experiment",
    default=None,
    help="Kubeflow experiment to file the run under (created if missing; default: the model).",
)
@click.option(
    "--sa-token-path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Service-account token file (default: KF_PIPELINES_SA_TOKEN_PATH); a bearer token "
    "in KF_PIPELINES_TOKEN wins over it.",
)
@click.option(
    "--pipeline-root",
    metavar="URI",
    default=None,
    help="Where the run keeps its artifacts, e.g. s3://bucket/prefix "
    "(default: training.pipeline_root, else the cluster's).",
)
@click.option(
    "--kfp-allow-http",
    is_flag=True,
    default=False,
    help="Accept a plain-http --kfp-host that is not loopback (an in-cluster service on a "
    "network you trust): the token then crosses the network in clear text.",
)
@click.option(
    "--wait/--no-wait",
    default=False,
    help="Watch the run, printing each step's state, and exit with its outcome.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=7200.0,
    show_default=True,
    help="With --wait: seconds to wait before giving up (exit 10; the run goes on).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print only the outcome as one JSON document (shape: docs/reference/cli.md).",
)
@click.option(
    "--stop-daemon",
    is_flag=True,
    help="Stop this spoke's step daemon (the warm parent kept between local runs) and exit; "
    "the next run starts a new one.",
)
@click.pass_context
def train(
    ctx: click.Context,
    as_json: bool,
    stop_daemon: bool,
    kfp_host: str | None,
    image: str | None,
    namespace: str | None,
    experiment: str | None,
    sa_token_path: Path | None,
    pipeline_root: str | None,
    kfp_allow_http: bool,
    wait: bool,
    timeout: float,
) -> None:
    """Load, validate, train, evaluate, gate and register this spoke's model.

    Exit codes: 0 registered, 4 the data broke the contract, 5 the gate rejected the model;
    on Kubeflow also 8 unreachable, 10 timed out, 11 unauthorised (docs/spoke/kubeflow.md).
    """
    from slipway.pipelines import registry
    from slipway.pipelines.training.kubeflow import SubmitOptions
    from slipway.pipelines.training.pipeline import run_local_training

    spoke = spoke_from_context(ctx)
    if stop_daemon:
        from slipway.pipelines.training import daemon

        pid = daemon.stop(spoke.root)
        click.echo(
            f"stopped the step daemon (pid {pid})"
            if pid
            else "no step daemon was running for this spoke"
        )
        return
    config = spoke.config
    options = SubmitOptions(
        kfp_host, image, namespace, experiment, sa_token_path, pipeline_root, kfp_allow_http
    )
    if kfp_host:
        if as_json:
            fail("--json reports a local run; drop it with --kfp-host", Exit.USAGE)
        _on_kubeflow(spoke.root, config, options, wait=wait, timeout=timeout)
        return
    if given := options.given() + (["--wait"] if wait else []):
        fail(
            f"{', '.join(given)} only apply to a Kubeflow submission: add --kfp-host URL, "
            "or drop them to train on this machine",
            Exit.USAGE,
        )
    if as_json:
        outcome = run_local_training(spoke.root)
        click.echo(json.dumps(asdict(outcome.summary(config.model_name)), indent=2))
    else:
        click.echo(
            f"training {config.model_name} on kfp.local, "
            f"registry {shown_url(registry.tracking_uri(spoke.root))}"
        )
        outcome = run_local_training(spoke.root, on_step=_Progress())
        _summary(outcome, config)
    if outcome.exit_code != Exit.OK:
        raise SystemExit(int(outcome.exit_code))


def _on_kubeflow(
    root: Path,
    config: SpokeConfig,
    options: kubeflow.SubmitOptions,
    *,
    wait: bool,
    timeout: float,
) -> None:
    from slipway.pipelines.training import kubeflow

    target, uri = kubeflow.target_for(root, config, options, os.environ)
    run = kubeflow.submit(root, config, target, tracking_uri=uri)
    where = f" in namespace {target.namespace}" if target.namespace else ""
    click.echo(
        f"submitted {config.model_name} training to {target.api}{where}, experiment "
        f"{target.experiment}: run {run.run_id}"
    )
    click.echo(f"  image {target.image}")
    click.echo(f"  {run.url}")
    if not wait:
        return
    outcome = kubeflow.wait(
        root, config, target, run, timeout=timeout, on_task=_task_line, poll_seconds=_poll()
    )
    for note in outcome.notes:
        click.echo(f"note: {note}")
    if outcome.training is not None and outcome.state in {"SUCCEEDED", "FAILED"}:
        _summary(outcome.training, config, on_kubeflow=True)
    elif outcome.state in kubeflow.TERMINAL:
        click.echo(f"run {run.run_id} ended {outcome.state}")
    code = outcome.exit_code
    if code in (Exit.DATA_INVALID, Exit.GATE_REJECTED):
        raise SystemExit(int(code))  # the summary above said why
    if code != Exit.OK:
        fail(outcome.explain(target.namespace), code)


def _poll() -> float:
    """Seconds between two reads of the run (SLIPWAY_KFP_POLL_SECONDS, for quick tests)."""
    configured = Settings.from_env().kfp_poll_seconds
    return 10.0 if configured is None else configured


def _task_line(task: str, state: str) -> None:
    colour = {"SUCCEEDED": "green", "FAILED": "red", "ERROR": "red"}.get(state, "yellow")
    click.echo(f"  {task:<16} " + click.style(state, fg=colour))
