"""Which monitoring source a `slipway monitor` run judges, from its flags and slipway.toml.

This is the command's edge: it checks `--source`, `--env` and `--window-hours` against the
sources the spoke is configured for, once, and builds the source. It sits in the CLI, the
one layer that may compose every stage: the batch source belongs to the batch stage, which
governance (where the other sources and the MonitorSource protocol live) may not import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines.batch.window import BatchOutputs
from slipway.pipelines.governance.monitor_sources import (
    CAPTURE,
    GATEWAY,
    KSERVE,
    GatewaySample,
    KServeSample,
    MonitorSource,
    SageMakerCapture,
    SourceNotConfigured,
    configured_sources,
)

if TYPE_CHECKING:
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.spoke import Spoke


def _why_configured(config: SpokeConfig) -> str:
    if config.monitoring.sources:
        return "[monitoring] sources"
    return f"derived from [deploy] target = {config.deploy.target!r}"


def choose(
    spoke: Spoke,
    *,
    source: str | None,
    env: str | None,
    hours: float | None,
) -> MonitorSource:
    """The source a run judges; SourceNotConfigured when the spoke is not set up for it.

    No `source`: the local gateway's sample without `env`, the endpoint's capture with it.
    `env` names a SageMaker endpoint: the KServe and batch sources are not per environment.
    """
    root, config = spoke.root, spoke.config
    configured = configured_sources(config)
    listed = f"{', '.join(configured)} ({_why_configured(config)})"
    if source is None:
        if env is None:
            return GatewaySample(root)
        if CAPTURE not in configured:
            raise SourceNotConfigured(
                f"--env {env} judges a SageMaker endpoint's capture, and this spoke's "
                f"scheduled sources are {listed}: pass --source {configured[0]} (without --env)"
            )
        source = CAPTURE
    if source == GATEWAY:
        if env is not None or hours is not None:
            raise SourceNotConfigured(
                "--source gateway is the local gateway's sample, judged whole: drop --env and "
                "--window-hours, or name a scheduled source"
            )
        return GatewaySample(root)
    if source not in configured:
        raise SourceNotConfigured(
            f"--source {source}: this spoke's scheduled sources are {listed}. Add "
            f'"{source}" to [monitoring] sources in slipway.toml to monitor it'
            + (" (with sample_store set)" if source == KSERVE else "")
        )
    if env is not None and source != CAPTURE:
        raise SourceNotConfigured(
            f"--source {source} is not per environment (--env names a SageMaker endpoint): "
            "drop --env; its windows are counted under the source's name"
        )
    window = hours or config.monitoring.window_hours
    if source == CAPTURE:
        if env is None:
            raise SourceNotConfigured(
                "--source capture reads a SageMaker endpoint's capture: give --env staging|prod"
            )
        return SageMakerCapture(config, env, window)
    if source == KSERVE:
        if not config.monitoring.sample_store:
            raise SourceNotConfigured(
                "--source kserve reads what the predictors wrote to [monitoring] sample_store, "
                'which is empty: set it (e.g. "s3://<team-bucket>/slipway/samples") and '
                "redeploy, so each replica writes its sample there"
            )
        return KServeSample(config, window)
    return BatchOutputs(root, config, window)
