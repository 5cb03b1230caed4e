"""What `slipway monitor` acts with: its options, what it found, and retraining on drift
(where training runs: Kubeflow or the training workflow, locally only on a laptop)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slipway.pipelines.cli._common import Spoke, fail
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.monitor_sources import GATEWAY, MonitorSource

if TYPE_CHECKING:
    from slipway.pipelines.governance.drift_policy import Verdict
    from slipway.pipelines.governance.monitoring import DriftReport
    from slipway.pipelines.governance.retraining import Started
    from slipway.pipelines.training.kubeflow import SubmitOptions
    from slipway.pipelines.training.pipeline import TrainingOutcome


@dataclass
class Found:
    """What the run found, for --json."""

    report: DriftReport | None = None
    path: Path | None = None
    outcome: TrainingOutcome | None = None
    verdict: Verdict | None = None
    started: Started | None = None
    html: Path | None = None


@dataclass(frozen=True)
class Options:
    retrain: bool
    env: str | None
    source: MonitorSource
    report: Path | None
    labels: Path | None
    kfp: SubmitOptions
    workflow: str | None


def window_env(options: Options) -> str:
    """The window's environment in the audit trail: --env, else `local` for the laptop's
    sample and the source's name for a source that is not per environment."""
    if options.env is not None:
        return options.env
    return "local" if options.source.name == GATEWAY else options.source.name


def deployed(options: Options) -> bool:
    """A window of deployed traffic (never trained on where it is judged)."""
    return options.env is not None or options.source.name != GATEWAY


def alert(event: object, model: str, text: str) -> None:
    from slipway.pipelines.governance.alerts import Event, notify

    assert isinstance(event, Event)
    from slipway.pipelines.console import terminal

    if warning := notify(event, model, text):
        click.echo(f"warning: {warning}", file=terminal())


def retrain(
    spoke: Spoke,
    options: Options,
    report: DriftReport,
    verdict: Verdict,
    path: Path,
    found: Found,
) -> None:
    from slipway.pipelines.governance.alerts import Event
    from slipway.pipelines.governance.drift_policy import RETRAIN
    from slipway.pipelines.governance.retraining import (
        dispatch_workflow,
        on_ci,
        submit_to_kubeflow,
    )

    model, env_name = spoke.config.model_name, window_env(options)
    why = f"drift in {verdict.consecutive} window(s) in a row ({env_name}): {report.summary}"
    if options.kfp.host:
        started = submit_to_kubeflow(
            spoke.root, spoke.config, options.kfp, os.environ, f"{env_name}-drift"
        )
    elif options.workflow:
        started = dispatch_workflow(options.workflow, os.environ, {})
    elif on_ci(os.environ) or deployed(options):
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
            "source": options.source.name,
            "where": started.where,
            "run_id": started.run_id,
            "url": started.url,
            "report": str(path),
        },
    )
    click.echo(f"retraining started on {started.where}: {started.run_id}")
    click.echo(f"  {started.url}")
    click.echo("the new version goes through the gate, approvals and rollout as usual")
    alert(Event.RETRAINING, model, f"{why}. {started.where} run {started.run_id}: {started.url}")


def _train_here(spoke: Spoke, report: DriftReport, why: str, path: Path, found: Found) -> None:
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
    alert(Event.RETRAINING, model, f"{why}. Training locally.")
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
