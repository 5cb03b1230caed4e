"""How the model is trained. Slipway passes the params from slipway.toml [training.params]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def train(features: pd.DataFrame, labels: pd.Series, params: Mapping[str, Any]) -> Pipeline:
    """A scaled logistic regression: a strong, explainable baseline for tabular biopsies."""
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "classify",
                LogisticRegression(
                    C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 500))
                ),
            ),
        ]
    )
    return model.fit(features, labels)
