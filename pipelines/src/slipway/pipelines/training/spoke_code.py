"""Calling the spoke team's own code: its data loader and trainer, named in slipway.toml.

Also the one place that decides which rows are held out, so training, the gate, the
deploy pipeline's replayed traffic and drift monitoring all see the same split.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.errors import SlipwayError

if TYPE_CHECKING:
    import pandas as pd


class SpokeCodeError(SlipwayError):
    """The spoke's loader or trainer cannot be imported or returned something unusable."""


def spoke_pipeline(root: Path, config: SpokeConfig, relative: str, guide: str) -> Any:
    """Call `build_pipeline(config)` of the spoke's pipelines/<name>.py, imported by path:
    the team owns that wiring, slipway owns the steps it wires. `guide` is the docs page
    that explains the file, named in the error when it is missing or wrong."""
    import importlib.util

    path = root / relative
    if not path.is_file():
        raise SpokeCodeError(
            f"{path} is missing: it wires the spoke's pipeline. Restore it from the "
            f"template (`copier update`) or see {guide}."
        )
    spec = importlib.util.spec_from_file_location(f"_slipway_spoke_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    build_pipeline = getattr(module, "build_pipeline", None)
    if not callable(build_pipeline):
        raise SpokeCodeError(
            f"{path} must define build_pipeline(config) returning the pipeline; see {guide}."
        )
    return build_pipeline(config)


def make_importable(root: Path) -> None:
    """Put the spoke's src/ first on sys.path, so its package imports without installing it."""
    src = str((root / "src").resolve())
    if src not in sys.path:
        sys.path.insert(0, src)


def resolve(root: Path, entrypoint: str, field: str) -> Callable[..., Any]:
    """`package.module:function` from slipway.toml -> the function, or a clear error."""
    make_importable(root)
    module_name, _, attr = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpokeCodeError(
            f"{field} = {entrypoint!r}: cannot import {module_name!r} ({exc}). "
            f"Check the name in slipway.toml and that src/{module_name.replace('.', '/')}.py "
            "exists."
        ) from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise SpokeCodeError(f"{field} = {entrypoint!r}: {module_name} has no function {attr!r}.")
    return function


def load_frame(root: Path, config: SpokeConfig) -> pd.DataFrame:
    import pandas as pd

    frame = resolve(root, config.data.loader, "data.loader")()
    if not isinstance(frame, pd.DataFrame):
        raise SpokeCodeError(
            f"data.loader {config.data.loader} returned {type(frame).__name__}; "
            "it must return a pandas DataFrame of features plus the target column."
        )
    return frame


def features(frame: pd.DataFrame, config: SpokeConfig) -> pd.DataFrame:
    """The contract's columns, in the contract's order: exactly what a request carries."""
    return cast("pd.DataFrame", frame[list(config.data.contract.columns)])


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def split(frame: pd.DataFrame, config: SpokeConfig) -> Split:
    """Seeded train/held-out split, stratified by class for classifiers: the same rows every
    run with the same data."""
    from sklearn.model_selection import train_test_split

    labels = frame[config.data.target]
    x_train, x_test, y_train, y_test = train_test_split(
        features(frame, config),
        labels,
        test_size=config.training.test_size,
        random_state=config.training.seed,
        stratify=None if config.training.task == "regression" else labels,
    )
    return Split(
        *cast(
            "tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]",
            (x_train, x_test, y_train, y_test),
        )
    )


def held_out_rows(root: Path, config: SpokeConfig) -> pd.DataFrame:
    """The held-out rows (features, then the target column) the gate judged models on.

    The deploy pipeline replays these as traffic; they never trained a model.
    """
    parts = split(load_frame(root, config), config)
    return parts.x_test.assign(**{config.data.target: parts.y_test})


def train_model(root: Path, config: SpokeConfig, x_train: pd.DataFrame, y_train: pd.Series) -> Any:
    model = resolve(root, config.training.trainer, "training.trainer")(
        x_train, y_train, dict(config.training.params)
    )
    from slipway.pipelines.config import metric
    from slipway.pipelines.training.flavors import UnsupportedModelError, flavor_of

    try:
        flavor = flavor_of(model)
    except UnsupportedModelError as exc:
        raise SpokeCodeError(f"training.trainer {config.training.trainer}: {exc}") from None
    task = config.training.task
    gated = {config.gates.primary_metric, *config.gates.minimum}
    needs_proba = sorted(n for n in gated if metric(task, n).needs_proba)
    if needs_proba and (flavor.name == "pyfunc" or not hasattr(model, "predict_proba")):
        raise SpokeCodeError(
            f"training.trainer {config.training.trainer} returned {type(model).__name__}, "
            f"which has no predict_proba, but the gates need {', '.join(needs_proba)}: return "
            "a fitted classifier with predict_proba, or gate on another metric in [gates]."
        )
    return model
