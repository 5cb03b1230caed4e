"""The alert webhook and the workflow dispatch, each against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.alerts import WEBHOOK_ENV, Event, notify
from slipway.pipelines.governance.retraining import RetrainError, dispatch_workflow, on_ci


@dataclass
class Server:
    status: int = 204
    seen: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            state.seen.append((self.path, dict(self.headers), body))
            payload = b"" if state.status == 204 else b'{"message": "refused"}'
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{http.server_address[1]}"
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield state
    http.shutdown()
    http.server_close()


def test_an_alert_is_slack_json_and_a_failed_one_is_a_warning(server: Server):
    assert notify(Event.ROLLBACK, "m", "why", env={}) is None  # not configured: nothing sent
    env = {WEBHOOK_ENV: f"{server.url}/services/T/B/x"}
    assert notify(Event.ROLLBACK, "churn", "v3 rolled back: errors", env=env) is None
    [(path, headers, body)] = server.seen
    assert path == "/services/T/B/x" and headers["Content-Type"] == "application/json"
    assert body == {"text": ":rotating_light: *churn*: rollback. v3 rolled back: errors"}
    server.status = 500
    warning = notify(Event.DRIFT, "churn", "x", env=env)
    assert warning is not None and "HTTP 500" in warning
    gone = notify(Event.DRIFT, "churn", "x", env={WEBHOOK_ENV: "http://127.0.0.1:9/"})
    assert gone is not None and "cannot reach the alert webhook" in gone


def test_dispatch_posts_the_workflow_on_the_current_ref(server: Server):
    env = {
        "GITHUB_API_URL": server.url,
        "GITHUB_REPOSITORY": "team/churn",
        "GITHUB_TOKEN": "ghs_token",
        "GITHUB_REF_NAME": "main",
    }
    started = dispatch_workflow("cd.yml", env, {})
    [(path, headers, body)] = server.seen
    assert path == "/repos/team/churn/actions/workflows/cd.yml/dispatches"
    assert headers["Authorization"] == "Bearer ghs_token" and body == {"ref": "main", "inputs": {}}
    assert started.where == "workflow" and started.url.endswith(
        "team/churn/actions/workflows/cd.yml"
    )
    server.status = 403
    with pytest.raises(RetrainError, match="actions: write"):
        dispatch_workflow("cd.yml", env, {})
    with pytest.raises(RetrainError, match="GITHUB_REPOSITORY and GITHUB_TOKEN"):
        dispatch_workflow("cd.yml", {}, {})
    with pytest.raises(RetrainError) as unreachable:
        dispatch_workflow("cd.yml", {**env, "GITHUB_API_URL": "http://127.0.0.1:9"}, {})
    assert unreachable.value.exit_code == Exit.UNREACHABLE


def test_ci_runners_and_pods_are_recognised():
    assert on_ci({"CI": "true"}) and on_ci({"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert not on_ci({}) and not on_ci({"CI": "false"})
