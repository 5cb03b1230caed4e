"""`slipway monitor`: compare served traffic with the training data; retrain on drift."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

if TYPE_CHECKING:
    from slipway.pipelines.governance.monitoring import DriftReport
    from slipway.pipelines.training.pipeline import TrainingOutcome


@dataclass
class _Found:
    """What the run found, for --json."""

    report: DriftReport | None = None
    path: Path | None = None
    outcome: TrainingOutcome | None = None


@click.command()
@click.option(
    "--retrain/--no-retrain",
    default=True,
    show_default=True,
    help="Start local training when drift is found.",
)
@click.option(
    "--env",
    type=click.Choice(["staging", "prod"]),
    default=None,
    help="Judge the environment's SageMaker endpoint: its data capture in the spoke's bucket "
    "(AWS credentials needed) instead of the local gateway's sample.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON document (progress to stderr; shape: docs/reference/cli.md).",
)
@click.pass_context
def monitor(ctx: click.Context, retrain: bool, env: str | None, as_json: bool) -> None:
    """Per-feature and prediction PSI of the gateway's captured sample against the training
    data; writes a report with a chart. Exit 9 when drift is found (after retraining)."""
    if not as_json:
        _monitor(ctx, retrain, env, _Found())
        return
    from slipway.pipelines.console import terminal
    from slipway.pipelines.json_output import dumps, monitor_json

    found, code, failed = _Found(), 0, None
    with contextlib.redirect_stdout(terminal()):
        try:
            _monitor(ctx, retrain, env, found)
        except SystemExit as done:
            code = int(done.code or 0)
        except SlipwayError as error:  # e.g. retraining failed after drift: exit 9
            code, failed = int(error.exit_code), error
    if found.report is not None and found.path is not None:
        click.echo(dumps(monitor_json(found.report, found.path, found.outcome, code)))
    if failed is not None:
        raise failed
    if code:
        raise SystemExit(code)


def _monitor(ctx: click.Context, retrain: bool, env: str | None, found: _Found) -> None:
    from slipway.pipelines.governance.capture import captured_sample
    from slipway.pipelines.governance.monitoring import check_drift, write_report
    from slipway.pipelines.registry import client
    from slipway.pipelines.training.pipeline import TrainingError, run_local_training
    from slipway.pipelines.training.spoke_code import SpokeCodeError

    spoke = spoke_from_context(ctx)
    model = spoke.config.model_name
    samples = None
    if env is not None:
        location, samples = captured_sample(spoke.config, env)
        click.echo(f"{env}: {len(samples)} captured rows from {location.uri}")
    report = check_drift(spoke.root, spoke.config, client(spoke.root), samples)
    path = write_report(spoke.root, report)
    found.report, found.path = report, path
    click.echo(
        f"{path}: {report.samples} served rows of champion v{report.champion} "
        f"against {report.reference_rows} training rows"
    )
    if not report.enough_samples:
        click.echo(
            f"not judged: fewer than {report.min_samples} served rows "
            "([monitoring] min_samples); monitor again after more traffic"
        )
        return
    if not report.drifted:
        top = report.features[0]
        click.echo(
            f"no drift (highest feature PSI {top.psi:.3f} for {top.name}, "
            f"prediction PSI {report.prediction_psi:.3f})"
        )
        return
    why = report.summary
    click.echo(f"drift found: {why}")
    spoke.record(
        "drift",
        model=model,
        version=report.champion,
        reason=why,
        details={"report": str(path), "samples": report.samples, "breaches": report.breaches},
    )
    if not retrain:
        click.echo("not retraining (--no-retrain); run `slipway train` when ready")
        raise SystemExit(int(Exit.DRIFT))
    spoke.record(
        "retrain",
        model=model,
        version=report.champion,
        reason=f"drift: {why}",
        details={"report": str(path)},
    )
    click.echo("starting local training because of the drift above")
    try:
        outcome = run_local_training(
            spoke.root, on_step=lambda step, status: click.echo(f"  {step}: {status}")
        )
    except (TrainingError, SpokeCodeError) as exc:
        fail(f"drift found, and retraining failed: {exc}", Exit.DRIFT)
    found.outcome = outcome
    if outcome.version is not None:
        click.echo(
            f"retrained: version {outcome.version} registered ({outcome.verdict}); "
            "roll it out with `slipway deploy`"
        )
    else:
        click.echo(
            f"retrained, nothing registered ({outcome.status}): " + "; ".join(outcome.reasons)
        )
    raise SystemExit(int(Exit.DRIFT))
