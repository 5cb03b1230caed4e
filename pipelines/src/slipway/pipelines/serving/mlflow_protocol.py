"""MLflow's scoring protocol, POST /invocations: what `mlflow models serve` answers and what
SageMaker's serving contract sends (JSON in MLflow's four forms, or text/csv)."""

from __future__ import annotations

import asyncio
import time

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from slipway.pipelines.serving.batching import Overloaded, PredictTimeout, Retired
from slipway.pipelines.serving.core import CHAMPION, Gateway
from slipway.pipelines.serving.http_common import _json, _read_body, _TooLarge, access_logger
from slipway.pipelines.serving.parsing import BadRequest, parse_body


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

    return [Route("/invocations", invocations, methods=["POST"])]
