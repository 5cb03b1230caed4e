"""The documents `--json` prints: one typed shape per command (docs/reference/cli.md#json-output).

Each shape is a TypedDict, so a change to a shape is a change here, seen by the type checker
and by the tests that pin it (the `*_json_*` tests of tests/training/test_local_loop.py).
`slipway train --json` prints slipway.pipelines.training.pipeline.TrainingSummary. Progress
lines of a command run with --json go to stderr, so stdout holds the document alone.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.governance.audit import Verification
    from slipway.pipelines.governance.drift_policy import Verdict
    from slipway.pipelines.governance.model_card import CardResult
    from slipway.pipelines.governance.monitoring import DriftReport
    from slipway.pipelines.governance.retraining import Started
    from slipway.pipelines.hub.tested_versions import Untested
    from slipway.pipelines.registry_versions import RegistryVersions
    from slipway.pipelines.training.pipeline import TrainingOutcome, TrainingSummary

__all__ = [
    "AuditEntry",
    "AuditJson",
    "CardJson",
    "CheckJson",
    "DeployJson",
    "DeployStep",
    "MonitorJson",
    "RegistryJson",
    "audit_json",
    "card_json",
    "check_json",
    "deploy_json",
    "deploy_steps",
    "dumps",
    "monitor_json",
]


def dumps(document: Mapping[str, Any]) -> str:
    """Dataclasses inside a document (a training summary) become objects too."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return str(value)

    return json.dumps(document, indent=2, default=plain)


class CheckJson(TypedDict):
    path: str
    model: str
    risk_tier: str
    kpi: dict[str, Any]  # name, baseline, target
    contract_columns: list[str]
    min_rows: int
    canary_steps: list[int]
    step_seconds: float
    approval_required: bool
    card_required: bool
    monthly_budget_usd: float
    deploy_target: str
    region: str
    # The registry's MLflow against this environment's (None: nothing to compare).
    registry: RegistryJson | None
    # Installed libraries that differ from the versions the release was tested with.
    untested_dependencies: list[dict[str, str]]  # package, installed, tested


class RegistryJson(TypedDict):
    uri: str
    client: str
    registry: str
    problem: str | None


def check_json(
    root: Path,
    config: SpokeConfig,
    versions: RegistryVersions | None = None,
    drift: list[Untested] | None = None,
) -> CheckJson:
    from slipway.pipelines.governance.tiers import rules_for

    rules = rules_for(config.governance.risk_tier)
    return CheckJson(
        path=str(root / "slipway.toml"),
        model=config.model_name,
        risk_tier=str(config.governance.risk_tier),
        kpi={
            "name": config.kpi.name,
            "baseline": config.kpi.baseline,
            "target": config.kpi.target,
        },
        contract_columns=list(config.data.contract.columns),
        min_rows=config.data.contract.min_rows,
        canary_steps=list(config.rollout.canary_steps),
        step_seconds=config.rollout.step_seconds,
        approval_required=rules.approval_required,
        card_required=rules.card_required,
        monthly_budget_usd=config.budget.monthly_usd,
        deploy_target=str(config.deploy.target),
        region=config.deploy.region,
        registry=None
        if versions is None
        else RegistryJson(
            uri=versions.uri,
            client=versions.client,
            registry=versions.registry,
            problem=versions.problem,
        ),
        untested_dependencies=[dataclasses.asdict(d) for d in drift or []],
    )


class AuditEntry(TypedDict):
    seq: int
    at: str  # ISO 8601, UTC
    actor: str
    action: str
    model: str
    version: str | None
    reason: str
    details: dict[str, Any]
    prev: str  # the previous entry's hash (the chain)
    hash: str


class AuditJson(TypedDict):
    entries: list[AuditEntry]
    verified: bool | None  # None unless --verify
    problems: list[str]  # what --verify found (empty when intact)


def audit_json(
    entries: Sequence[Mapping[str, Any]],
    *,
    version: str | None = None,
    verification: Verification | None = None,
) -> AuditJson:
    keys = AuditEntry.__annotations__
    chosen = [
        AuditEntry(**{k: e.get(k) for k in keys})  # type: ignore[typeddict-item]
        for e in entries
        if version is None or e.get("version") == str(version)
    ]
    return AuditJson(
        entries=chosen,
        verified=None if verification is None else verification.ok,
        problems=[] if verification is None else list(verification.problems),
    )


class CardJson(TypedDict):
    path: str
    model: str
    version: str
    fingerprint: str
    gaps: list[str]


def card_json(model: str, result: CardResult) -> CardJson:
    return CardJson(
        path=str(result.path),
        model=model,
        version=str(result.version),
        fingerprint=result.fingerprint,
        gaps=list(result.gaps),
    )


class DeployStep(TypedDict):
    phase: str  # shadow, canary-<weight>, ...
    weight: int
    readings: dict[str, float | None]  # the guardrails' readings at the step's last judgement


class DeployJson(TypedDict):
    outcome: str  # promoted | rolled_back
    model: str
    version: str | None
    reason: str | None  # why it rolled back
    exit_code: int
    steps: list[DeployStep]


def deploy_json(
    *,
    outcome: str,
    model: str,
    version: str | None,
    reason: str | None,
    exit_code: int,
    steps: Sequence[DeployStep],
) -> DeployJson:
    return DeployJson(
        outcome=outcome,
        model=model,
        version=version,
        reason=reason,
        exit_code=exit_code,
        steps=list(steps),
    )


def deploy_steps(rows: Sequence[Mapping[str, Any]]) -> list[DeployStep]:
    """The last reading of each step, in the order the steps ran (from rollout state rows:
    at, phase, weight and the guardrails' readings)."""
    last: dict[str, DeployStep] = {}
    for row in rows:
        phase = str(row["phase"])
        readings = {k: v for k, v in row.items() if k not in ("at", "phase", "weight")}
        last.pop(phase, None)
        last[phase] = DeployStep(phase=phase, weight=int(row["weight"]), readings=readings)
    first_seen = list(dict.fromkeys(str(row["phase"]) for row in rows))
    return [last[phase] for phase in first_seen]


class MonitorJson(TypedDict):
    report: str  # the written report (with its chart)
    model: str
    champion: str
    samples: int  # served rows judged
    reference_rows: int
    enough_samples: bool
    drifted: bool
    breaches: list[str]
    features: dict[str, float]  # PSI per feature
    prediction_psi: float | None
    retrained: TrainingSummary | None  # the training run drift started (None if none)
    decision: str | None  # the window's: retrain, wait, cooldown, no_drift, not_judged
    consecutive: int  # drifted windows in a row, this one included
    started: dict[str, str] | None  # retraining started elsewhere: where, run_id, url
    html: str | None  # the --report page
    source: str  # where the window's rows came from: gateway, capture, kserve, batch
    exit_code: int


def monitor_json(
    report: DriftReport,
    path: Path,
    outcome: TrainingOutcome | None,
    exit_code: int,
    *,
    verdict: Verdict | None = None,
    started: Started | None = None,
    html: Path | None = None,
    source: str = "gateway",
) -> MonitorJson:
    return MonitorJson(
        report=str(path),
        model=report.model,
        champion=report.champion,
        samples=report.samples,
        reference_rows=report.reference_rows,
        enough_samples=report.enough_samples,
        drifted=report.drifted,
        breaches=report.breaches,
        features={f.name: f.psi for f in report.features},
        prediction_psi=report.prediction_psi,
        retrained=None if outcome is None else outcome.summary(report.model),
        decision=None if verdict is None else str(verdict.decision),
        consecutive=0 if verdict is None else verdict.consecutive,
        started=None if started is None else dataclasses.asdict(started),
        html=None if html is None else str(html),
        source=source,
        exit_code=exit_code,
    )
