"""Drift monitoring: is the traffic the champion serves still like the data it learned from?

The reference is the training split of the spoke's data (the rows a model is fitted on,
chosen by spoke_code.split, so monitoring and training agree) and the champion's own
predictions on it. The current side is the gateway's bounded sample of served rows
(samples.read_samples). Each contract feature is compared by population stability index,
and so is the prediction distribution; thresholds come from slipway.toml [monitoring].
The same data contract that guards training and serving is checked on the served rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.registry import CHAMPION, fluent_registry, state_dir, version_by_alias
from slipway.pipelines.serving.drift_sample import read_samples
from slipway.pipelines.statistics import psi
from slipway.pipelines.training.data_contract import validate_frame
from slipway.pipelines.training.spoke_code import features, load_frame, split

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from slipway.pipelines.config import SpokeConfig

MONITORING_DIR = "monitoring"
PREDICTION = "_prediction"


class MonitorError(SlipwayError):
    """Monitoring cannot judge (no champion, unreadable samples); the message says why."""


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float
    breached: bool


@dataclass(frozen=True)
class DriftReport:
    model: str
    champion: str
    samples: int
    reference_rows: int
    min_samples: int
    max_feature_psi: float
    max_prediction_psi: float
    features: list[FeatureDrift]
    prediction_psi: float | None
    prediction_reference: dict[str, float]
    prediction_served: dict[str, float]
    contract_violations: list[str]
    # feature -> (training mean, served mean), for the HTML report's table.
    means: dict[str, tuple[float, float]] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def enough_samples(self) -> bool:
        return self.samples >= self.min_samples

    @property
    def breaches(self) -> list[str]:
        """Why this counts as drift; empty when it does not (or when it cannot be judged)."""
        if not self.enough_samples:
            return []
        found = [
            f"feature {f.name}: PSI {f.psi:.3f} > {self.max_feature_psi:g}"
            for f in self.features
            if f.breached
        ]
        if self.prediction_psi is not None and self.prediction_psi > self.max_prediction_psi:
            found.append(
                f"predictions: PSI {self.prediction_psi:.3f} > {self.max_prediction_psi:g}"
            )
        return found

    @property
    def summary(self) -> str:
        """The breaches in one line for people and the audit trail (all of them are in
        `breaches` and the report)."""
        drifted = [f for f in self.features if f.breached]
        parts = []
        if drifted:
            worst = ", ".join(f"{f.name} {f.psi:.2f}" for f in drifted[:3])
            parts.append(
                f"{len(drifted)} of {len(self.features)} features over PSI "
                f"{self.max_feature_psi:g} (worst: {worst})"
            )
        if self.prediction_psi is not None and self.prediction_psi > self.max_prediction_psi:
            parts.append(f"predictions PSI {self.prediction_psi:.2f} > {self.max_prediction_psi:g}")
        return "; ".join(parts)

    @property
    def drifted(self) -> bool:
        return bool(self.breaches)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "enough_samples": self.enough_samples,
            "breaches": self.breaches,
            "drifted": self.drifted,
        }


def _shares(values: list[Any]) -> dict[str, float]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return {key: counts[key] / len(values) for key in sorted(counts)} if values else {}


def served_rows(samples: pd.DataFrame, champion: str) -> pd.DataFrame:
    """The rows the champion answered (shadow and canary copies of a request would count
    one request twice); every row when the sample holds none of the champion's."""
    if samples.empty:
        return samples
    mine = samples[
        (samples["_variant"] == CHAMPION) & (samples["_version"].astype(str) == champion)
    ]
    return cast("pd.DataFrame", mine) if not mine.empty else samples


def check_drift(
    root: Path, config: SpokeConfig, client: MlflowClient, samples: pd.DataFrame | None = None
) -> DriftReport:
    """Compare the served sample (the gateway's local one, or `samples`, e.g. an
    endpoint's data capture) with the training profile; never changes anything."""
    import mlflow.pyfunc

    champion = version_by_alias(client, config.model_name, CHAMPION)
    if champion is None:
        raise MonitorError(
            f"{config.model_name} has no champion, so nothing is served to monitor; "
            "roll a version out first with `slipway deploy`"
        )
    reference = split(load_frame(root, config), config).x_train
    sample = read_samples(root) if samples is None else samples
    served = served_rows(sample, str(champion.version))
    columns = list(config.data.contract.columns)
    monitoring = config.monitoring
    drifts: list[FeatureDrift] = []
    violations: list[str] = []
    prediction_psi = None
    expected_shares: dict[str, float] = {}
    served_shares: dict[str, float] = {}
    means: dict[str, tuple[float, float]] = {}
    if not served.empty:
        missing = [c for c in columns if c not in served.columns]
        if missing:
            raise MonitorError(
                f"the served sample lacks contract columns {missing}: it was captured under "
                "an older contract; let the gateway serve fresh traffic, then monitor again"
            )
        current = cast("pd.DataFrame", served[columns])
        violations = [str(v) for v in validate_frame(current, config.data.contract)]
        for name in columns:
            value = psi(reference[name].tolist(), current[name].tolist())
            drifts.append(FeatureDrift(name, round(value, 4), value > monitoring.max_feature_psi))
            means[name] = (_mean(reference[name]), _mean(current[name]))
        with fluent_registry(root):
            model = mlflow.pyfunc.load_model(f"models:/{config.model_name}/{champion.version}")
        expected = list(model.predict(features(reference, config)))
        actual = served[PREDICTION].tolist()
        prediction_psi = round(psi(expected, actual), 4)
        expected_shares, served_shares = _shares(expected), _shares(actual)
    return DriftReport(
        model=config.model_name,
        champion=str(champion.version),
        samples=len(served),
        reference_rows=len(reference),
        min_samples=monitoring.min_samples,
        max_feature_psi=monitoring.max_feature_psi,
        max_prediction_psi=monitoring.max_prediction_psi,
        features=sorted(drifts, key=lambda d: d.psi, reverse=True),
        prediction_psi=prediction_psi,
        prediction_reference=expected_shares,
        prediction_served=served_shares,
        contract_violations=violations,
        means=means,
    )


def _mean(values: Any) -> float:
    import math

    import pandas as pd

    number = float(cast("pd.Series", pd.to_numeric(values, errors="coerce")).mean())
    return number if math.isnan(number) else round(number, 6)


def draw_chart(report: DriftReport, path: Path | BinaryIO) -> None:
    """Feature PSI bars beside the prediction shares, as PNG into a file or a buffer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [d.name for d in reversed(report.features)]
    values = [d.psi for d in reversed(report.features)]
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(12, max(4.0, 0.28 * len(names) + 1)), gridspec_kw={"width_ratios": [2, 1]}
    )
    colours = ["tab:red" if v > report.max_feature_psi else "tab:blue" for v in values]
    left.barh(names, values, color=colours)
    left.axvline(report.max_feature_psi, color="black", linestyle="--", label="threshold")
    left.set_xlabel("PSI (served vs training)")
    left.set_title(f"Feature drift, {report.samples} served rows")
    left.legend(loc="lower right")
    classes = sorted(set(report.prediction_reference) | set(report.prediction_served))
    positions = range(len(classes))
    right.bar(
        [p - 0.2 for p in positions],
        [report.prediction_reference.get(c, 0) for c in classes],
        0.4,
        label="training",
    )
    right.bar(
        [p + 0.2 for p in positions],
        [report.prediction_served.get(c, 0) for c in classes],
        0.4,
        label="served",
    )
    right.set_xticks(list(positions), classes)
    right.set_ylabel("share of predictions")
    psi_text = "n/a" if report.prediction_psi is None else f"{report.prediction_psi:.3f}"
    right.set_title(f"Predictions (PSI {psi_text})")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)


def _markdown(report: DriftReport) -> str:
    if not report.enough_samples:
        verdict = (
            f"**Not judged**: {report.samples} served rows, at least "
            f"{report.min_samples} needed ([monitoring] min_samples)."
        )
    elif report.drifted:
        verdict = "**Drift found**:\n\n" + "\n".join(f"- {b}" for b in report.breaches)
    else:
        verdict = "**No drift** above the thresholds."
    rows = "\n".join(
        f"| {d.name} | {d.psi:.4f} | {'yes' if d.breached else 'no'} |" for d in report.features
    )
    classes = sorted(set(report.prediction_reference) | set(report.prediction_served))
    shares = "\n".join(
        f"| {c} | {report.prediction_reference.get(c, 0):.3f} | "
        f"{report.prediction_served.get(c, 0):.3f} |"
        for c in classes
    )
    violations = "\n".join(f"- {v}" for v in report.contract_violations) or "None."
    chart = "![drift](drift.png)" if report.features else "_No served rows, no chart._"
    return f"""# Drift report: {report.model}, champion version {report.champion}

Generated by `slipway monitor` at {report.at}: {report.samples} served rows against
{report.reference_rows} training rows. Thresholds from slipway.toml [monitoring]:
feature PSI {report.max_feature_psi:g}, prediction PSI {report.max_prediction_psi:g}.

{verdict}

{chart}

## Features (PSI, highest first)

| feature | PSI | over threshold |
| --- | --- | --- |
{rows}

## Predictions

| prediction | share in training | share served |
| --- | --- | --- |
{shares}

## Served rows that break the data contract

{violations}
"""


def write_report(root: Path, report: DriftReport) -> Path:
    """report.md, report.json and drift.png in .slipway/monitoring/<time>/; returns the .md."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    directory = state_dir(root) / MONITORING_DIR / stamp
    directory.mkdir(parents=True)
    (directory / "report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    if report.features:
        draw_chart(report, directory / "drift.png")
    path = directory / "report.md"
    path.write_text(_markdown(report), encoding="utf-8")
    return path
