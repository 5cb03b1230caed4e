"""One model and one lineage for a batch: which version scored it, and what it left behind.

A batch is scored by one registered version, named by number or alias and resolved once
(an alias that moves mid-job must not split a table between two models). Its name, version
and training run id go on every output row; the job itself is recorded three ways, so a
data engineer and an auditor find it from either side:

- an MLflow run in the spoke's experiment (tagged `slipway.kind = batch`, the version and its
  training run), with the counts and the prediction drift of the batch against the
  predictions the model made on its training split (the reference `slipway monitor` uses);
- an entry `score` in the audit trail;
- the summary `slipway score --json` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.pipelines.batch.scoring import BatchResult, ModelRef
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

if TYPE_CHECKING:
    import pandas as pd

    from slipway.pipelines.config import SpokeConfig

TAG_KIND = "slipway.kind"
KIND_BATCH = "batch"
TAG_MODEL_VERSION = "slipway.batch.model_version"
TAG_MODEL_RUN = "slipway.batch.model_run_id"


class NoSuchModel(SlipwayError):
    """The version or alias to score with does not exist; nothing was read."""

    exit_code = Exit.USAGE


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    model: Any  # mlflow.pyfunc.PyFuncModel

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.model.predict(frame)


def resolve(root: Path, config: SpokeConfig, version: str | None, alias: str | None) -> ModelRef:
    """The version to score with: `version`, else the holder of `alias` (champion by default)."""
    from slipway.pipelines import registry

    client = registry.client(root)
    name = config.model_name
    if version is not None:
        if not registry.version_exists(client, name, version):
            raise NoSuchModel(
                f"{name} has no version {version}; `slipway status` lists the registered ones"
            )
        found = client.get_model_version(name, version)
    else:
        wanted = alias or registry.CHAMPION
        held = registry.version_by_alias(client, name, wanted)
        if held is None:
            raise NoSuchModel(
                f"no version of {name} holds the alias {wanted!r}: roll one out with "
                "`slipway deploy`, or score with --version N"
            )
        found = held
    return ModelRef(
        name=name,
        version=str(found.version),
        run_id=str(found.run_id or ""),
        uri=f"models:/{name}/{found.version}",
    )


def load(root: Path, ref: ModelRef) -> LoadedModel:
    import mlflow.pyfunc

    from slipway.pipelines.registry import fluent_registry

    with fluent_registry(root):
        return LoadedModel(ref, mlflow.pyfunc.load_model(ref.uri))


def load_dir(model_dir: Path, ref: ModelRef) -> LoadedModel:
    """A model already on disk (a pipeline step's or the image's copy of the version)."""
    import mlflow.pyfunc

    return LoadedModel(ref, mlflow.pyfunc.load_model(str(model_dir)))


def reference_predictions(root: Path, config: SpokeConfig, model: LoadedModel) -> list[Any]:
    """The model's predictions on the training split: the baseline of prediction drift."""
    from slipway.pipelines.rollout.packaging import REFERENCE_MAX_ROWS
    from slipway.pipelines.serving.predictors import _to_list
    from slipway.pipelines.training.spoke_code import features, load_frame, split

    reference = split(load_frame(root, config), config).x_train.head(REFERENCE_MAX_ROWS)
    return _to_list(model.predict(features(reference, config)))


def prediction_psi(reference: list[Any], result: BatchResult) -> float | None:
    from slipway.pipelines.statistics import psi

    if not reference or not result.prediction_sample:
        return None
    return round(psi(reference, result.prediction_sample), 4)


def record(
    root: Path,
    config: SpokeConfig,
    result: BatchResult,
    drift: float | None,
    *,
    where: str = "local",
) -> str:
    """The batch as an MLflow run and an audit entry; returns the run id."""
    from slipway.pipelines import registry
    from slipway.pipelines.spoke import Spoke

    client = registry.client(root)
    run = client.create_run(
        registry.experiment_id(client, root, config.model_name),
        run_name=f"score-v{result.model.version}",
        tags={
            TAG_KIND: KIND_BATCH,
            TAG_MODEL_VERSION: result.model.version,
            TAG_MODEL_RUN: result.model.run_id,
            "slipway.batch.where": where,
        },
    )
    run_id = run.info.run_id
    for key, value in (
        ("input", result.input),
        ("output", result.output if result.published else ""),
        ("quarantine", result.quarantine if result.published else ""),
        ("model_uri", result.model.uri),
        ("max_rejected_fraction", config.batch.max_rejected_fraction),
    ):
        client.log_param(run_id, key, str(value)[:6000])
    metrics = {
        "rows_in": result.rows_in,
        "scored": result.scored,
        "quarantined": result.quarantined,
        "rejected_fraction": result.rejected_fraction,
        "seconds": result.seconds,
        "rows_per_second": result.rows_per_second,
    }
    if drift is not None:
        metrics["prediction_psi"] = drift
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    client.set_terminated(run_id, "FINISHED" if result.published else "FAILED")
    Spoke(root, config).record(
        "score",
        model=config.model_name,
        version=result.model.version,
        reason=(
            f"scored {result.scored} of {result.rows_in} rows, quarantined {result.quarantined}"
            if result.published
            else f"refused: {result.quarantined} of {result.rows_in} rows broke the contract"
        ),
        details={
            "input": result.input,
            "output": result.output if result.published else None,
            "quarantine": result.quarantine if result.published else None,
            "run_id": run_id,
            "where": where,
            "prediction_psi": drift,
        },
    )
    return run_id
