"""The quality gate: absolute floors from slipway.toml, then "at least as good as the baseline".

The baseline is the champion (the version serving). Before the first deploy there is no
champion; then a waiting challenger is the baseline, so a worse retrain cannot replace it
unnoticed. With neither, the first model bootstraps and the verdict says so. The
baseline's metrics are always measured by the caller on the same held-out rows: this
module only compares numbers, it never invents them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slipway.pipelines.config import Gates

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


def judge(challenger: dict[str, float], baseline: Baseline | None, gates: Gates) -> Verdict:
    """Every reason the challenger passes or fails, in the order a reviewer reads them."""
    reasons: list[str] = []
    failed = False
    for metric, floor in sorted(gates.minimum.items()):
        value = challenger[metric]
        ok = value >= floor
        failed |= not ok
        reasons.append(
            f"{metric} {value:.4f} {'>=' if ok else '<'} floor {floor:.4f}"
            f"{'' if ok else ' (gates.minimum)'}"
        )
    if baseline is None:
        reasons.append("no champion or challenger yet: this first model bootstraps the registry")
    else:
        metric = gates.primary_metric
        needed = baseline.metrics[metric] + gates.champion_margin
        ok = challenger[metric] >= needed
        failed |= not ok
        reasons.append(
            f"{metric} {challenger[metric]:.4f} {'>=' if ok else '<'} {needed:.4f} = "
            f"{baseline.alias} v{baseline.version} {baseline.metrics[metric]:.4f} + margin "
            f"{gates.champion_margin:g}, on the same held-out rows"
        )
    return Verdict(passed=not failed, bootstrap=baseline is None, reasons=reasons)
