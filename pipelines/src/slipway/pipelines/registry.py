"""The model registry conventions every Slipway command shares (MLflow 3, aliases not stages).

One registered model per spoke, named after its slug. Aliases say what a version is doing:
`champion` serves, `challenger` is under rollout, `previous` is the instant-rollback target.
The embedded registry is MLflow on sqlite under <spoke>/.slipway/; MLFLOW_TRACKING_URI points
every command at a shared server instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.redact import shown_url
from slipway.pipelines.settings import Settings, restored_environment

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"

STATE_DIR = ".slipway"

# Tags on every registered version (lineage, then governance and rollout outcomes).
TAG_GIT_SHA = "slipway.git_sha"
TAG_GIT_DIRTY = "slipway.git_dirty"
TAG_DATA_DIGEST = "slipway.data_digest"
TAG_PIPELINE_SHA256 = "slipway.pipeline_sha256"
TAG_TEMPLATE_VERSION = "slipway.template_version"
TAG_SLIPWAY_VERSION = "slipway.version"
TAG_RISK_TIER = "slipway.risk_tier"
TAG_KPI_NAME = "slipway.kpi.name"
TAG_KPI_BASELINE = "slipway.kpi.baseline"
TAG_KPI_TARGET = "slipway.kpi.target"
TAG_AUTHOR = "slipway.author"
TAG_ROLLOUT_OUTCOME = "slipway.rollout.outcome"  # promoted | staged | rolled_back | failed
TAG_ROLLOUT_REASON = "slipway.rollout.reason"


class RegistryUnreachable(SlipwayError, ConnectionError):
    """A registry server did not answer after MLflow's own retries with backoff."""

    exit_code = Exit.UNREACHABLE


# What MLflow's REST client says once its retries (MLFLOW_HTTP_REQUEST_MAX_RETRIES, waiting
# MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR * 2**n between tries) are spent on a server that is down.
_UNREACHABLE_MARKERS = (
    "Max retries exceeded",
    "Failed to establish a new connection",
    "Connection refused",
    "Connection aborted",
    "Remote end closed connection",
    "too many 5",  # urllib3's "too many 500/502/503 error responses" while it restarts
)


# The `slipway` command's registry calls, bounded: MLflow's own defaults (7 retries, backoff
# factor 2, 120 s a request) kept `slipway promote` against a registry that was down for
# 252 s before its exit 8. Here a call is tried 4 times with 0, 2 and 4 s between tries
# (plus up to 1 s of jitter each): a registry that refuses connections is reported in about
# 10 s, one that accepts and never answers after at most 4 x 30 s. Each is an MLflow
# variable, so an operator's own setting wins (docs/platform/shared-registry.md).
CLI_HTTP_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def bound_registry_calls(environ: MutableMapping[str, str] | None = None) -> None:
    """Give MLflow's HTTP client the CLI's bounded retries, where nobody set their own."""
    target = os.environ if environ is None else environ
    for name, value in CLI_HTTP_DEFAULTS.items():
        if not target.get(name, "").strip():
            target[name] = value


def unreachable(exc: BaseException) -> RegistryUnreachable | None:
    """The registry-down failure hidden in `exc` (an MlflowException or a requests error),
    as a RegistryUnreachable with what to do next; None for any other error. The one
    question the CLI asks of an error it does not know."""
    module = type(exc).__module__
    text = str(exc)
    if not module.startswith(("mlflow", "requests", "urllib3")) or not any(
        marker in text for marker in _UNREACHABLE_MARKERS
    ):
        if failure := connection_failure(exc):  # a refused connection, retries or not
            uri = shown_url(Settings.from_env().mlflow_tracking_uri or "the configured URI")
            return RegistryUnreachable(unreachable_message(uri, failure))
        return None
    uri = shown_url(Settings.from_env().mlflow_tracking_uri or "the registry")
    return RegistryUnreachable(
        f"the model registry at {uri} cannot be reached: it did not answer, even after "
        "retrying with backoff "
        "(MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR). The step that "
        "failed changed nothing, and every alias move is repeatable: an open rollout stays "
        "open, so run `slipway deploy --resume` or `slipway rollback` again once the registry "
        "answers (`slipway status` shows where it stopped)."
    )


def state_dir(root: Path) -> Path:
    """Where a spoke keeps its embedded registry, rollout state and audit trail."""
    path = root / STATE_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_tracking_uri(root: Path) -> str:
    """The spoke's own registry: MLflow on sqlite under .slipway/."""
    return f"sqlite:///{state_dir(root) / 'mlflow.db'}"


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI when set (a shared server), else the spoke's embedded sqlite."""
    uri = Settings.from_env().mlflow_tracking_uri or embedded_tracking_uri(root)
    require_plugin_for(uri)
    return uri


class MissingRegistryPlugin(SlipwayError):
    """A SageMaker managed MLflow ARN without the plugin that resolves it."""

    exit_code = Exit.CONFIG


def require_plugin_for(uri: str) -> None:
    """A SageMaker ARN needs the sagemaker-mlflow plugin, which only spokes on that registry
    install (its header provider warns on every call to any other registry); without it
    MLflow would say only "unsupported URI scheme"."""
    from importlib.util import find_spec

    if uri.startswith("arn:") and find_spec("sagemaker_mlflow") is None:
        raise MissingRegistryPlugin(
            f"MLFLOW_TRACKING_URI is a SageMaker managed MLflow ARN ({uri}), and this "
            "environment lacks the sagemaker-mlflow plugin that resolves it. Answer the "
            "template's registry question with sagemaker (`copier update --defaults --data "
            "registry=sagemaker`, then `make setup`), which installs "
            "slipway-pipelines[sagemaker-mlflow]; or point MLFLOW_TRACKING_URI at an "
            "http(s) server."
        )


def artifact_location(root: Path) -> str | None:
    """Artifacts of the embedded registry live beside it; a server decides its own."""
    if Settings.from_env().mlflow_tracking_uri:
        return None
    return (state_dir(root) / "artifacts").as_uri()


def connection_failure(exc: BaseException) -> BaseException | None:
    """The network error behind an MLflow error (MLflow wraps requests' own), or None when
    the registry did answer (a missing version, a bad request...)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        module = type(current).__module__
        if module.startswith(("requests", "urllib3")) and type(current).__name__ in {
            "ConnectionError",
            "ConnectTimeout",
            "ReadTimeout",
            "Timeout",
            "MaxRetryError",
            "NewConnectionError",
        }:
            return current
        current = current.__cause__ or current.__context__
    return None


def unreachable_message(uri: str, failure: BaseException) -> str:
    return (
        f"the model registry at {shown_url(uri)} cannot be reached ({type(failure).__name__}); "
        "check "
        "MLFLOW_TRACKING_URI and that the server is up, then run the command again"
    )


def client(root: Path) -> MlflowClient:
    """The spoke's registry (tracking_uri): a shared server, else its embedded sqlite."""
    return client_for(tracking_uri(root))


def client_for(uri: str) -> MlflowClient:
    """A client whose runs and model registry are both at `uri` (MLflow would otherwise
    take the registry from MLFLOW_REGISTRY_URI, which may name another server)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def version_exists(mlflow_client: MlflowClient, model: str, version: str) -> bool:
    """Whether `model` has registered `version` (a typo is not a governance refusal).

    Only the registry's own "no such version" answer means no: an unreachable server is
    RegistryUnreachable, never reported as a typo."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_model_version(model, version)
    except MlflowException as exc:
        if failure := connection_failure(exc):
            raise RegistryUnreachable(
                unreachable_message(mlflow_client.tracking_uri, failure)
            ) from exc
        from slipway.pipelines.registry_versions import from_mlflow_error

        if skew := from_mlflow_error(exc, mlflow_client.tracking_uri):
            raise skew from exc
        return False
    return True


def version_by_alias(mlflow_client: MlflowClient, model: str, alias: str) -> ModelVersion | None:
    """The version holding `alias`, or None when nobody holds it (or the model is new)."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(model, alias)
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            return None
        raise


def alias_newest_challenger(mlflow_client: MlflowClient, model: str, version: str) -> str:
    """Point `challenger` at `version` unless a newer registered candidate exists; returns
    the version that holds it. Two trainings of one spoke at once each set the alias after
    registering: without this the slower one would move it back to the older version. MLflow
    has no compare-and-set on aliases, so each one re-reads after writing and hands the alias
    to the newest candidate (a version carrying a gate verdict): they converge on it."""

    def newest() -> int:
        found = [
            int(v.version)
            for v in mlflow_client.search_model_versions(f"name = '{model}'")
            if v.tags.get(TAG_GATE_VERDICT) not in (None, "rejected")
        ]
        return max([int(version), *found])

    def set_alias(target: str) -> None:
        # Two first writes of the alias at once race in the server's own INSERT (a unique
        # violation answered as an error): the alias exists then, so write it again.
        from mlflow.exceptions import MlflowException

        for attempt in range(3):
            try:
                mlflow_client.set_registered_model_alias(model, CHALLENGER, target)
                return
            except MlflowException:
                if attempt == 2:
                    raise

    set_alias(version)
    winner = newest()
    if winner != int(version):
        set_alias(str(winner))
    return str(winner)


# Tags on a training run (the model card and `slipway train` read them).
TAG_RUN_KEY = "slipway.run_key"  # ties an MLflow run to the pipeline run that made it
TAG_OUTCOME = "slipway.outcome"  # registered | gate_rejected | data_invalid
TAG_GATE_VERDICT = "slipway.gate.verdict"  # passed | bootstrap | rejected
# MLflow's evaluation images of the run's model: drawing | drawn | failed: <why> (pictures.py)
TAG_EVALUATION_PICTURES = "slipway.evaluation_pictures"
TAG_GATE_BASELINE = "slipway.gate.baseline"  # e.g. "champion v3", or "none"
TAG_REGISTERED_VERSION = "slipway.registered_version"


def experiment_id(mlflow_client: MlflowClient, root: Path, model: str) -> str:
    """The spoke's experiment (named after the model), created on first use.

    Artifacts of the embedded registry go under .slipway/ beside it; a server's
    experiments use the server's own artifact store.
    """
    existing = mlflow_client.get_experiment_by_name(model)
    if existing is not None:
        return existing.experiment_id
    from mlflow.exceptions import MlflowException

    embedded = mlflow_client.tracking_uri == embedded_tracking_uri(root)
    location = (state_dir(root) / "artifacts").as_uri() if embedded else None
    try:
        return mlflow_client.create_experiment(model, artifact_location=location)
    except MlflowException as exc:
        # Two first trainings at once on a shared server: the other one created it.
        created = mlflow_client.get_experiment_by_name(model)
        if exc.error_code != "RESOURCE_ALREADY_EXISTS" or created is None:
            raise
        return created.experiment_id


# MLflow's fluent API (log_model, load_model) pointed at one spoke's registry, for a block.
#
# `mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, which every later
# `registry.client(...)` in the process and every child process would follow to that spoke:
# one gateway or test touching spoke A would silently send the next command to A's registry.
# This context manager restores the environment on exit.


@contextmanager
def fluent_registry(root: Path) -> Iterator[None]:
    """The fluent API uses this spoke's registry inside the block; the environment is
    restored on exit (the fluent API itself keeps the URI until the next block sets one)."""
    import mlflow

    uri = tracking_uri(root)
    with restored_environment(("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield
