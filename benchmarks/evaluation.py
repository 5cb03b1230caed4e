"""What evaluating through MLflow costs per training run, against the hand-written metrics
it replaced, measured in one run on the demo's data and model.

Baseline: scikit-learn's five binary metrics on the held-out rows (what the evaluate step
computed before). Slipway: what the gate does per model now (save the model by its flavor,
load it through pyfunc, mlflow.models.evaluate on the active run). A run evaluates the
challenger and, when there is one, the baseline: twice this per `slipway train`.

    .venv/bin/python benchmarks/evaluation.py
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import mlflow  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from slipway.pipelines.training.evaluation import as_pyfunc, evaluate  # noqa: E402

REPEATS = 5


def main() -> None:
    store = tempfile.mkdtemp(prefix="slipway-bench-")
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    # Artifacts beside the store: MLflow's default root is ./mlruns in the working directory.
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("bench", artifact_location=f"file://{store}/art")
    )
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=42, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x_train, y_train)
    example = x_train.head(5)

    def hand_written() -> None:
        predicted, scores = model.predict(x_test), model.predict_proba(x_test)[:, 1]
        roc_auc_score(y_test, scores)
        for metric in (accuracy_score, f1_score, precision_score, recall_score):
            metric(y_test, predicted)

    def through_mlflow() -> None:
        loaded = as_pyfunc(model, infer_signature(example, model.predict(example)))
        with mlflow.start_run():
            evaluate(loaded, x_test, y_test, "binary")

    results = {}
    for name, fn in (("hand-written", hand_written), ("mlflow.evaluate", through_mlflow)):
        fn()  # warm: imports and the store's first run are paid once per step process
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        results[name] = statistics.median(times)
        print(f"{name:<16} median {results[name] * 1000:8.1f} ms per model ({REPEATS} runs)")
    extra = results["mlflow.evaluate"] - results["hand-written"]
    print(f"extra per model: {extra:.2f} s; per training run with a baseline: {2 * extra:.2f} s")


if __name__ == "__main__":
    main()
