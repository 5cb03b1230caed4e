"""One scored request, whatever protocol carried it: route, score, and say why not.

Every protocol adapter (MLflow's /invocations, the Open Inference Protocol's /v2 infer)
parses its own body into contract-checked rows, then calls `score_rows`. The refusals are
typed so each adapter words them in its own protocol while the metrics, the window the
controller judges, the drift sample and the shadow copy stay the same for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.serving.batching import Overloaded, PredictTimeout, Retired
from slipway.pipelines.serving.core import CHAMPION, Gateway, Variant


@dataclass(frozen=True)
class Scored:
    """The answer of one variant to one request's rows."""

    role: str
    version: str
    predictions: list[Any]


class ScoringRefused(SlipwayError):
    """A request the gateway did not answer; `status` is the HTTP status every protocol uses,
    `code` the MLflow-style error code, `role`/`version` the variant it was routed to."""

    status: ClassVar[int] = 503
    code: ClassVar[str] = "NO_MODEL"
    exit_code = Exit.UNREACHABLE

    def __init__(self, message: str, role: str = "", version: str = "") -> None:
        super().__init__(message)
        self.role, self.version = role, version


class NoModel(ScoringRefused):
    """Nothing loaded can answer yet (loading, no champion, or its version failed to load)."""


class Shed(ScoringRefused):
    """Refused before the model tried: the variant's queue is full, or its deadline passed."""

    def __init__(self, reason: str, message: str, role: str, version: str) -> None:
        super().__init__(message, role, version)
        self.reason = reason  # overloaded | timeout

    @property
    def error_code(self) -> str:
        return self.reason.upper()


class ModelFailed(ScoringRefused):
    """The model was given the rows and raised: an error of its variant (500)."""

    status = 500
    code = "MODEL_ERROR"
    exit_code = Exit.ERROR


def _pick(gateway: Gateway, version: str | None) -> Variant:
    """The variant to score: by the split, or the one serving `version` when the caller names
    it (OIP's /versions/{v}: a per-revision URL, like KServe's tag routing)."""
    if not gateway.ready():
        gateway.m_refused.labels("no_model").inc()
        raise NoModel(
            "the model is still loading; retry shortly"
            if not gateway.loaded.is_set()
            else "no champion is deployed yet: run `slipway deploy`"
        )
    if version is not None:
        for variant in gateway.variants.values():
            if variant.version == version:
                return variant
        raise LookupError(version)
    role = gateway.route()
    variant = gateway.variants.get(role)
    if variant is None:  # the champion's alias exists but its version failed to load
        gateway.m_refused.labels("no_model").inc()
        raise NoModel(
            f"the {role} could not be loaded: {gateway.load_errors.get(role, 'not loaded')}",
            role,
        )
    return variant


async def score_rows(
    gateway: Gateway, rows: list[tuple[Any, ...]], version: str | None = None
) -> Scored:
    """Score contract-checked rows on the routed variant (or the one serving `version`;
    LookupError when none does). Raises NoModel, Shed or ModelFailed."""
    variant = _pick(gateway, version)
    role = variant.role
    if gateway.shadow and role == CHAMPION and version is None:
        gateway.shadow_copy(rows)
    try:
        try:
            predictions = await gateway.score(variant, rows)
        except Retired:  # a reload swapped the variant while this request was parsed
            variant = _pick(gateway, version)
            role = variant.role
            predictions = await gateway.score(variant, rows)
    except (Overloaded, PredictTimeout) as exc:
        reason = "overloaded" if isinstance(exc, Overloaded) else "timeout"
        gateway.m_refused.labels(reason).inc()
        raise Shed(reason, str(exc), role, variant.version) from exc
    except Exception as exc:
        raise ModelFailed(f"{type(exc).__name__}: {exc}"[:500], role, variant.version) from exc
    return Scored(role, variant.version, predictions)
