"""The console in a real browser: Debian's chromium, headless, driven by Playwright.

Chromium comes from the system (`make test` installs Debian's package where it is missing);
Playwright's own browser download is never used. Each test saves a screenshot: into
$SLIPWAY_CONSOLE_SCREENSHOTS when set (docs/platform/console.md shows them), else into the
test's temporary directory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shared.console.fleet import CHURN, CLAIMS, FRAUD, HOSTILE, Fleet

CHROMIUM = Path(os.environ.get("SLIPWAY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WHO = "risk.officer@example.com"
# Failure guard for waits on the page (a broken poll must fail, not hang); not a speed claim.
WAIT_MS = 15_000


# Module-scoped, not session: Playwright's sync API keeps an asyncio loop running in this
# thread while it is started, and every later test of the same xdist worker that calls
# asyncio.run() (the gateway's, Pulumi's) would fail with "cannot be called from a running
# event loop".
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def console_url(fleet: Fleet) -> Iterator[str]:
    """The console app under uvicorn on a free port, in a thread of this process (so the
    test changes the fleet's state and the page must show it)."""
    import uvicorn

    from slipway.pipelines.hub.console_app import ConsoleSettings, create_app

    settings = ConsoleSettings(spokes=fleet.paths, refresh_seconds=0.5)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    sock = config.bind_socket()
    sock.listen(config.backlog)  # connections wait in the backlog while uvicorn starts
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(browser, console_url: str, fleet: Fleet, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    context = browser.new_context(  # type: ignore[attr-defined]
        extra_http_headers={"X-Forwarded-User": WHO}, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    elsewhere: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(console_url) else elsewhere.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    pwned = page.evaluate("() => window.__pwned")
    context.close()
    assert pwned is None, "untrusted text ran as script"
    assert not elsewhere, f"the console loaded from other origins: {elsewhere}"
    assert not errors, errors


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("SLIPWAY_CONSOLE_SCREENSHOTS") or tmp_path)


def test_the_overview_loads(page, console_url: str, shots: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.goto(console_url + "/")
    expect(page).to_have_title("Slipway console")
    expect(page.locator("[data-spoke]")).to_have_count(3)
    expect(page.get_by_test_id("who")).to_have_text(WHO)
    expect(page.locator(f'[data-spoke={CHURN}] [data-testid="trail-status"]')).to_have_text(
        "TAMPERED"
    )
    page.screenshot(path=shots / "console-overview.png", full_page=True)


def test_a_rollout_progresses_live(page, console_url: str, fleet: Fleet, shots: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from slipway.pipelines.rollout import state

    page.goto(console_url + f"/spokes/{FRAUD}")
    rollout = page.get_by_test_id(f"rollout-{fleet.open_rollout}")
    expect(rollout.get_by_test_id("rollout-weight")).to_have_text("10%")
    polls = int(rollout.get_by_test_id("polls").inner_text())
    root = fleet.spokes[FRAUD]
    # The controller moves to the next step; the page was not reloaded.
    state.update(root, fleet.open_rollout, phase="canary", step_index=1, weight=50)
    for error_rate in (0.005, 0.004, 0.006):
        readings = {"error_rate": error_rate, "champion_error_rate": 0.005, "p95_ratio": 1.02}
        state.record_reading(root, fleet.open_rollout, "canary", 50, readings)
    expect(rollout.get_by_test_id("rollout-weight")).to_have_text("50%", timeout=WAIT_MS)
    expect(rollout.get_by_test_id("polls")).to_have_text(str(polls + 3), timeout=WAIT_MS)
    points = rollout.get_by_test_id("weight-line").get_attribute("points") or ""
    assert len(points.split()) >= 2 * (polls + 3) - 1  # a step line through every reading
    # The live fragment is replaced on every refresh: a screenshot that meets a replaced
    # element takes the next one.
    from playwright.sync_api import Error

    for attempt in range(5):
        try:
            rollout.screenshot(path=shots / "console-rollout.png")
            break
        except Error:
            if attempt == 4:
                raise


def test_an_approval_is_waiting(page, console_url: str, shots: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.goto(console_url + "/")
    waiting = page.get_by_test_id("waiting")
    expect(waiting.locator("tr", has_text=FRAUD)).to_contain_text("needs an approval of version 2")
    page.locator("#waiting").screenshot(path=shots / "console-waiting.png")


def test_a_tampered_trail_is_flagged(page, console_url: str, shots: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.goto(console_url + f"/spokes/{CHURN}")
    expect(page.get_by_test_id("trail-status")).to_have_text("TAMPERED")
    expect(page.get_by_test_id("trail-problems")).to_contain_text("the entry was edited")
    page.goto(console_url + f"/spokes/{CLAIMS}")
    expect(page.get_by_test_id("trail-status")).to_have_text("TRUNCATED")
    page.goto(console_url + f"/spokes/{CHURN}")
    page.locator("#trail").screenshot(path=shots / "console-trail.png")


def test_untrusted_text_is_shown_never_run(page, console_url: str, shots: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.goto(console_url + f"/spokes/{CHURN}")
    expect(page.get_by_text(HOSTILE).first).to_be_visible()
    page.goto(console_url + f"/spokes/{CHURN}/versions/1/card")
    card = page.get_by_test_id("card")
    expect(card.locator("table")).to_contain_text("test_auc")
    expect(card).to_contain_text('<div onmouseover="window.__pwned = 3">raw html</div>')
    card.get_by_text("a link").hover()  # a javascript: link would be an anchor here
    assert card.locator("a[href^='javascript']").count() == 0
    plot = card.locator("img[alt='roc curve']")
    expect(plot).to_be_visible()
    assert plot.evaluate("img => img.complete && img.naturalWidth") == 40  # the run's plot
    page.screenshot(path=shots / "console-card.png", full_page=True)
