"""The gate rescoring the baseline skips MLflow's pictures (about 0.9 s of a 1 s evaluation,
benchmarks/README.md) and gets exactly the metrics it would have got with them."""

from __future__ import annotations

from pathlib import Path

import pytest

# Two real MLflow evaluations: `make test` runs them, `make test-fast` does not.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, tuple[dict, set]]:
    """Both evaluations, once for the module's two tests (each is seconds of MLflow)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _scored(tmp_path_factory.mktemp("pictures"), monkeypatch)


def _scored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[bool, tuple[dict, set]]:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from slipway.pipelines import registry
    from slipway.pipelines.training.evaluation import as_pyfunc, evaluate

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0, stratify=y)
    model = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    pyfunc = as_pyfunc(model, infer_signature(x_train.head(5), model.predict(x_train.head(5))))
    found: dict[bool, tuple[dict, set]] = {}
    with registry.fluent_registry(tmp_path):
        for pictures in (True, False):
            with mlflow.start_run() as run:
                metrics = evaluate(
                    pictures=pictures, model=pyfunc, x=x_test, y=y_test, task="binary"
                )
            client = registry.client_for(registry.tracking_uri(tmp_path))
            names = {item.path for item in client.list_artifacts(run.info.run_id)}
            found[pictures] = metrics, names
    return found


def test_without_pictures_the_metrics_are_the_same_and_no_image_is_drawn(scored):
    with_pictures, names_with = scored[True]
    without, names_without = scored[False]
    assert without == with_pictures
    assert {"roc_auc", "accuracy", "f1"} <= set(without)
    images = {name for name in names_with if name.endswith(".png")}
    assert {"roc_curve_plot.png", "confusion_matrix.png"} <= images  # drawn when asked
    assert not {name for name in names_without if name.endswith(".png")}


def test_the_evaluator_is_left_as_it_was(scored):
    from mlflow.models.evaluation.default_evaluator import BuiltInEvaluator

    assert BuiltInEvaluator._log_image_artifact.__name__ == "_log_image_artifact"
