"""Read a SageMaker endpoint's data capture back as the served sample drift monitoring takes.

The spoke stack turns data capture on for its endpoint (KMS-encrypted, in the spoke's
bucket), and SageMaker writes one JSON object per request under
`s3://<bucket>/data-capture/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`:

    {"captureData": {"endpointInput": {"observedContentType": "application/json",
                                       "mode": "INPUT", "data": "...", "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json",
                                        "mode": "OUTPUT", "data": "...", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-01-02T03:04:05Z"},
     "eventVersion": "0"}

`encoding` is JSON, CSV or BASE64 (then `data` is base64 of the body). Each captured request
is parsed with the gateway's own parser (the same data contract), its rows paired with the
gateway's `{"predictions": [...]}`; refused requests (no predictions) are skipped. The
newest rows are kept, up to `[monitoring] sample_capacity`, like the local sample.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.serving.guardrail_metrics import CAPTURE_PREFIX
from slipway.pipelines.serving.parsing import BadRequest, parse_body
from slipway.pipelines.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from slipway.pipelines.config import SpokeConfig


class CaptureError(SlipwayError, RuntimeError):
    """The endpoint's capture cannot be read; the message says what to check."""


@dataclass(frozen=True)
class CaptureLocation:
    bucket: str
    prefix: str  # data-capture/<endpoint>/

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def capture_location(config: SpokeConfig, env: str, account_id: str) -> CaptureLocation:
    """Where the spoke stack points the endpoint's capture (its naming conventions)."""
    prefix = f"{config.project.slug}-{env}"
    return CaptureLocation(f"{prefix}-{account_id}", f"{CAPTURE_PREFIX}/{prefix}/")


def _body(part: dict[str, Any]) -> bytes:
    data = part.get("data", "")
    if part.get("encoding") == "BASE64":
        return base64.b64decode(data)
    return data.encode("utf-8")


def records_from_line(line: str, config: SpokeConfig, variant: str) -> list[dict[str, Any]]:
    """The served rows of one captured request (none when it was refused or is unreadable)."""
    try:
        event = json.loads(line)
        data = event["captureData"]
        sent, answered = data["endpointInput"], data["endpointOutput"]
        predictions = json.loads(_body(answered))["predictions"]
        rows = parse_body(_body(sent), sent.get("observedContentType", ""), config.data.contract)
    except (ValueError, KeyError, TypeError, BadRequest):
        return []
    if not isinstance(predictions, list) or len(predictions) != len(rows):
        return []
    metadata = event.get("eventMetadata", {})
    at = metadata.get("inferenceTime", "")
    # The caller's InferenceId: SageMaker's own key for joining ground truth to a request.
    inference_id = str(metadata.get("inferenceId") or "")
    try:
        stamp = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        stamp = 0.0
    columns = list(config.data.contract.columns)
    return [
        {
            **dict(zip(columns, row, strict=True)),
            "_at": stamp,
            "_variant": variant,
            "_version": "",
            "_prediction": prediction,
            "_id": inference_id if len(rows) == 1 or not inference_id else f"{inference_id}:{i}",
        }
        for i, (row, prediction) in enumerate(zip(rows, predictions, strict=True))
    ]


def within(frame: pd.DataFrame, hours: float, now: float) -> pd.DataFrame:
    """The rows served in the `hours` before `now` (epoch seconds): one scheduled window."""
    if frame.empty:
        return frame
    kept = frame[frame["_at"] >= now - hours * 3600]
    return cast("pd.DataFrame", kept).reset_index(drop=True)


def read_capture(
    s3: Any, location: CaptureLocation, config: SpokeConfig, capacity: int | None = None
) -> pd.DataFrame:
    """The newest captured rows (up to `capacity`), oldest first, in read_samples' shape."""
    import pandas as pd
    from botocore.exceptions import BotoCoreError, ClientError

    limit = capacity or config.monitoring.sample_capacity
    try:
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=location.bucket, Prefix=location.prefix
            )
            for item in page.get("Contents", [])
            if item["Key"].endswith(".jsonl")
        ]
    except (BotoCoreError, ClientError) as exc:
        raise CaptureError(
            f"cannot list {location.uri} ({exc}); check the AWS credentials and that the "
            "environment's stack is deployed with an endpoint"
        ) from exc
    # Keys sort by variant, then hour, then time in the hour: newest last within a variant.
    keys.sort(key=lambda k: (k[len(location.prefix) :].split("/", 1)[-1], k))
    kept: list[dict[str, Any]] = []
    for key in reversed(keys):
        variant = key[len(location.prefix) :].split("/", 1)[0]
        try:
            text = s3.get_object(Bucket=location.bucket, Key=key)["Body"].read().decode()
        except (BotoCoreError, ClientError) as exc:
            raise CaptureError(f"cannot read s3://{location.bucket}/{key}: {exc}") from exc
        batch = [r for line in text.splitlines() for r in records_from_line(line, config, variant)]
        kept = batch + kept
        if len(kept) >= limit:
            break
    return pd.DataFrame.from_records(kept[-limit:])


def captured_sample(config: SpokeConfig, env: str) -> tuple[CaptureLocation, pd.DataFrame]:
    """The environment's captured traffic, with the caller's AWS credentials and region
    (slipway.toml [deploy].region unless AWS_DEFAULT_REGION says otherwise)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    region = Settings.from_env().aws_region or config.deploy.region
    try:
        account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as exc:
        raise CaptureError(
            f"cannot reach AWS to find the {env} capture ({exc}); sign in to the spoke's "
            "account (AWS_PROFILE or credentials) and try again"
        ) from exc
    location = capture_location(config, env, account)
    frame = read_capture(boto3.client("s3", region_name=region), location, config)
    return location, frame
