"""Where the training data comes from.

The demo reads the Wisconsin breast cancer biopsies that ship with scikit-learn (real
measurements, no network). Replace the body with your own source; keep the contract in
slipway.toml in step with the columns you return.
"""

from __future__ import annotations

import re

import pandas as pd
from sklearn.datasets import load_breast_cancer

TARGET = "malignant"


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def load() -> pd.DataFrame:
    """Features plus the `malignant` label (1 = malignant), one row per biopsy."""
    features, target = load_breast_cancer(as_frame=True, return_X_y=True)
    frame = pd.DataFrame(features).rename(columns=_snake)
    # scikit-learn encodes 1 = benign; the clinical question is "is it malignant?".
    frame[TARGET] = (pd.Series(target) == 0).astype(int)
    return frame
