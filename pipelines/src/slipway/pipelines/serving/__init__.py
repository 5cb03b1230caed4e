"""Serving: the gateway that answers predictions for champion and challenger.

Modules: `gateway` (the ASGI app and its server), `client` (talking to a running gateway),
`batching` (concurrent requests into one predict call), `parsing` (scoring requests checked
against the data contract) and `drift_sample` (the bounded sample drift monitoring reads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines._lazy import lazy_exports

if TYPE_CHECKING:
    from slipway.pipelines.serving.batching import (
        Batcher,
        Retired,
    )
    from slipway.pipelines.serving.client import (
        BadGatewayUrl,
        GatewayClient,
        GatewayError,
        GatewayUnreachable,
        resolve_url,
    )
    from slipway.pipelines.serving.drift_sample import (
        SampleWriter,
        read_samples,
    )
    from slipway.pipelines.serving.gateway import (
        Gateway,
        build_app,
        serve,
    )
    from slipway.pipelines.serving.parsing import (
        BadRequest,
        parse_rows,
    )

_EXPORTS = {
    "Gateway": "gateway",
    "build_app": "gateway",
    "serve": "gateway",
    "GatewayClient": "client",
    "GatewayError": "client",
    "GatewayUnreachable": "client",
    "BadGatewayUrl": "client",
    "resolve_url": "client",
    "Batcher": "batching",
    "Retired": "batching",
    "BadRequest": "parsing",
    "parse_rows": "parsing",
    "SampleWriter": "drift_sample",
    "read_samples": "drift_sample",
}
__all__ = [
    "BadGatewayUrl",
    "BadRequest",
    "Batcher",
    "Gateway",
    "GatewayClient",
    "GatewayError",
    "GatewayUnreachable",
    "Retired",
    "SampleWriter",
    "build_app",
    "parse_rows",
    "read_samples",
    "resolve_url",
    "serve",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
