"""The monitoring window as one HTML page a person reads, shares and archives.

One self-contained file (the chart is an inline PNG, no script, no CDN): the verdict and the
schedule's decision, per-feature drift over the data contract's columns (PSI, training and
served means), prediction drift, and performance once labels have arrived. Labels are a CSV
or Parquet file holding the `[batch] id_columns` and the target column; they are joined to
the served rows on those columns (for SageMaker capture, the request's InferenceId, the key
SageMaker's own ground-truth merge uses, fills a single id column).

Why not Evidently: measured here (docs/spoke/monitoring.md, "Why this report and not
Evidently"), Evidently 0.7 resolves against the hub's lock but adds 33 packages (litestar,
nltk, plotly, statsmodels, ...) to every pipeline image and takes seconds to import, for a
page whose numbers (PSI per feature, the prediction shares) Slipway already computes to
judge drift. The page shows the numbers the decision was taken on, not a second estimate.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

if TYPE_CHECKING:
    import pandas as pd

    from slipway.pipelines.config import SpokeConfig, Task
    from slipway.pipelines.governance.drift_policy import Verdict
    from slipway.pipelines.governance.monitoring import DriftReport

__all__ = ["LabelsError", "Performance", "join_labels", "performance", "render_html"]

CAPTURE_ID = "_id"  # the column capture.py fills with a request's InferenceId


class LabelsError(SlipwayError):
    """The labels file cannot be joined; the message says what it lacks."""

    exit_code = Exit.USAGE


@dataclass(frozen=True)
class Performance:
    """The champion's metrics on the served rows whose labels have arrived."""

    labelled: int  # served rows with a label
    served: int
    metrics: dict[str, float]

    @property
    def coverage(self) -> float:
        return self.labelled / self.served if self.served else 0.0


def read_labels(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise LabelsError(f"no labels file at {path}; pass a CSV or Parquet file")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def join_labels(served: pd.DataFrame, labels: pd.DataFrame, config: SpokeConfig) -> pd.DataFrame:
    """The served rows that have a label: their prediction and the target, one row each."""
    ids = list(config.batch.id_columns)
    target = config.data.target
    if not ids:
        raise LabelsError(
            "labels are joined on [batch] id_columns, and slipway.toml names none: add "
            'e.g. id_columns = ["request_id"] under [batch]'
        )
    missing = [c for c in [*ids, target] if c not in labels.columns]
    if missing:
        raise LabelsError(f"the labels file lacks columns {missing} (it needs {[*ids, target]})")
    rows = served
    if len(ids) == 1 and ids[0] not in rows.columns and CAPTURE_ID in rows.columns:
        rows = rows.rename(columns={CAPTURE_ID: ids[0]})
    absent = [c for c in ids if c not in rows.columns]
    if absent:
        raise LabelsError(
            f"the served rows carry no {absent}: send them with each request (SageMaker's "
            "InferenceId) or score batches with the id columns kept"
        )
    if labels.duplicated(ids).any():
        raise LabelsError(f"the labels file has more than one label for some {ids}")
    keys = rows[ids].astype(str)
    right = labels[[*ids, target]].astype({c: str for c in ids})
    joined = keys.assign(_prediction=rows["_prediction"].to_numpy()).merge(right, on=ids)
    return cast("pd.DataFrame", joined)


def performance(
    served: pd.DataFrame, labels: pd.DataFrame, config: SpokeConfig
) -> Performance | None:
    joined = join_labels(served, labels, config)
    if joined.empty:
        return Performance(0, len(served), {})
    return Performance(
        len(joined),
        len(served),
        _metrics(config.training.task, joined[config.data.target], joined["_prediction"]),
    )


def _metrics(task: Task, truth: Any, predicted: Any) -> dict[str, float]:
    """The task's metrics that need no probabilities (served rows keep the answer only)."""
    from sklearn import metrics as m

    if task == "regression":
        y, p = truth.astype(float), predicted.astype(float)
        return {
            "rmse": float(m.root_mean_squared_error(y, p)),
            "mae": float(m.mean_absolute_error(y, p)),
            "r2": float(m.r2_score(y, p)) if len(y) > 1 else float("nan"),
        }
    y, p = truth.astype(str), predicted.astype(str)
    if task == "binary":
        positive = "1" if "1" in set(y) | set(p) else sorted(set(y) | set(p))[-1]
        kwargs: dict[str, Any] = {"pos_label": positive, "zero_division": 0}
        return {
            "accuracy": float(m.accuracy_score(y, p)),
            "f1": float(m.f1_score(y, p, **kwargs)),
            "precision": float(m.precision_score(y, p, **kwargs)),
            "recall": float(m.recall_score(y, p, **kwargs)),
        }
    weighted: dict[str, Any] = {"average": "weighted", "zero_division": 0}
    return {
        "accuracy": float(m.accuracy_score(y, p)),
        "f1_weighted": float(m.f1_score(y, p, **weighted)),
        "precision_weighted": float(m.precision_score(y, p, **weighted)),
        "recall_weighted": float(m.recall_score(y, p, **weighted)),
    }


def _chart_png(report: DriftReport) -> str:
    from slipway.pipelines.governance.monitoring import draw_chart

    buffer = io.BytesIO()
    draw_chart(report, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        f'<tr class="{(classes or [""] * len(rows))[i]}">'
        + "".join(f"<td>{html.escape(c)}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .7em}
td:not(:first-child){text-align:right}th{background:#f3f3f3}tr.breach td{background:#fde2e2}
.verdict{font-size:1.2em;padding:.6em 1em;border-radius:4px;background:#eef}
.drift{background:#fde2e2}.ok{background:#e2f5e2}img{max-width:100%}
"""


def render_html(
    report: DriftReport,
    *,
    env: str,
    window: str,
    verdict: Verdict | None,
    means: dict[str, tuple[float, float]],
    perf: Performance | None,
) -> str:
    """The page. `means` is feature -> (training mean, served mean)."""
    esc = html.escape
    if not report.enough_samples:
        state, headline = (
            "",
            (f"Not judged: {report.samples} served rows, at least {report.min_samples} needed"),
        )
    elif report.drifted:
        state, headline = "drift", "Drift: " + report.summary
    else:
        state, headline = "ok", "No drift above the thresholds"
    decision = f"<p>Schedule: {esc(verdict.sentence)}.</p>" if verdict is not None else ""
    features = _table(
        ["feature", "PSI", "over threshold", "training mean", "served mean"],
        [
            [
                f.name,
                f"{f.psi:.3f}",
                "yes" if f.breached else "no",
                *(f"{v:,.4g}" for v in means.get(f.name, (float("nan"), float("nan")))),
            ]
            for f in report.features
        ],
        ["breach" if f.breached else "" for f in report.features],
    )
    classes = sorted(set(report.prediction_reference) | set(report.prediction_served))
    predictions = _table(
        ["prediction", "share in training", "share served"],
        [
            [
                c,
                f"{100 * report.prediction_reference.get(c, 0):.1f}%",
                f"{100 * report.prediction_served.get(c, 0):.1f}%",
            ]
            for c in classes
        ],
    )
    psi = "n/a" if report.prediction_psi is None else f"{report.prediction_psi:.3f}"
    if perf is None:
        performance_html = "<p>No labels given yet (<code>--labels PATH</code>).</p>"
    elif not perf.labelled:
        performance_html = f"<p>None of the {perf.served:,} served rows has a label yet.</p>"
    else:
        performance_html = (
            f"<p>{perf.labelled:,} of {perf.served:,} served rows labelled "
            f"({100 * perf.coverage:.1f}%).</p>"
            + _table(["metric", "value"], [[k, f"{v:.4f}"] for k, v in perf.metrics.items()])
        )
    chart = (
        f'<img alt="feature and prediction drift" src="data:image/png;base64,{_chart_png(report)}">'
        if report.features
        else "<p>No served rows, no chart.</p>"
    )
    violations = "".join(f"<li>{esc(v)}</li>" for v in report.contract_violations)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drift report: {esc(report.model)} v{esc(report.champion)}, {esc(env)}, {esc(window)}</title>
<style>{_STYLE}</style></head><body>
<h1>Drift report: {esc(report.model)}, champion version {esc(report.champion)}</h1>
<p>Environment <b>{esc(env)}</b>, window {esc(window)}; generated {esc(report.at)} by
<code>slipway monitor</code>: {report.samples:,} served rows against {report.reference_rows:,}
training rows. Thresholds ([monitoring]): feature PSI {report.max_feature_psi:g}, prediction
PSI {report.max_prediction_psi:g}, at least {report.min_samples:,} rows.</p>
<p class="verdict {state}">{esc(headline)}</p>
{decision}
{chart}
<h2 id="features">Feature drift (PSI, highest first)</h2>
{features}
<h2 id="predictions">Prediction drift (PSI {psi})</h2>
{predictions}
<h2 id="performance">Performance</h2>
{performance_html}
<h2 id="contract">Served rows that break the data contract</h2>
{f"<ul>{violations}</ul>" if violations else "<p>None.</p>"}
</body></html>
"""


REPORTS_DIR = "monitoring"  # under the version's run: monitoring/<env>/<time>.html


def log_report(client: Any, model: str, version: str, path: Path, env: str | None) -> str:
    """Log the page to the run that produced `version` (beside its model card); the URI."""
    from datetime import UTC, datetime
    from tempfile import TemporaryDirectory

    run_id = client.get_model_version(model, version).run_id
    if not run_id:
        raise SlipwayError(f"version {version} of {model} has no MLflow run to log the report to")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = f"{REPORTS_DIR}/{env or 'local'}"
    with TemporaryDirectory() as tmp:
        named = Path(tmp) / f"{stamp}.html"
        named.write_bytes(path.read_bytes())
        client.log_artifact(run_id, str(named), folder)
    return f"runs:/{run_id}/{folder}/{stamp}.html"
