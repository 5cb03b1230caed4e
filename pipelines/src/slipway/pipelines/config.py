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
from typing import Annotated, Literal, get_args
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


MetricName = Literal["roc_auc", "accuracy", "f1", "precision", "recall"]
"""The held-out metrics training computes (training.evaluation) and gates may name."""
METRICS: tuple[MetricName, ...] = get_args(MetricName)

# A contract column's dtype as pandas stores it (strings are pandas objects).
PANDAS_DTYPES = {"float": "float64", "int": "int64", "bool": "bool", "str": "object"}


def gateway_url_problem(url: str) -> str | None:
    """Why `url` cannot be a gateway URL (http or https, a host, a valid port), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc}); e.g. http://127.0.0.1:8780 or http://[::1]:8780"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host; e.g. http://127.0.0.1:8780"
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
    # "package.module:function" taking (X, y, params) and returning a fitted estimator.
    trainer: Annotated[str, Field(pattern=ENTRYPOINT_RE)]
    params: dict[str, str | int | float | bool] = {}
    test_size: float = Field(default=0.25, gt=0, lt=1)
    seed: int = 42
    base_image: str = "python:3.11-slim"
    # Where Kubeflow keeps the runs' artifacts (s3://bucket/prefix); empty: the cluster's default.
    pipeline_root: Annotated[str, Field(pattern=PIPELINE_ROOT_RE)] = ""


class Gates(_Section):
    """A challenger must clear the absolute floors and beat the champion by the margin."""

    primary_metric: MetricName = "roc_auc"
    minimum: dict[str, Annotated[float, Field(ge=0, le=1)]] = {"roc_auc": 0.9}
    champion_margin: float = Field(default=0.0, ge=-1, le=1)


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


class Deploy(_Section):
    # The embedded local target is always available; this names the production engine.
    target: Literal["sagemaker"] = "sagemaker"
    region: Annotated[str, Field(pattern=REGION_RE)] = "eu-west-1"
    instance_type: str = "ml.m5.large"
    gateway_url: str = "http://127.0.0.1:8780"
    # Endpoint autoscaling per environment (dev has no endpoint: it runs the local target).
    staging: Scaling = Scaling(min_instances=1, max_instances=2)
    prod: Scaling = Scaling(min_instances=2, max_instances=4)

    @field_validator("gateway_url")
    @classmethod
    def _gateway_url_parses(cls, value: str) -> str:
        if problem := gateway_url_problem(value):
            raise ValueError(problem)
        return value


class Budget(_Section):
    monthly_usd: float = Field(gt=0)


class Monitoring(_Section):
    max_feature_psi: float = Field(default=0.25, gt=0)
    max_prediction_psi: float = Field(default=0.25, gt=0)
    min_samples: int = Field(default=200, ge=1)
    sample_capacity: int = Field(default=5000, ge=100)


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
    ci: Ci = Ci()

    @property
    def model_name(self) -> str:
        """The registered model's name: one per spoke, derived from the slug."""
        return self.project.slug

    @model_validator(mode="after")
    def _gates_name_known_metrics(self) -> SpokeConfig:
        known = set(METRICS)
        unknown = sorted(set(self.gates.minimum) - known)
        if unknown:
            raise ValueError(
                f"gates.minimum names unknown metrics {unknown}; allowed: {sorted(known)}"
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
    return parse_config(text, path)
