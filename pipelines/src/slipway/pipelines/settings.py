"""Every environment variable the libraries read, in one model, checked one way.

Until 0.2.0 each module parsed its own variables, with five behaviours on a bad value (a
bare ValueError, a module's own error, the default silently). Now a module asks
`Settings.from_env()` for a typed value; a value that does not parse raises `SettingError`
(exit code 3, CONFIG) naming the variable, what it must be, and its default. An empty value
counts as unset.

Defaults that depend on where the code runs (the core count, the working directory, the
spoke's embedded registry) stay with the code that knows them: the field is then None.
The table in docs/reference/environment.md is this model (a test compares them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

__all__ = ["SettingError", "Settings", "passed_on", "restored_environment"]


class SettingError(SlipwayError, ValueError):
    """An environment variable holds a value Slipway cannot use (still a ValueError, which
    the gateway's limits raised before)."""

    exit_code = Exit.CONFIG


def _var(
    name: str, area: str, means: str, *, must_be: str = "text", default: str = "unset", **kw: Any
) -> Any:
    """A field read from `name`; `must_be` is said when a value does not parse."""
    return Field(
        None,
        alias=name,
        description=means,
        json_schema_extra={"area": area, "must_be": must_be, "default": default},
        **kw,
    )


def _whole(name: str, area: str, means: str, *, minimum: int, default: str) -> Any:
    """A whole number of at least `minimum` (0 or 1), told so when a value is not one."""
    must_be = "a positive integer" if minimum == 1 else f"a whole number, {minimum} or more"
    return _var(name, area, means, must_be=must_be, default=default, ge=minimum)


def _above_zero(name: str, area: str, means: str, *, must_be: str, default: str = "unset") -> Any:
    """A finite number above 0 (seconds, bytes, a count); `must_be` names its unit."""
    return _var(name, area, means, must_be=must_be, default=default, gt=0, allow_inf_nan=False)


class Settings(BaseModel):
    """The environment as Slipway reads it; None is unset (the reader's default applies)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)

    # registry and team state
    mlflow_tracking_uri: str | None = _var(
        "MLFLOW_TRACKING_URI",
        "registry",
        "the team's MLflow server (a `postgresql://` URI is also the state database)",
        default="the spoke's sqlite registry under .slipway/",
    )
    state_url: str | None = _var(
        "SLIPWAY_STATE_URL",
        "registry",
        "the team's state database (audit trail, open rollout): `postgresql://...`, or "
        "`local` for the files under .slipway/",
        default="MLFLOW_TRACKING_URI when it is postgresql://, else .slipway/",
    )
    state_retries: int | None = _whole(
        "SLIPWAY_STATE_RETRIES",
        "registry",
        "retries of a lost state-database connection (backoff 0.25 s doubling to 4 s)",
        minimum=0,
        default="6",
    )
    actor: str | None = _var(
        "SLIPWAY_ACTOR",
        "governance",
        "who the audit trail names (CI sets it)",
        default="git's user.email, else the login name",
    )
    hub_governance: str | None = _var(
        "SLIPWAY_HUB_GOVERNANCE",
        "governance",
        "the platform's copy of the hub's governance list (tiers, approvers, keys)",
        default="the list pinned with the template release (hub_governance.toml)",
    )
    aws_region: str | None = _var(
        "AWS_DEFAULT_REGION",
        "governance",
        "the region `slipway monitor --env` reads data capture in",
        default="slipway.toml [deploy].region",
    )
    # rollout
    rollout_lease_seconds: float | None = _above_zero(
        "SLIPWAY_ROLLOUT_LEASE_SECONDS",
        "rollout",
        "how long a controller holds a rollout without renewing its lease",
        must_be="a positive number of seconds",
        default="30",
    )
    gateway_url: str | None = _var(
        "SLIPWAY_GATEWAY_URL",
        "rollout",
        "the gateway the CLI talks to (after --url)",
        default="slipway.toml [deploy].gateway_url",
    )
    admin_token: str | None = _var(
        "SLIPWAY_ADMIN_TOKEN",
        "serving",
        "the bearer token the gateway's /admin routes require, and the CLI sends",
        default="no token",
    )
    # serving: the gateway's limits
    max_body_bytes: float | None = _above_zero(
        "SLIPWAY_MAX_BODY_BYTES",
        "serving",
        "the largest request body the gateway reads (413 beyond)",
        must_be="a number of bytes above 0",
        default="6291456 (6 MiB, SageMaker's own limit)",
    )
    predict_timeout_s: float | None = _above_zero(
        "SLIPWAY_PREDICT_TIMEOUT_S",
        "serving",
        "how long a prediction may take before it fails (and counts against the variant)",
        must_be="a number of seconds above 0",
        default="SAGEMAKER_MODEL_SERVER_TIMEOUT, else 30",
    )
    sagemaker_timeout_s: float | None = _above_zero(
        "SAGEMAKER_MODEL_SERVER_TIMEOUT",
        "serving",
        "the SageMaker toolkits' name for the prediction timeout",
        must_be="a number of seconds above 0",
    )
    max_queued_requests: float | None = _above_zero(
        "SLIPWAY_MAX_QUEUED_REQUESTS",
        "serving",
        "requests that may wait per variant before more are shed (503)",
        must_be="a number above 0",
        default="1024",
    )
    max_queued_rows: float | None = _above_zero(
        "SLIPWAY_MAX_QUEUED_ROWS",
        "serving",
        "rows that may wait per variant before more requests are shed (503)",
        must_be="a number above 0",
        default="100000",
    )
    # serving: the SageMaker container
    model_dir: str | None = _var(
        "SLIPWAY_MODEL_DIR",
        "serving",
        "the MLflow model the container serves",
        default="SM_MODEL_DIR, else /opt/ml/model",
    )
    sm_model_dir: str | None = _var(
        "SM_MODEL_DIR", "serving", "SageMaker's name for the model directory"
    )
    spoke_root: str | None = _var(
        "SLIPWAY_SPOKE_ROOT",
        "serving",
        "the spoke's directory in the image (its slipway.toml holds the data contract)",
        default="the working directory",
    )
    port: int | None = _whole(
        "SAGEMAKER_BIND_TO_PORT",
        "serving",
        "the container's port",
        minimum=1,
        default="8080",
    )
    workers: int | None = _whole(
        "SAGEMAKER_MODEL_SERVER_WORKERS",
        "serving",
        "server processes in the container",
        minimum=1,
        default="the cores the container may use",
    )
    model_version: str | None = _var(
        "SLIPWAY_MODEL_VERSION", "serving", "the registered version served", default="unknown"
    )
    endpoint_name: str | None = _var(
        "SLIPWAY_ENDPOINT_NAME", "serving", "the SageMaker endpoint (with the variant name)"
    )
    variant_name: str | None = _var(
        "SLIPWAY_VARIANT_NAME", "serving", "the production variant (with the endpoint name)"
    )
    metrics_interval_s: float | None = _var(
        "SLIPWAY_METRICS_INTERVAL_S",
        "serving",
        "seconds between two CloudWatch publications",
        must_be="a number of seconds",
        default="60",
        allow_inf_nan=False,
    )
    access_log: str | None = _var(
        "SLIPWAY_ACCESS_LOG",
        "serving",
        "`0`, `false` or `no` turns the JSON access log off",
        default="on",
    )
    server_loop: str | None = _var(
        "SLIPWAY_SERVER_LOOP", "serving", "uvicorn's event loop", default="uvloop"
    )
    server_http: str | None = _var(
        "SLIPWAY_SERVER_HTTP", "serving", "uvicorn's HTTP parser", default="httptools"
    )
    transform: str | None = _var(
        "SLIPWAY_TRANSFORM",
        "serving",
        "`1`, `true` or `yes`: under a SageMaker Batch Transform job, /invocations answers "
        "per line (`slipway score --env` sets it)",
        default="off",
    )
    sample_store: str | None = _var(
        "SLIPWAY_SAMPLE_STORE",
        "serving",
        "an s3:// prefix the gateway writes its drift sample to, one object per process a "
        "minute (the KServe predictor's, from [monitoring] sample_store)",
        default="none: the sample stays on the local disk",
    )
    image: str | None = _var(
        "SLIPWAY_IMAGE",
        "rollout",
        "the serving image a KServe rollout deploys: `slipway deploy --target kserve` (after "
        "--image), the deploy pipeline's rollout step (after its `image` parameter)",
        default="none: --image (the pipeline: the image of `slipway compile --image`)",
    )
    kubeconfig: str | None = _var(
        "KUBECONFIG",
        "rollout",
        "the kubeconfig a KServe rollout reaches the Kubernetes API with outside a pod (the "
        "kubernetes client's own variable, read here when the rollout starts: the client "
        "reads it once, at import)",
        default="~/.kube/config (in a pod: its service account)",
    )
    console_identity_header: str | None = _var(
        "SLIPWAY_CONSOLE_IDENTITY_HEADER",
        "hub",
        "the header naming the signed-in user behind the console's proxy (after its option)",
        default="none",
    )
    console_trusted_proxies: str | None = _var(
        "SLIPWAY_CONSOLE_TRUSTED_PROXIES",
        "hub",
        "the proxies whose identity header the console believes (after its option)",
        default="none",
    )
    # batch
    kms_key_arn: str | None = _var(
        "SLIPWAY_KMS_KEY_ARN",
        "batch",
        "the spoke's KMS key for `slipway score --env` (after --kms-key)",
        default="none: --kms-key is then required",
    )
    # governance: alerts
    alert_webhook: str | None = _var(
        "SLIPWAY_ALERT_WEBHOOK",
        "governance",
        "the team channel's http(s) webhook that drift, retraining and rollback alerts go to "
        "(a CI secret, never slipway.toml)",
        default="no alerts sent",
    )
    # infra
    policy_pack: str | None = _var(
        "SLIPWAY_POLICY_PACK",
        "infra",
        "the hub's Pulumi policy pack `slipway deploy --env` runs `pulumi up` with",
        default=".slipway-hub/infra/policy",
    )
    github_repository: str | None = _var(
        "SLIPWAY_GITHUB_REPOSITORY",
        "infra",
        "the repository the CI role's OIDC trust must name (CD sets it from github.repository)",
        default="the role's slipway:github-repository tag",
    )
    # training
    kfp_poll_seconds: float | None = _var(
        "SLIPWAY_KFP_POLL_SECONDS",
        "training",
        "seconds between two reads of a Kubeflow run by `slipway train --wait`",
        must_be="a number of seconds, 0 or more",
        default="10",
        ge=0,
        allow_inf_nan=False,
    )
    kfp_ui: str | None = _var(
        "KF_PIPELINES_UI_ENDPOINT",
        "training",
        "the Kubeflow UI's address, for the run links printed (kfp.Client's own name)",
        default="the API's address",
    )
    step_processes: str | None = _var(
        "SLIPWAY_STEP_PROCESSES",
        "training",
        "`daemon` (steps forked from a warm process kept per spoke between runs), `zygote` "
        "(a warm process for this run) or `subprocess` (a fresh interpreter per step)",
        default="daemon, zygote under CI",
    )
    ci: str | None = _var(
        "CI",
        "training",
        "set by CI services: a run there starts no step daemon",
        default="not CI",
    )
    daemon_idle_minutes: float | None = _above_zero(
        "SLIPWAY_DAEMON_IDLE_MINUTES",
        "training",
        "minutes a step daemon waits for another run before it ends",
        must_be="a positive number of minutes",
        default="10",
    )
    daemon_preload: str | None = _var(
        "SLIPWAY_DAEMON_PRELOAD",
        "training",
        "more modules (comma-separated) a step daemon imports while it warms up",
        default="none",
    )
    runtime_dir: str | None = _var(
        "XDG_RUNTIME_DIR",
        "training",
        "where a step daemon's socket lives (its `slipway/` directory)",
        default="<tmp>/slipway-<uid>",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in `environ` (the process's environment by default)."""
        env = os.environ if environ is None else environ
        present = {}
        for field in cls.model_fields.values():
            assert field.alias is not None
            raw = env.get(field.alias, "").strip()
            if raw:
                present[field.alias] = raw
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            raise SettingError(_explain(exc, present)) from None

    @classmethod
    def variables(cls) -> list[tuple[str, str, str, str, str]]:
        """(variable, area, meaning, what it must be, default) for every field: the docs table."""
        rows = []
        for field in cls.model_fields.values():
            extra = field.json_schema_extra
            assert field.alias is not None and isinstance(extra, dict)
            rows.append(
                (
                    field.alias,
                    str(extra["area"]),
                    field.description or "",
                    str(extra["must_be"]),
                    str(extra["default"]),
                )
            )
        return rows


def _explain(exc: ValidationError, present: Mapping[str, str]) -> str:
    problems = []
    by_alias = {f.alias: f for f in Settings.model_fields.values()}
    for error in exc.errors():
        name = str(error["loc"][0])
        extra = by_alias[name].json_schema_extra
        assert isinstance(extra, dict)
        problems.append(
            f"{name}={present.get(name, '')!r} must be {extra['must_be']} "
            f"(default {extra['default']})"
        )
    return "; ".join(problems) + ": set it so, or unset it"


def passed_on(names: Iterable[str]) -> dict[str, str]:
    """The text of variables Slipway does not interpret but a child process inherits
    (PYTHONPATH, ...), '' when unset: what a step daemon's fingerprint is made of."""
    return {name: os.environ.get(name, "") for name in names}


@contextmanager
def restored_environment(names: Iterable[str]) -> Iterator[None]:
    """The variables `names` as they were before the block, whatever the block sets: for
    the libraries that are configured only through the environment (MLflow's fluent API and
    HTTP retries, the state store's retries in a test), so the setting never outlives the
    block that needed it."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def table() -> str:
    """The Markdown table docs/reference/environment.md holds (`python -m
    slipway.pipelines.settings` prints it)."""
    lines = [
        "| variable | area | what it sets | a value must be | when unset |",
        "|---|---|---|---|---|",
    ]
    for name, area, means, must_be, default in Settings.variables():
        lines.append(f"| `{name}` | {area} | {means} | {must_be} | {default} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
