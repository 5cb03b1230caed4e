"""The console's pages over a real fleet (registry, rollout state, audit trails), through
Starlette's test client: what each page shows, single sign-on, read-only, and escaping."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from slipway.pipelines.cli import main
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.hub.console_app import ConsoleSettings, create_app
from tests.console.conftest import HOSTILE, NEWER_RELEASE, Fleet

pytestmark = pytest.mark.xdist_group("console")

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
    assert set(rows) == {"fraud-radar", "churn-guard", "claims-triage"}
    fraud = rows["fraud-radar"]
    champion, challenger, previous = re.findall(r"<td>(.*?)</td>", fraud, re.S)[3:6]
    assert ">v1</a>" in champion and ">v2</a>" in challenger and "none" in previous
    assert "tier-high" in fraud
    assert f"1 behind {NEWER_RELEASE.removeprefix('v')}" in fraud
    assert "status-rolled_back" in rows["churn-guard"]
    assert "risk.officer@example.com" in html


def test_a_version_waiting_for_approval_names_who_may_act(client: TestClient, fleet: Fleet) -> None:
    from markupsafe import escape

    from slipway.pipelines.config import load_config
    from slipway.pipelines.governance.blockers import who_may_approve

    html = client.get("/").text
    waiting = html.split('data-testid="waiting"', 1)[1].split("</table>", 1)[0]
    assert "fraud-radar" in waiting and "v2" in waiting
    assert "needs an approval of version 2" in waiting
    # Who may act: the spoke's approvers, never the version's author (dana).
    who = who_may_approve(load_config(fleet.spokes["fraud-radar"]), "dana@example.com")
    assert f"<td>{escape(who)}</td>" in waiting
    assert "churn-guard" not in waiting  # low tier promotes automatically


def test_trails_are_shown_verified_tampered_or_truncated(client: TestClient) -> None:
    def status(key: str) -> str:
        html = client.get(f"/spokes/{key}").text
        return re.search(r'data-testid="trail-status">(\w+)<', html).group(1)  # type: ignore[union-attr]

    assert status("fraud-radar") == "VERIFIED"
    assert status("churn-guard") == "TAMPERED"
    assert status("claims-triage") == "TRUNCATED"
    html = client.get("/spokes/churn-guard").text
    assert "the entry was edited" in html
    assert "were deleted" in client.get("/spokes/claims-triage").text


def test_untrusted_text_is_escaped_on_every_page(client: TestClient, fleet: Fleet) -> None:
    pages = [
        "/",
        "/spokes/churn-guard",
        "/spokes/fraud-radar",
        f"/spokes/fraud-radar/rollouts/{fleet.open_rollout}/live",
        "/spokes/churn-guard/versions/1/card",
    ]
    escaped = "&lt;script&gt;window.__pwned = 1&lt;/script&gt;"
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        _no_raw_hostile_text(response.text)
    # ...and it is shown, as text, where it was written: reasons, actors, events.
    churn = client.get("/spokes/churn-guard").text
    assert churn.count(escaped) >= 3  # approval reason, rollout reason, audit actors
    live = client.get(f"/spokes/fraud-radar/rollouts/{fleet.open_rollout}/live").text
    assert escaped in live
    hostile_who = client.get("/", headers={"X-Forwarded-User": HOSTILE}).text
    _no_raw_hostile_text(hostile_who)


def test_the_model_card_is_rendered_without_its_html(client: TestClient) -> None:
    html = client.get("/spokes/churn-guard/versions/1/card").text
    card = html.split('data-testid="card">', 1)[1]
    assert "<h1>Model card: churn-guard v1</h1>" in card
    assert "<td>test_auc</td>" in card  # Markdown tables render
    assert "<div onmouseover" not in card
    assert "&lt;div onmouseover" in card  # raw HTML is shown as text
    assert "javascript:" not in re.findall(r'href="([^"]*)"', card).__str__()


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
        response = client.request(method, "/spokes/fraud-radar")
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

    url = f"/spokes/fraud-radar/rollouts/{fleet.open_rollout}/live"

    def polls() -> int:
        return int(re.search(r'data-testid="polls">(\d+)<', client.get(url).text).group(1))  # type: ignore[union-attr]

    before = polls()
    state.record_reading(
        fleet.spokes["fraud-radar"], fleet.open_rollout, "canary", 10, {"error_rate": 0.005}
    )
    assert polls() == before + 1
    assert client.get("/spokes/fraud-radar/rollouts/999/live").status_code == 404
    assert client.get("/spokes/nobody").status_code == 404


def test_the_command_refuses_sso_off_on_a_public_address(fleet: Fleet) -> None:
    runner = CliRunner()
    public = runner.invoke(main, ["console", "--local", "--host", "0.0.0.0", str(fleet.root)])
    assert public.exit_code == Exit.USAGE
    assert "loopback" in public.stderr
    missing = runner.invoke(main, ["console", str(fleet.root / "nowhere")])
    assert missing.exit_code == Exit.CONFIG
