"""Held-out metrics and the two pictures people look at before trusting a classifier."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from slipway.pipelines.config import METRICS

__all__ = ["CONFUSION_MATRIX", "METRICS", "ROC_CURVE", "metrics", "plots", "scores"]
CONFUSION_MATRIX = "confusion_matrix.png"
ROC_CURVE = "roc_curve.png"


# A metric with no positive prediction is 0, not a warning (sklearn's stub says str).
_ZERO: Any = 0


def scores(model: Any, x: pd.DataFrame) -> Any:
    """Probability of the positive class for every row."""
    return model.predict_proba(x)[:, 1]


def metrics(model: Any, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    predicted = model.predict(x)
    return {
        "roc_auc": float(roc_auc_score(y, scores(model, x))),
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, zero_division=_ZERO)),
        "precision": float(precision_score(y, predicted, zero_division=_ZERO)),
        "recall": float(recall_score(y, predicted, zero_division=_ZERO)),
    }


def plots(model: Any, x: pd.DataFrame, y: pd.Series, out_dir: Path) -> list[Path]:
    """Confusion matrix and ROC curve on the held-out rows, as PNG files in out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (
        (
            CONFUSION_MATRIX,
            lambda ax: ConfusionMatrixDisplay.from_predictions(
                y, model.predict(x), ax=ax, colorbar=False
            ),
        ),
        (ROC_CURVE, lambda ax: RocCurveDisplay.from_predictions(y, scores(model, x), ax=ax)),
    ):
        figure, ax = plt.subplots(figsize=(4.5, 4))
        draw(ax)
        ax.set_title(f"{name.removesuffix('.png').replace('_', ' ')} (held-out rows)")
        figure.tight_layout()
        path = out_dir / name
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
