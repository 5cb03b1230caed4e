"""The scoring core every protocol adapter shares: variants, routing, readings and metrics.

One `Gateway` holds the champion and challenger (loaded from the registry by alias, or one
version from a directory in single-model mode), routes each request to one of them by a smooth
deterministic split, scores it through the variant's batcher, and records what the controller
and the monitors read: the window (/admin/window), Prometheus metrics, the drift sample and
the score listeners (the SageMaker image's CloudWatch publisher). The HTTP adapters
(serving.mlflow_protocol, serving.oip, serving.admin) only translate requests and answers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from slipway.pipelines import registry
from slipway.pipelines.config import PANDAS_DTYPES, SpokeConfig
from slipway.pipelines.registry import CHALLENGER, CHAMPION, fluent_registry
from slipway.pipelines.serving.batching import Batcher, Overloaded, Retired
from slipway.pipelines.serving.drift_sample import SampleWriter
from slipway.pipelines.serving.limits import Limits
from slipway.pipelines.serving.predictors import _direct_predictor, _to_list
from slipway.pipelines.serving.sample_store import StoreWriter
from slipway.pipelines.spoke import RolloutRow, Spoke, lease_expired

log = logging.getLogger("slipway.gateway")

WINDOW_EVENTS = 200_000  # readings kept for /admin/window: minutes of traffic at full speed
WINDOW_PREDICTIONS = 5_000  # prediction values returned per variant for drift judgement
SAMPLE_FLUSH_SECONDS = 1.0
# How often a running gateway asks whether the rollout it serves still has a live controller.
LEASE_CHECK_SECONDS = 5.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Distinct prediction values labelled per variant; the rest share "other" (a regressor's or a
# free-text model's outputs would otherwise make a new time series per request).
MAX_PREDICTION_LABELS = 20
OTHER_LABEL = "other"


# Called after every scored request: (role, version, model ok, outputs). The SageMaker
# container's CloudWatch publisher listens here.
ScoreListener = Callable[[str, str, bool, Sequence[Any]], None]


class ScoredRequest(NamedTuple):
    """One answered (or failed) request in the window the controller reads."""

    seq: int
    role: str  # champion | challenger
    ok: bool  # False: the model failed it (a client's bad request is never recorded)
    seconds: float  # model time of the request's batch
    predictions: tuple[Any, ...]


@dataclass
class Variant:
    role: str
    version: str
    batcher: Batcher
    # Prometheus children, resolved once per variant rather than once per request.
    children: dict[str, Any] = field(default_factory=dict)


class Gateway:
    """Variants, routing, readings and metrics; the HTTP layer is `build_app`."""

    def __init__(
        self,
        root: Path,
        config: SpokeConfig,
        *,
        limits: Limits | None = None,
        model_dir: Path | None = None,
        model_version: str = "local",
        sample: bool = True,
        store: StoreWriter | None = None,
    ) -> None:
        self.root = root
        self.config = config
        # Where the rollout record lives is resolved on first use, then kept.
        self.spoke = Spoke(root=root, config=config)
        self.limits = limits or Limits()
        # Single-model mode (the SageMaker image): one version from a directory, no registry.
        self.model_dir = model_dir
        self.model_version = model_version
        self.listeners: list[ScoreListener] = []
        self.columns = list(config.data.contract.columns)
        self._dtypes = {
            name: PANDAS_DTYPES[r.dtype] for name, r in config.data.contract.columns.items()
        }
        self.variants: dict[str, Variant] = {}
        self.load_errors: dict[str, str] = {}  # role -> why its version could not be served
        self.loaded = asyncio.Event()  # the first load finished (readiness)
        self._champion_wanted = False  # a champion alias exists (it may have failed to load)
        self._prediction_labels: dict[str, set[str]] = {}
        self.weight = 0
        self.shadow = False
        # Why the challenger serves nothing although a rollout is open (its controller's
        # lease expired: a canary nobody watches gets no traffic), else None.
        self.held_back: str | None = None
        self._routed = 0
        self._seq = 0
        # (seq, role, ok, model seconds, predictions) per request
        self._events: deque[ScoredRequest] = deque(maxlen=WINDOW_EVENTS)
        self._background: set[asyncio.Task] = set()
        self._samples = (
            SampleWriter(root, self.columns, config.monitoring.sample_capacity) if sample else None
        )
        # The sample in an object store (a pod's gateway: serving.sample_store), or None.
        self._store = store
        self._reload_lock = asyncio.Lock()
        self.metrics = CollectorRegistry()
        labels = ["variant", "version"]
        self.m_requests = Counter(
            "slipway_gateway_requests",
            "Requests scored, per variant",
            labels,
            registry=self.metrics,
        )
        self.m_errors = Counter(
            "slipway_gateway_errors",
            "Requests the model failed, per variant",
            labels,
            registry=self.metrics,
        )
        self.m_latency = Histogram(
            "slipway_gateway_latency_seconds",
            "Time to answer, per variant",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.metrics,
        )
        # What the canary judge compares on KServe (from Prometheus), as the window does here:
        # model time is comparable across variants whatever their share of traffic.
        self.m_model = Histogram(
            "slipway_gateway_model_seconds",
            "Model time of each request's batch, per variant",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.metrics,
        )
        self.m_predictions = Counter(
            "slipway_gateway_predictions",
            "Predicted values (classes), per variant",
            [*labels, "value"],
            registry=self.metrics,
        )
        self.m_batch = Histogram(
            "slipway_gateway_batch_rows",
            "Rows per model call (batching at work)",
            ["version"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.metrics,
        )
        self.m_bad = Counter(
            "slipway_gateway_bad_requests", "Requests refused with 400", registry=self.metrics
        )
        self.m_weight = Gauge(
            "slipway_gateway_challenger_weight",
            "Challenger share of traffic, percent",
            registry=self.metrics,
        )
        self.m_refused = Counter(
            "slipway_gateway_refused",
            "Requests refused before scoring: too_large (413), overloaded, timeout or "
            "no_model (503)",
            ["reason"],
            registry=self.metrics,
        )
        self.m_sample_dropped = Gauge(
            "slipway_gateway_sample_dropped_rows",
            "Drift-sample rows given up because writes kept failing",
            registry=self.metrics,
        )
        self.m_sample_errors = Gauge(
            "slipway_gateway_sample_write_errors",
            "Drift-sample flushes that failed (retried on the next flush)",
            registry=self.metrics,
        )

    # -- models -------------------------------------------------------------------------------

    def _load_variant(self, role: str, version: str) -> Variant:
        import mlflow.pyfunc

        if self.model_dir is not None:
            model = mlflow.pyfunc.load_model(str(self.model_dir))
        else:
            with fluent_registry(self.root):
                model = mlflow.pyfunc.load_model(f"models:/{self.config.model_name}/{version}")
        self._check_signature(version, model)
        to_frame = self._frame_builder()
        batch_rows = self.m_batch.labels(version)
        direct = _direct_predictor(model, self.columns, self.config)
        checked: list[bool] = []  # the direct call is compared with pyfunc's on a first batch

        def predict(rows: list[tuple[Any, ...]]) -> list[Any]:
            nonlocal direct
            batch_rows.observe(len(rows))
            if direct is not None:
                outputs = _to_list(direct(np.asarray(rows, dtype="float64")))
                if checked:
                    return outputs
                expected = _to_list(model.predict(to_frame(rows)))
                checked.append(True)
                if outputs == expected:
                    return outputs
                log.warning("version %s: direct predict differs from pyfunc; pyfunc it is", version)
                direct = None
            return _to_list(model.predict(to_frame(rows)))

        batcher = Batcher(
            predict,
            f"{role}-{version}",
            timeout=self.limits.predict_timeout_s,
            max_queued=self.limits.max_queued_requests,
            max_queued_rows=self.limits.max_queued_rows,
        )
        return self._variant(role, version, batcher)

    def _variant(self, role: str, version: str, batcher: Batcher) -> Variant:
        labels = (role, version)
        return Variant(
            role,
            version,
            batcher,
            {
                "requests": self.m_requests.labels(*labels),
                "errors": self.m_errors.labels(*labels),
                "latency": self.m_latency.labels(*labels),
                "model": self.m_model.labels(*labels),
                "predictions": {},
            },
        )

    def _check_signature(self, version: str, model: Any) -> None:
        """Requests are checked against the data contract; a model whose signature asks for
        other inputs would fail every one of them, so it is refused when it loads."""
        schema = model.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            return  # no named inputs declared: the contract is the only description
        wanted, given = set(schema.input_names()), set(self.columns)
        if wanted != given:
            missing, extra = sorted(wanted - given), sorted(given - wanted)
            raise ValueError(
                f"version {version}'s signature does not match the data contract (model wants "
                f"{missing or 'nothing more'} beyond it, the contract has {extra or 'nothing'} "
                "the model does not take): retrain it under the current contract"
            )

    def _frame_builder(self) -> Callable[[list[tuple[Any, ...]]], pd.DataFrame]:
        """Rows -> the DataFrame a model expects. All-numeric contracts (the common case) go
        through one numpy array: ~50x cheaper than per-column pandas conversion."""
        columns, dtypes = self.columns, self._dtypes
        rules = self.config.data.contract.columns.values()
        if all(r.dtype == "float" or (r.dtype == "int" and not r.nullable) for r in rules):
            ints = {c: "int64" for c, d in dtypes.items() if d == "int64"}

            def numeric(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
                frame = pd.DataFrame(np.asarray(rows, dtype="float64"), columns=columns)
                return frame.astype(ints) if ints else frame

            return numeric

        def mixed(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
            return pd.DataFrame.from_records(rows, columns=columns).astype(dtypes)

        return mixed

    def _wanted_versions(self) -> dict[str, str]:
        if self.model_dir is not None:
            return {CHAMPION: self.model_version}
        client = registry.client(self.root)
        wanted = {}
        for role in (CHAMPION, CHALLENGER):
            found = registry.version_by_alias(client, self.config.model_name, role)
            if found is not None:
                wanted[role] = str(found.version)
        return wanted

    async def reload(self) -> dict[str, Any]:
        """Serve whatever the registry aliases say now; restore weights from rollout state."""
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            wanted = await loop.run_in_executor(None, self._wanted_versions)
            self._champion_wanted = CHAMPION in wanted
            loaded, self.load_errors = {}, {}
            for role, version in wanted.items():
                current = next((v for v in self.variants.values() if v.version == version), None)
                if current is not None:
                    loaded[role] = self._variant(role, version, current.batcher)
                    continue
                try:
                    loaded[role] = await loop.run_in_executor(
                        None, self._load_variant, role, version
                    )
                except Exception as exc:  # a model that cannot serve is reported, not fatal
                    log.error("cannot load %s version %s: %s", role, version, exc)
                    self.load_errors[role] = f"version {version}: {type(exc).__name__}: {exc}"
                    if role == CHAMPION and CHAMPION in self.variants:
                        loaded[role] = self.variants[CHAMPION]  # keep serving the one we had
            kept = {id(v.batcher) for v in loaded.values()}
            for old in self.variants.values():
                if id(old.batcher) not in kept:
                    old.batcher.close()
            self.variants = loaded
            self.loaded.set()
            # The models and libraries just loaded are hundreds of thousands of long-lived
            # objects: moved out of the collector's reach, a full collection no longer walks
            # them (it stalled every caller for hundreds of ms, the p99 under load).
            gc.collect()
            gc.freeze()
            if self.model_dir is not None:
                log.info("serving version %s from %s", self.model_version, self.model_dir)
                return self.state()
            active = self.spoke.rollouts.open_rollout()
            if CHALLENGER in loaded and active and active.version == loaded[CHALLENGER].version:
                self._set_weight(active.weight, active.shadow)
                self.drop_unwatched_canary(active)
            else:
                self._set_weight(0, False)
            log.info("serving %s", {r: v.version for r, v in loaded.items()})
            return self.state()

    def _set_weight(self, weight: int, shadow: bool) -> None:
        self.weight, self.shadow = weight, shadow
        self.held_back = None
        self.m_weight.set(weight)

    def drop_unwatched_canary(self, active: RolloutRow | None) -> bool:
        """Champion only once the open rollout's controller lease has expired: no guardrails
        watch the challenger any more. Returns whether the challenger was dropped."""
        if not (self.weight or self.shadow) or active is None:
            return False
        if not lease_expired(active):
            return False
        was = "shadow" if self.shadow else f"{self.weight}%"
        self._set_weight(0, False)
        self.held_back = (
            f"rollout {active.id}: its controller's lease expired, so the challenger went from "
            f"{was} to 0; `slipway deploy --resume` continues it, `slipway rollback` aborts it"
        )
        log.warning("%s", self.held_back)
        return True

    async def check_lease(self) -> bool:
        """One periodic check (watch_lease_forever): drop an unwatched canary."""
        if self.model_dir is not None or not (self.weight or self.shadow):
            return False
        loop = asyncio.get_running_loop()
        active = await loop.run_in_executor(None, self.spoke.rollouts.open_rollout)
        return self.drop_unwatched_canary(active)

    async def watch_lease_forever(self) -> None:
        while True:
            await asyncio.sleep(LEASE_CHECK_SECONDS)
            try:
                await self.check_lease()
            except Exception as exc:  # state unreadable now: keep serving, ask again later
                log.error("cannot read the rollout state to check its lease: %s", exc)

    def set_weights(self, weight: int, shadow: bool) -> dict[str, Any]:
        if (weight > 0 or shadow) and CHALLENGER not in self.variants:
            raise LookupError("no challenger is loaded: set the alias, then POST /admin/reload")
        self._set_weight(weight, shadow)
        return self.state()

    def state(self) -> dict[str, Any]:
        return {
            "champion": self.variants[CHAMPION].version if CHAMPION in self.variants else None,
            "challenger": (
                self.variants[CHALLENGER].version if CHALLENGER in self.variants else None
            ),
            "weight": self.weight,
            "shadow": self.shadow,
            "seq": self._seq,
            "load_errors": dict(self.load_errors),
            "held_back": self.held_back,
        }

    # -- scoring ------------------------------------------------------------------------------

    def ready(self) -> bool:
        """A model is loaded and a request would be scored (readiness, not liveness)."""
        return self.loaded.is_set() and bool(self.variants)

    def route(self) -> str:
        """The role to score the next request. With no champion alias (a first deploy) the
        candidate is all there is; a champion that exists but failed to load keeps its share
        (its requests are refused with 503), so a challenger never gets more than its weight."""
        if CHAMPION not in self.variants and not self._champion_wanted:
            return CHALLENGER
        if self.weight <= 0 or CHALLENGER not in self.variants:
            return CHAMPION
        if self.weight >= 100:
            return CHALLENGER
        self._routed += 1
        n, w = self._routed, self.weight
        return CHALLENGER if (n * w) // 100 != ((n - 1) * w) // 100 else CHAMPION

    async def score(self, variant: Variant, rows: list[tuple[Any, ...]]) -> list[Any]:
        """Predict with one variant, recording readings, metrics and the drift sample."""
        start = time.perf_counter()
        children = variant.children
        try:
            outputs, model_seconds = await variant.batcher.predict(rows)
        except (Retired, Overloaded):
            raise  # not the model's answer: routed again, or shed before it was tried
        except Exception:  # the model failed or hung past its deadline: its error
            self._record(variant.role, False, time.perf_counter() - start, ())
            children["requests"].inc()
            children["errors"].inc()
            for listener in self.listeners:
                listener(variant.role, variant.version, False, ())
            raise
        elapsed = time.perf_counter() - start
        # The window keeps model time (comparable across variants whatever their share of
        # traffic); the histogram keeps the full time to answer (what callers feel).
        self._record(variant.role, True, model_seconds, tuple(outputs))
        children["requests"].inc()
        children["latency"].observe(elapsed)
        children["model"].observe(model_seconds)
        counters = children["predictions"]
        for value in outputs:
            counter = counters.get(value) if isinstance(value, int | str) else None
            if counter is None:
                counter = self._prediction_counter(variant, value)
            counter.inc()
        if self._samples is not None:
            self._samples.add(variant.role, variant.version, rows, outputs)
        if self._store is not None:
            self._store.add(variant.role, variant.version, rows, outputs)
        for listener in self.listeners:
            listener(variant.role, variant.version, True, outputs)
        return outputs

    def _prediction_counter(self, variant: Variant, value: Any) -> Any:
        """The counter of a predicted value, with at most MAX_PREDICTION_LABELS distinct
        labels per variant (the rest share OTHER_LABEL)."""
        label = _label(value)
        seen = self._prediction_labels.setdefault(variant.role + "/" + variant.version, set())
        if label not in seen:
            if len(seen) >= MAX_PREDICTION_LABELS:
                label = OTHER_LABEL
            else:
                seen.add(label)
        counter = self.m_predictions.labels(variant.role, variant.version, label)
        if isinstance(value, int | str) and label != OTHER_LABEL:
            variant.children["predictions"][value] = counter
        return counter

    async def flush_samples_forever(self) -> None:
        """Write the queued drift sample once a second, off the event loop. A failed write
        is logged (once per run of failures) and retried; the flusher never stops."""
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            await asyncio.sleep(SAMPLE_FLUSH_SECONDS)
            try:
                await loop.run_in_executor(None, self.flush_samples)
                if failing:
                    log.warning("drift sample writes recovered")
                failing = False
            except Exception as exc:
                if not failing:
                    log.error("drift sample write failed (rows kept, bounded): %s", exc)
                failing = True
            finally:
                for writer in (self._samples, self._store):
                    if writer is not None:
                        self.m_sample_dropped.set(writer.dropped)
                        self.m_sample_errors.set(
                            writer.put_errors
                            if isinstance(writer, StoreWriter)
                            else writer.write_errors
                        )

    def flush_samples(self, *, final: bool = False) -> None:
        """The local sample every call; the store's when a minute has passed (or `final`).
        Both are tried before an error of either is raised."""
        failed: Exception | None = None
        if self._samples is not None:
            try:
                self._samples.flush()
            except Exception as exc:
                failed = exc
        if self._store is not None:
            self._store.flush(force=final)
        if failed is not None:
            raise failed

    def _record(self, role: str, ok: bool, seconds: float, predictions: tuple[Any, ...]) -> None:
        """One request: every row's prediction is kept, so batched callers are judged for
        drift like single-row ones."""
        self._seq += 1
        self._events.append(ScoredRequest(self._seq, role, ok, seconds, predictions))

    def shadow_copy(self, rows: list[tuple[Any, ...]]) -> None:
        variant = self.variants.get(CHALLENGER)
        if variant is None:
            return
        task = asyncio.get_running_loop().create_task(self.score(variant, rows))
        self._background.add(task)
        task.add_done_callback(self._shadow_done)

    def _shadow_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled():
            # Recorded as a challenger error already (or the challenger was retired by a
            # reload): the caller never sees it.
            task.exception()

    def window(self, after: int) -> dict[str, Any]:
        """Readings per variant over the requests scored after sequence number `after`."""
        recent = []
        for event in reversed(self._events):  # newest first; stop at the window's start
            if event.seq <= after:
                break
            recent.append(event)
        recent.reverse()
        out: dict[str, Any] = {}
        for role in (CHAMPION, CHALLENGER):
            events = [e for e in recent if e.role == role]
            latencies = [e.seconds for e in events if e.ok]
            predictions = [p for e in events if e.ok for p in e.predictions]
            out[role] = {  # p95_ms: of the model time of each request's batch
                "requests": len(events),
                "errors": sum(1 for e in events if not e.ok),
                "p95_ms": float(np.percentile(latencies, 95) * 1000) if latencies else None,
                "predictions": predictions[-WINDOW_PREDICTIONS:],
                # The samples themselves: the judge compares both variants' distributions.
                "latencies_ms": [round(x * 1000, 3) for x in latencies[-WINDOW_PREDICTIONS:]],
            }
        out["seq"] = self._seq
        return out


def _label(value: Any) -> str:
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 2**53):
        return "continuous"  # keeps label cardinality bounded for regressors
    if isinstance(value, bool):
        return str(value).lower()
    return str(int(value)) if isinstance(value, int | float) else str(value)[:40]
