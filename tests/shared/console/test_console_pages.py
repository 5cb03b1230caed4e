"""The console's pages over a real fleet (registry, rollout state, audit trails), through
Starlette's test client: what each page shows, single sign-on, read-only, and escaping."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from slipway.pipelines.hub.console_app import ConsoleSettings, create_app
from tests.shared.console.fleet import CHURN, CLAIMS, FRAUD, HOSTILE, NEWER_RELEASE, Fleet

WHO = {"X-Forwarded-User": "risk.officer@example.com"}


@pytest.fixture
def client(fleet: Fleet) -> TestClient:
    return TestClient(create_app(ConsoleSettings(spokes=fleet.paths)), headers=WHO)


def _no_raw_hostile_text(html: str) -> None:
    """The attacker's markup never reaches the page as markup."""
    assert "<script>window" not in html
    assert "onerror=" not in html.replace("onerror=&#34;", "").replace("onerror=&quot;", "")
    assert "<img src=x" not in html
    assert 'href="javascript:' not in html


def test_index_shows_every_spoke_with_aliases_tier_and_template_lag(client: TestClient) -> None:
    html = client.get("/").text
    rows = dict(re.findall(r'<tr data-spoke="([^"]+)">(.*?)</tr>', html, re.S))
    assert set(rows) == {FRAUD, CHURN, CLAIMS}
    fraud = rows[FRAUD]
    champion, challenger, previous = re.findall(r"<td>(.*?)</td>", fraud, re.S)[3:6]
    assert ">v1</a>" in champion and ">v2</a>" in challenger and "none" in previous
    assert "tier-high" in fraud
    assert f"1 behind {NEWER_RELEASE.removeprefix('v')}" in fraud
    assert "status-rolled_back" in rows[CHURN]
    assert "risk.officer@example.com" in html


def test_a_version_waiting_for_approval_names_who_may_act(client: TestClient, fleet: Fleet) -> None:
    from markupsafe import escape

    from slipway.pipelines.config import load_config
    from slipway.pipelines.governance.blockers import who_may_approve

    html = client.get("/").text
    waiting = html.split('data-testid="waiting"', 1)[1].split("</table>", 1)[0]
    assert FRAUD in waiting and "v2" in waiting
    assert "needs an approval of version 2" in waiting
    # Who may act: the spoke's approvers, never the version's author (dana).
    who = who_may_approve(load_config(fleet.spokes[FRAUD]), "dana@example.com")
    assert f"<td>{escape(who)}</td>" in waiting
    assert CHURN not in waiting  # low tier promotes automatically


def test_trails_are_shown_verified_tampered_or_truncated(client: TestClient) -> None:
    def status(key: str) -> str:
        html = client.get(f"/spokes/{key}").text
        return re.search(r'data-testid="trail-status">(\w+)<', html).group(1)  # type: ignore[union-attr]

    assert status(FRAUD) == "VERIFIED"
    assert status(CHURN) == "TAMPERED"
    assert status(CLAIMS) == "TRUNCATED"
    html = client.get(f"/spokes/{CHURN}").text
    assert "the entry was edited" in html
    assert "were deleted" in client.get(f"/spokes/{CLAIMS}").text


def test_untrusted_text_is_escaped_on_every_page(client: TestClient, fleet: Fleet) -> None:
    pages = [
        "/",
        f"/spokes/{CHURN}",
        f"/spokes/{FRAUD}",
        f"/spokes/{FRAUD}/rollouts/{fleet.open_rollout}/live",
        f"/spokes/{CHURN}/versions/1/card",
    ]
    escaped = "&lt;script&gt;window.__pwned = 1&lt;/script&gt;"
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        _no_raw_hostile_text(response.text)
    # ...and it is shown, as text, where it was written: reasons, actors, events.
    churn = client.get(f"/spokes/{CHURN}").text
    assert churn.count(escaped) >= 3  # approval reason, rollout reason, audit actors
    live = client.get(f"/spokes/{FRAUD}/rollouts/{fleet.open_rollout}/live").text
    assert escaped in live
    hostile_who = client.get("/", headers={"X-Forwarded-User": HOSTILE}).text
    _no_raw_hostile_text(hostile_who)


def test_the_model_card_is_rendered_without_its_html(client: TestClient) -> None:
    html = client.get(f"/spokes/{CHURN}/versions/1/card").text
    card = html.split('data-testid="card">', 1)[1]
    assert "<h1>Model card: console-churn-guard v1</h1>" in card
    assert "<td>test_auc</td>" in card  # Markdown tables render
    assert "<div onmouseover" not in card
    assert "&lt;div onmouseover" in card  # raw HTML is shown as text
    assert "javascript:" not in re.findall(r'href="([^"]*)"', card).__str__()
    # Its plots come from the version's run (plots/), the only files the route serves.
    assert '<img src="model_card/roc_curve.png" alt="roc curve"' in card
    plot = client.get(f"/spokes/{CHURN}/versions/1/model_card/roc_curve.png")
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
    assert plot.content.startswith(b"\x89PNG")
    for name in ("model_card.png", "..%2Fmodel_card%2Fmodel_card.md", "ROC.png"):
        assert client.get(f"/spokes/{CHURN}/versions/1/model_card/{name}").status_code == 404


def test_single_sign_on_header_is_required_and_configurable(fleet: Fleet) -> None:
    app = create_app(ConsoleSettings(spokes=fleet.paths, identity_header="X-Amzn-Oidc-Identity"))
    anonymous = TestClient(app)
    refused = anonymous.get("/")
    assert refused.status_code == 401
    assert "X-Amzn-Oidc-Identity" in refused.text
    assert anonymous.get("/", headers=WHO).status_code == 401  # the other header does not count
    signed = anonymous.get("/", headers={"X-Amzn-Oidc-Identity": "ann"})
    assert signed.status_code == 200 and ">ann</strong>" in signed.text
    assert anonymous.get("/healthz").status_code == 200  # the load balancer's probe


def test_only_the_trusted_proxy_may_call(fleet: Fleet) -> None:
    app = create_app(ConsoleSettings(spokes=fleet.paths, trusted_proxies=("10.0.0.7",)))
    response = TestClient(app).get("/", headers=WHO)  # the test client's peer is "testclient"
    assert response.status_code == 403
    assert "--trusted-proxy" in response.text


def test_the_console_is_read_only_and_loads_nothing_from_elsewhere(client: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = client.request(method, f"/spokes/{FRAUD}")
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET, HEAD"
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert client.get("/static/console.js").status_code == 200


def test_the_live_fragment_follows_the_rollout(client: TestClient, fleet: Fleet) -> None:
    from slipway.pipelines.rollout import state

    url = f"/spokes/{FRAUD}/rollouts/{fleet.open_rollout}/live"

    def polls() -> int:
        return int(re.search(r'data-testid="polls">(\d+)<', client.get(url).text).group(1))  # type: ignore[union-attr]

    before = polls()
    state.record_reading(
        fleet.spokes[FRAUD], fleet.open_rollout, "canary", 10, {"error_rate": 0.005}
    )
    assert polls() == before + 1
    assert client.get(f"/spokes/{FRAUD}/rollouts/999/live").status_code == 404
    assert client.get("/spokes/nobody").status_code == 404
