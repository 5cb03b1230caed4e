"""What every HTTP adapter of the gateway shares: JSON answers, bounded body reads, the
admin guard's loopback and token checks, and the access log line."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from slipway.pipelines.errors import SlipwayError

access_log = logging.getLogger("slipway.access")

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


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


AccessLog = Callable[[Request, int, float, int, str, str], None]


def access_logger() -> AccessLog:
    """The access-log writer of one app: one JSON line per request when the slipway.access
    log is on at build time, else a no-op (decided once, not per request)."""
    logging_on = access_log.isEnabledFor(logging.INFO)

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

    return log_access
