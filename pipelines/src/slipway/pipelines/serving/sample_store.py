"""The gateway's drift sample in an object store, for gateways that run in pods (KServe).

A predictor pod's disk goes with the pod, there are several replicas behind one service,
and an admin endpoint answers from whichever replica the load balancer picks: reading the
local sample (serving.drift_sample) from outside would judge one replica's traffic, and
nothing of a pod that was replaced. So, when `SLIPWAY_SAMPLE_STORE` is set (the KServe
manifest sets it from `[monitoring] sample_store`), each gateway process queues its served
rows in memory and, once a minute, puts them as one new object:

    <store>/<model>/yyyy/mm/dd/hh/<writer>-<6-digit sequence>.jsonl

in the local sample's line format (drift_sample.encode_lines), where `<writer>` is the pod's
host name, the process id and a random suffix. Objects are never rewritten, so replicas,
workers and restarted pods never overwrite each other; the hour partition lets the monitor
list only the hours of its window, as SageMaker's capture layout does. What a crash loses is
at most one minute of one process's rows. The queue is bounded by `[monitoring]
sample_capacity` rows (oldest dropped and counted), and a failed put keeps the rows for the
next one, as the local writer does. Expiring old objects is the bucket's lifecycle rule.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from slipway.pipelines.serving.drift_sample import QueuedSample, decode_lines, encode_lines

if TYPE_CHECKING:
    import pandas as pd

UPLOAD_SECONDS = 60.0

Put = Callable[[str, str, bytes], None]  # (bucket, key, body)


@dataclass(frozen=True)
class StoreLocation:
    """`s3://bucket/prefix` of the store, and the model's part of it."""

    bucket: str
    prefix: str  # "<prefix>/<model>/", no leading slash

    @classmethod
    def of(cls, store: str, model: str) -> StoreLocation:
        bucket, _, prefix = store.removeprefix("s3://").partition("/")
        return cls(bucket, f"{prefix.strip('/')}/{model}/".lstrip("/"))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def hour_prefix(self, at: datetime) -> str:
        return f"{self.prefix}{at:%Y/%m/%d/%H}/"


def writer_id() -> str:
    """Unique per process: the pod's name, the process and a random part (a restarted
    container keeps its pod name and may get the same pid)."""
    host = socket.gethostname().replace("/", "-")[:60] or "gateway"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class StoreWriter(QueuedSample):
    """Queues served rows; `flush` puts them as one object when a minute has passed."""

    def __init__(
        self,
        location: StoreLocation,
        columns: Sequence[str],
        capacity: int,
        put: Put,
        *,
        every_s: float = UPLOAD_SECONDS,
        writer: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.location = location
        self._columns = list(columns)
        self._put = put
        self._every = every_s
        self._clock = clock
        self.writer = writer or writer_id()
        self._seq = 0
        super().__init__(capacity)
        # One put at a time: the shutdown's final flush may meet the loop's last one, and
        # two puts with one sequence number would be one key, the second overwriting.
        self._flush_lock = threading.Lock()
        self._last = clock()
        self.put_errors = 0
        self.written: list[str] = []  # keys put by this process, newest last (bounded)

    def flush(self, *, force: bool = False) -> str | None:
        """Put the queued rows as one object when due (or `force`, at shutdown); returns its
        key. A failed put puts the rows back (bounded) and raises for the caller to log."""
        if not force and self._clock() - self._last < self._every:
            return None
        with self._flush_lock:
            return self._put_pending()

    def _put_pending(self) -> str | None:
        self._last = self._clock()
        pending = self._queue.take()
        if not pending:
            return None
        first = datetime.fromtimestamp(pending[0][0], UTC)
        key = f"{self.location.hour_prefix(first)}{self.writer}-{self._seq:06d}.jsonl"
        body = ("\n".join(encode_lines(self._columns, pending)) + "\n").encode()
        try:
            self._put(self.location.bucket, key, body)
        except Exception:
            self.put_errors += 1
            self._queue.put_back(pending)
            raise
        self._seq += 1
        self.written = [*self.written[-99:], key]
        return key


def s3_put(region: str | None = None) -> Put:
    """boto3's put_object (credentials and AWS_ENDPOINT_URL from the pod's environment)."""
    import boto3

    s3 = boto3.client("s3", region_name=region)

    def put(bucket: str, key: str, body: bytes) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")

    return put


def read_store(
    s3: Any, location: StoreLocation, start: float, now: float, capacity: int
) -> pd.DataFrame:
    """The rows every writer served between `start` and `now` (epoch seconds), newest
    `capacity` kept, oldest first, in read_samples' shape. Lists only the window's hours."""
    import pandas as pd

    # An object sits in the hour of its first row and holds up to a minute more: start
    # listing an hour partition early enough for the rows just after `start`.
    first = datetime.fromtimestamp(start - 2 * UPLOAD_SECONDS, UTC)
    hour = first.replace(minute=0, second=0, microsecond=0)
    end = datetime.fromtimestamp(now, UTC)
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    while hour <= end:
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.hour_prefix(hour)):
            keys += [item["Key"] for item in page.get("Contents", [])]
        hour += timedelta(hours=1)
    records: list[dict[str, Any]] = []
    for key in keys:
        text = s3.get_object(Bucket=location.bucket, Key=key)["Body"].read().decode()
        records += [r for r in decode_lines(text) if start <= float(r["_at"]) <= now]
    records.sort(key=lambda r: float(r["_at"]))
    return pd.DataFrame.from_records(records[-capacity:])
