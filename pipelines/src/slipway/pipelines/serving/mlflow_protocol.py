"""MLflow's scoring protocol, POST /invocations: what `mlflow models serve` answers and what
SageMaker's serving contract sends (JSON in MLflow's four forms, or text/csv)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from slipway.pipelines.serving.core import Gateway
from slipway.pipelines.serving.http_common import _json, _read_body, _TooLarge, access_logger
from slipway.pipelines.serving.parsing import LARGE_PARSES, BadRequest, parse_body
from slipway.pipelines.serving.scoring import ModelFailed, ScoringRefused, Shed, score_rows


def invocation_routes(gateway: Gateway) -> list[Route]:
    """POST /invocations over `gateway`'s scoring core."""
    limits = gateway.limits
    contract = gateway.config.data.contract
    retry_after = {"retry-after": str(limits.retry_after_s)}
    log_access = access_logger()

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
                    LARGE_PARSES, parse_body, body, content_type, contract
                )
            else:
                rows = parse_body(body, content_type, contract)
        except BadRequest as exc:
            gateway.m_bad.inc()
            return answer(_json({"error_code": "BAD_REQUEST", "message": str(exc)}, 400))
        rows_n = len(rows)
        try:
            scored = await score_rows(gateway, rows)
        except ScoringRefused as exc:
            role, version = exc.role, exc.version
            payload: dict[str, Any] = {"error_code": exc.code, "message": str(exc)}
            if isinstance(exc, Shed):
                payload = {"error_code": exc.error_code, "variant": role, "message": str(exc)}
            elif isinstance(exc, ModelFailed):
                payload = {"error_code": exc.code, "variant": role, "version": version}
                payload["message"] = str(exc)
            headers = retry_after if exc.status == 503 else None
            return answer(_json(payload, exc.status, headers))
        role, version, predictions = scored.role, scored.version, scored.predictions
        return answer(
            Response(
                orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY),
                media_type="application/json",
                headers={"x-slipway-variant": role, "x-slipway-version": version},
            )
        )

    return [Route("/invocations", invocations, methods=["POST"])]
