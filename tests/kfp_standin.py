"""A stand-in for the Kubeflow Pipelines API (v2beta1), for tests: no cluster runs here.

Real HTTP on 127.0.0.1 (stdlib http.server in a thread), spoken to by the real kfp.Client.
It answers what kfp.Client 2.17 sends (read from kfp_server_api's models and checked by
running the client against it): healthz, experiments by name in a namespace (get, create), runs
(create with the pipeline spec inline, get with per-task states), recurring runs (create). It
records every request, the submitted pipeline spec and its parameters; it refuses a missing
or wrong bearer token (401, grpc code 16) and a namespace the token may not use (403, code 7,
as KFP's SubjectAccessReview answers for a namespace that does not exist either); an unknown
experiment id is 404 (code 5). Run and task states follow a script, one step per GET.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"
UNSET_TIME = "1970-01-01T00:00:00Z"
NOW = "2026-01-01T00:00:00Z"


@dataclass(frozen=True)
class Snapshot:
    """One answer to GET /runs/{id}: the run's state and its tasks' (name -> state)."""

    state: str
    tasks: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any


@dataclass
class StandIn:
    """The server's behaviour (set by a test) and what it saw."""

    tokens: set[str] = field(default_factory=lambda: {"good-token"})  # empty: no auth at all
    namespaces: dict[str, set[str]] = field(default_factory=dict)  # namespace -> tokens allowed
    multi_user: bool = False
    script: list[Snapshot] = field(default_factory=lambda: [Snapshot("SUCCEEDED")])
    pods: dict[str, str] = field(default_factory=dict)  # task -> pod name
    login_page: bool = False  # an ingress that redirects every API call to an HTML login
    # How a refused token is answered: 401, or 500 as older multi-user KFP releases did.
    auth_status: int = 401
    lose_experiments: bool = False  # POST /runs names an experiment that no longer exists
    refuse_polls: bool = False  # GET /runs/{id} answers 401 (a token that expired meanwhile)
    on_run: Callable[[dict[str, Any]], None] | None = None  # called with each created run
    requests: list[Request] = field(default_factory=list)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet: the test reads `requests`
        pass

    def _send(self, code: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, grpc_code: int, message: str) -> None:
        # grpc-gateway's JSON error, as the real API server answers.
        self._send(status, {"error": message, "code": grpc_code, "message": message, "details": []})

    def _handle(self) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        auth = self.headers.get("Authorization")
        with self.server.lock:
            state.requests.append(Request(self.command, url.path, query, auth, body))
            self._route(state, url.path, query, body, auth)

    def _route(
        self, state: StandIn, path: str, query: dict[str, str], body: Any, auth: str | None
    ) -> None:
        if path == "/login":
            return self._send(200, b"<html><body>Sign in</body></html>", "text/html")
        if state.login_page:
            self.send_response(302)
            self.send_header("Location", "/login")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        token = auth.removeprefix("Bearer ") if auth and auth.startswith("Bearer ") else None
        if state.tokens and token not in state.tokens:
            if state.auth_status == 500:
                return self._error(
                    500,
                    13,
                    "Internal error: Unauthenticated: Request header error: there is no user "
                    "identity header.",
                )
            return self._error(401, 16, "Unauthenticated: no valid bearer token")
        if path == f"{API}/healthz" and self.command == "GET":
            return self._send(200, {"multi_user": state.multi_user, "pipeline_store": "stand-in"})
        if path == f"{API}/experiments" and self.command in ("GET", "POST"):
            namespace = query.get("namespace", "") if self.command == "GET" else ""
            namespace = namespace or ((body or {}).get("namespace") or "")
            if not self._namespace_allowed(state, namespace, token):
                return self._error(
                    403,
                    7,
                    f"PermissionDenied: user is not authorized in namespace '{namespace}'",
                )
            if self.command == "GET":
                name = json.loads(query.get("filter") or "{}")["predicates"][0]["stringValue"]
                found = [
                    e
                    for e in state.experiments.values()
                    if e["display_name"] == name and e["namespace"] == namespace
                ]
                return self._send(200, {"experiments": found, "total_size": len(found)})
            experiment = {
                "experiment_id": str(uuid.uuid4()),
                "display_name": body["display_name"],
                "namespace": namespace,
                "created_at": NOW,
                "storage_state": "AVAILABLE",
            }
            state.experiments[experiment["experiment_id"]] = experiment
            return self._send(200, experiment)
        if path == f"{API}/recurringruns" and self.command == "POST":
            if body.get("experiment_id") not in state.experiments:
                return self._error(404, 5, f"Experiment {body.get('experiment_id')} not found")
            recurring = {
                **body,
                "recurring_run_id": str(uuid.uuid4()),
                "status": "ENABLED",
                "created_at": NOW,
                "updated_at": NOW,
            }
            state.recurring_runs[recurring["recurring_run_id"]] = recurring
            return self._send(200, recurring)
        if path == f"{API}/runs" and self.command == "POST":
            if state.lose_experiments or body.get("experiment_id") not in state.experiments:
                return self._error(404, 5, f"Experiment {body.get('experiment_id')} not found")
            run = {
                "run_id": str(uuid.uuid4()),
                "experiment_id": body["experiment_id"],
                "display_name": body.get("display_name"),
                "pipeline_spec": body.get("pipeline_spec"),
                "runtime_config": body.get("runtime_config"),
                "storage_state": "AVAILABLE",
                "service_account": "default-editor",
                "created_at": NOW,
                "scheduled_at": NOW,
                "finished_at": UNSET_TIME,
                "state": "PENDING",
                "_polls": 0,
            }
            state.runs[run["run_id"]] = run
            if state.on_run is not None:
                state.on_run(run)
            return self._send(200, _public(run))
        if path.startswith(f"{API}/runs/") and self.command == "GET":
            if state.refuse_polls:
                return self._error(401, 16, "Unauthenticated: token expired")
            run = state.runs.get(path.rsplit("/", 1)[1])
            if run is None:
                return self._error(404, 5, "Run not found")
            snapshot = state.script[min(run["_polls"], len(state.script) - 1)]
            run["_polls"] += 1
            run["state"] = snapshot.state
            return self._send(200, {**_public(run), "run_details": _details(run, snapshot, state)})
        return self._error(404, 5, f"{self.command} {path}: not found")

    @staticmethod
    def _namespace_allowed(state: StandIn, namespace: str, token: str | None) -> bool:
        if not state.multi_user and not state.namespaces:
            return True
        allowed = state.namespaces.get(namespace)
        return allowed is not None and (not state.tokens or token in allowed)

    do_GET = do_POST = do_DELETE = _handle


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if not k.startswith("_")}


def _details(run: dict[str, Any], snapshot: Snapshot, state: StandIn) -> dict[str, Any]:
    """Task details as the real server lists them: the root DAG and driver nodes included."""
    tasks = [{"task_id": "root", "display_name": "root", "state": snapshot.state}]
    for name, task_state in snapshot.tasks.items():
        tasks.append({"display_name": f"{name}-driver", "state": "SUCCEEDED"})
        tasks.append(
            {
                "display_name": name,
                "state": task_state,
                "pod_name": state.pods.get(name, f"{name}-pod"),
                "parent_task_id": "root",
                "create_time": NOW,
            }
        )
    return {"task_details": [{"run_id": run["run_id"], **t} for t in tasks]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StandIn) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.lock = threading.Lock()
        state.port = self.server_address[1]


class running:
    """Serve `state` on 127.0.0.1 for the duration of a with-block."""

    def __init__(self, state: StandIn) -> None:
        self._server = _Server(state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.state = state

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self.state

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
