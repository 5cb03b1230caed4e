"""The controller's surface, /admin/*: state, weights, reload and the readings window.

Reachable only from loopback (with a loopback Host) or with the admin token; never from a web
page. Single-model mode (one version from a directory) has nothing to administer and mounts
none of it.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slipway.pipelines.serving.core import Gateway
from slipway.pipelines.serving.http_common import (
    _host_is_loopback,
    _is_loopback,
    _json,
    _token_matches,
)


def admin_routes(gateway: Gateway, admin_token: str | None) -> list[Route]:
    """The guarded /admin/* routes of `gateway`."""

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

    return [
        Route("/admin/state", admin_state, methods=["GET"]),
        Route("/admin/weights", admin_weights, methods=["POST"]),
        Route("/admin/reload", admin_reload, methods=["POST"]),
        Route("/admin/window", admin_window, methods=["GET"]),
    ]
