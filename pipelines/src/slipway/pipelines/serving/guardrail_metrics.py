"""The guardrail metrics a SageMaker variant publishes to CloudWatch for its rollback alarms.

One source of truth for both sides: the serving container publishes under `NAMESPACE` with
exactly the dimensions `dimensions(endpoint, variant)`, and slipway-infra builds the
endpoint's rollback alarms from the same constants (a metric an alarm watches must match
namespace, name and the whole dimension set, or the alarm never sees a datum).

- `ModelErrors`: per publish interval one StatisticValues datum (SampleCount = requests the
  model was given, Sum = those it failed or timed out on), so the alarm's `Average` is the
  error rate. Refused requests (400, 413, shed 503) are not the model's and are not counted.
- `PredictionPSI`: population stability index of the variant's most recent predictions
  against the predictions the model made on its own training split, which the packaged model
  carries in `REFERENCE_FILE` (written by rollout.packaging). Published once enough
  predictions are in ([monitoring] min_samples), over a sliding window of recent ones.

Publishing runs in its own thread, once per interval, one PutMetricData call: nothing on the
request path waits for CloudWatch, and a CloudWatch outage costs datums, never requests.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("slipway.gateway")

NAMESPACE = "Slipway/Monitoring"
MODEL_ERRORS = "ModelErrors"
PREDICTION_PSI = "PredictionPSI"
ENDPOINT_DIMENSION = "EndpointName"  # the same dimension names SageMaker's own metrics use
VARIANT_DIMENSION = "VariantName"
REFERENCE_FILE = "slipway-reference.json"
PSI_WINDOW = 2_000  # recent predictions the PSI is computed over
PUBLISH_INTERVAL_S = 60.0  # the alarms' period
# Where the endpoint's data capture lands in the spoke's bucket:
# s3://<bucket>/<CAPTURE_PREFIX>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl
CAPTURE_PREFIX = "data-capture"
# The Model environment keys the spoke stack sets and the container reads.
ENDPOINT_ENV = "SLIPWAY_ENDPOINT_NAME"
VARIANT_ENV = "SLIPWAY_VARIANT_NAME"
VERSION_ENV = "SLIPWAY_MODEL_VERSION"


def dimensions(endpoint_name: str, variant_name: str) -> dict[str, str]:
    """The dimension set of every guardrail datum (and of the alarms that watch them)."""
    return {ENDPOINT_DIMENSION: endpoint_name, VARIANT_DIMENSION: variant_name}


@dataclass(frozen=True)
class Reference:
    """What the model predicted on its training split: the baseline of prediction drift."""

    predictions: list[Any]
    source: str


def write_reference(model_dir: Path, predictions: Sequence[Any], source: str) -> Path:
    path = model_dir / REFERENCE_FILE
    values = [v.item() if hasattr(v, "item") else v for v in predictions]
    path.write_text(json.dumps({"predictions": values, "source": source}), encoding="utf-8")
    return path


def load_reference(model_dir: Path) -> Reference | None:
    path = model_dir / REFERENCE_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return Reference(predictions=list(data["predictions"]), source=str(data.get("source", "")))


class GuardrailPublisher:
    """Collects per-request outcomes on the serving path; publishes them in a thread."""

    def __init__(
        self,
        endpoint_name: str,
        variant_name: str,
        reference: Reference | None,
        *,
        min_samples: int,
        put_metric_data: Callable[..., Any],
        interval_s: float = PUBLISH_INTERVAL_S,
        window: int = PSI_WINDOW,
    ) -> None:
        self.dims = [
            {"Name": k, "Value": v} for k, v in dimensions(endpoint_name, variant_name).items()
        ]
        self.reference = reference
        self.min_samples = min_samples
        self._put = put_metric_data
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._requests = 0
        self._errors = 0
        self._recent: deque[Any] = deque(maxlen=max(window, min_samples))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0  # PutMetricData calls that succeeded
        self.failures = 0

    def observe(self, role: str, version: str, ok: bool, outputs: Sequence[Any]) -> None:
        """A gateway score listener: O(1) under a lock, called on the event loop."""
        with self._lock:
            self._requests += 1
            if ok:
                self._recent.extend(outputs)
            else:
                self._errors += 1

    def datums(self) -> list[dict[str, Any]]:
        """The datums for the interval just ended (and resets its error counts)."""
        with self._lock:
            requests, errors, self._requests, self._errors = self._requests, self._errors, 0, 0
            recent = list(self._recent)
        out: list[dict[str, Any]] = []
        if requests:
            out.append(
                {
                    "MetricName": MODEL_ERRORS,
                    "Dimensions": self.dims,
                    "StatisticValues": {
                        "SampleCount": float(requests),
                        "Sum": float(errors),
                        "Minimum": 1.0 if errors == requests else 0.0,
                        "Maximum": 1.0 if errors else 0.0,
                    },
                    "Unit": "Count",
                }
            )
        if self.reference is not None and len(recent) >= self.min_samples:
            from slipway.pipelines.statistics import psi

            value = psi(self.reference.predictions, recent)
            out.append(
                {
                    "MetricName": PREDICTION_PSI,
                    "Dimensions": self.dims,
                    "Value": round(value, 6),
                    "Unit": "None",
                }
            )
        return out

    def publish_once(self) -> int:
        """One PutMetricData call for the interval; the number of datums sent."""
        data = self.datums()
        if not data:
            return 0
        try:
            self._put(Namespace=NAMESPACE, MetricData=data)
        except Exception as exc:  # CloudWatch down or throttled: lose datums, not requests
            self.failures += 1
            log.error("publishing guardrail metrics failed: %s", exc)
            return 0
        self.published += 1
        return len(data)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="guardrail-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.publish_once()

    def stop(self) -> None:
        """Flush what was collected, then stop (SageMaker's SIGTERM leaves 30 s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.publish_once()
