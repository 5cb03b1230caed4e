"""Stand-ins for what a Kubernetes cluster with KServe would run, for tests: no cluster here.

`KServeStandIn` is a stand-in for the Kubernetes API server with KServe's controller behind
it, for one resource type: InferenceServices (serving.kserve.io/v1beta1). Real HTTP on
127.0.0.1, spoken to by the official `kubernetes` client. It answers get, create and
merge-patch (what the client sends for patch_namespaced_custom_object), checks every object it
stores against KServe's published CRD schema (422 as the API server would), and plays KServe's
part: a changed predictor spec makes a new revision, ready at once; with
`canaryTrafficPercent` N the latest revision gets N% and the last rolled-out one the rest, 0
sends everything back, and removing the field makes the latest the rolled-out one
(`status.components.predictor.traffic[]` shows it, as KServe does).

Given `rbac` (the deployer's ServiceAccount, Role and RoleBinding), it also plays the API
server's authorizer for the caller those documents bind: a verb the Role does not grant on
inferenceservices in that namespace is refused with 403 Forbidden before anything is read or
stored, as Kubernetes' RBAC authorizer refuses it. (Authentication is not stood in: every
caller is taken to be that service account.)

`Router` is a stand-in for Knative's ingress: it forwards each request to the revision the
current split picks (the same smooth deterministic split as the gateway's), each revision
being a real gateway process a test registered for its model version.
"""

from __future__ import annotations

import copy
import gzip
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from jsonschema.validators import validator_for

from slipway.pipelines.rollout.kserve_rbac import allows

SCHEMA = Path(__file__).resolve().parents[1] / "pipelines" / "tests" / "data"
PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"
VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
VERSION_LABEL = "slipway.dev/model-version"


def crd_validator() -> Any:
    with gzip.open(SCHEMA / "kserve-inferenceservice-v1beta1.schema.json.gz") as f:
        schema = json.load(f)
    return validator_for(schema)(schema)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class Revision:
    name: str
    version: str


@dataclass
class KServeStandIn:
    router_url: str = ""
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    revisions: list[Revision] = field(default_factory=list)
    rolled_out: Revision | None = None
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # method, path, body
    rbac: list[dict[str, Any]] | None = None  # enforced when set (see the module's docstring)
    refused: list[tuple[str, str]] = field(default_factory=list)  # verb, path refused 403
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.validator = crd_validator()

    def split(self) -> list[tuple[Revision, int]]:
        """(revision, percent) now, as status.components.predictor.traffic says."""
        with self.lock:
            if not self.revisions:
                return []
            latest = self.revisions[-1]
            isvc = next(iter(self.objects.values()))
            canary = isvc["spec"]["predictor"].get("canaryTrafficPercent")
            if canary is None or self.rolled_out is None or self.rolled_out is latest:
                return [(latest, 100)]
            return [(self.rolled_out, 100 - canary), (latest, canary)]

    def _settle(self, isvc: dict[str, Any]) -> None:
        """KServe's controller: a new revision for a new spec, then the traffic status."""
        version = isvc["spec"]["predictor"].get("labels", {}).get(VERSION_LABEL, "?")
        if not self.revisions or self.revisions[-1].version != version:
            name = f"{isvc['metadata']['name']}-predictor-{len(self.revisions) + 1:05d}"
            self.revisions.append(Revision(name, version))
        latest = self.revisions[-1]
        canary = isvc["spec"]["predictor"].get("canaryTrafficPercent")
        if canary is None or self.rolled_out is None:
            self.rolled_out = latest
        if canary is None or self.rolled_out is latest:
            traffic = [{"revisionName": latest.name, "percent": 100, "latestRevision": True}]
        else:
            traffic = [
                {
                    "revisionName": self.rolled_out.name,
                    "percent": 100 - canary,
                    "latestRevision": False,
                    "tag": "prev",
                },
                {
                    "revisionName": latest.name,
                    "percent": canary,
                    "latestRevision": True,
                    "tag": "latest",
                },
            ]
        isvc["status"] = {
            "url": self.router_url,
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {
                "predictor": {
                    "latestCreatedRevision": latest.name,
                    "latestReadyRevision": latest.name,
                    "latestRolledoutRevision": self.rolled_out.name,
                    "traffic": traffic,
                }
            },
        }

    def _forbidden(self, method: str, namespace: str, path: str) -> dict[str, Any] | None:
        """The RBAC authorizer's refusal of this request, or None when the Role allows it."""
        if self.rbac is None:
            return None
        verb = VERBS.get(method, method.lower())
        if allows(self.rbac, verb, "serving.kserve.io", "inferenceservices", namespace):
            return None
        self.refused.append((verb, path))
        [account] = [d["metadata"] for d in self.rbac if d["kind"] == "ServiceAccount"]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "Forbidden",
            "code": 403,
            "message": f'User "system:serviceaccount:{account["namespace"]}:{account["name"]}" '
            f'cannot {verb} resource "inferenceservices" in API group "serving.kserve.io" in '
            f'the namespace "{namespace}"',
        }

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        if not path.startswith(PREFIX):
            return 404, {"kind": "Status", "code": 404, "message": f"no route {path}"}
        parts = path[len(PREFIX) :].split("/")  # ns, "inferenceservices", [name]
        if len(parts) < 2 or parts[1] != "inferenceservices":
            return 404, {"kind": "Status", "code": 404, "message": "not served by this stand-in"}
        key = "/".join([parts[0], *parts[2:3]])
        if (forbidden := self._forbidden(method, parts[0], path)) is not None:
            return 403, forbidden
        with self.lock:
            if method == "GET":
                found = self.objects.get(key)
                if found is None:
                    return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
                return 200, found
            if method == "POST":
                key = f"{parts[0]}/{body['metadata']['name']}"
                if key in self.objects:
                    return 409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"}
                candidate = copy.deepcopy(body)
            elif method == "PATCH":
                if key not in self.objects:
                    return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
                candidate = merge_patch(self.objects[key], body)
            else:
                return 405, {"kind": "Status", "code": 405}
            errors = [e.message for e in self.validator.iter_errors(candidate)]
            if errors:
                return 422, {
                    "kind": "Status",
                    "code": 422,
                    "reason": "Invalid",
                    "message": "; ".join(errors[:3]),
                }
            self._settle(candidate)
            self.objects[key] = candidate
            return (201 if method == "POST" else 200), candidate


class _JsonHandler(BaseHTTPRequestHandler):
    """What both stand-ins' HTTP sides share: read the body, answer JSON, log nothing."""

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        status, data = self._respond(method, self.rfile.read(length) if length else b"")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _respond(self, method: str, raw: bytes) -> tuple[int, bytes]:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PATCH(self) -> None:
        self._answer("PATCH")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ApiHandler(_JsonHandler):
    standin: KServeStandIn

    def _respond(self, method: str, raw: bytes) -> tuple[int, bytes]:
        body = json.loads(raw) if raw else None
        if method == "PATCH" and "merge-patch" not in self.headers.get("content-type", ""):
            status, answer = 415, {"kind": "Status", "code": 415}
        else:
            status, answer = self.standin.handle(method, self.path.split("?")[0], body)
        return status, json.dumps(answer).encode()


class Router:
    """Knative's ingress, stood in: each request to the revision the split picks."""

    def __init__(self, standin: KServeStandIn) -> None:
        self.standin = standin
        self.backends: dict[str, str] = {}  # model version -> gateway URL
        self._n = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def pick(self) -> str:
        split = self.standin.split()
        with self._lock:
            self._n += 1
            n = self._n
        if len(split) == 1:
            return self.backends[split[0][0].version]
        (old, _), (new, w) = split
        to_new = (n * w) // 100 != ((n - 1) * w) // 100
        return self.backends[(new if to_new else old).version]

    def forward(self, method: str, path: str, body: bytes, content_type: str) -> httpx.Response:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(timeout=30)
        return client.request(
            method, self.pick() + path, content=body, headers={"content-type": content_type}
        )


class _RouterHandler(_JsonHandler):
    router: Router
    protocol_version = "HTTP/1.1"

    def _respond(self, method: str, raw: bytes) -> tuple[int, bytes]:
        try:
            answer = self.router.forward(
                method, self.path, raw, self.headers.get("content-type", "application/json")
            )
        except httpx.HTTPError as exc:
            return 502, json.dumps({"error": str(exc)}).encode()
        return answer.status_code, answer.content


class Cluster:
    """The API stand-in and the router stand-in, each on its own 127.0.0.1 port."""

    def __init__(self) -> None:
        self.standin = KServeStandIn()
        self.router = Router(self.standin)
        api_handler = type("Api", (_ApiHandler,), {"standin": self.standin})
        router_handler = type("Route", (_RouterHandler,), {"router": self.router})
        self._api = ThreadingHTTPServer(("127.0.0.1", 0), api_handler)
        self._route = ThreadingHTTPServer(("127.0.0.1", 0), router_handler)
        self.api_url = f"http://127.0.0.1:{self._api.server_address[1]}"
        self.standin.router_url = f"http://127.0.0.1:{self._route.server_address[1]}"
        for server in (self._api, self._route):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in (self._api, self._route):
            server.shutdown()
            server.server_close()
