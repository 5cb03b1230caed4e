"""Talk to a running gateway: where it is (`--url`, then SLIPWAY_GATEWAY_URL, then
slipway.toml deploy.gateway_url) and its admin operations, with one error for 'not there'."""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

import httpx

from slipway.pipelines.config import SpokeConfig, gateway_url_problem
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.redact import shown_url
from slipway.pipelines.serving.window import Window
from slipway.pipelines.settings import Settings

URL_ENV = "SLIPWAY_GATEWAY_URL"
TOKEN_ENV = "SLIPWAY_ADMIN_TOKEN"


class GatewayError(SlipwayError, RuntimeError):
    """The gateway answered an admin call with an error; the message carries its answer."""


class GatewayUnreachable(GatewayError):
    """No gateway answered at the URL; the message says how to start one or point at it."""

    exit_code = Exit.UNREACHABLE


class BadGatewayUrl(SlipwayError, ValueError):
    """The gateway URL (--url, SLIPWAY_GATEWAY_URL or slipway.toml) does not parse."""

    exit_code = Exit.USAGE


def _missing_as_null(value: Any) -> Any:
    # Infinity stays (Python writes it, the gateway reads it and answers a 400 naming the
    # column): only a missing value has a JSON spelling to change to.
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def resolve_url(option: str | None, config: SpokeConfig) -> str:
    url = (option or Settings.from_env().gateway_url or config.deploy.gateway_url).rstrip("/")
    if problem := gateway_url_problem(url):
        raise BadGatewayUrl(f"gateway URL: {problem}")
    return url


class TrafficTarget(Protocol):
    """What the rollout controller drives: the local gateway (GatewayClient) or an engine's
    stand-in for it (rollout.kserve.KServeTarget: an InferenceService and Prometheus)."""

    def health(self) -> dict[str, Any]: ...

    def reload(self) -> dict[str, Any]: ...

    def set_weights(self, challenger: int, shadow: bool = False) -> dict[str, Any]: ...

    def window(self, after: int) -> Window: ...

    def invoke(self, frame_split: dict[str, Any]) -> httpx.Response: ...


class GatewayClient:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        token = Settings.from_env().admin_token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url, timeout=timeout, headers=headers)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise GatewayUnreachable(
                f"no gateway answers at {shown_url(self.url)} ({type(exc).__name__}); start "
                "one with "
                f"`slipway serve`, or point at it with --url or {URL_ENV}"
            ) from exc

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise GatewayError(
                f"gateway {method} {path}: {response.status_code} {response.text[:500]}"
            )
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/admin/state")

    def reload(self) -> dict[str, Any]:
        return self._call("POST", "/admin/reload", json={})

    def set_weights(self, challenger: int, shadow: bool = False) -> dict[str, Any]:
        return self._call(
            "POST", "/admin/weights", json={"challenger": challenger, "shadow": shadow}
        )

    def window(self, after: int) -> Window:
        return Window.from_json(self._call("GET", "/admin/window", params={"after": after}))

    def invoke(self, frame_split: dict[str, Any]) -> httpx.Response:
        """Score a dataframe_split. A missing value (NaN, as pandas holds it) goes as JSON
        null, which the gateway accepts where the contract says nullable: JSON has no NaN,
        and httpx refuses to write one (a held-out table with a few unknown values broke the
        first deploy's smoke test)."""
        data = [[_missing_as_null(v) for v in row] for row in frame_split.get("data", [])]
        body = json.dumps({"dataframe_split": {**frame_split, "data": data}})
        return self._send(
            "POST", "/invocations", content=body, headers={"content-type": "application/json"}
        )

    def close(self) -> None:
        self._http.close()
