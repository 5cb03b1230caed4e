"""`slipway console` itself: the command serves the fleet behind the identity header it is
given and only to the proxy it trusts, and refuses to serve without SSO off loopback."""

from __future__ import annotations

import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.exitcodes import Exit
from tests.shared.conftest import VENV_BIN
from tests.shared.console.fleet import FRAUD, Fleet

HEADER = "X-Auth-Request-Email"  # oauth2-proxy's, configured instead of the default


@pytest.fixture
def console(fleet: Fleet) -> Iterator[str]:
    args = [str(VENV_BIN / "slipway"), "console", "--port", "0"]
    args += ["--identity-header", HEADER, "--trusted-proxy", "127.0.0.1"]
    proc = subprocess.Popen(
        [*args, *map(str, fleet.paths)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    found = re.search(r"listening on (http://\S+/)", line)
    if not found:
        proc.kill()
        raise AssertionError(f"the console did not start: {line}{proc.stderr.read()}")
    yield found.group(1)
    if proc.poll() is not None:
        raise AssertionError(f"the console exited: {proc.stderr.read()}")
    proc.terminate()
    proc.wait(timeout=30)


def _get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_the_command_serves_the_fleet_behind_the_configured_header(console: str) -> None:
    status, html = _get(console, {HEADER: "ann@example.com"})
    assert status == 200
    assert f'data-spoke="{FRAUD}"' in html and ">ann@example.com</strong>" in html
    status, text = _get(console, {"X-Forwarded-User": "ann"})  # the default header: not this one
    assert status == 401 and HEADER in text


def test_the_command_refuses_sso_off_on_a_public_address(fleet: Fleet) -> None:
    runner = CliRunner()
    public = runner.invoke(main, ["console", "--local", "--host", "0.0.0.0", str(fleet.root)])
    assert public.exit_code == Exit.USAGE
    assert "loopback" in public.stderr
    missing = runner.invoke(main, ["console", str(fleet.root / "nowhere")])
    assert missing.exit_code == Exit.CONFIG
