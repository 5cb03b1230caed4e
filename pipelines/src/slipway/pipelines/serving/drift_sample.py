"""The gateway's bounded on-disk sample of served inputs and predictions, for drift monitoring.

Format (stable; the drift monitor reads it through `read_samples`): JSON-lines segment files
under `<spoke>/.slipway/samples/`, named `segment-<12-digit sequence>.jsonl`. Each line is
one served row:

    {"at": 1732470000.123, "variant": "champion", "version": "3",
     "features": {"mean_radius": 14.2, ...}, "prediction": 1}

`at` is Unix time in seconds; `variant` is `champion` or `challenger` (shadow copies included);
`prediction` is the model's output for the row (a number or a string). A segment holds at
most a quarter of `[monitoring] sample_capacity` rows; when the segments together exceed the
capacity the oldest one is deleted, so at most `sample_capacity` rows are kept, the most
recent ones.
The gateway queues rows in memory and appends whole lines once a second, so the sample
trails the traffic by about a second and a reader never sees half a row (a torn last line
after a crash is skipped). A write that fails (disk full, directory gone) keeps the rows
queued for the next flush, but the queue never holds more than `sample_capacity` rows: the
oldest are dropped and counted (`dropped`), so a broken disk costs the sample, never the
gateway's memory.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from slipway.pipelines.registry import state_dir

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("slipway.gateway")

SAMPLES_DIR = "samples"
SEGMENTS_PER_CAPACITY = 4
# One queued request: (time, variant, version, its rows, their predictions).
Pending = tuple[float, str, str, Sequence[Sequence[Any]], Sequence[Any]]


def samples_dir(root: Path) -> Path:
    path = state_dir(root) / SAMPLES_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("segment-*.jsonl"))


class PendingRows:
    """Served requests queued in memory, at most `capacity` rows: beyond it the oldest
    requests are dropped and counted (the sample keeps the most recent rows anyway), so a
    store that keeps failing costs the sample, never the gateway's memory."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._items: list[Pending] = []
        self.rows = 0
        self.dropped = 0

    def add(
        self, variant: str, version: str, rows: Sequence[Sequence[Any]], predictions: Sequence[Any]
    ) -> None:
        if not isinstance(rows, list | tuple):
            rows = list(rows)
        with self._lock:
            self._items.append((round(time.time(), 3), variant, version, rows, predictions))
            self.rows += len(rows)
            self._trim()

    def take(self) -> list[Pending]:
        """Everything queued, oldest first; the queue is left empty."""
        with self._lock:
            items, self._items, self.rows = self._items, [], 0
        return items

    def put_back(self, items: list[Pending]) -> None:
        """Requeue what could not be written, before anything queued since (bounded)."""
        with self._lock:
            self._items = items + self._items
            self.rows = sum(len(item[3]) for item in self._items)
            self._trim()

    def _trim(self) -> None:  # the caller holds the lock
        while self.rows > self._capacity and len(self._items) > 1:
            gone = len(self._items.pop(0)[3])
            self.rows -= gone
            self.dropped += gone


class QueuedSample:
    """A sample writer's serving side: rows are queued in memory (cheap, on the serving
    path), and the subclass's flush writes them somewhere."""

    def __init__(self, capacity: int) -> None:
        self._queue = PendingRows(capacity)

    def add(
        self, variant: str, version: str, rows: Sequence[Sequence[Any]], predictions: Sequence[Any]
    ) -> None:
        self._queue.add(variant, version, rows, predictions)

    @property
    def dropped(self) -> int:
        """Rows given up because writes kept failing (bounded memory)."""
        return self._queue.dropped

    @property
    def pending_rows(self) -> int:
        return self._queue.rows


class SampleWriter(QueuedSample):
    """Appends served rows to the current segment; rotates and prunes to stay bounded."""

    def __init__(self, root: Path, columns: Sequence[str], capacity: int) -> None:
        self._dir = samples_dir(root)
        self._columns = list(columns)
        self._segment_rows = max(1, capacity // SEGMENTS_PER_CAPACITY)
        super().__init__(capacity)
        self.write_errors = 0
        self._write_lock = threading.Lock()  # one writer of the segment files at a time
        existing = _segments(self._dir)
        self._seq = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        self._rows_in_segment = self._segment_rows  # start a fresh segment on first write

    def write(
        self, variant: str, version: str, rows: Sequence[Sequence[Any]], predictions: Sequence[Any]
    ) -> None:
        self.add(variant, version, rows, predictions)
        self.flush()

    def flush(self) -> None:
        """Append everything queued to the segments (the gateway calls this once a second).
        On a write error the unwritten rows go back to the queue (bounded) and the error is
        raised for the caller to log; the next flush tries again."""
        pending = self._queue.take()
        try:
            self._write(pending)
        except Exception:
            self.write_errors += 1
            self._queue.put_back(pending)
            raise

    def _write(self, pending: list[Pending]) -> None:
        lines = encode_lines(self._columns, pending)
        with self._write_lock:
            while lines:
                if self._rows_in_segment >= self._segment_rows:
                    self._rotate()
                room = self._segment_rows - self._rows_in_segment
                chunk, lines = lines[:room], lines[room:]
                with self._current.open("a", encoding="utf-8") as handle:
                    handle.write("\n".join(chunk) + "\n")
                self._rows_in_segment += len(chunk)

    def _rotate(self) -> None:
        self._current = self._dir / f"segment-{self._seq:012d}.jsonl"
        self._seq += 1
        self._rows_in_segment = 0
        segments = _segments(self._dir)
        # Keep the newest full segments so that, with the new one, capacity is the bound.
        for old in segments[: max(0, len(segments) - (SEGMENTS_PER_CAPACITY - 1))]:
            old.unlink(missing_ok=True)


def encode_lines(columns: Sequence[str], pending: Sequence[Pending]) -> list[str]:
    """Queued requests as sample lines (the format above), one per served row."""
    return [
        orjson.dumps(
            {
                "at": at,
                "variant": variant,
                "version": version,
                "features": dict(zip(columns, row, strict=True)),
                "prediction": pred,
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        ).decode()
        for at, variant, version, rows, predictions in pending
        for row, pred in zip(rows, predictions, strict=True)
    ]


def decode_lines(text: str) -> list[dict[str, Any]]:
    """Sample lines as read_samples' records; a torn line (a crash mid-write) is skipped."""
    records = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        records.append(
            {
                **entry["features"],
                "_at": entry["at"],
                "_variant": entry["variant"],
                "_version": entry["version"],
                "_prediction": entry["prediction"],
            }
        )
    return records


def read_samples(root: Path) -> pd.DataFrame:
    """Every sampled row, oldest first: the feature columns plus `_at`, `_variant`,
    `_version` and `_prediction`. Empty (no columns) when nothing was served yet."""
    import pandas as pd

    records = []
    for segment in _segments(samples_dir(root)):
        records += decode_lines(segment.read_text(encoding="utf-8"))
    return pd.DataFrame.from_records(records)
