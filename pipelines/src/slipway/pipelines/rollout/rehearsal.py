"""Rehearse a bad release: register a deliberately broken challenger and watch it get pulled.

A rollback path that never ran is a rollback path that does not work. These are real MLflow
pyfunc models, registered like any candidate (alias `challenger`, tagged as a rehearsal),
that wrap a known-good version and break it in one of the ways the guardrails watch for:
- `raise`: every prediction fails (error-rate guardrail);
- `slow`: correct answers, `delay` seconds late per call (p95 latency guardrail);
- `constant`: always the same class (prediction-drift guardrail);
- `shift`: a regressor's numbers moved up by half their range, as after a unit or scaling
  bug (prediction-drift guardrail, over binned values).
The runbook (docs/spoke/runbook-bad-model.md), the tests and the demo use them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from slipway.pipelines import registry
from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.registry import fluent_registry
from slipway.pipelines.spoke import Spoke

KINDS = ("raise", "slow", "constant", "shift")
TAG_REHEARSAL = "slipway.rehearsal"


class FaultyModel(mlflow.pyfunc.PythonModel):
    """A known-good model broken on purpose in one observable way."""

    def __init__(self, kind: str, model: Any, delay: float) -> None:
        self.kind, self.model, self.delay = kind, model, delay

    # No type hints on purpose: MLflow reads them as a schema and warns on `Any`.
    def predict(self, context, model_input, params=None):  # pyright: ignore[reportIncompatibleMethodOverride]
        if self.kind == "raise":
            raise RuntimeError("rehearsal: this version fails every prediction on purpose")
        if self.kind == "slow":
            time.sleep(self.delay)
            return self.model.predict(model_input)
        if self.kind == "shift":
            import numpy as np

            predicted = np.asarray(self.model.predict(model_input), dtype=float)
            return predicted + 0.5 * (np.ptp(predicted) or abs(predicted).max() or 1.0) + 50.0
        first = self.model.classes_[0] if hasattr(self.model, "classes_") else 0
        return [first] * len(model_input)


def _raw_or_pyfunc(loaded: Any) -> Any:
    """The library's own model inside a pyfunc model (a scikit-learn or LightGBM estimator:
    picklable into the rehearsal, and `constant` reads its classes_), else the pyfunc model."""
    try:
        return loaded.get_raw_model()
    except Exception:  # a flavor without a raw model (a PythonModel) is called through pyfunc
        return loaded


def register_trained(root: Path, config: SpokeConfig, params: dict[str, Any]) -> str:
    """Register a healthy version trained by the spoke's own trainer with `params`, outside
    the training pipeline: a second good candidate for rehearsals and benchmarks (no gate,
    no alias; the training pipeline remains the way real candidates are made)."""
    from mlflow.models import infer_signature

    from slipway.pipelines.training.flavors import flavor_of
    from slipway.pipelines.training.spoke_code import load_frame, split, train_model

    parts = split(load_frame(root, config), config)
    training = config.training.model_copy(update={"params": params})
    model = train_model(
        root, config.model_copy(update={"training": training}), parts.x_train, parts.y_train
    )
    client = registry.client(root)
    example = parts.x_train.head(5)
    experiment = registry.experiment_id(client, root, config.model_name)
    with (
        fluent_registry(root),
        mlflow.start_run(experiment_id=experiment, run_name="rehearsal-trained"),
    ):
        info = flavor_of(model).log(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            registered_model_name=config.model_name,
        )  # the flavor names its pip requirements up front: inferring them costs ~10 s
    return str(info.registered_model_version)  # pyright: ignore[reportPossiblyUnboundVariable]  # start_run re-raises


def register_faulty(
    root: Path,
    config: SpokeConfig,
    kind: str,
    *,
    base_version: str | None = None,
    delay: float = 0.25,
) -> str:
    """Register a broken copy of `base_version` (default: the champion) as the challenger."""
    import pandas as pd
    from mlflow.models import infer_signature

    from slipway.pipelines.rollout.traffic import replay_rows

    if kind not in KINDS:
        raise ValueError(f"unknown fault {kind!r}; choose one of {KINDS}")
    client = registry.client(root)
    model_name = config.model_name
    if base_version is None:
        champion = registry.version_by_alias(client, model_name, registry.CHAMPION)
        if champion is None:
            raise ValueError("no champion to break; deploy a first version, or pass base_version")
        base_version = str(champion.version)
    example = pd.DataFrame.from_records(replay_rows(root, config)[:5])
    experiment = registry.experiment_id(client, root, model_name)
    with fluent_registry(root):
        # Through pyfunc: the base may be of any flavor (scikit-learn, LightGBM, a PythonModel).
        loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/{base_version}")
        base: Any = _raw_or_pyfunc(loaded)
        with mlflow.start_run(experiment_id=experiment, run_name=f"rehearsal-{kind}"):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=FaultyModel(kind, base, delay),
                signature=infer_signature(example, base.predict(example)),
                registered_model_name=model_name,
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(
                    include_cloudpickle=True
                ),
            )
    version = str(info.registered_model_version)  # pyright: ignore[reportPossiblyUnboundVariable]  # start_run re-raises
    client.set_model_version_tag(model_name, version, TAG_REHEARSAL, kind)
    client.set_registered_model_alias(model_name, registry.CHALLENGER, version)
    Spoke(root, config).record(
        "register",
        model=model_name,
        version=version,
        reason=f"rehearsal: a deliberately broken ({kind}) copy of v{base_version}",
        details={"rehearsal": kind, "base_version": base_version},
    )
    return version
