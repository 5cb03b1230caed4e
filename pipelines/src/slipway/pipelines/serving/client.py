"""Talk to a running gateway: where it is (`--url`, then SLIPWAY_GATEWAY_URL, then
slipway.toml deploy.gateway_url) and its admin operations, with one error for 'not there'."""

from __future__ import annotations

from typing import Any

import httpx

from slipway.pipelines.config import SpokeConfig, gateway_url_problem
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
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


def resolve_url(option: str | None, config: SpokeConfig) -> str:
    url = (option or Settings.from_env().gateway_url or config.deploy.gateway_url).rstrip("/")
    if problem := gateway_url_problem(url):
        raise BadGatewayUrl(f"gateway URL: {problem}")
    return url


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
                f"no gateway answers at {self.url} ({type(exc).__name__}); start one with "
                f"`slipway serve`, or point at it with --url or {URL_ENV}"
            ) from exc

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise GatewayError(f"gateway {method} {path}: {response.status_code} {response.text}")
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
        return self._send("POST", "/invocations", json={"dataframe_split": frame_split})

    def close(self) -> None:
        self._http.close()
