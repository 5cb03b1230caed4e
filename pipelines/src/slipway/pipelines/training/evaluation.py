"""Held-out metrics through MLflow's own evaluation, and the pictures people look at first.

Metrics come from `mlflow.models.evaluate` (model_type "classifier" or "regressor"), read
back under the names slipway.toml uses (config.METRICS_BY_TASK maps them). Plots are ours,
one pair per task: confusion matrix and one-vs-rest ROC for classifiers, residuals and
predicted-versus-actual for regressors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.pipelines.config import METRICS, Task, metrics_for

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONFUSION_MATRIX",
    "METRICS",
    "PLOTS",
    "PREDICTED_VS_ACTUAL",
    "RESIDUALS",
    "ROC_CURVE",
    "as_pyfunc",
    "evaluate",
    "is_write_conflict",
    "log_dataset",
    "plots",
    "predictors",
]
CONFUSION_MATRIX = "confusion_matrix.png"
ROC_CURVE = "roc_curve.png"
RESIDUALS = "residuals.png"
PREDICTED_VS_ACTUAL = "predicted_vs_actual.png"
PLOTS: dict[Task, tuple[str, ...]] = {
    "binary": (CONFUSION_MATRIX, ROC_CURVE),
    "multiclass": (CONFUSION_MATRIX, ROC_CURVE),
    "regression": (RESIDUALS, PREDICTED_VS_ACTUAL),
}
TARGET_COLUMN = "__slipway_target__"


def evaluate(
    model: Any,
    x: pd.DataFrame,
    y: pd.Series,
    task: Task,
    name: str = "held-out",
    *,
    pictures: bool = True,
) -> dict[str, float]:
    """The task's metrics for `model` (a pyfunc model) on the held-out rows.

    Runs `mlflow.models.evaluate` on the active MLflow run, which records MLflow's own
    metrics and artifacts there. A metric that needs probabilities is absent when the model
    gives none (a PythonModel); the gate then says so if it was asked for. Without
    `pictures`, MLflow's images (ROC, precision-recall, lift, calibration, confusion matrix:
    ~0.9 s of a ~1 s evaluation) are not drawn; the metrics are the same.
    """
    import mlflow

    labels = sorted(y.unique().tolist()) if task != "regression" else None
    config: dict[str, Any] = {"log_model_explainability": False}
    if labels is not None:
        config["label_list"] = labels
        if task == "binary":
            config["pos_label"] = labels[-1]
    from mlflow.data.code_dataset_source import CodeDatasetSource

    # Named, so the run's inputs say which rows were scored (MLflow logs it as an input).
    data = mlflow.data.from_pandas(  # pyright: ignore[reportAttributeAccessIssue]
        x.assign(**{TARGET_COLUMN: y.to_numpy()}),
        source=CodeDatasetSource(tags={"slipway.split": "held-out"}),
        targets=TARGET_COLUMN,
        name=name,
    )
    log_dataset(data, context="evaluation")  # before evaluate's own log: see log_dataset
    with contextlib.nullcontext() if pictures else _without_pictures():
        result = mlflow.models.evaluate(
            model=model,
            data=data,
            model_type="regressor" if task == "regression" else "classifier",
            evaluator_config=config,
        )
    found = result.metrics
    return {m.name: float(found[m.mlflow_key]) for m in metrics_for(task) if m.mlflow_key in found}


@contextlib.contextmanager
def _without_pictures() -> Iterator[None]:
    """MLflow's built-in evaluator draws every image through one method; skip it. Should a
    later MLflow rename it, the images are drawn as before: slower, never wrong."""
    from mlflow.models.evaluation.default_evaluator import BuiltInEvaluator

    original = getattr(BuiltInEvaluator, "_log_image_artifact", None)
    if original is None:
        yield
        return
    BuiltInEvaluator._log_image_artifact = lambda self, do_plot, artifact_name: None  # pyright: ignore[reportAttributeAccessIssue]
    try:
        yield
    finally:
        BuiltInEvaluator._log_image_artifact = original  # pyright: ignore[reportAttributeAccessIssue]


# Tries of a dataset log that met a concurrent training's insert of the same rows.
DATASET_LOG_TRIES = 4


def is_write_conflict(exc: BaseException) -> bool:
    """A registry write that lost a race with another writer of the same row (MLflow's
    tracking store checks, then inserts, without a lock): PostgreSQL's UniqueViolation or
    sqlite's IntegrityError, as the server or the store reports it."""
    text = str(exc)
    return (
        any(
            marker in text
            for marker in (
                "UniqueViolation",
                "IntegrityError",
                "duplicate key value",
                "UNIQUE constraint",
            )
        )
        or getattr(exc, "error_code", None) == "RESOURCE_ALREADY_EXISTS"
    )


def log_dataset(data: Any, context: str, sleep: Callable[[float], None] | None = None) -> None:
    """Log `data` as an input of the active run, safe against a concurrent training.

    Two trainings of one spoke score the same held-out rows (same name, same digest) in the
    same experiment; MLflow's store looks the dataset up and inserts it when absent, so two
    at once both insert and one fails with a unique violation (`dataset_pk`). Tried again,
    the lookup finds the row the other committed and links it: the log is idempotent. The
    evaluation that follows logs the same dataset again, which the store then links alone.
    """
    import time

    import mlflow
    from mlflow.exceptions import MlflowException

    wait = sleep or time.sleep
    for attempt in range(1, DATASET_LOG_TRIES + 1):
        try:
            mlflow.log_input(data, context=context)
            return
        except MlflowException as exc:
            if attempt == DATASET_LOG_TRIES or not is_write_conflict(exc):
                raise
            wait(0.1 * attempt)


def as_pyfunc(model: Any, model_signature: Any) -> Any:
    """`model` saved by its flavor into a temporary directory and loaded back through pyfunc:
    exactly what the registry and the gateway will call, without a tracking server."""
    import tempfile

    import mlflow.pyfunc

    from slipway.pipelines.training.flavors import flavor_of

    path = Path(tempfile.mkdtemp(prefix="slipway-model-")) / "model"
    flavor_of(model).save(model, str(path), signature=model_signature)
    return mlflow.pyfunc.load_model(str(path))


def predictors(model: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any] | None]:
    """(predict, predict_proba or None) of a trained model, whatever its library."""
    from slipway.pipelines.training.flavors import is_python_model

    if is_python_model(model):
        # Its predict's arguments vary (context or not, params); pyfunc knows how to call it.
        return as_pyfunc(model, model_signature=None).predict, None
    proba = getattr(model, "predict_proba", None)
    return model.predict, proba if callable(proba) else None


def plots(model: Any, x: pd.DataFrame, y: pd.Series, out_dir: Path, task: Task) -> list[Path]:
    """The task's two plots on the held-out rows, as PNG files in out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay, PredictionErrorDisplay, RocCurveDisplay

    predict, proba = predictors(model)
    predicted = np.asarray(predict(x)).ravel()

    def roc(ax: Any) -> None:
        if proba is None:
            ax.text(0.5, 0.5, "no class probabilities", ha="center")
            return
        scores = np.asarray(proba(x))
        classes = sorted(y.unique().tolist())
        if task == "binary":
            RocCurveDisplay.from_predictions(y, scores[:, 1], ax=ax)
            return
        for index, label in enumerate(classes):  # one-vs-rest, one curve per class
            RocCurveDisplay.from_predictions(
                y == label, scores[:, index], ax=ax, name=f"class {label} vs rest"
            )

    draw: dict[str, Callable[[Any], Any]] = {
        CONFUSION_MATRIX: lambda ax: ConfusionMatrixDisplay.from_predictions(
            y, predicted, ax=ax, colorbar=False
        ),
        ROC_CURVE: roc,
        RESIDUALS: lambda ax: PredictionErrorDisplay.from_predictions(
            y, predicted, kind="residual_vs_predicted", ax=ax
        ),
        PREDICTED_VS_ACTUAL: lambda ax: PredictionErrorDisplay.from_predictions(
            y, predicted, kind="actual_vs_predicted", ax=ax
        ),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PLOTS[task]:
        figure, ax = plt.subplots(figsize=(4.5, 4))
        draw[name](ax)
        ax.set_title(f"{name.removesuffix('.png').replace('_', ' ')} (held-out rows)")
        figure.tight_layout()
        path = out_dir / name
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
