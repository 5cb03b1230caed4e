"""`serve` in the spoke's image: the gateway in single-model mode, on SageMaker's contract.

SageMaker runs `docker run IMAGE serve` (template/docker/serve execs `python -m
slipway.pipelines.serving.sagemaker serve`), unpacks the version's model.tar.gz into
/opt/ml/model and talks to port 8080: GET /ping (200 only once the model is loaded, answered
within its 2 s budget while loading) and POST /invocations (JSON in MLflow's four forms, or
text/csv). The process is the laptop gateway's app: the same contract check, batching,
limits, Prometheus metrics and access log. On SageMaker it also publishes the guardrail
metrics the endpoint's rollback alarms watch (serving.guardrail_metrics), with the endpoint
and variant names the spoke stack puts in the Model's environment (a container cannot learn
them otherwise).

Environment (all optional): SAGEMAKER_BIND_TO_PORT (default 8080), SAGEMAKER_MODEL_SERVER_WORKERS
(default: the usable cores), SAGEMAKER_MODEL_SERVER_TIMEOUT (predict deadline),
SLIPWAY_MODEL_DIR or SM_MODEL_DIR (default /opt/ml/model), SLIPWAY_SPOKE_ROOT (where
slipway.toml is; default the working directory, /app in the image), SLIPWAY_MODEL_VERSION,
SLIPWAY_ENDPOINT_NAME + SLIPWAY_VARIANT_NAME (publish guardrail metrics when both are set),
SLIPWAY_METRICS_INTERVAL_S, SLIPWAY_ACCESS_LOG (1/0), SLIPWAY_TRANSFORM (1 under a Batch
Transform job: /invocations answers per line, serving.transform), and the Limits variables.
GET /execution-parameters answers Batch Transform's question of how to call the container.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.serving.guardrail_metrics import ENDPOINT_ENV, VARIANT_ENV
from slipway.pipelines.settings import SettingError, Settings

if TYPE_CHECKING:
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.serving.sample_store import StoreWriter

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
MODEL_DIR_ENVS = ("SLIPWAY_MODEL_DIR", "SM_MODEL_DIR")
SPOKE_ROOT_ENV = "SLIPWAY_SPOKE_ROOT"
INTERVAL_ENV = "SLIPWAY_METRICS_INTERVAL_S"
ACCESS_LOG_ENV = "SLIPWAY_ACCESS_LOG"
TRANSFORM_ENV = "SLIPWAY_TRANSFORM"  # set by `slipway score --env`'s transform job
GRACEFUL_SHUTDOWN_S = 25  # SageMaker sends SIGKILL 30 s after SIGTERM
# The server stack (benchmarks/serving.py compares them); the defaults won on its numbers.
LOOP_ENV, HTTP_ENV = "SLIPWAY_SERVER_LOOP", "SLIPWAY_SERVER_HTTP"


class ServingSetupError(SlipwayError, ValueError):
    """The container's environment cannot serve; the message says which variable to fix."""

    exit_code = Exit.USAGE


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ServingSettings:
    model_dir: Path
    spoke_root: Path
    port: int
    workers: int
    model_version: str
    endpoint_name: str | None
    variant_name: str | None
    metrics_interval_s: float
    access_log: bool
    transform: bool = False  # under a Batch Transform job: answer per line (serving.transform)
    loop: str = "uvloop"  # uvicorn's event loop and HTTP parser
    http: str = "httptools"
    sample_store: str | None = None  # s3:// prefix for the drift sample (a KServe pod's)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        """The container's settings (settings.py); a bad value is a SettingError."""
        env = Settings.from_env(environ)
        return cls(
            model_dir=Path(env.model_dir or env.sm_model_dir or DEFAULT_MODEL_DIR),
            spoke_root=Path(env.spoke_root or os.getcwd()),
            port=env.port or DEFAULT_PORT,
            workers=env.workers or _cores(),
            model_version=env.model_version or "unknown",
            endpoint_name=env.endpoint_name,
            variant_name=env.variant_name,
            metrics_interval_s=60.0 if env.metrics_interval_s is None else env.metrics_interval_s,
            access_log=(env.access_log or "1") not in {"0", "false", "no"},
            loop=env.server_loop or "uvloop",
            http=env.server_http or "httptools",
            transform=(env.transform or "") in {"1", "true", "yes"},
            sample_store=env.sample_store,
        )

    def check(self) -> None:
        if not (self.model_dir / "MLmodel").is_file():
            raise ServingSetupError(
                f"{self.model_dir} holds no MLmodel: SageMaker unpacks the version's "
                "model.tar.gz there (MLmodel at its root, as `slipway deploy` packages it); "
                "point SLIPWAY_MODEL_DIR at an MLflow model directory to serve elsewhere"
            )
        if not (self.spoke_root / "slipway.toml").is_file():
            raise ServingSetupError(
                f"no slipway.toml in {self.spoke_root}: the data contract every request is "
                "checked against lives there; set SLIPWAY_SPOKE_ROOT to the spoke's directory"
            )
        from slipway.pipelines.serving.gateway import Limits

        Limits.from_env()  # a bad limit is a SettingError before the server starts
        if bool(self.endpoint_name) != bool(self.variant_name):
            raise ServingSetupError(
                f"set both {ENDPOINT_ENV} and {VARIANT_ENV} (the spoke stack does), or neither"
            )


def _configure_logging(access: bool) -> None:
    """One line per event on stdout (CloudWatch Logs takes the container's stdout): access
    lines are JSON objects, the rest `time level logger message`."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    gateway = logging.getLogger("slipway.gateway")
    if not gateway.handlers:
        gateway.addHandler(handler)
        gateway.setLevel(logging.INFO)
        gateway.propagate = False
    access_log = logging.getLogger("slipway.access")
    if not access_log.handlers:
        raw = logging.StreamHandler(sys.stdout)
        raw.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(raw)
        access_log.propagate = False
    access_log.setLevel(logging.INFO if access else logging.WARNING)


def _sample_store(settings: ServingSettings, config: SpokeConfig) -> StoreWriter | None:
    if not settings.sample_store:
        return None
    from slipway.pipelines.serving.sample_store import StoreLocation, StoreWriter, s3_put

    location = StoreLocation.of(settings.sample_store, config.model_name)
    logging.getLogger("slipway.gateway").info("drift sample to %s", location.uri)
    return StoreWriter(
        location,
        list(config.data.contract.columns),
        config.monitoring.sample_capacity,
        s3_put(),
    )


def create_app() -> Starlette:
    """The app of one worker process (uvicorn calls this factory in each worker)."""
    from slipway.pipelines.config import load_config
    from slipway.pipelines.serving import guardrail_metrics
    from slipway.pipelines.serving.gateway import Gateway, Limits, build_app

    settings = ServingSettings.from_env()
    _configure_logging(settings.access_log)
    config = load_config(settings.spoke_root)
    gateway = Gateway(
        settings.spoke_root,
        config,
        limits=Limits.from_env(),
        model_dir=settings.model_dir,
        model_version=settings.model_version,
        # SageMaker's data capture keeps the traffic sample (slipway monitor --env); a pod's
        # gateway (KServe) writes it to the team's object store when one is configured.
        sample=False,
        store=_sample_store(settings, config),
    )
    app = build_app(gateway)
    _add_transform_routes(app, gateway, settings)
    if not (settings.endpoint_name and settings.variant_name):
        return app
    import boto3

    reference = guardrail_metrics.load_reference(settings.model_dir)
    if reference is None:
        logging.getLogger("slipway.gateway").warning(
            "the model carries no %s: PredictionPSI is not published (package it with "
            "`slipway deploy`, which adds it)",
            guardrail_metrics.REFERENCE_FILE,
        )
    publisher = guardrail_metrics.GuardrailPublisher(
        settings.endpoint_name,
        settings.variant_name,
        reference,
        min_samples=config.monitoring.min_samples,
        put_metric_data=boto3.client("cloudwatch").put_metric_data,
        interval_s=settings.metrics_interval_s,
    )
    gateway.listeners.append(publisher.observe)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        publisher.start()
        async with inner(app):
            yield
        publisher.stop()

    app.router.lifespan_context = lifespan
    return app


def _add_transform_routes(app: Starlette, gateway: Any, settings: ServingSettings) -> None:
    """What Batch Transform needs of the image (serving.transform): `GET
    /execution-parameters` always, and under a transform job (SLIPWAY_TRANSFORM=1) an
    /invocations that answers per line, ahead of the gateway's own (first match wins)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from slipway.pipelines.serving import transform

    parameters = transform.execution_parameters(settings.workers)

    async def execution_parameters(request: Request) -> JSONResponse:
        return JSONResponse(parameters)

    routes = [Route("/execution-parameters", execution_parameters, methods=["GET"])]
    if settings.transform:
        invocations = transform.transform_invocations(gateway)
        routes.append(Route("/invocations", invocations, methods=["POST"]))
    app.router.routes[0:0] = routes


def main(argv: list[str] | None = None) -> int:
    """`serve` (what SageMaker passes); anything else is refused with a clear message."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["serve"]:
        print(
            f"this image serves models: run it with `serve` (got {args[:1] or 'nothing'}); "
            "training runs as Kubeflow steps, not as a SageMaker training job",
            file=sys.stderr,
        )
        return 2
    try:
        settings = ServingSettings.from_env()
        settings.check()
    except (ServingSetupError, SettingError) as exc:
        print(f"cannot serve: {exc}", file=sys.stderr)
        return exc.exit_code
    import uvicorn

    print(
        f"slipway serving {settings.model_dir} (version {settings.model_version}) on "
        f"0.0.0.0:{settings.port} with {settings.workers} worker(s)",
        flush=True,
    )
    uvicorn.run(
        "slipway.pipelines.serving.sagemaker:create_app",
        factory=True,
        host="0.0.0.0",
        port=settings.port,
        workers=settings.workers,
        loop=settings.loop,
        http=settings.http,
        access_log=False,  # the gateway writes its own, richer access lines
        log_level="info",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=60,  # SageMaker's front end keeps connections open
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
