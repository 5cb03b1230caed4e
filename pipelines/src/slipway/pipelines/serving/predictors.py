"""How a loaded model is called: its output as one value per row, and the estimator's own
`predict` where MLflow's pyfunc wrapper would only add time."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from slipway.pipelines.config import SpokeConfig


def _to_list(output: Any) -> list[Any]:
    """A pyfunc's output (array, Series, DataFrame, list) as one JSON-able value per row."""
    if isinstance(output, pd.DataFrame):
        output = output.iloc[:, 0] if output.shape[1] == 1 else output.to_numpy()
    arr = np.asarray(output)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr.tolist()


def _direct_predictor(
    model: Any, columns: list[str], config: SpokeConfig
) -> Callable[[np.ndarray], Any] | None:
    """The estimator's own `predict` on a float array, for scikit-learn models whose pyfunc
    predict is exactly that, over an all-numeric contract in the model's feature order.

    MLflow's pyfunc wrapper re-checks every batch against the signature and rebuilds the
    frame (~1-2 ms a call, most of a one-row request's cost); the gateway has already checked
    each row against the contract, and the signature against the contract at load, so the
    wrapper adds only time. The first batch is still scored both ways and compared.
    """
    flavor = model.metadata.flavors.get("python_function", {})
    if flavor.get("loader_module") != "mlflow.sklearn":
        return None
    if flavor.get("predict_fn", "predict") != "predict":
        return None
    rules = config.data.contract.columns.values()
    if not all(r.dtype in ("float", "int") and not r.nullable for r in rules):
        return None
    try:
        raw = model.get_raw_model()
    except Exception:
        return None
    names = getattr(raw, "feature_names_in_", None)
    if names is not None and [str(n) for n in names] != columns:
        return None
    if not callable(getattr(raw, "predict", None)):
        return None
    # Fitted on a DataFrame, scikit-learn warns on every array; the names were checked above.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    return raw.predict
