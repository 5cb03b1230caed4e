"""`slipway console`: the hub's read-only web console, server-rendered.

Why server-rendered (Starlette + Jinja2 with autoescaping) and not a front-end build: the
platform team maintains Python, the pages are tables and one chart, and a page that is
rendered where the data is needs no API, no bundler and no JavaScript dependency to keep up
to date. The one script (static/console.js, our own, ~40 lines) polls the open rollout's
fragment so its chart moves while the page is open. Nothing is fetched from a CDN: the CSS
and the script ship in this package, and the Content-Security-Policy forbids anything else.

Security model:
- Single sign-on happens in front of the console (oauth2-proxy, an ALB with OIDC, an
  ingress with auth): the proxy authenticates and passes the person's identity in a header
  (`X-Forwarded-User` by default; `--identity-header` names another). A request without it
  is refused (401): the console is never open by accident when the proxy is bypassed.
  `--trusted-proxy` restricts which peer addresses may send requests at all, so a caller
  that reaches the port directly cannot forge the header.
- Read-only: GET and HEAD only (405 otherwise), no form, no action.
- Everything from the registry, the trail or a card is untrusted text: Jinja2 escapes it
  everywhere, cards are rendered from Markdown with raw HTML off and unsafe link schemes
  dropped, and the CSP refuses inline scripts should anything slip through.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from packaging.version import Version
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from slipway.pipelines.console import percent
from slipway.pipelines.hub import overview as data
from slipway.pipelines.hub.console_chart import chart

DEFAULT_IDENTITY_HEADER = "X-Forwarded-User"
STATIC = Path(__file__).parent / "console_static"
_PLOT_NAME = re.compile(r"^[a-z0-9_]+\.png$")
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ConsoleSettings:
    spokes: tuple[Path, ...]
    template: str | None = None  # the template source to compare versions with
    # The header the SSO proxy sets; None only for `--local` (a person on their own machine).
    identity_header: str | None = DEFAULT_IDENTITY_HEADER
    trusted_proxies: tuple[str, ...] = ()  # peer addresses allowed to call; () = any
    refresh_seconds: float = 2.0  # how often an open rollout's chart is re-read


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _reading(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key.endswith("error_rate"):
        return percent(value)
    if key == "p95_ratio":
        return _ratio(value)
    return f"{value:.3f}"


def _environment() -> Environment:
    from markdown_it import MarkdownIt

    # autoescape=True for every template, not by file name: no page can forget it.
    env = Environment(
        loader=PackageLoader("slipway.pipelines.hub", "console_templates"),
        autoescape=True,
        undefined=StrictUndefined,  # a misspelt field fails the tests, not a blank cell
    )
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    env.filters["markdown"] = lambda text: Markup(markdown.render(text))
    env.filters["reading"] = lambda value, key: _reading(key, value)
    env.globals["guardrails"] = data.GUARDRAILS
    env.globals["chart"] = chart
    return env


class Guard:
    """Identity, peer and method checks plus the security headers, around every request."""

    def __init__(self, app: ASGIApp, settings: ConsoleSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refusal(self, request: Request) -> Response | None:
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse(
                "the Slipway console is read-only: act with the slipway command "
                "(slipway approve, slipway rollback...)",
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
        if request.url.path == "/healthz":
            return None
        peer = request.client.host if request.client else ""
        if self.settings.trusted_proxies and peer not in self.settings.trusted_proxies:
            return PlainTextResponse(
                f"requests must come through the single sign-on proxy; {peer} is not one of "
                "the console's --trusted-proxy addresses",
                status_code=403,
            )
        header = self.settings.identity_header
        if header is not None and not request.headers.get(header, "").strip():
            return PlainTextResponse(
                f"sign in first: the Slipway console sits behind single sign-on and this "
                f"request carries no {header} header (open it through the platform's SSO "
                "proxy, not its port)",
                status_code=401,
            )
        return None


class ReleaseTags:
    """Each template source's release tags, kept `ttl` seconds: listing them is a `git
    ls-remote` (a round trip to the template's host) per source, too dear for every view of
    a page that people leave open, yet a new release shows within minutes."""

    def __init__(self, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self.read_at = clock()
        self.tags: dict[str, list[Version]] = {}

    def current(self) -> dict[str, list[Version]]:
        if self.clock() - self.read_at > self.ttl:
            self.tags, self.read_at = {}, self.clock()
        return self.tags


def create_app(settings: ConsoleSettings) -> Starlette:
    env = _environment()
    releases = ReleaseTags()

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        header = settings.identity_header
        who = request.headers.get(header, "").strip() if header else "local"
        html = env.get_template(name).render(who=who, refresh=settings.refresh_seconds, **context)
        return HTMLResponse(html, status_code=status)

    def path_of(key: str) -> Path | None:
        return next((p for p in settings.spokes if _key_of(p) == key), None)

    def find(key: str) -> tuple[Path, data.SpokeView] | None:
        path = path_of(key)
        if path is None:
            return None
        try:
            return path, data.spoke_view(path, settings.template, releases.current())
        except data.NotASpoke:
            return None

    def not_found(request: Request, what: str) -> HTMLResponse:
        return page(request, "missing.html", status=404, what=what)

    async def index(request: Request) -> Response:
        fleet = data.overview(settings.spokes, settings.template, releases.current())
        return page(request, "index.html", overview=fleet)

    async def spoke(request: Request) -> Response:
        found = find(request.path_params["key"])
        if found is None:
            return not_found(request, f"spoke {request.path_params['key']}")
        return page(request, "spoke.html", spoke=found[1])

    async def card(request: Request) -> Response:
        key, version = request.path_params["key"], request.path_params["version"]
        found = find(key)
        if found is None or not any(v.number == version for v in found[1].versions):
            return not_found(request, f"version {version} of {key}")
        text = data.card_markdown(found[0], key, version)
        view = next(v for v in found[1].versions if v.number == version)
        return page(request, "card.html", spoke=found[1], version=view, text=text)

    async def plot(request: Request) -> Response:
        key, version, name = (request.path_params[k] for k in ("key", "version", "name"))
        path = path_of(key) if _PLOT_NAME.match(name) else None
        body = data.card_plot(path, key, version, name) if path else None
        if body is None:
            return PlainTextResponse("no such plot", status_code=404)
        return Response(body, media_type="image/png")

    async def live(request: Request) -> Response:
        key, rollout_id = request.path_params["key"], request.path_params["rollout"]
        path = path_of(key)
        rollout = data.rollout_view(path, rollout_id) if path else None
        if rollout is None:
            return PlainTextResponse("no such rollout", status_code=404)
        return page(request, "_rollout.html", key=key, rollout=rollout)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/spokes/{key}", spoke),
            Route("/spokes/{key}/versions/{version}/card", card),
            Route("/spokes/{key}/versions/{version}/model_card/{name}", plot),
            Route("/spokes/{key}/rollouts/{rollout:int}/live", live),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    app.add_middleware(Guard, settings=settings)
    return app


def _key_of(path: Path) -> str | None:
    """The spoke's key (project.slug) from slipway.toml alone: the live fragment is polled
    every few seconds and must not read the registry."""
    from slipway.pipelines import store

    try:
        return store.spoke_key(path)
    except store.StoreConfigError:
        return None
