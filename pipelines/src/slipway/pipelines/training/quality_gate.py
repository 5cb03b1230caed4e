"""The quality gate: absolute floors from slipway.toml, then "at least as good as the baseline".

The baseline is the champion (the version serving). Before the first deploy there is no
champion; then a waiting challenger is the baseline, so a worse retrain cannot replace it
unnoticed. With neither, the first model bootstraps and the verdict says so. The
baseline's metrics are always measured by the caller on the same held-out rows: this
module only compares numbers, it never invents them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slipway.pipelines import _compat
from slipway.pipelines.config import Gates, Task, metric

if TYPE_CHECKING:
    from mlflow.models import MetricThreshold

PASSED = "passed"
REJECTED = "rejected"
BOOTSTRAP = "bootstrap"


@dataclass(frozen=True)
class Baseline:
    alias: str
    version: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class Verdict:
    passed: bool
    bootstrap: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if not self.passed:
            return REJECTED
        return BOOTSTRAP if self.bootstrap else PASSED


def _passes(
    rule: MetricThreshold, name: str, challenger: dict[str, float], baseline: dict[str, float]
) -> bool:
    """MLflow's own verdict on one rule (mlflow.validate_evaluation_results)."""
    import mlflow
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    try:
        mlflow.validate_evaluation_results(
            {name: rule},
            EvaluationResult(metrics=challenger, artifacts={}, run_id="-"),
            EvaluationResult(metrics=baseline, artifacts={}, run_id="-") if baseline else None,
        )
    except ModelValidationFailedException:
        return False
    return True


def check_gates(
    challenger: dict[str, float], baseline: Baseline | None, gates: Gates, task: Task = "binary"
) -> Verdict:
    """Every reason the challenger passes or fails, in the order a reviewer reads them.

    Each rule is an MLflow MetricThreshold (a floor per metric; the minimum change against
    the baseline; greater_is_better from the task's metric table) judged by MLflow. A margin
    of zero or below ("no worse than", or a tolerance) is not a MetricThreshold change (MLflow
    wants min_absolute_change > 0), so it becomes a floor at the baseline's value plus margin.
    """
    from mlflow.models import MetricThreshold

    reasons: list[str] = []
    failed = False
    for name, floor in sorted(gates.minimum.items()):
        spec = metric(task, name)
        if name not in challenger:
            failed = True
            reasons.append(f"{name} not measured: {_UNMEASURED} (gates.minimum)")
            continue
        value = challenger[name]
        ok = _passes(
            MetricThreshold(threshold=float(floor), greater_is_better=spec.greater_is_better),
            name,
            challenger,
            {},
        )
        failed |= not ok
        sign = _sign(spec.greater_is_better, ok)
        reasons.append(
            f"{name} {value:.4f} {sign} floor {floor:.4f}{'' if ok else ' (gates.minimum)'}"
        )
    if baseline is None:
        reasons.append("no champion or challenger yet: this first model bootstraps the registry")
        return Verdict(passed=not failed, bootstrap=True, reasons=reasons)
    name = gates.primary_metric
    spec = metric(task, name)
    if name not in challenger or name not in baseline.metrics:
        reasons.append(f"{name} not measured on both models: {_UNMEASURED}")
        return Verdict(passed=False, bootstrap=False, reasons=reasons)
    margin = gates.champion_margin
    theirs = baseline.metrics[name]
    needed = theirs + margin if spec.greater_is_better else theirs - margin
    if margin > 0:
        rule = MetricThreshold(min_absolute_change=margin, greater_is_better=spec.greater_is_better)
    else:
        rule = MetricThreshold(threshold=needed, greater_is_better=spec.greater_is_better)
    ok = _passes(rule, name, challenger, baseline.metrics)
    failed |= not ok
    reasons.append(
        f"{name} {challenger[name]:.4f} {_sign(spec.greater_is_better, ok)} {needed:.4f} = "
        f"{baseline.alias} v{baseline.version} {theirs:.4f} "
        f"{'+' if spec.greater_is_better else '-'} margin {margin:g}, on the same held-out rows"
    )
    return Verdict(passed=not failed, bootstrap=False, reasons=reasons)


_UNMEASURED = (
    "it needs class probabilities, and the model has no predict_proba "
    "(gate on a metric the model can give, see docs/spoke/bring-your-own-model.md)"
)


def _sign(greater_is_better: bool, ok: bool) -> str:
    if greater_is_better:
        return ">=" if ok else "<"
    return "<=" if ok else ">"


__getattr__ = _compat.renamed(__name__, {"judge": "check_gates"}, globals())
