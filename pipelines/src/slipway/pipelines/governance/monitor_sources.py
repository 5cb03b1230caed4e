"""Where a monitoring window's served rows come from: one class per source, one shape out.

| source  | what it reads                                                   | window by          |
|---------|-----------------------------------------------------------------|--------------------|
| gateway | the local gateway's sample under .slipway/samples (a laptop)    | all of it          |
| capture | a SageMaker endpoint's data capture in the spoke's bucket       | the request's time |
| kserve  | the KServe predictors' samples in `[monitoring] sample_store`   | the request's time |
| batch   | the inputs and predictions of the batch jobs recorded in MLflow | the job's run time |

Each `read(now)` returns the rows in read_samples' shape (contract columns, `_at`,
`_variant`, `_version`, `_prediction`), so the same contract check, per-feature PSI and
prediction drift judge every source. The batch source is the batch stage's own
(batch.window.BatchOutputs, a stage above this one); `slipway monitor` picks one from its
flags (cli._monitor_sources.choose). Which sources a spoke's schedule judges is
`[monitoring] sources` in slipway.toml, derived from `[deploy] target` when empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from slipway.pipelines.config import SpokeConfig

GATEWAY, CAPTURE, KSERVE, BATCH = "gateway", "capture", "kserve", "batch"
SOURCES = (GATEWAY, CAPTURE, KSERVE, BATCH)
_BY_TARGET = {"sagemaker": (CAPTURE,), "kserve": (KSERVE,), "both": (CAPTURE, KSERVE)}


class SourceNotConfigured(SlipwayError):
    """The source asked for is not one this spoke is set up for; the message says how."""

    exit_code = Exit.USAGE


class SourceUnreadable(SlipwayError):
    """The source's store cannot be read (credentials, bucket); the message says what."""


@dataclass(frozen=True)
class Window:
    """One window of served rows, how to name it, and what was read for it."""

    rows: pd.DataFrame
    label: str  # "the last 6 h", for the audit trail and the report
    read: list[str] = field(default_factory=list)  # lines for people


class MonitorSource(Protocol):
    name: ClassVar[str]

    def read(self, now: float) -> Window: ...


@dataclass(frozen=True)
class GatewaySample:
    """The local gateway's whole sample (bounded by `[monitoring] sample_capacity`)."""

    root: Path
    name: ClassVar[str] = GATEWAY

    def read(self, now: float) -> Window:
        from slipway.pipelines.serving.drift_sample import read_samples

        return Window(read_samples(self.root), "the local gateway's sample")


def _region(config: SpokeConfig) -> str:
    return Settings.from_env().aws_region or config.deploy.region


@dataclass(frozen=True)
class SageMakerCapture:
    """The endpoint's data capture in the last `hours` (governance.capture)."""

    config: SpokeConfig
    env: str
    hours: float
    name: ClassVar[str] = CAPTURE

    def read(self, now: float) -> Window:
        from slipway.pipelines.governance.capture import captured_sample, within

        location, captured = captured_sample(self.config, self.env)
        rows = within(captured, self.hours, now)
        return Window(
            rows,
            f"the last {self.hours:g} h",
            [
                f"{self.env}: {len(rows)} rows captured in the last {self.hours:g} h "
                f"(of {len(captured)} read) from {location.uri}"
            ],
        )


@dataclass(frozen=True)
class KServeSample:
    """What every predictor process wrote to the sample store in the last `hours`
    (serving.sample_store): all replicas, including pods that are gone."""

    config: SpokeConfig
    hours: float
    name: ClassVar[str] = KSERVE

    def read(self, now: float) -> Window:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        from slipway.pipelines.serving.sample_store import StoreLocation, read_store

        store = self.config.monitoring.sample_store
        location = StoreLocation.of(store, self.config.model_name)
        s3 = boto3.client("s3", region_name=_region(self.config))
        try:
            rows = read_store(
                s3,
                location,
                now - self.hours * 3600,
                now,
                self.config.monitoring.sample_capacity,
            )
        except (BotoCoreError, ClientError) as exc:
            raise SourceUnreadable(
                f"cannot read the predictors' sample at {location.uri} ({exc}); check the "
                "credentials (and AWS_ENDPOINT_URL for a store that is not AWS S3) and "
                "[monitoring] sample_store"
            ) from exc
        versions = {str(v) for v in rows["_version"].unique()} if not rows.empty else set()
        return Window(
            rows,
            f"the last {self.hours:g} h",
            [
                f"kserve: {len(rows)} rows served in the last {self.hours:g} h from "
                f"{location.uri} (versions: {', '.join(sorted(versions)) or 'none'})"
            ],
        )


def configured_sources(config: SpokeConfig) -> tuple[str, ...]:
    """The sources the spoke's schedule judges: `[monitoring] sources`, else the target's."""
    explicit = tuple(config.monitoring.sources)
    return explicit or _BY_TARGET[config.deploy.target]
