"""`slipway monitor`: compare served traffic with the training data; retrain on drift."""

from __future__ import annotations

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit


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
@click.pass_context
def monitor(ctx: click.Context, retrain: bool, env: str | None) -> None:
    """Per-feature and prediction PSI of the gateway's captured sample against the training
    data; writes a report with a chart. Exit 9 when drift is found (after retraining)."""
    from slipway.pipelines.governance import audit
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
    audit.append(
        spoke.root,
        "drift",
        model=model,
        version=report.champion,
        reason=why,
        details={"report": str(path), "samples": report.samples, "breaches": report.breaches},
    )
    if not retrain:
        click.echo("not retraining (--no-retrain); run `slipway train` when ready")
        raise SystemExit(int(Exit.DRIFT))
    audit.append(
        spoke.root,
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
