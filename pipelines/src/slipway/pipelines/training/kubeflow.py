"""Submitting the training pipeline to Kubeflow Pipelines, watching it, and saying how it ended.

`slipway train --kfp-host URL --image REF` lands here. The talking is done by kfp.Client
(KFP API v2beta1), with its own ways to authenticate: a bearer token (`existing_token`,
here from KF_PIPELINES_TOKEN) or a service-account token file re-read on every request
(`ServiceAccountTokenVolumeCredentials`, path from --sa-token-path, KF_PIPELINES_SA_TOKEN_PATH
or the projected volume's default). Three things kfp.Client does not do well are done here:

- a first GET /healthz with a timeout and one attempt: kfp retries a 401 at construction
  five times, 5 s apart, and follows a login redirect into an HTML page it reads as an empty
  answer (a run id of None, no exception);
- the waiting: `wait_for_run_completion` never ends on CANCELED and has no per-request
  timeout, so this module polls `get_run` itself and reports each task as its state changes;
- the verdict: the run's final state, and, when the registry is readable from here, what
  the steps recorded there (registered, gate rejected, data invalid), as the exit code
  `slipway train` gives locally.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.redact import shown_url
from slipway.pipelines.settings import Settings, restored_environment
from slipway.pipelines.training import images
from slipway.pipelines.training.pipeline import TrainingError, TrainingOutcome

if TYPE_CHECKING:
    import kfp

__all__ = [
    "DEFAULT_SA_TOKEN_PATH",
    "KubeflowAuth",
    "KubeflowError",
    "KubeflowOutcome",
    "KubeflowRun",
    "KubeflowTarget",
    "SubmitOptions",
    "TaskState",
    "api_call",
    "client_for",
    "preflight",
    "resolve_auth",
    "submit",
    "target_for",
    "wait",
]

TOKEN_ENV = "KF_PIPELINES_TOKEN"
SA_TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # kfp.Client's own variable
DEFAULT_SA_TOKEN_PATH = Path("/var/run/secrets/kubeflow/pipelines/token")  # kfp's default
UI_ENV = "KF_PIPELINES_UI_ENDPOINT"  # kfp.Client's own variable for the UI's address
REQUEST_TIMEOUT = 30.0  # seconds for one API call; kfp's default is to wait forever

# KFP v2beta1 RuntimeState values that end a run. kfp's own wait loop misses CANCELED.
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED", "ERROR"})
TIMED_OUT = "TIMED_OUT"

TaskCallback = Callable[[str, str], None]


class KubeflowError(TrainingError):
    """Kubeflow refused, could not be reached, or the run did not succeed; the message says
    what to do next. `exit_code` is the documented exit code of `slipway train`."""

    def __init__(self, message: str, exit_code: Exit | None = None) -> None:
        super().__init__(message, exit_code=exit_code)


@dataclass(frozen=True)
class KubeflowAuth:
    """How requests authenticate: a bearer token, a service-account token file, or nothing."""

    kind: Literal["token", "token_file", "none"]
    token: str | None = None
    path: Path | None = None

    @property
    def source(self) -> str:
        if self.kind == "token":
            return f"the bearer token in {TOKEN_ENV}"
        if self.kind == "token_file":
            return f"the service-account token in {self.path}"
        return f"no token (set {TOKEN_ENV} or {SA_TOKEN_PATH_ENV})"

    def bearer(self) -> str | None:
        if self.kind == "token":
            return self.token
        if self.kind == "token_file" and self.path is not None:
            return self.path.read_text(encoding="utf-8").strip()
        return None


def resolve_auth(env: Mapping[str, str], sa_token_path: Path | None = None) -> KubeflowAuth:
    """KF_PIPELINES_TOKEN wins (as `existing_token` wins in kfp.Client), then a token file
    named by the flag or KF_PIPELINES_SA_TOKEN_PATH (which must exist), then the projected
    volume's default path when present (in a pod), else no token."""
    if token := env.get(TOKEN_ENV, "").strip():
        return KubeflowAuth("token", token=token)
    named = sa_token_path or (Path(env[SA_TOKEN_PATH_ENV]) if env.get(SA_TOKEN_PATH_ENV) else None)
    if named is not None:
        if not named.is_file():
            raise KubeflowError(
                f"the service-account token file {named} does not exist: mount the "
                "projected token (audience pipelines.kubeflow.org) or fix the path; "
                "nothing was submitted",
                Exit.USAGE,
            )
        return KubeflowAuth("token_file", path=named)
    if DEFAULT_SA_TOKEN_PATH.is_file():
        return KubeflowAuth("token_file", path=DEFAULT_SA_TOKEN_PATH)
    return KubeflowAuth("none")


@dataclass(frozen=True)
class KubeflowTarget:
    """Where and how to submit: the API, the namespace (a Kubeflow profile), the experiment,
    the image every step runs in, and the pipeline root (artifact store) if not the default."""

    host: str
    image: str
    experiment: str
    auth: KubeflowAuth
    namespace: str | None = None
    pipeline_root: str | None = None

    @property
    def api(self) -> str:
        return self.host.rstrip("/")

    def run_url(self, run_id: str) -> str:
        ui = (Settings.from_env().kfp_ui or "").rstrip("/") or self.api
        return f"{ui}/#/runs/details/{run_id}"


@dataclass(frozen=True)
class KubeflowRun:
    """A submitted run: its id and URL, and what was sent."""

    run_id: str
    url: str
    experiment_id: str
    run_key: str
    arguments: dict[str, Any]
    tasks: tuple[str, ...]  # the pipeline's own task names, to tell them from system nodes


@dataclass(frozen=True)
class TaskState:
    name: str
    state: str
    pod: str | None = None


@dataclass(frozen=True)
class KubeflowOutcome:
    """How a watched run ended: Kubeflow's state, its tasks, and what the registry says."""

    run: KubeflowRun
    state: str  # a terminal RuntimeState, or TIMED_OUT
    tasks: tuple[TaskState, ...] = ()
    training: TrainingOutcome | None = None  # read from the registry when reachable
    waited_seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def failed_task(self) -> TaskState | None:
        return next((t for t in self.tasks if t.state in {"FAILED", "ERROR"}), None)

    @property
    def exit_code(self) -> Exit:
        if self.training is not None and self.state in {"SUCCEEDED", "FAILED"}:
            # A failed run never counts as a success, whatever a step recorded before.
            if self.state == "FAILED" and self.training.exit_code == Exit.OK:
                return Exit.ERROR
            return self.training.exit_code
        if self.state == "SUCCEEDED":
            return Exit.OK
        if self.state == TIMED_OUT:
            return Exit.TIMED_OUT
        return Exit.ERROR

    def explain(self, namespace: str | None) -> str:
        """A sentence for a run that did not succeed: which task, where its log is, what next."""
        if self.state == TIMED_OUT:
            return (
                f"the run was still running after {self.waited_seconds:.0f}s; it goes on in "
                f"Kubeflow: watch it at {self.run.url}"
            )
        if self.state == "CANCELED":
            return f"the run was canceled in Kubeflow (see {self.run.url}); nothing more ran"
        task = self.failed_task
        where = f"task {task.name!r} failed" if task else f"the run ended {self.state}"
        logs = f"its log is in the run's page {self.run.url}"
        if task is not None and task.pod:
            ns = f" -n {namespace}" if namespace else ""
            logs += f", or `kubectl logs{ns} {task.pod} -c main`"
        return f"{where}; {logs}. Fix the cause and submit again."


class SubmitOptions(NamedTuple):
    """What `slipway train` was given for a Kubeflow submission (None: not given)."""

    host: str | None = None
    image: str | None = None
    namespace: str | None = None
    experiment: str | None = None
    sa_token_path: Path | None = None
    pipeline_root: str | None = None
    kfp_allow_http: bool = False

    def given(self) -> list[str]:
        """The options given besides --kfp-host, as flags (to refuse them on a local run)."""
        return [
            "--" + name.replace("_", "-")
            for name, value in self._asdict().items()
            if name != "host" and value
        ]


def target_for(
    root: Path, config: SpokeConfig, options: SubmitOptions, env: Mapping[str, str]
) -> tuple[KubeflowTarget, str]:
    """The target and the registry URI of a submission, or a KubeflowError (exit 2) saying
    what is missing: the image (named as cd.yml pushes it) or the team's registry."""
    from slipway.pipelines.training.lineage import git_state

    if not options.image:
        raise KubeflowError(
            f"--kfp-host needs --image: the spoke's image for this commit, which has its code "
            f"and the slipway libraries ({config.training.base_image} has neither, so every "
            f"step would fail at its first import). cd.yml pushes it as "
            f"{images.image_hint(config, git_state(root).sha)}; nothing was submitted",
            Exit.USAGE,
        )
    uri = env.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise KubeflowError(
            "--kfp-host needs MLFLOW_TRACKING_URI: the URL of the MLflow server the "
            "cluster's steps register to (the embedded sqlite registry lives on this "
            "machine only).",
            Exit.USAGE,
        )
    images.validate_image_ref(options.image)
    _check_transport(options.host or "", allow_http=options.kfp_allow_http)
    target = KubeflowTarget(
        host=options.host or "",
        image=options.image,
        experiment=options.experiment or config.model_name,
        auth=resolve_auth(env, options.sa_token_path),
        namespace=options.namespace or None,
        pipeline_root=options.pipeline_root or config.training.pipeline_root or None,
    )
    return target, uri


# -- submission -----------------------------------------------------------------------------


def submit(
    root: Path,
    config: SpokeConfig,
    target: KubeflowTarget,
    *,
    tracking_uri: str,
    run_name: str | None = None,
) -> KubeflowRun:
    """Compile the spoke's training pipeline on `target.image` and create a run of it.

    Raises KubeflowError (exit UNREACHABLE, UNAUTHORISED, USAGE or ERROR) before or instead
    of submitting; nothing is submitted when it raises.
    """
    from slipway.pipelines.training.pipeline import compile_training, pipeline_arguments

    images.validate_image_ref(target.image)
    preflight(target)
    compiled = compile_training(root, config, image=target.image)
    arguments = pipeline_arguments(root, compiled, tracking_uri=tracking_uri)
    client = _client(target)
    with _api_call(target, f"submitting to experiment {target.experiment!r}"):
        result = client.create_run_from_pipeline_package(
            str(compiled),
            arguments=arguments,
            run_name=run_name or f"{config.model_name}-training-{arguments['run_key'][:8]}",
            experiment_name=target.experiment,
            namespace=target.namespace,
            pipeline_root=target.pipeline_root,
            enable_caching=False,
        )
    run_id = getattr(result, "run_id", None)
    run_info = getattr(result, "run_info", None)
    if not run_id:
        raise _not_the_api(target)
    return KubeflowRun(
        run_id=str(run_id),
        url=target.run_url(str(run_id)),
        experiment_id=str(getattr(run_info, "experiment_id", "") or ""),
        run_key=str(arguments["run_key"]),
        arguments=arguments,
        tasks=_task_names(compiled),
    )


def _task_names(compiled: Path) -> tuple[str, ...]:
    import yaml

    spec = next(d for d in yaml.safe_load_all(compiled.read_text(encoding="utf-8")) if d)
    spec = spec.get("pipeline_spec", spec)
    tasks = spec["root"]["dag"]["tasks"]
    # The IR lists tasks by name; report them in the order they run (dependencies first).
    after = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    ordered: list[str] = []
    while after:
        ready = sorted(name for name, needs in after.items() if needs <= set(ordered))
        ordered.extend(ready or sorted(after))
        for name in ready or sorted(after):
            after.pop(name)
    return tuple(ordered)


def _check_transport(host: str, *, allow_http: bool) -> None:
    """https, or plain http on loopback (a port-forward): the bearer token goes with every
    request, and over plain http anyone on the path reads it."""
    parts = urllib.parse.urlsplit(host)
    if parts.scheme == "https":
        return
    if parts.scheme != "http" or not parts.hostname:
        raise KubeflowError(
            f"--kfp-host {shown_url(host)!r} is not an http(s) URL; e.g. "
            "https://kubeflow.example.com/pipeline; nothing was submitted",
            Exit.USAGE,
        )
    if _loopback(parts.hostname) or allow_http:
        return
    raise KubeflowError(
        f"--kfp-host {shown_url(host)} is plain http: the token would cross the network in "
        "clear text. Use the https URL of the API (or a `kubectl port-forward` to "
        "127.0.0.1); for an in-cluster service on a network you trust, pass "
        "--kfp-allow-http; nothing was submitted",
        Exit.USAGE,
    )


def _loopback(hostname: str) -> bool:
    if hostname.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows a redirect with every header, Authorization included, to whatever
    origin it names: a 3xx is answered to the caller instead, and the token stays here."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _preflight(target: KubeflowTarget) -> bool:
    """GET /healthz once, with a timeout: reachable, authorised, the API (not a login page)?
    Returns whether the deployment is multi-user. Redirects are refused, not followed."""
    request = urllib.request.Request(
        f"{target.api}/apis/v2beta1/healthz", headers={"Accept": "application/json"}
    )
    if bearer := _bearer(target):
        request.add_header("Authorization", f"Bearer {bearer}")
    try:
        with _OPENER.open(request, timeout=REQUEST_TIMEOUT) as response:
            body = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            raise _redirected(target, exc.headers.get("Location") or "?") from None
        raise _http_error(target, exc.code, exc.read().decode("utf-8", "replace"), "") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _unreachable(target, str(reason)) from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise _not_the_api(target) from None
    if not isinstance(answer, dict):
        raise _not_the_api(target)
    return answer.get("multi_user") is True


def _bearer(target: KubeflowTarget) -> str | None:
    try:
        return target.auth.bearer()
    except OSError as exc:
        raise KubeflowError(
            f"cannot read {target.auth.source}: {exc}; nothing was submitted", Exit.USAGE
        ) from None


def _client(target: KubeflowTarget) -> kfp.Client:
    import kfp
    from kfp.client import ServiceAccountTokenVolumeCredentials

    kwargs: dict[str, Any] = {}
    if target.auth.kind == "token":
        kwargs["existing_token"] = target.auth.token
    elif target.auth.kind == "token_file":
        kwargs["credentials"] = ServiceAccountTokenVolumeCredentials(str(target.auth.path))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # kfp warns that it needs KFP >= 2.0.0-beta.2 on every construction.
        warnings.simplefilter("ignore", FutureWarning)
        with _api_call(target, "connecting"):
            # 'kubeflow' is kfp's "no namespace given"; preflight already saw the API.
            return kfp.Client(host=target.api, namespace=target.namespace or "kubeflow", **kwargs)


@contextlib.contextmanager
def _api_call(target: KubeflowTarget, doing: str) -> Iterator[None]:
    """Turn what kfp.Client raises into a KubeflowError with an exit code and a next step;
    kfp's own "Experiment details"/"Run details" lines are dropped (the URL is reported)."""
    import kfp_server_api
    import urllib3.exceptions

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except kfp_server_api.ApiException as exc:
        raise _http_error(target, int(exc.status or 0), str(exc.body or ""), doing) from None
    except urllib3.exceptions.HTTPError as exc:
        raise _unreachable(target, exc.__class__.__name__) from None
    except ValueError as exc:  # kfp: "Multiple experiments is found with name ..."
        raise KubeflowError(f"{doing}: {exc}", Exit.USAGE) from None


def _server_message(body: str) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    if isinstance(parsed, dict):
        return str(parsed.get("message") or parsed.get("error") or "").strip()
    return ""


def _http_error(target: KubeflowTarget, status: int, body: str, doing: str) -> KubeflowError:
    said = _server_message(body)
    during = f" while {doing}" if doing else ""
    detail = f" (Kubeflow said: {said})" if said else ""
    # Older and multi-user KFP answer a missing identity with 500 "Unauthenticated".
    auth_failure = status in (401, 403) or (
        status == 500 and ("Unauthenticated" in body or "PermissionDenied" in body)
    )
    if auth_failure:
        verb = "refused" if status != 401 else "did not accept"
        ns = f" namespace {target.namespace!r}" if target.namespace else " this API"
        return KubeflowError(
            f"Kubeflow at {target.api} {verb} {target.auth.source} for{ns}{during}{detail}. "
            f"Use a token of an identity with access to it (set {TOKEN_ENV}, or mount a "
            "service-account token and pass --sa-token-path); nothing was submitted",
            Exit.UNAUTHORISED,
        )
    if status == 404:
        what = "a Kubeflow Pipelines API (v2beta1) at this URL"
        if doing:
            what = f"experiment {target.experiment!r}"
            if target.namespace:
                what = f"namespace {target.namespace!r} or {what}"
        return KubeflowError(
            f"Kubeflow at {target.api} does not know {what}{during}{detail}. Check --kfp-host "
            "(the pipelines API, often ending in /pipeline), --namespace (your profile) and "
            "--experiment",
            Exit.USAGE,
        )
    return KubeflowError(
        f"Kubeflow at {target.api} answered HTTP {status}{during}{detail}", Exit.ERROR
    )


def _unreachable(target: KubeflowTarget, reason: str) -> KubeflowError:
    return KubeflowError(
        f"cannot reach Kubeflow Pipelines at {target.api} ({reason}): check the URL, your VPN "
        "or port-forward, then submit again; nothing was submitted",
        Exit.UNREACHABLE,
    )


def _redirected(target: KubeflowTarget, location: str) -> KubeflowError:
    return KubeflowError(
        f"Kubeflow at {shown_url(target.api)} redirected the API call to "
        f"{shown_url(location)}, usually a login page of the cluster's ingress; the token was "
        f"not sent there. Authenticate with a token ({TOKEN_ENV} or --sa-token-path) or point "
        "--kfp-host at the API itself; nothing was submitted",
        Exit.UNAUTHORISED,
    )


def _not_the_api(target: KubeflowTarget) -> KubeflowError:
    return KubeflowError(
        f"{target.api} answered with something that is not the Kubeflow Pipelines API, "
        "usually a login page of the cluster's ingress: authenticate with a token "
        f"({TOKEN_ENV} or --sa-token-path) or point --kfp-host at the API itself",
        Exit.UNAUTHORISED,
    )


def preflight(target: KubeflowTarget) -> bool:
    """GET /healthz once (reachable, authorised, the API itself); whether it is multi-user.
    For other submissions than training (the monitoring schedule)."""
    multi_user = _preflight(target)
    if multi_user and not target.namespace:
        raise KubeflowError(
            f"Kubeflow at {target.api} is multi-user: pass --namespace with your profile's "
            "namespace (the one the Kubeflow dashboard shows); nothing was submitted",
            Exit.USAGE,
        )
    return multi_user


def client_for(target: KubeflowTarget) -> kfp.Client:
    """kfp.Client with the target's auth, kfp's construction noise silenced."""
    return _client(target)


api_call = _api_call  # kfp.Client errors -> KubeflowError with an exit code and a next step


# -- waiting --------------------------------------------------------------------------------


def wait(
    root: Path,
    config: SpokeConfig,
    target: KubeflowTarget,
    run: KubeflowRun,
    *,
    timeout: float,
    poll_seconds: float = 10.0,
    on_task: TaskCallback | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> KubeflowOutcome:
    """Poll the run until it ends or `timeout` seconds pass, calling on_task(name, state) as a
    task of the pipeline changes state; then read what the steps recorded in the registry.
    Losing the API while watching raises KubeflowError with the same exit code, saying that
    the run goes on."""
    try:
        return _watch(root, config, target, run, timeout, poll_seconds, on_task, clock, sleep)
    except KubeflowError as exc:
        said = str(exc).removesuffix("; nothing was submitted").removesuffix(", then submit again")
        raise KubeflowError(
            f"lost sight of run {run.run_id} while watching it: {said}. The run was submitted "
            f"and goes on in Kubeflow: {run.url}",
            exc.exit_code,
        ) from None


def _watch(
    root: Path,
    config: SpokeConfig,
    target: KubeflowTarget,
    run: KubeflowRun,
    timeout: float,
    poll_seconds: float,
    on_task: TaskCallback | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> KubeflowOutcome:
    client = _client(target)
    started = clock()
    seen: dict[str, str] = {}
    while True:
        with _api_call(target, f"reading run {run.run_id}"):
            answer: Any = client._run_api.run_service_get_run(  # get_run has no timeout
                run_id=run.run_id, _request_timeout=REQUEST_TIMEOUT
            )
        if getattr(answer, "run_id", None) is None:
            raise _not_the_api(target)
        tasks = _tasks(answer, run.tasks)
        for task in tasks:
            if seen.get(task.name) != task.state:
                seen[task.name] = task.state
                if on_task is not None:
                    on_task(task.name, task.state)
        state = str(answer.state or "").upper()
        waited = clock() - started
        if state in TERMINAL:
            break
        if waited >= timeout:
            return KubeflowOutcome(run, TIMED_OUT, tasks, waited_seconds=waited)
        sleep(poll_seconds)
    training, notes = _registry_outcome(root, config, run)
    return KubeflowOutcome(run, state, tasks, training, waited, notes)


def _tasks(answer: Any, names: tuple[str, ...]) -> tuple[TaskState, ...]:
    """The pipeline's own tasks; Kubeflow also lists the root DAG and *-driver nodes."""
    details = getattr(getattr(answer, "run_details", None), "task_details", None) or []
    found = {
        d.display_name: TaskState(d.display_name, str(d.state or "PENDING").upper(), d.pod_name)
        for d in details
        if d.display_name in names
    }
    return tuple(found[name] for name in names if name in found)


def _registry_outcome(
    root: Path, config: SpokeConfig, run: KubeflowRun
) -> tuple[TrainingOutcome | None, tuple[str, ...]]:
    """What the steps recorded under this run's key, when the registry answers from here."""
    from slipway.pipelines.training.pipeline import find_outcome

    uri = str(run.arguments["tracking_uri"])
    try:
        with _quick_mlflow():
            return find_outcome(root, config, run.run_key, uri, run.url), ()
    except Exception as exc:  # the registry may be reachable only from the cluster
        return None, (
            f"could not read the registry at {shown_url(uri)} from here ({exc.__class__.__name__})",
        )


@contextlib.contextmanager
def _quick_mlflow() -> Iterator[None]:
    """MLflow retries an unreachable server for minutes by default; once is enough here."""
    keys = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
    with restored_environment(keys):
        for key, value in keys.items():
            os.environ.setdefault(key, value)
        yield
