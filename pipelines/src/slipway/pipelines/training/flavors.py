"""Which MLflow flavor logs the model a spoke's trainer returns.

A trainer may return a scikit-learn estimator, a LightGBM or XGBoost model (their native
Booster or their scikit-learn API), or an `mlflow.pyfunc.PythonModel`. The flavor is picked
here, once, from the object; the registry, the gate and the gateway then load every version
through pyfunc, whatever its flavor.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

__all__ = ["FLAVORS", "Flavor", "UnsupportedModelError", "flavor_of", "is_python_model"]


class UnsupportedModelError(SlipwayError):
    """The trainer returned an object no supported MLflow flavor can log."""

    exit_code = Exit.CONFIG


@dataclass(frozen=True)
class Flavor:
    name: str  # "sklearn", "lightgbm", "xgboost" or "pyfunc"
    module: str  # the mlflow module that logs it

    def _mlflow(self) -> Any:
        import importlib

        return importlib.import_module(self.module)

    def _requirements(self) -> list[str]:
        # Named up front: inferring them would load the model again in a subprocess.
        mod = self._mlflow()
        if self.name == "pyfunc":
            import mlflow.sklearn

            return mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True)
        if self.name == "xgboost":
            return mod.get_default_pip_requirements()
        return mod.get_default_pip_requirements(include_cloudpickle=True)

    def _model_kwargs(self, model: Any) -> dict[str, Any]:
        keyword = {"pyfunc": "python_model", "lightgbm": "lgb_model", "xgboost": "xgb_model"}
        kwargs: dict[str, Any] = {keyword.get(self.name, "sk_model"): model}
        if self.name == "sklearn":
            kwargs["skops_trusted_types"] = _skops_types(model)
        return kwargs

    def save(self, model: Any, path: str, signature: ModelSignature | None = None) -> None:
        """Write the model as an MLflow model directory (no tracking server involved)."""
        self._mlflow().save_model(
            path=path,
            signature=signature,
            pip_requirements=self._requirements(),
            **self._model_kwargs(model),
        )

    def log(self, model: Any, **kwargs: Any) -> Any:
        """`mlflow.<flavor>.log_model` on the active run; returns its ModelInfo."""
        return self._mlflow().log_model(
            pip_requirements=self._requirements(), **self._model_kwargs(model), **kwargs
        )


def _skops_types(model: Any) -> list[str] | None:
    """The types skops would refuse to load back from `model` (a tree's Tree, say).

    MLflow saves scikit-learn models with skops, which loads only types it trusts by default;
    a decision tree or a forest then saves, and fails to load at the gate and the gateway.
    The model is the spoke's own trainer's output, so its types are trusted here, by name,
    and recorded in the MLflow model for whoever loads it.
    """
    try:
        import skops.io
    except ImportError:  # MLflow then pickles, and loads without a list
        return None
    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model))) or None


FLAVORS = {
    "sklearn": Flavor("sklearn", "mlflow.sklearn"),
    "lightgbm": Flavor("lightgbm", "mlflow.lightgbm"),
    "xgboost": Flavor("xgboost", "mlflow.xgboost"),
    "pyfunc": Flavor("pyfunc", "mlflow.pyfunc"),
}


def is_python_model(model: Any) -> bool:
    """Whether `model` is an `mlflow.pyfunc.PythonModel`, without importing MLflow (a second
    of CPU in the train and evaluate steps, which need MLflow for nothing else): an instance
    of one exists only once its class, and so mlflow.pyfunc.model, has been imported."""
    module = sys.modules.get("mlflow.pyfunc.model")
    python_model = getattr(module, "PythonModel", None)
    return python_model is not None and isinstance(model, python_model)


def flavor_of(model: Any) -> Flavor:
    """The flavor that logs `model`; UnsupportedModelError says what a trainer may return."""
    if is_python_model(model):
        return FLAVORS["pyfunc"]
    library = type(model).__module__.split(".", 1)[0]
    if library in ("lightgbm", "xgboost"):
        # Their scikit-learn wrappers (LGBMRegressor, XGBClassifier) log natively too.
        return FLAVORS[library]
    if callable(getattr(model, "predict", None)) and callable(getattr(model, "get_params", None)):
        return FLAVORS["sklearn"]  # scikit-learn, or anything following its estimator API
    raise UnsupportedModelError(
        f"the trainer returned {type(model).__module__}.{type(model).__name__}, which no "
        "supported MLflow flavor logs; return a fitted scikit-learn estimator, a LightGBM or "
        "XGBoost model, or an mlflow.pyfunc.PythonModel (docs/spoke/bring-your-own-model.md)"
    )
