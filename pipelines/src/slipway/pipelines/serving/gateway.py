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

The app is composed here from protocol adapters over one scoring core (`serving.core`):
MLflow's /invocations (`serving.mlflow_protocol`), the Open Inference Protocol's /v2
(`serving.oip`), the controller's /admin/*
(`serving.admin`), and the health and metrics routes below. The same app runs in the
SageMaker image in single-model mode (`model_dir`: one version from a directory, no
registry, no /admin; see `serving.sagemaker`). Limits an operator sets
(`Limits`): the body size (413), the model's deadline and queue (503 + Retry-After). Only a
request the model was given and failed (or timed out on) counts as an error of its variant;
a refused request (400, 413, 503 shed) never does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.serving.admin import admin_routes
from slipway.pipelines.serving.core import (
    CHALLENGER,
    CHAMPION,
    MAX_PREDICTION_LABELS,
    WINDOW_PREDICTIONS,
    Gateway,
    ScoredRequest,
    ScoreListener,
    Variant,
)
from slipway.pipelines.serving.http_common import _json
from slipway.pipelines.serving.limits import Limits
from slipway.pipelines.serving.mlflow_protocol import invocation_routes
from slipway.pipelines.serving.oip import oip_routes

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MAX_PREDICTION_LABELS",
    "WINDOW_PREDICTIONS",
    "Gateway",
    "Limits",
    "ScoreListener",
    "ScoredRequest",
    "Variant",
    "bind_socket",
    "build_app",
    "serve",
]

log = logging.getLogger("slipway.gateway")


def build_app(gateway: Gateway, admin_token: str | None = None) -> Starlette:
    """The HTTP surface: /invocations, /ping and /ready (readiness), /health (liveness and
    state), /metrics, and in the laptop mode the guarded /admin/*."""

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
            gateway.flush_samples(final=True)
        except Exception as exc:  # shutting down: say what was lost, do not crash the exit
            log.error("final drift sample write failed: %s", exc)

    routes = [
        *invocation_routes(gateway),
        *oip_routes(gateway),
        Route("/ping", ready, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/live", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if gateway.model_dir is None:  # one model from a directory has nothing to administer
        routes += admin_routes(gateway, admin_token)
    return Starlette(routes=routes, lifespan=lifespan)


def _log_load_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("model load failed: %s", task.exception())


def bind_socket(host: str, port: int) -> Any:
    """A listening socket, at once. SO_REUSEADDR lets a restart take the port over from its
    predecessor's TIME_WAIT, but on Linux it also lets a second socket bind a port nobody
    listens on yet: two `slipway serve` started together both bound, the second said
    "listening" and never listened. Listening before the model loads makes the second one
    fail with EADDRINUSE (the CLI says the port is in use)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's backlog
    except OSError:
        sock.close()
        raise
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
