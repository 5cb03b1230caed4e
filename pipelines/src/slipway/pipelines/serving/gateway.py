"""The embedded serving gateway: champion and challenger in one process, split by weight.

`slipway serve` runs this app under uvicorn on 127.0.0.1. It loads the versions holding the
`champion` and `challenger` aliases in-process, speaks MLflow's scoring protocol on
/invocations, and routes each request to one variant by a smooth deterministic split (a
challenger weight of 10 sends exactly one request in ten), or in shadow mode answers from the
champion while the challenger scores a copy. Every request is validated against the data
contract first (400 on anything wrong), then batched with its concurrent neighbours.

The controller (`slipway deploy`) drives it through /admin/*, reachable only from loopback or
with the admin token; it reads per-variant readings for exactly the requests that arrived
after its last weight change (`/admin/window?after=SEQ`), so each canary step is judged on
its own window. A restarted gateway takes its weights from the durable rollout state.

The same app runs in the SageMaker image in single-model mode (`model_dir`: one version
from a directory, no registry, no /admin; see `serving.sagemaker`). Limits an operator sets
(`Limits`): the body size (413), the model's deadline and queue (503 + Retry-After). Only a
request the model was given and failed (or timed out on) counts as an error of its variant;
a refused request (400, 413, 503 shed) never does.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import ipaddress
import logging
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from slipway.pipelines import registry
from slipway.pipelines.config import PANDAS_DTYPES, SpokeConfig
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.registry import CHALLENGER, CHAMPION, fluent_registry
from slipway.pipelines.serving.batching import Batcher, Overloaded, PredictTimeout, Retired
from slipway.pipelines.serving.drift_sample import SampleWriter
from slipway.pipelines.serving.parsing import BadRequest, parse_body
from slipway.pipelines.settings import Settings
from slipway.pipelines.spoke import RolloutRow, Spoke, lease_expired

log = logging.getLogger("slipway.gateway")
access_log = logging.getLogger("slipway.access")

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
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


@dataclass(frozen=True)
class Limits:
    """What one gateway accepts before it refuses work (all settable by environment)."""

    max_body_bytes: int = 6 * 1024 * 1024  # SageMaker's own InvokeEndpoint body limit
    predict_timeout_s: float = 30.0  # SageMaker gives up on a request at 60 s
    max_queued_requests: int = 1024  # per variant; beyond it requests are shed
    retry_after_s: int = 1
    inline_parse_bytes: int = 32 * 1024  # larger bodies are parsed off the event loop

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        """The limits in the environment (settings.py); a bad value is a SettingError."""
        env = Settings.from_env(environ)
        default = cls()
        timeout = env.predict_timeout_s or env.sagemaker_timeout_s  # the toolkits' name
        return cls(
            max_body_bytes=int(env.max_body_bytes or default.max_body_bytes),
            predict_timeout_s=timeout or default.predict_timeout_s,
            max_queued_requests=int(env.max_queued_requests or default.max_queued_requests),
        )


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


def _to_list(output: Any) -> list[Any]:
    """A pyfunc's output (array, Series, DataFrame, list) as one JSON-able value per row."""
    if isinstance(output, pd.DataFrame):
        output = output.iloc[:, 0] if output.shape[1] == 1 else output.to_numpy()
    arr = np.asarray(output)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr.tolist()


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
        counters = children["predictions"]
        for value in outputs:
            counter = counters.get(value) if isinstance(value, int | str) else None
            if counter is None:
                counter = self._prediction_counter(variant, value)
            counter.inc()
        if self._samples is not None:
            self._samples.add(variant.role, variant.version, rows, outputs)
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
                if self._samples is not None:
                    self.m_sample_dropped.set(self._samples.dropped)
                    self.m_sample_errors.set(self._samples.write_errors)

    def flush_samples(self) -> None:
        if self._samples is not None:
            self._samples.flush()

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


def _direct_predictor(
    model: Any, columns: list[str], config: SpokeConfig
) -> Callable[[np.ndarray], Any] | None:
    """The estimator's own `predict` on a float array, for scikit-learn models whose pyfunc
    predict is exactly that, over an all-numeric contract in the model's feature order.

    MLflow's pyfunc wrapper re-checks every batch against the signature and rebuilds the
    frame (~1-2 ms a call, most of a one-row request's cost); the gateway has already checked
    each row against the contract, and the signature against the contract at load, so the
    wrapper adds only time. The first batch is still scored both ways and compared.
    """
    flavor = model.metadata.flavors.get("python_function", {})
    if flavor.get("loader_module") != "mlflow.sklearn":
        return None
    if flavor.get("predict_fn", "predict") != "predict":
        return None
    rules = config.data.contract.columns.values()
    if not all(r.dtype in ("float", "int") and not r.nullable for r in rules):
        return None
    try:
        raw = model.get_raw_model()
    except Exception:
        return None
    names = getattr(raw, "feature_names_in_", None)
    if names is not None and [str(n) for n in names] != columns:
        return None
    if not callable(getattr(raw, "predict", None)):
        return None
    # Fitted on a DataFrame, scikit-learn warns on every array; the names were checked above.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    return raw.predict


def _label(value: Any) -> str:
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 2**53):
        return "continuous"  # keeps label cardinality bounded for regressors
    if isinstance(value, bool):
        return str(value).lower()
    return str(int(value)) if isinstance(value, int | float) else str(value)[:40]


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_is_loopback(host_header: str) -> bool:
    """The Host header names this machine's loopback (a DNS-rebound page's does not)."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8780
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host in LOOPBACK_NAMES or _is_loopback(host)


def _token_matches(header: str, token: str | None) -> bool:
    """Constant-time compare on bytes: a header holding non-ASCII (latin-1 decoded by the
    server) must be refused, not crash hmac's str comparison."""
    if not token:
        return False
    given = header.removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class _TooLarge(SlipwayError):
    """The body passed the limit: answered 413 before it is read whole."""


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes `limit`: a huge upload is never held."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(gateway: Gateway, admin_token: str | None = None) -> Starlette:
    """The HTTP surface: /invocations, /ping and /ready (readiness), /health (liveness and
    state), /metrics, and in the laptop mode the guarded /admin/*."""
    limits = gateway.limits
    contract = gateway.config.data.contract
    retry_after = {"retry-after": str(limits.retry_after_s)}
    logging_on = access_log.isEnabledFor(logging.INFO)

    def admin_refusal(request: Request) -> str | None:
        """Why an admin request is refused, or None. Admin callers are the CLI and the
        controller, never a browser: any Origin or cross-site fetch is refused (a page on
        another site must not drive a rollout), and loopback trust needs a loopback Host
        (a DNS-rebound name resolving to 127.0.0.1 carries its own Host)."""
        headers = request.headers
        if "origin" in headers or headers.get("sec-fetch-site", "none") not in {
            "none",
            "same-origin",
        }:
            return "admin operations are not reachable from a web page (Origin present)"
        if request.method == "POST":
            mime = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if mime != "application/json":
                return "admin POSTs must be application/json"
        if _token_matches(headers.get("authorization", ""), admin_token):
            return None
        if _is_loopback(request.client.host if request.client else None) and _host_is_loopback(
            headers.get("host", "")
        ):
            return None
        return (
            "admin operations are reachable only from loopback (Host 127.0.0.1 or localhost) "
            "or with the admin token (Authorization: Bearer $SLIPWAY_ADMIN_TOKEN)"
        )

    def refuse(reason: str) -> Response:
        return _json({"error": reason}, 403)

    def log_access(
        request: Request, status: int, started: float, rows: int, role: str, version: str
    ) -> None:
        if logging_on:
            access_log.info(
                orjson.dumps(
                    {
                        "ts": round(time.time(), 3),
                        "method": request.method,
                        "path": request.url.path,
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                        "rows": rows,
                        "variant": role,
                        "version": version,
                        "client": request.client.host if request.client else None,
                        "inference_id": request.headers.get("x-amzn-sagemaker-inference-id"),
                    }
                ).decode()
            )

    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        role, version, rows_n = "", "", 0

        def answer(response: Response) -> Response:
            log_access(request, response.status_code, started, rows_n, role, version)
            return response

        try:
            body = await _read_body(request, limits.max_body_bytes)
        except ClientDisconnect:  # the caller left before sending its request: nobody to answer
            return Response(status_code=400)
        except _TooLarge:
            gateway.m_refused.labels("too_large").inc()
            return answer(
                _json(
                    {
                        "error_code": "TOO_LARGE",
                        "message": f"request body over {limits.max_body_bytes} bytes; split "
                        "it into smaller requests",
                    },
                    413,
                )
            )
        content_type = request.headers.get("content-type", "")
        try:
            if len(body) > limits.inline_parse_bytes:  # keep the event loop answering others
                rows = await asyncio.get_running_loop().run_in_executor(
                    None, parse_body, body, content_type, contract
                )
            else:
                rows = parse_body(body, content_type, contract)
        except BadRequest as exc:
            gateway.m_bad.inc()
            return answer(_json({"error_code": "BAD_REQUEST", "message": str(exc)}, 400))
        rows_n = len(rows)
        if not gateway.ready():
            gateway.m_refused.labels("no_model").inc()
            message = (
                "the model is still loading; retry shortly"
                if not gateway.loaded.is_set()
                else "no champion is deployed yet: run `slipway deploy`"
            )
            return answer(_json({"error_code": "NO_MODEL", "message": message}, 503, retry_after))
        role = gateway.route()
        variant = gateway.variants.get(role)
        if variant is None:  # the champion's alias exists but its version failed to load
            gateway.m_refused.labels("no_model").inc()
            return answer(
                _json(
                    {
                        "error_code": "NO_MODEL",
                        "message": f"the {role} could not be loaded: "
                        f"{gateway.load_errors.get(role, 'not loaded')}",
                    },
                    503,
                    retry_after,
                )
            )
        if gateway.shadow and role == CHAMPION:
            gateway.shadow_copy(rows)
        version = variant.version
        try:
            try:
                predictions = await gateway.score(variant, rows)
            except Retired:  # a reload swapped the variant while this request was parsed
                role = gateway.route()
                variant = gateway.variants[role]
                version = variant.version
                predictions = await gateway.score(variant, rows)
        except (Overloaded, PredictTimeout) as exc:
            reason = "overloaded" if isinstance(exc, Overloaded) else "timeout"
            gateway.m_refused.labels(reason).inc()
            return answer(
                _json(
                    {"error_code": reason.upper(), "variant": role, "message": str(exc)},
                    503,
                    retry_after,
                )
            )
        except Exception as exc:
            return answer(
                _json(
                    {
                        "error_code": "MODEL_ERROR",
                        "variant": role,
                        "version": version,
                        "message": f"{type(exc).__name__}: {exc}"[:500],
                    },
                    500,
                )
            )
        return answer(
            Response(
                orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY),
                media_type="application/json",
                headers={"x-slipway-variant": role, "x-slipway-version": version},
            )
        )

    async def health(request: Request) -> Response:
        """Liveness: the process answers; the body says what it serves."""
        state = gateway.state()
        status = "ok" if state["champion"] else "no_champion"
        return _json({"status": status, "ready": gateway.ready(), **state})

    async def ready(request: Request) -> Response:
        """Readiness (SageMaker's /ping): 200 only once a model is loaded; never blocks."""
        if gateway.ready():
            return Response(b"\n", media_type="text/plain")
        return Response(b"loading\n" if not gateway.loaded.is_set() else b"no model\n", 503)

    async def metrics(request: Request) -> Response:
        return Response(
            generate_latest(gateway.metrics), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def admin_state(request: Request) -> Response:
        if reason := admin_refusal(request):
            return refuse(reason)
        return _json(gateway.state())

    async def admin_weights(request: Request) -> Response:
        if reason := admin_refusal(request):
            return refuse(reason)
        try:
            body = orjson.loads(await request.body())
            weight, shadow = body["challenger"], body.get("shadow", False)
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
                raise ValueError
            if not isinstance(shadow, bool):  # "false" is a string, and a truthy one
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _json(
                {"error": 'body must be {"challenger": <0..100>, "shadow": <true|false>}'}, 400
            )
        try:
            return _json(gateway.set_weights(weight, shadow))
        except LookupError as exc:
            return _json({"error": str(exc)}, 409)

    async def admin_reload(request: Request) -> Response:
        if reason := admin_refusal(request):
            return refuse(reason)
        return _json(await gateway.reload())

    async def admin_window(request: Request) -> Response:
        if reason := admin_refusal(request):
            return refuse(reason)
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return _json({"error": "after must be an integer sequence number"}, 400)
        return _json(gateway.window(after))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        loading = None
        if gateway.model_dir is not None:
            # SageMaker wants the socket accepted within 250 ms and /ping answered while the
            # model loads: load in the background, /ping says 503 until it is in.
            loading = loop.create_task(gateway.reload())
            loading.add_done_callback(_log_load_failure)
        else:
            await gateway.reload()
        flusher = loop.create_task(gateway.flush_samples_forever())
        watcher = loop.create_task(gateway.watch_lease_forever())
        yield
        flusher.cancel()
        watcher.cancel()
        if loading is not None:
            loading.cancel()
        try:
            gateway.flush_samples()
        except Exception as exc:  # shutting down: say what was lost, do not crash the exit
            log.error("final drift sample write failed: %s", exc)

    routes = [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ready, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/live", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if gateway.model_dir is None:  # one model from a directory has nothing to administer
        routes += [
            Route("/admin/state", admin_state, methods=["GET"]),
            Route("/admin/weights", admin_weights, methods=["POST"]),
            Route("/admin/reload", admin_reload, methods=["POST"]),
            Route("/admin/window", admin_window, methods=["GET"]),
        ]
    return Starlette(routes=routes, lifespan=lifespan)


def _log_load_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("model load failed: %s", task.exception())


def bind_socket(host: str, port: int) -> Any:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def serve(
    root: Path,
    config: SpokeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8780,
    admin_token: str | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Bind (port 0 picks a free one), announce the URL, then serve until interrupted."""
    import socket

    import uvicorn

    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    app = build_app(Gateway(root, config, limits=Limits.from_env()), admin_token)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_keep_alive=30,
            loop="uvloop",
            http="httptools",
        )
    )
    announce(f"http://{shown}:{bound}")
    server.run(sockets=[sock])
