"""The Open Inference Protocol (v2, KServe's and Triton's REST API) over the scoring core.

What KServe probes and its clients call: GET /v2 (server metadata), /v2/health/live,
/v2/health/ready (503 until a model is loaded, so a pod is not sent traffic early),
/v2/models/{name}[/versions/{v}]/ready, GET /v2/models/{name}[/versions/{v}] (inputs from the
data contract, the output typed by the task) and POST /v2/models/{name}[/versions/{v}]/infer.
Errors are `{"error": message}` as the protocol says. A request names a version to score on
that one (a per-revision URL, as KServe's tag routing gives); without one it takes the
champion/challenger split like every other request, and is batched, counted in the
controller's window, the metrics and the drift sample the same way.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from slipway.pipelines import __version__
from slipway.pipelines.serving.core import Gateway
from slipway.pipelines.serving.http_common import _json, _read_body, _TooLarge, access_logger
from slipway.pipelines.serving.oip_tensors import (
    decode_infer,
    encode_outputs,
    input_specs,
    output_spec,
)
from slipway.pipelines.serving.parsing import LARGE_PARSES, BadRequest, decode_json
from slipway.pipelines.serving.scoring import ScoringRefused, score_rows

BINARY_HEADER = "inference-header-content-length"


def oip_routes(gateway: Gateway) -> list[Route]:
    """The /v2 routes of `gateway`."""
    config = gateway.config
    model_name, task = config.model_name, config.training.task
    contract = config.data.contract
    limits = gateway.limits
    retry_after = {"retry-after": str(limits.retry_after_s)}
    log_access = access_logger()
    # The datatype each version's classes were last answered in (model metadata says it).
    answered: dict[str, str] = {}

    def error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
        return _json({"error": message}, status, headers)

    def unknown_model(request: Request) -> Response | None:
        """404 unless the path names this gateway's model (and a version it serves)."""
        name = request.path_params["name"]
        if name != model_name:
            return error(
                f"model {name!r} is not served here; this gateway serves {model_name!r}", 404
            )
        version = request.path_params.get("version")
        if version is not None and version not in served_versions():
            return error(
                f"version {version!r} of {model_name!r} is not loaded here; loaded: "
                f"{served_versions() or 'none'}",
                404,
            )
        return None

    def served_versions() -> list[str]:
        return [v.version for v in gateway.variants.values()]

    async def server_metadata(request: Request) -> Response:
        return _json({"name": "slipway", "version": __version__, "extensions": []})

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        return _json({"ready": gateway.ready()}, 200 if gateway.ready() else 503)

    async def model_ready(request: Request) -> Response:
        if refusal := unknown_model(request):
            return refusal
        ok = gateway.ready()
        return _json({"name": model_name, "ready": ok}, 200 if ok else 503)

    async def model_metadata(request: Request) -> Response:
        if refusal := unknown_model(request):
            return refusal
        version = request.path_params.get("version")
        versions = [version] if version else served_versions()
        seen = next((answered[v] for v in versions if v in answered), None)
        return _json(
            {
                "name": model_name,
                "versions": versions,
                "platform": "mlflow",
                "inputs": [spec.as_json() for spec in input_specs(contract)],
                "outputs": [output_spec(task, seen).as_json()],
            }
        )

    async def infer(request: Request) -> Response:
        started = time.perf_counter()
        role, version, rows_n = "", "", 0

        def answer(response: Response) -> Response:
            log_access(request, response.status_code, started, rows_n, role, version)
            return response

        if refusal := unknown_model(request):
            return answer(refusal)
        if BINARY_HEADER in request.headers:
            gateway.m_bad.inc()
            return answer(
                error(
                    "the binary tensor extension is not supported here: send the tensors' "
                    "values as JSON 'data' (InferInput.set_data_from_numpy(..., "
                    "binary_data=False))",
                    400,
                )
            )
        try:
            body = await _read_body(request, limits.max_body_bytes)
        except ClientDisconnect:
            return Response(status_code=400)
        except _TooLarge:
            gateway.m_refused.labels("too_large").inc()
            return answer(error(f"request body over {limits.max_body_bytes} bytes; split it", 413))
        try:
            if len(body) > limits.inline_parse_bytes:  # keep the event loop answering others
                decoded = await asyncio.get_running_loop().run_in_executor(
                    LARGE_PARSES, _decode, body, contract
                )
            else:
                decoded = _decode(body, contract)
        except BadRequest as exc:
            gateway.m_bad.inc()
            return answer(error(str(exc), 400))
        rows_n = len(decoded.rows)
        try:
            scored = await score_rows(gateway, decoded.rows, request.path_params.get("version"))
        except LookupError:  # the version was unloaded by a reload while this was parsed
            return answer(error("that version is no longer loaded here; retry", 404))
        except ScoringRefused as exc:
            role, version = exc.role, exc.version
            headers = retry_after if exc.status == 503 else None
            return answer(error(f"{exc.code}: {exc}", exc.status, headers))
        role, version = scored.role, scored.version
        output = encode_outputs(task, scored.predictions)
        answered[version] = output["datatype"]
        payload: dict[str, Any] = {
            "model_name": model_name,
            "model_version": version,
            "outputs": [output],
        }
        if decoded.request_id is not None:
            payload["id"] = decoded.request_id
        return answer(
            Response(
                orjson.dumps(payload),
                media_type="application/json",
                headers={"x-slipway-variant": role, "x-slipway-version": version},
            )
        )

    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route(model, model_metadata, methods=["GET"]),
        Route(versioned, model_metadata, methods=["GET"]),
        Route(f"{model}/ready", model_ready, methods=["GET"]),
        Route(f"{versioned}/ready", model_ready, methods=["GET"]),
        Route(f"{model}/infer", infer, methods=["POST"]),
        Route(f"{versioned}/infer", infer, methods=["POST"]),
    ]


def _decode(body: bytes, contract: Any) -> Any:
    return decode_infer(decode_json(body), contract)
