"""`slipway monitor`: compare served traffic with the training data; retrain on lasting drift.

On a laptop it reads the local gateway's sample and may train locally. Scheduled (the
spoke's monitor workflow or a KFP recurring run, `--env ENV` and/or `--source`), it judges
one window of one source (governance.monitor_sources, batch.window: SageMaker capture, the KServe
predictors' sample store, the batch jobs' outputs), counts drifted windows in the audit
trail and, after `[monitoring] drift_windows` in a row and outside the cool-down, starts
retraining where training runs: a Kubeflow run (`--kfp-host`, `--image`) or the training
workflow (`--dispatch-workflow`); never on the runner itself.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slipway.pipelines.cli._common import Spoke, fail, spoke_from_context
from slipway.pipelines.cli._monitor_actions import (
    Found,
    Options,
    alert,
    deployed,
    retrain,
    window_env,
)
from slipway.pipelines.cli._monitor_sources import choose
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.monitor_sources import (
    GATEWAY,
    SOURCES,
    SourceNotConfigured,
    configured_sources,
)

if TYPE_CHECKING:
    import pandas as pd

    from slipway.pipelines.governance.drift_policy import Verdict
    from slipway.pipelines.governance.monitoring import DriftReport
    from slipway.pipelines.training.kubeflow import SubmitOptions


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
    "--source",
    type=click.Choice(SOURCES),
    default=None,
    help="Where the window's served rows come from: gateway (the local gateway's sample; "
    "the default without --env), capture (the SageMaker endpoint's data capture; the "
    "default with --env), kserve (what the KServe predictors wrote to [monitoring] "
    "sample_store), batch (the inputs and predictions of the batch jobs recorded in the "
    "window). A scheduled source must be in [monitoring] sources (or [deploy] target's).",
)
@click.option(
    "--list-sources",
    is_flag=True,
    help="Print the sources this spoke's schedule judges, one a line, and exit.",
)
@click.option(
    "--window-hours",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The hours of traffic (or batch jobs) one window judges (default [monitoring] "
    "window_hours, the schedule's period); not for the local sample, judged whole.",
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
    source: str | None,
    list_sources: bool,
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
    if list_sources:
        for name in configured_sources(spoke_from_context(ctx).config):
            click.echo(name)
        return
    if window_hours is not None and env is None and source in (None, GATEWAY):
        fail("--window-hours applies to --env (the local sample is judged whole)", Exit.USAGE)
    if cron is not None:
        _schedule(ctx, kfp, env, source, cron, service_account)
        return
    if service_account:
        fail("--service-account applies to --kfp-schedule", Exit.USAGE)
    spoke = spoke_from_context(ctx)
    try:
        chosen = choose(spoke, source=source, env=env, hours=window_hours)
    except SourceNotConfigured as exc:
        fail(str(exc), Exit.USAGE)
    options = Options(retrain, env, chosen, report_path, labels, kfp, workflow)
    if not as_json:
        _monitor(ctx, options, Found())
        return
    from slipway.pipelines.console import terminal
    from slipway.pipelines.json_output import dumps, monitor_json

    found, code, failed = Found(), 0, None
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
            source=options.source.name,
        )
        click.echo(dumps(document))
    if failed is not None:
        raise failed
    if code:
        raise SystemExit(code)


def _schedule(
    ctx: click.Context,
    kfp: SubmitOptions,
    env: str | None,
    source: str | None,
    cron: str,
    account: str | None,
) -> None:
    """`--kfp-schedule`: the monitoring recurring run on Kubeflow (docs/spoke/monitoring.md),
    one step per source (`--source`, else the spoke's scheduled sources)."""
    from slipway.pipelines.governance.monitor_schedule import SECRET, schedule_monitoring
    from slipway.pipelines.training.kubeflow import target_for

    if not kfp.host:
        fail("--kfp-schedule needs --kfp-host (and --image)", Exit.USAGE)
    if len(cron.split()) != 6:
        fail(
            f"--kfp-schedule {cron!r}: Kubeflow's cron has six fields, seconds first "
            "(e.g. '0 17 */6 * * *')",
            Exit.USAGE,
        )
    spoke = spoke_from_context(ctx)
    sources = (source,) if source else configured_sources(spoke.config)
    for name in sources:  # each step's own check, before anything is created
        try:
            choose(
                spoke,
                source=name,
                env=env if name == "capture" else None,
                hours=None,
            )
        except SourceNotConfigured as exc:
            fail(f"{exc}; nothing was scheduled", Exit.USAGE)
    if GATEWAY in sources:
        fail("--source gateway is a laptop's sample: a schedule judges a deployed one", Exit.USAGE)
    target, uri = target_for(spoke.root, spoke.config, kfp, os.environ)
    made = schedule_monitoring(
        spoke.config,
        target,
        env,
        sources,
        cron=cron,
        tracking_uri=uri,
        service_account=account,
    )
    click.echo(f"scheduled {made.name} on {target.api}: recurring run {made.recurring_run_id}")
    click.echo(f"  sources {', '.join(sources)}, one step each")
    click.echo(f"  cron {made.cron}, one window at a time, no catch-up; {made.url}")
    click.echo(
        f"  the pod reads the Kubernetes Secret {SECRET} (state-url, kfp-token, alert-webhook)"
    )


def _monitor(ctx: click.Context, options: Options, found: Found) -> None:
    from slipway.pipelines.governance.alerts import Event
    from slipway.pipelines.governance.drift_policy import DRIFT, MONITOR, Decision, decide
    from slipway.pipelines.governance.monitoring import check_drift, write_report
    from slipway.pipelines.registry import client

    spoke = spoke_from_context(ctx)
    model, env_name = spoke.config.model_name, window_env(options)
    read = options.source.read(time.time())
    for line in read.read:
        click.echo(line)
    samples, window = read.rows, read.label
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
        source=options.source.name,
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
            "source": options.source.name,
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
    alert(
        Event.DRIFT,
        model,
        f"{env_name}, champion v{report.champion}: {report.summary}. {verdict.sentence}.",
    )
    if verdict.decision is not Decision.RETRAIN:
        raise SystemExit(int(Exit.DRIFT))
    if not options.retrain:
        click.echo("not retraining (--no-retrain); run `slipway train` when ready")
        raise SystemExit(int(Exit.DRIFT))
    retrain(spoke, options, report, verdict, path, found)
    raise SystemExit(int(Exit.DRIFT))


def _warn_if_forgetful(spoke: Spoke, options: Options) -> None:
    """A scheduled run on a CI runner with the audit trail in a file there forgets every
    window when the runner goes: drift_windows > 1 would never be reached."""
    from slipway.pipelines.console import terminal
    from slipway.pipelines.governance import audit
    from slipway.pipelines.governance.retraining import on_ci

    if deployed(options) and on_ci(os.environ) and audit.shared_trail(spoke.root) is None:
        click.echo(
            f"warning: the audit trail is {spoke.audit.where}, on this runner: the "
            "drifted windows and the cool-down are forgotten when it goes. Set "
            "SLIPWAY_STATE_URL (the team's state database) so windows are counted",
            file=terminal(),
        )


def _html(
    spoke: Spoke,
    options: Options,
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
        env=window_env(options),
        window=window,
        verdict=verdict,
        means=report.means,
        perf=perf,
    )
    target.write_text(page, encoding="utf-8")
    folder = window_env(options) if deployed(options) else None
    uri = log_report(registry, spoke.config.model_name, report.champion, target, folder)
    click.echo(f"HTML report: {target} (logged to the champion's run: {uri})")
    return uri
