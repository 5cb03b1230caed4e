"""slipway.toml: the spoke's single source of truth, validated once at the edge.

Every other module receives a `SpokeConfig` and trusts it. Errors name the field
(as a dotted path in slipway.toml) and what is allowed, so a team can fix the file
without reading this code. This module imports only pydantic and the standard library:
slipway-infra uses it without pulling kfp or mlflow.
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.redact import shown_url

CONFIG_FILE = "slipway.toml"

SLUG_RE = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
PACKAGE_RE = r"^[a-z][a-z0-9_]*$"
REGION_RE = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$"
ENTRYPOINT_RE = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
PIPELINE_ROOT_RE = r"^$|^(s3|gs|minio)://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?$"


class ConfigError(SlipwayError):
    """slipway.toml is missing, unreadable or invalid; the message says what to fix."""

    exit_code = Exit.CONFIG


Task = Literal["binary", "multiclass", "regression"]
"""What the model predicts: one of two classes, one of several, or a number."""
TASKS: tuple[Task, ...] = get_args(Task)


class Metric(NamedTuple):
    """A held-out metric gates may name, as training.evaluation reads it from MLflow."""

    name: str  # the name in slipway.toml, on the run (test_<name>) and on the card
    mlflow_key: str  # the key in mlflow.models.evaluate's result
    greater_is_better: bool
    needs_proba: bool = False  # computed only when the model gives class probabilities
    bounded: bool = True  # a score in [0, 1]; else an error in the target's units


# One table per task: the only place metric names, MLflow keys and directions live.
METRICS_BY_TASK: dict[Task, tuple[Metric, ...]] = {
    "binary": (
        Metric("roc_auc", "roc_auc", True, needs_proba=True),
        Metric("accuracy", "accuracy_score", True),
        Metric("f1", "f1_score", True),
        Metric("precision", "precision_score", True),
        Metric("recall", "recall_score", True),
    ),
    "multiclass": (
        Metric("accuracy", "accuracy_score", True),
        Metric("f1_weighted", "f1_score", True),
        Metric("precision_weighted", "precision_score", True),
        Metric("recall_weighted", "recall_score", True),
        Metric("roc_auc_ovr", "roc_auc", True, needs_proba=True),
        Metric("log_loss", "log_loss", False, needs_proba=True, bounded=False),
    ),
    "regression": (
        Metric("rmse", "root_mean_squared_error", False, bounded=False),
        Metric("mae", "mean_absolute_error", False, bounded=False),
        Metric("r2", "r2_score", True, bounded=False),
        Metric("mse", "mean_squared_error", False, bounded=False),
        Metric("max_error", "max_error", False, bounded=False),
    ),
}
# What a spoke gates on when slipway.toml has no [gates] (the template writes its own).
DEFAULT_GATES: dict[Task, tuple[str, dict[str, float]]] = {
    "binary": ("roc_auc", {"roc_auc": 0.9}),
    "multiclass": ("accuracy", {"accuracy": 0.8}),
    "regression": ("r2", {"r2": 0.3}),
}


def metrics_for(task: Task) -> tuple[Metric, ...]:
    return METRICS_BY_TASK[task]


def metric(task: Task, name: str) -> Metric:
    """The metric `name` of `task`; ValueError naming the ones that exist."""
    for known in METRICS_BY_TASK[task]:
        if known.name == name:
            return known
    allowed = ", ".join(m.name for m in METRICS_BY_TASK[task])
    raise ValueError(f"{name!r} is not a {task} metric; {task} metrics are: {allowed}")


MetricName = str
"""A metric's name in slipway.toml (validated against the task by SpokeConfig)."""
METRICS: tuple[str, ...] = tuple(m.name for m in METRICS_BY_TASK["binary"])

# The columns `slipway score` writes beside a row's id columns (slipway.pipelines.batch).
BATCH_OUTPUT_COLUMNS = (
    "row",
    "prediction",
    "model_name",
    "model_version",
    "model_run_id",
    "scored_at",
)

# Where a Batch Transform job's input and output go in the spoke's bucket:
# <BATCH_PREFIX>/<job>/input/ and <BATCH_PREFIX>/<job>/output/ (slipway-infra grants on it).
BATCH_PREFIX = "batch"

# A contract column's dtype as pandas stores it (strings are pandas objects).
PANDAS_DTYPES = {"float": "float64", "int": "int64", "bool": "bool", "str": "object"}


def gateway_url_problem(url: str) -> str | None:
    """Why `url` cannot be a gateway URL (http or https, a host, a valid port), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        return f"{shown_url(url)!r} is not a URL ({exc}); e.g. http://127.0.0.1:8780 or http://[::1]:8780"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shown_url(url)!r} is not an http(s) URL with a host; e.g. http://127.0.0.1:8780"
    return None


class RiskTier(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class _Section(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default. No number in
    # slipway.toml may be nan or inf: `min = nan` compared false with everything and so
    # switched the contract's range check off, and an `inf` guardrail could never breach.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Project(_Section):
    name: str = Field(min_length=1, max_length=80)
    slug: Annotated[str, Field(pattern=SLUG_RE, max_length=40)]
    package: Annotated[str, Field(pattern=PACKAGE_RE)]
    description: str = ""
    team: str = Field(min_length=1)
    contact: Annotated[str, Field(pattern=EMAIL_RE)]
    business_owner: str = Field(min_length=1)
    cost_center: str = Field(min_length=1)


class Kpi(_Section):
    """The business number the model exists to move: no KPI, no go/no-go review."""

    name: str = Field(min_length=1)
    baseline: float
    target: float
    higher_is_better: bool = True

    @model_validator(mode="after")
    def _target_improves(self) -> Kpi:
        better = (
            self.target > self.baseline if self.higher_is_better else (self.target < self.baseline)
        )
        if not better:
            direction = "above" if self.higher_is_better else "below"
            raise ValueError(
                f"target ({self.target}) must be {direction} baseline ({self.baseline}); "
                "set higher_is_better = false for a KPI that should go down"
            )
        return self


class Governance(_Section):
    risk_tier: RiskTier = RiskTier.low
    # Who may approve a high-risk version (never its author). Empty means anyone but the author.
    approvers: list[str] = []
    # The approvers' SSH public keys (ssh-keygen's allowed_signers format), relative to the
    # spoke: an approval counts for a tier that needs one only when signed by a key listed
    # there for the approver's name (governance/signatures.py).
    allowed_signers: str = "approvers/allowed_signers"
    limitations: list[str] = []
    intended_use: str = ""

    @field_validator("allowed_signers")
    @classmethod
    def _inside_the_spoke(cls, value: str) -> str:
        path = Path(value)
        if not value.strip() or path.is_absolute() or ".." in path.parts:
            raise ValueError(
                f"{value!r} must be a path inside the spoke, e.g. approvers/allowed_signers "
                "(committed and reviewed like code)"
            )
        return value


class ColumnRule(_Section):
    dtype: Literal["float", "int", "str", "bool"] = "float"
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    allowed: list[str | int] | None = None

    @model_validator(mode="after")
    def _range_ordered(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class DataContract(_Section):
    """One contract for training data, serving requests and drift monitoring."""

    min_rows: int = Field(default=100, ge=1)
    columns: dict[str, ColumnRule] = Field(min_length=1)


class Data(_Section):
    # "package.module:function" returning a pandas DataFrame with features and target.
    loader: Annotated[str, Field(pattern=ENTRYPOINT_RE)]
    target: str = Field(min_length=1)
    source: str = ""  # human description for the model card (where the data comes from)
    contract: DataContract

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> Data:
        if self.target in self.contract.columns:
            raise ValueError(
                f"target column {self.target!r} must not be listed in data.contract.columns "
                "(the contract describes the features a request carries)"
            )
        return self


class Training(_Section):
    # What the model predicts; picks the metrics, the split and the evaluation (binary default).
    task: Task = "binary"
    # "package.module:function" taking (X, y, params) and returning a fitted model: a
    # scikit-learn estimator, a LightGBM or XGBoost model, or an mlflow.pyfunc.PythonModel.
    trainer: Annotated[str, Field(pattern=ENTRYPOINT_RE)]
    params: dict[str, str | int | float | bool] = {}
    test_size: float = Field(default=0.25, gt=0, lt=1)
    seed: int = 42
    base_image: str = "python:3.11-slim"
    # Where Kubeflow keeps the runs' artifacts (s3://bucket/prefix); empty: the cluster's default.
    pipeline_root: Annotated[str, Field(pattern=PIPELINE_ROOT_RE)] = ""


class Gates(_Section):
    """A challenger must clear the absolute floors and beat the champion by the margin."""

    # Defaults depend on training.task (DEFAULT_GATES); SpokeConfig fills them in.
    primary_metric: MetricName = "roc_auc"
    # A floor per metric: at least this for a score, at most this for an error (rmse, ...).
    minimum: dict[str, float] = {"roc_auc": 0.9}
    # How much better than the baseline the primary metric must be (negative: a tolerance),
    # in the metric's own units; "better" follows the metric's direction.
    champion_margin: float = 0.0


class Guardrails(_Section):
    """What a canary may get worse by before it is rolled back (docs/spoke/canary-judge.md)."""

    # Ceiling: rolled back when certainly above it while the champion is certainly below.
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    # Tolerated slow-down of the challenger's latencies against the champion's.
    max_p95_latency_ratio: float = Field(default=1.3, gt=1)
    max_prediction_psi: float = Field(default=0.25, gt=0)
    # Tolerated error-rate increase over the champion in the same window, in percentage
    # points (0.5: the champion fails 1.0% of calls, the challenger may fail 1.5%).
    max_error_increase_pp: float = Field(default=0.5, ge=0, le=100)
    # Chance per rollout that a challenger within every tolerance is rolled back anyway.
    false_rollback_budget: float = Field(default=0.01, gt=0, le=0.2)


class Rollout(_Section):
    shadow_seconds: int = Field(default=0, ge=0)
    canary_steps: list[Annotated[int, Field(ge=1, le=100)]] = [10, 32, 100]
    step_seconds: int = Field(default=60, ge=1)
    min_requests_per_step: int = Field(default=50, ge=1)
    guardrails: Guardrails = Guardrails()

    @field_validator("canary_steps")
    @classmethod
    def _steps_shape(cls, steps: list[int]) -> list[int]:
        if len(steps) < 2:
            raise ValueError("needs at least two steps: a canary share, then 100")
        if steps[0] > 50:
            raise ValueError(f"first step is {steps[0]}%; a canary may take 1 to 50%")
        if steps[-1] != 100:
            raise ValueError(f"last step is {steps[-1]}%; a rollout ends at 100")
        if any(b <= a for a, b in pairwise(steps)):
            raise ValueError(f"{steps} must be strictly increasing")
        return steps


class Scaling(_Section):
    """Autoscaling bounds of one environment's endpoint: the cost ceiling is infrastructure."""

    min_instances: int = Field(default=1, ge=1, le=20)
    max_instances: int = Field(default=2, ge=1, le=40)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Scaling:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) is greater than max_instances "
                f"({self.max_instances})"
            )
        return self


# Kubernetes quantities as KServe's CRD takes them for cpu and memory ("500m", "2Gi").
QUANTITY_RE = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"
DNS_LABEL_RE = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class KServe(_Section):
    """Serving on Kubeflow: the InferenceService `slipway deploy --target kserve` applies."""

    namespace: Annotated[str, Field(pattern=DNS_LABEL_RE)] = "default"
    # The pipeline's service account (RBAC on inferenceservices in this namespace only).
    service_account: Annotated[str, Field(pattern=r"^$|" + DNS_LABEL_RE)] = ""
    cpu: Annotated[str, Field(pattern=QUANTITY_RE)] = "1"
    memory: Annotated[str, Field(pattern=QUANTITY_RE)] = "2Gi"
    min_replicas: int = Field(default=1, ge=0, le=20)
    max_replicas: int = Field(default=2, ge=1, le=40)
    # Where the judge reads per-revision readings (the cluster's Prometheus).
    prometheus_url: str = "http://prometheus-operated.monitoring:9090"

    @model_validator(mode="after")
    def _replicas_ordered(self) -> KServe:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is greater than max_replicas "
                f"({self.max_replicas})"
            )
        return self


class Deploy(_Section):
    # The embedded local target is always available; this names the production engine(s).
    target: Literal["sagemaker", "kserve", "both"] = "sagemaker"
    region: Annotated[str, Field(pattern=REGION_RE)] = "eu-west-1"
    instance_type: str = "ml.m5.large"
    gateway_url: str = "http://127.0.0.1:8780"
    # Endpoint autoscaling per environment (dev has no endpoint: it runs the local target).
    staging: Scaling = Scaling(min_instances=1, max_instances=2)
    prod: Scaling = Scaling(min_instances=2, max_instances=4)
    kserve: KServe = KServe()

    @field_validator("gateway_url")
    @classmethod
    def _gateway_url_parses(cls, value: str) -> str:
        if problem := gateway_url_problem(value):
            raise ValueError(problem)
        return value


class Budget(_Section):
    monthly_usd: float = Field(gt=0)


# Where a scheduled monitor's window of traffic comes from (governance.monitor_sources).
MonitorSource = Literal["capture", "kserve", "batch"]


class Monitoring(_Section):
    max_feature_psi: float = Field(default=0.25, gt=0)
    max_prediction_psi: float = Field(default=0.25, gt=0)
    min_samples: int = Field(default=200, ge=1)
    sample_capacity: int = Field(default=5000, ge=100)
    # The traffic one scheduled run judges: the last `window_hours` (the schedule's period).
    window_hours: float = Field(default=6, gt=0, le=24 * 31)
    # Retrain only after this many drifted windows in a row (docs/spoke/monitoring.md has the
    # false-alarm rate this buys), and not again within `cooldown_hours` of the last start.
    drift_windows: int = Field(default=2, ge=1, le=24)
    cooldown_hours: float = Field(default=72, ge=0, le=24 * 90)
    # The traffic a scheduled window judges (docs/spoke/monitoring.md, "Sources"): SageMaker
    # data capture, the KServe predictors' samples in `sample_store`, the batch jobs' outputs.
    # Empty: derived from [deploy] target (sagemaker -> capture, kserve -> kserve, both ->
    # both); a batch-only team writes ["batch"].
    sources: list[MonitorSource] = []
    # Where gateways running in pods (KServe) write their drift sample, e.g.
    # "s3://team-bucket/slipway/samples": a pod's disk goes with the pod.
    sample_store: str = ""

    @field_validator("sources")
    @classmethod
    def _sources_distinct(cls, names: list[MonitorSource]) -> list[MonitorSource]:
        if len(set(names)) != len(names):
            raise ValueError(f"{names} names a source twice")
        return names

    @field_validator("sample_store")
    @classmethod
    def _store_is_s3(cls, value: str) -> str:
        if value and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", value):
            raise ValueError(
                f"{value!r} is not an s3://bucket/prefix URI (MinIO and other S3 stores too: "
                "set AWS_ENDPOINT_URL where the gateway and the monitor run)"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _kserve_needs_a_store(self) -> Monitoring:
        if "kserve" in self.sources and not self.sample_store:
            raise ValueError(
                'sources names "kserve" but sample_store is empty: set sample_store = '
                '"s3://<bucket>/<prefix>" so the predictors write their sample where the '
                "monitor reads it"
            )
        return self


class Batch(_Section):
    """`slipway score` and its pipelines: what a scored file keeps, when a batch is refused
    (docs/spoke/batch.md)."""

    # Input columns copied beside each prediction so a row can be joined back (e.g. a
    # customer id); they need not be contract columns, and must be in every scored file.
    id_columns: list[str] = []
    # Above this share of rows rejected by the data contract the job fails (exit 4) and
    # publishes no predictions: a broken upstream extract must not become a half-scored table.
    max_rejected_fraction: float = Field(default=0.01, ge=0, le=1)
    # Rows read, checked and scored at a time: memory is bounded by this, not by the file.
    chunk_rows: int = Field(default=100_000, ge=1_000, le=5_000_000)
    # Shards the Kubeflow batch pipeline scores in parallel (dsl.ParallelFor).
    shards: int = Field(default=4, ge=1, le=64)
    # The SageMaker Batch Transform job's instances (checked against the tier's allow-list).
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(default=1, ge=1, le=10)

    @field_validator("id_columns")
    @classmethod
    def _distinct_names(cls, names: list[str]) -> list[str]:
        if any(not name.strip() for name in names):
            raise ValueError("an id column needs a name")
        if len(set(names)) != len(names):
            raise ValueError(f"{names} names a column twice")
        return names


class Ci(_Section):
    provider: Literal["github"] = "github"


class SpokeConfig(_Section):
    project: Project
    kpi: Kpi
    governance: Governance = Governance()
    data: Data
    training: Training
    gates: Gates = Gates()
    rollout: Rollout = Rollout()
    deploy: Deploy = Deploy()
    budget: Budget
    monitoring: Monitoring = Monitoring()
    batch: Batch = Batch()
    ci: Ci = Ci()

    @property
    def model_name(self) -> str:
        """The registered model's name: one per spoke, derived from the slug."""
        return self.project.slug

    @model_validator(mode="before")
    @classmethod
    def _task_default_gates(cls, data: Any) -> Any:
        """A spoke without [gates] (or without one of its keys) gates on its task's defaults."""
        if not isinstance(data, dict):
            return data
        training = data.get("training")
        task = training.get("task", "binary") if isinstance(training, dict) else "binary"
        if task not in DEFAULT_GATES or isinstance(data.get("gates"), Gates):
            return data
        primary, floors = DEFAULT_GATES[task]
        gates = data.get("gates")
        gates = dict(gates) if isinstance(gates, dict) else {}
        gates.setdefault("primary_metric", primary)
        gates.setdefault("minimum", dict(floors))
        return {**data, "gates": gates}

    @model_validator(mode="after")
    def _batch_ids_not_output_names(self) -> SpokeConfig:
        clash = sorted(set(self.batch.id_columns) & set(BATCH_OUTPUT_COLUMNS))
        if clash:
            raise ValueError(
                f"batch.id_columns: {clash} is a column `slipway score` writes itself; rename "
                "it in the input, or leave it out of id_columns"
            )
        return self

    @model_validator(mode="after")
    def _gates_name_known_metrics(self) -> SpokeConfig:
        task = self.training.task
        problems = []
        for where, name in (
            ("gates.primary_metric", self.gates.primary_metric),
            *(("gates.minimum", name) for name in self.gates.minimum),
        ):
            try:
                metric(task, name)
            except ValueError as exc:
                problems.append(f"{where}: {exc} (training.task = {task!r})")
        if problems:
            raise ValueError("; ".join(problems))
        for name, floor in self.gates.minimum.items():
            known = metric(task, name)
            if known.bounded and not 0 <= floor <= 1:
                raise ValueError(f"gates.minimum.{name} = {floor:g} must be between 0 and 1")
            if not known.bounded and not known.greater_is_better and floor < 0:
                raise ValueError(f"gates.minimum.{name} = {floor:g}: an error cannot be negative")
        if metric(task, self.gates.primary_metric).bounded and not (
            -1 <= self.gates.champion_margin <= 1
        ):
            raise ValueError(
                f"gates.champion_margin = {self.gates.champion_margin:g} must be between -1 "
                f"and 1 for {self.gates.primary_metric} (a score in [0, 1])"
            )
        return self


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        msg = re.sub(r"^Value error, ", "", msg)
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see docs/spoke/configuration.md)"
        elif err["type"] == "missing":
            msg = "required, but missing"
        elif err["type"] == "literal_error" or err["type"] == "enum":
            msg = f"{msg} (got {err.get('input')!r})"
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


def parse_config(text: str, path: Path = Path(CONFIG_FILE)) -> SpokeConfig:
    """Validate slipway.toml text; raise ConfigError listing every problem with its field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return SpokeConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from exc


def find_spoke_root(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` holding slipway.toml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise ConfigError(
        f"{here} is not inside a Slipway spoke (no {CONFIG_FILE} here or above). "
        "Run the command from a project made with `copier copy`, or pass --project PATH."
    )


def load_config(root: Path) -> SpokeConfig:
    path = root / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"{root} is not a Slipway spoke: {CONFIG_FILE} is missing. "
            "Run the command from a project made with `copier copy`, or pass --project PATH."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "TOML files are UTF-8: re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    return _with_hub_floor(parse_config(text, path))


def _with_hub_floor(config: SpokeConfig) -> SpokeConfig:
    """The spoke's config with its risk tier raised to the hub's (never lowered): a spoke may
    tighten its governance in slipway.toml, never loosen it (governance/hub_governance.py)."""
    from slipway.pipelines.governance.hub_governance import governance_for, strictest

    tier = strictest(governance_for(config.model_name).risk_tier, config.governance.risk_tier)
    if tier == config.governance.risk_tier:
        return config
    governance = config.governance.model_copy(update={"risk_tier": tier})
    return config.model_copy(update={"governance": governance})
