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
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from slipway.pipelines import registry
from slipway.pipelines.config import PANDAS_DTYPES, SpokeConfig
from slipway.pipelines.registry import fluent_registry
from slipway.pipelines.rollout import state as rollout_state
from slipway.pipelines.serving.batching import Batcher, Retired
from slipway.pipelines.serving.drift_sample import SampleWriter
from slipway.pipelines.serving.parsing import BadRequest, parse_rows

log = logging.getLogger("slipway.gateway")

CHAMPION = "champion"
CHALLENGER = "challenger"
WINDOW_EVENTS = 200_000  # readings kept for /admin/window: minutes of traffic at full speed
WINDOW_PREDICTIONS = 5_000  # prediction values returned per variant for drift judgement
SAMPLE_FLUSH_SECONDS = 1.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Variant:
    role: str
    version: str
    batcher: Batcher


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

    def __init__(self, root: Path, config: SpokeConfig) -> None:
        self.root = root
        self.config = config
        self.columns = list(config.data.contract.columns)
        self._dtypes = {
            name: PANDAS_DTYPES[r.dtype] for name, r in config.data.contract.columns.items()
        }
        self.variants: dict[str, Variant] = {}
        self.load_errors: dict[str, str] = {}  # role -> why its version could not be served
        self.weight = 0
        self.shadow = False
        self._routed = 0
        self._seq = 0
        # (seq, role, ok, model seconds, predictions) per request
        self._events: deque[tuple[int, str, bool, float, tuple[Any, ...]]] = deque(
            maxlen=WINDOW_EVENTS
        )
        self._background: set[asyncio.Task] = set()
        self._samples = SampleWriter(root, self.columns, config.monitoring.sample_capacity)
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

    # -- models -------------------------------------------------------------------------------

    def _load_variant(self, role: str, version: str) -> Variant:
        import mlflow.pyfunc

        with fluent_registry(self.root):
            model = mlflow.pyfunc.load_model(f"models:/{self.config.model_name}/{version}")
        self._check_signature(version, model)
        to_frame = self._frame_builder()
        batch_rows = self.m_batch.labels(version)

        def predict(rows: list[tuple[Any, ...]]) -> list[Any]:
            batch_rows.observe(len(rows))
            return _to_list(model.predict(to_frame(rows)))

        return Variant(role=role, version=version, batcher=Batcher(predict, f"{role}-{version}"))

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
            loaded, self.load_errors = {}, {}
            for role, version in wanted.items():
                current = next((v for v in self.variants.values() if v.version == version), None)
                if current is not None:
                    loaded[role] = Variant(role, version, current.batcher)
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
            active = rollout_state.open_rollout(self.root)
            if CHALLENGER in loaded and active and active.version == loaded[CHALLENGER].version:
                self._set_weight(active.weight, active.shadow)
            else:
                self._set_weight(0, False)
            log.info("serving %s", {r: v.version for r, v in loaded.items()})
            return self.state()

    def _set_weight(self, weight: int, shadow: bool) -> None:
        self.weight, self.shadow = weight, shadow
        self.m_weight.set(weight)

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
        }

    # -- scoring ------------------------------------------------------------------------------

    def route(self) -> str:
        if CHAMPION not in self.variants:  # first deploy: the candidate is all there is
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
        labels = (variant.role, variant.version)
        try:
            outputs, model_seconds = await variant.batcher.predict(rows)
        except Retired:
            raise  # not the model's fault: the caller routes again
        except Exception:
            self._record(variant.role, False, time.perf_counter() - start, ())
            self.m_requests.labels(*labels).inc()
            self.m_errors.labels(*labels).inc()
            raise
        elapsed = time.perf_counter() - start
        # The window keeps model time (comparable across variants whatever their share of
        # traffic); the histogram keeps the full time to answer (what callers feel).
        self._record(variant.role, True, model_seconds, tuple(outputs))
        self.m_requests.labels(*labels).inc()
        self.m_latency.labels(*labels).observe(elapsed)
        for value in outputs:
            self.m_predictions.labels(*labels, _label(value)).inc()
        self._samples.add(variant.role, variant.version, rows, outputs)
        return outputs

    async def flush_samples_forever(self) -> None:
        """Write the queued drift sample once a second, off the event loop."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SAMPLE_FLUSH_SECONDS)
            await loop.run_in_executor(None, self._samples.flush)

    def flush_samples(self) -> None:
        self._samples.flush()

    def _record(self, role: str, ok: bool, seconds: float, predictions: tuple[Any, ...]) -> None:
        """One request: every row's prediction is kept, so batched callers are judged for
        drift like single-row ones."""
        self._seq += 1
        self._events.append((self._seq, role, ok, seconds, predictions))

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
            if event[0] <= after:
                break
            recent.append(event)
        recent.reverse()
        out: dict[str, Any] = {}
        for role in (CHAMPION, CHALLENGER):
            events = [e for e in recent if e[1] == role]
            latencies = [e[3] for e in events if e[2]]
            predictions = [p for e in events if e[2] for p in e[4]]
            out[role] = {  # p95_ms: of the model time of each request's batch
                "requests": len(events),
                "errors": sum(1 for e in events if not e[2]),
                "p95_ms": float(np.percentile(latencies, 95) * 1000) if latencies else None,
                "predictions": predictions[-WINDOW_PREDICTIONS:],
                # The samples themselves: the judge compares both variants' distributions.
                "latencies_ms": [round(x * 1000, 3) for x in latencies[-WINDOW_PREDICTIONS:]],
            }
        out["seq"] = self._seq
        return out


def _label(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return "continuous"  # keeps label cardinality bounded for regressors
    return str(int(value)) if isinstance(value, int | float) else str(value)[:40]


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(gateway: Gateway, admin_token: str | None = None) -> Starlette:
    """The HTTP surface: /invocations, /health, /metrics and the guarded /admin/*."""

    def admin_allowed(request: Request) -> bool:
        if _is_loopback(request.client.host if request.client else None):
            return True
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return bool(admin_token) and hmac.compare_digest(given, admin_token or "")

    def refuse() -> JSONResponse:
        return JSONResponse(
            {
                "error": "admin operations are reachable only from loopback or with the admin "
                "token (Authorization: Bearer $SLIPWAY_ADMIN_TOKEN)"
            },
            status_code=403,
        )

    async def invocations(request: Request) -> Response:
        try:
            body = await request.body()
        except ClientDisconnect:  # the caller left before sending its request: nobody to answer
            return Response(status_code=400)
        try:
            rows = parse_rows(body, gateway.config.data.contract)
        except BadRequest as exc:
            gateway.m_bad.inc()
            return JSONResponse({"error_code": "BAD_REQUEST", "message": str(exc)}, 400)
        if CHAMPION not in gateway.variants and CHALLENGER not in gateway.variants:
            return JSONResponse(
                {
                    "error_code": "NO_MODEL",
                    "message": "no champion is deployed yet: run `slipway deploy`",
                },
                503,
            )
        role = gateway.route()
        if gateway.shadow and role == CHAMPION:
            gateway.shadow_copy(rows)
        variant = gateway.variants[role]
        try:
            try:
                predictions = await gateway.score(variant, rows)
            except Retired:  # a reload swapped the variant while this request was parsed
                role = gateway.route()
                variant = gateway.variants[role]
                predictions = await gateway.score(variant, rows)
        except Exception as exc:
            return JSONResponse(
                {
                    "error_code": "MODEL_ERROR",
                    "variant": role,
                    "version": variant.version,
                    "message": f"{type(exc).__name__}: {exc}"[:500],
                },
                500,
            )
        return Response(
            json.dumps({"predictions": predictions}),
            media_type="application/json",
            headers={"x-slipway-variant": role, "x-slipway-version": variant.version},
        )

    async def health(request: Request) -> Response:
        state = gateway.state()
        status = "ok" if state["champion"] else "no_champion"
        return JSONResponse({"status": status, **state})

    async def metrics(request: Request) -> Response:
        return Response(
            generate_latest(gateway.metrics), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def admin_state(request: Request) -> Response:
        if not admin_allowed(request):
            return refuse()
        return JSONResponse(gateway.state())

    async def admin_weights(request: Request) -> Response:
        if not admin_allowed(request):
            return refuse()
        try:
            body = json.loads(await request.body())
            weight, shadow = body["challenger"], bool(body.get("shadow", False))
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"error": 'body must be {"challenger": <0..100>, "shadow": <bool>}'}, 400
            )
        try:
            return JSONResponse(gateway.set_weights(weight, shadow))
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, 409)

    async def admin_reload(request: Request) -> Response:
        if not admin_allowed(request):
            return refuse()
        return JSONResponse(await gateway.reload())

    async def admin_window(request: Request) -> Response:
        if not admin_allowed(request):
            return refuse()
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return JSONResponse({"error": "after must be an integer sequence number"}, 400)
        return JSONResponse(gateway.window(after))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.reload()
        flusher = asyncio.get_running_loop().create_task(gateway.flush_samples_forever())
        yield
        flusher.cancel()
        gateway.flush_samples()

    return Starlette(
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/ping", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/admin/state", admin_state, methods=["GET"]),
            Route("/admin/weights", admin_weights, methods=["POST"]),
            Route("/admin/reload", admin_reload, methods=["POST"]),
            Route("/admin/window", admin_window, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


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

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    app = build_app(Gateway(root, config), admin_token)
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30
        )
    )
    announce(f"http://{shown}:{bound}")
    server.run(sockets=[sock])
