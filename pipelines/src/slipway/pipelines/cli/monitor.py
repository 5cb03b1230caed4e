"""`slipway monitor`: compare served traffic with the training data; retrain on lasting drift.

On a laptop it reads the local gateway's sample and may train locally. Scheduled (the
spoke's monitor workflow or a KFP recurring run, `--env ENV`), it judges the window's
captured traffic, counts drifted windows in the audit trail and, after `[monitoring]
drift_windows` in a row and outside the cool-down, starts retraining where training runs:
a Kubeflow run (`--kfp-host`, `--image`) or the training workflow (`--dispatch-workflow`);
never on the runner itself.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slipway.pipelines.cli._common import Spoke, fail, spoke_from_context
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

if TYPE_CHECKING:
    import pandas as pd

    from slipway.pipelines.governance.drift_policy import Verdict
    from slipway.pipelines.governance.monitoring import DriftReport
    from slipway.pipelines.governance.retraining import Started
    from slipway.pipelines.training.kubeflow import SubmitOptions
    from slipway.pipelines.training.pipeline import TrainingOutcome


@dataclass
class _Found:
    """What the run found, for --json."""

    report: DriftReport | None = None
    path: Path | None = None
    outcome: TrainingOutcome | None = None
    verdict: Verdict | None = None
    started: Started | None = None
    html: Path | None = None


@dataclass(frozen=True)
class _Options:
    retrain: bool
    env: str | None
    window_hours: float | None
    report: Path | None
    labels: Path | None
    kfp: SubmitOptions
    workflow: str | None


@click.command()
@click.option(
    "--retrain/--no-retrain",
    default=True,
    show_default=True,
    help="Start retraining when drift lasts [monitoring] drift_windows windows.",
)
@click.option(
    "--env",
    type=click.Choice(["staging", "prod"]),
    default=None,
    help="Judge the environment's SageMaker endpoint: its data capture in the spoke's bucket "
    "(AWS credentials needed) instead of the local gateway's sample.",
)
@click.option(
    "--window-hours",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="With --env: the hours of capture one window judges (default [monitoring] "
    "window_hours, the schedule's period).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the window's HTML report here and log it to the champion's MLflow run.",
)
@click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV or Parquet with [batch] id_columns and the target: adds performance to --report.",
)
@click.option("--kfp-host", metavar="URL", default=None, help="Retrain on this Kubeflow API.")
@click.option("--image", metavar="REF", default=None, help="With --kfp-host: the commit's image.")
@click.option("--namespace", default=None, help="With --kfp-host: the Kubeflow namespace.")
@click.option("--experiment", default=None, help="With --kfp-host: the Kubeflow experiment.")
@click.option(
    "--sa-token-path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --kfp-host: a service-account token file.",
)
@click.option(
    "--dispatch-workflow",
    "workflow",
    metavar="FILE",
    default=None,
    help="Retrain by dispatching this GitHub Actions workflow (e.g. cd.yml) on the current ref.",
)
@click.option(
    "--kfp-schedule",
    "cron",
    metavar="CRON",
    default=None,
    help="Instead of judging a window now: create a Kubeflow recurring run of this command "
    "(with --env, --kfp-host, --image) on this cron, e.g. '0 17 */6 * * *'.",
)
@click.option(
    "--service-account",
    default=None,
    help="With --kfp-schedule: the pod's Kubernetes service account (AWS access via IRSA).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON document (progress to stderr; shape: docs/reference/cli.md).",
)
@click.pass_context
def monitor(
    ctx: click.Context,
    retrain: bool,
    env: str | None,
    window_hours: float | None,
    report_path: Path | None,
    labels: Path | None,
    kfp_host: str | None,
    image: str | None,
    namespace: str | None,
    experiment: str | None,
    sa_token_path: Path | None,
    workflow: str | None,
    cron: str | None,
    service_account: str | None,
    as_json: bool,
) -> None:
    """Per-feature and prediction PSI of the served traffic against the training data;
    writes a report with a chart. Exit 9 when drift is found (whatever was started)."""
    from slipway.pipelines.training.kubeflow import SubmitOptions

    kfp = SubmitOptions(kfp_host, image, namespace, experiment, sa_token_path)
    if kfp_host and workflow:
        fail("give --kfp-host or --dispatch-workflow, not both", Exit.USAGE)
    if not kfp_host and kfp.given():
        fail(f"{', '.join(kfp.given())} only apply with --kfp-host", Exit.USAGE)
    if window_hours is not None and env is None:
        fail("--window-hours applies to --env (the local sample is judged whole)", Exit.USAGE)
    if cron is not None:
        _schedule(ctx, kfp, env, cron, service_account)
        return
    if service_account:
        fail("--service-account applies to --kfp-schedule", Exit.USAGE)
    options = _Options(retrain, env, window_hours, report_path, labels, kfp, workflow)
    if not as_json:
        _monitor(ctx, options, _Found())
        return
    from slipway.pipelines.console import terminal
    from slipway.pipelines.json_output import dumps, monitor_json

    found, code, failed = _Found(), 0, None
    with contextlib.redirect_stdout(terminal()):
        try:
            _monitor(ctx, options, found)
        except SystemExit as done:
            code = int(done.code or 0)
        except SlipwayError as error:  # e.g. retraining failed after drift
            code, failed = int(error.exit_code), error
    if found.report is not None and found.path is not None:
        document = monitor_json(
            found.report,
            found.path,
            found.outcome,
            code,
            verdict=found.verdict,
            started=found.started,
            html=found.html,
        )
        click.echo(dumps(document))
    if failed is not None:
        raise failed
    if code:
        raise SystemExit(code)


def _schedule(
    ctx: click.Context, kfp: SubmitOptions, env: str | None, cron: str, account: str | None
) -> None:
    """`--kfp-schedule`: the monitoring recurring run on Kubeflow (docs/spoke/monitoring.md)."""
    from slipway.pipelines.governance.monitor_schedule import SECRET, schedule_monitoring
    from slipway.pipelines.training.kubeflow import target_for

    if env is None or not kfp.host:
        fail("--kfp-schedule needs --env and --kfp-host (and --image)", Exit.USAGE)
    if len(cron.split()) != 6:
        fail(
            f"--kfp-schedule {cron!r}: Kubeflow's cron has six fields, seconds first "
            "(e.g. '0 17 */6 * * *')",
            Exit.USAGE,
        )
    spoke = spoke_from_context(ctx)
    target, uri = target_for(spoke.root, spoke.config, kfp, os.environ)
    made = schedule_monitoring(
        spoke.config, target, env, cron=cron, tracking_uri=uri, service_account=account
    )
    click.echo(f"scheduled {made.name} on {target.api}: recurring run {made.recurring_run_id}")
    click.echo(f"  cron {made.cron}, one window at a time, no catch-up; {made.url}")
    click.echo(
        f"  the pod reads the Kubernetes Secret {SECRET} (state-url, kfp-token, alert-webhook)"
    )


def _sample(spoke: Spoke, options: _Options) -> tuple[pd.DataFrame, str]:
    """The served rows to judge and the window's description."""
    from slipway.pipelines.governance.capture import captured_sample, within
    from slipway.pipelines.serving.drift_sample import read_samples

    if options.env is None:
        return read_samples(spoke.root), "the local gateway's sample"
    hours = options.window_hours or spoke.config.monitoring.window_hours
    location, captured = captured_sample(spoke.config, options.env)
    window = within(captured, hours, time.time())
    click.echo(
        f"{options.env}: {len(window)} rows captured in the last {hours:g} h "
        f"(of {len(captured)} read) from {location.uri}"
    )
    return window, f"the last {hours:g} h"


def _monitor(ctx: click.Context, options: _Options, found: _Found) -> None:
    from slipway.pipelines.governance.alerts import Event
    from slipway.pipelines.governance.drift_policy import DRIFT, MONITOR, Decision, decide
    from slipway.pipelines.governance.monitoring import check_drift, write_report
    from slipway.pipelines.registry import client

    spoke = spoke_from_context(ctx)
    model, env_name = spoke.config.model_name, options.env or "local"
    samples, window = _sample(spoke, options)
    registry = client(spoke.root)
    report = check_drift(spoke.root, spoke.config, registry, samples)
    path = write_report(spoke.root, report)
    found.report, found.path = report, path
    click.echo(
        f"{path}: {report.samples} served rows of champion v{report.champion} "
        f"against {report.reference_rows} training rows"
    )
    _warn_if_forgetful(spoke, options)
    verdict = decide(
        spoke.audit.read(),
        model=model,
        env=env_name,
        judged=report.enough_samples,
        drifted=report.drifted,
        policy=spoke.config.monitoring,
    )
    found.verdict = verdict
    html_uri = None
    if options.report is not None:
        html_uri = _html(spoke, options, report, samples, window, verdict, registry)
        found.html = options.report
    spoke.record(
        DRIFT if report.drifted else MONITOR,
        model=model,
        version=report.champion,
        reason=(report.summary if report.drifted else "no drift") + f"; {verdict.sentence}",
        details={
            "env": env_name,
            "window": window,
            "judged": report.enough_samples,
            "samples": report.samples,
            "breaches": report.breaches,
            "report": str(path),
            "html": html_uri,
            **verdict.as_details(),
        },
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
    click.echo(f"drift found: {report.summary}")
    click.echo(verdict.sentence)
    _alert(
        Event.DRIFT,
        model,
        f"{env_name}, champion v{report.champion}: {report.summary}. {verdict.sentence}.",
    )
    if verdict.decision is not Decision.RETRAIN:
        raise SystemExit(int(Exit.DRIFT))
    if not options.retrain:
        click.echo("not retraining (--no-retrain); run `slipway train` when ready")
        raise SystemExit(int(Exit.DRIFT))
    _retrain(spoke, options, report, verdict, path, found)
    raise SystemExit(int(Exit.DRIFT))


def _warn_if_forgetful(spoke: Spoke, options: _Options) -> None:
    """A scheduled run on a CI runner with the audit trail in a file there forgets every
    window when the runner goes: drift_windows > 1 would never be reached."""
    from slipway.pipelines.console import terminal
    from slipway.pipelines.governance import audit
    from slipway.pipelines.governance.retraining import on_ci

    if options.env is not None and on_ci(os.environ) and audit.shared_trail(spoke.root) is None:
        click.echo(
            f"warning: the audit trail is {spoke.audit.where}, on this runner: the "
            "drifted windows and the cool-down are forgotten when it goes. Set "
            "SLIPWAY_STATE_URL (the team's state database) so windows are counted",
            file=terminal(),
        )


def _html(
    spoke: Spoke,
    options: _Options,
    report: DriftReport,
    samples: pd.DataFrame,
    window: str,
    verdict: Verdict,
    registry: object,
) -> str:
    """Write the HTML report, log it to the champion's run; returns its artifact URI."""
    from slipway.pipelines.governance.monitoring import served_rows
    from slipway.pipelines.governance.monitoring_report import (
        log_report,
        performance,
        read_labels,
        render_html,
    )

    perf = None
    if options.labels is not None:
        served = served_rows(samples, report.champion)
        perf = performance(served, read_labels(options.labels), spoke.config)
    target = options.report
    assert target is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(
        report,
        env=options.env or "local",
        window=window,
        verdict=verdict,
        means=report.means,
        perf=perf,
    )
    target.write_text(page, encoding="utf-8")
    uri = log_report(registry, spoke.config.model_name, report.champion, target, options.env)
    click.echo(f"HTML report: {target} (logged to the champion's run: {uri})")
    return uri


def _alert(event: object, model: str, text: str) -> None:
    from slipway.pipelines.governance.alerts import Event, notify

    assert isinstance(event, Event)
    from slipway.pipelines.console import terminal

    if warning := notify(event, model, text):
        click.echo(f"warning: {warning}", file=terminal())


def _retrain(
    spoke: Spoke,
    options: _Options,
    report: DriftReport,
    verdict: Verdict,
    path: Path,
    found: _Found,
) -> None:
    from slipway.pipelines.governance.alerts import Event
    from slipway.pipelines.governance.drift_policy import RETRAIN
    from slipway.pipelines.governance.retraining import (
        dispatch_workflow,
        on_ci,
        submit_to_kubeflow,
    )

    model, env_name = spoke.config.model_name, options.env or "local"
    why = f"drift in {verdict.consecutive} window(s) in a row ({env_name}): {report.summary}"
    if options.kfp.host:
        started = submit_to_kubeflow(
            spoke.root, spoke.config, options.kfp, os.environ, f"{env_name}-drift"
        )
    elif options.workflow:
        started = dispatch_workflow(options.workflow, os.environ, {})
    elif on_ci(os.environ) or options.env is not None:
        fail(
            f"{why}; retraining is due, but this runs on a CI runner or against a deployed "
            "environment, and training never runs here: pass --kfp-host URL --image REF "
            "(the commit's image) or --dispatch-workflow cd.yml. Nothing was started; the "
            "next window will try again",
            Exit.USAGE,
        )
    else:
        _train_here(spoke, report, why, path, found)
        return
    found.started = started
    spoke.record(
        RETRAIN,
        model=model,
        version=report.champion,
        reason=f"drift: {why}",
        details={
            "env": env_name,
            "where": started.where,
            "run_id": started.run_id,
            "url": started.url,
            "report": str(path),
        },
    )
    click.echo(f"retraining started on {started.where}: {started.run_id}")
    click.echo(f"  {started.url}")
    click.echo("the new version goes through the gate, approvals and rollout as usual")
    _alert(Event.RETRAINING, model, f"{why}. {started.where} run {started.run_id}: {started.url}")


def _train_here(spoke: Spoke, report: DriftReport, why: str, path: Path, found: _Found) -> None:
    """The laptop's path: local training, as `slipway train` runs it."""
    from slipway.pipelines.governance.alerts import Event
    from slipway.pipelines.governance.drift_policy import RETRAIN
    from slipway.pipelines.training.pipeline import TrainingError, run_local_training
    from slipway.pipelines.training.spoke_code import SpokeCodeError

    model = spoke.config.model_name
    spoke.record(
        RETRAIN,
        model=model,
        version=report.champion,
        reason=f"drift: {why}",
        details={"env": "local", "where": "local", "report": str(path)},
    )
    _alert(Event.RETRAINING, model, f"{why}. Training locally.")
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
