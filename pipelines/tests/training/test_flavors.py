"""The flavor that logs a trainer's model is picked from the object, and each loads back
through pyfunc (what the gate and the gateway call) with the same predictions."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.tree import DecisionTreeRegressor

from slipway.pipelines.training.evaluation import predictors
from slipway.pipelines.training.flavors import UnsupportedModelError, _skops_types, flavor_of


class Halver(mlflow.pyfunc.PythonModel):
    """A team's own model: half the first column."""

    def predict(self, context, model_input, params=None):  # pyright: ignore[reportIncompatibleMethodOverride]
        return np.asarray(model_input.iloc[:, 0], dtype=float) / 2


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    return x.head(120), y.head(120)


def _round_trip(model: object, x: pd.DataFrame, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "model"
    flavor_of(model).save(model, str(path))
    return np.asarray(mlflow.pyfunc.load_model(str(path)).predict(x), dtype=float)


def test_a_tree_is_logged_by_sklearn_and_loads_back(data, tmp_path):
    x, y = data
    tree = DecisionTreeRegressor(max_depth=3, random_state=0).fit(x, y)
    assert flavor_of(tree).name == "sklearn"
    # skops refuses a tree's types unless they are recorded as trusted: this loads.
    assert "sklearn.tree._tree.Tree" in (_skops_types(tree) or [])
    assert np.allclose(_round_trip(tree, x, tmp_path), tree.predict(x))


def test_lightgbm_is_logged_by_its_own_flavor(data, tmp_path):
    lightgbm = pytest.importorskip("lightgbm")
    x, y = data
    model = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(x, y)
    assert flavor_of(model).name == "lightgbm"
    assert np.allclose(_round_trip(model, x, tmp_path), model.predict(x))


def test_a_python_model_is_logged_by_pyfunc_and_predicts_through_it(data, tmp_path):
    x, _ = data
    model = Halver()
    assert flavor_of(model).name == "pyfunc"
    assert np.allclose(_round_trip(model, x, tmp_path), x.iloc[:, 0] / 2)
    predict, proba = predictors(model)
    assert proba is None and np.allclose(np.asarray(predict(x), dtype=float), x.iloc[:, 0] / 2)


def test_anything_else_is_refused_with_what_a_trainer_may_return():
    with pytest.raises(UnsupportedModelError, match="scikit-learn estimator, a LightGBM or"):
        flavor_of({"weights": [1, 2, 3]})
