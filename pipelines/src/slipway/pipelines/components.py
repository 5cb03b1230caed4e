"""The training steps as KFP v2 lightweight components (typed parameters and artifacts).

kfp ships each function's source to the step's container, so a body holds only imports
and one call into slipway.pipelines.steps; the image (training.base_image in slipway.toml)
must have the spoke and slipway-pipelines installed, which is also what makes
`install_kfp_package=False` right. Locally, kfp.local runs the same bodies in this Python.

No `from __future__ import annotations` here: kfp reads the annotations as types.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output
from kfp.dsl.python_component import PythonComponent


def load_data(project_root: str, data: Output[Dataset]) -> str:
    """Call the spoke's data loader; the output parameter is the data digest."""
    from slipway.pipelines import steps

    return steps.load(project_root, data.path)


def validate_data(project_root: str, data: Input[Dataset], digest: str, tracking_uri: str,
                  run_key: str, git_sha: str, git_dirty: bool, pipeline_sha256: str,
                  author: str) -> int:
    """Check the data contract of slipway.toml; fails the run naming each column and rule."""
    from slipway.pipelines import steps

    ctx = steps.context(project_root, tracking_uri, run_key, git_sha, git_dirty,
                        pipeline_sha256, author)
    return steps.validate(project_root, data.path, digest, ctx)


def train_model(project_root: str, data: Input[Dataset], model: Output[Model]) -> None:
    """Fit the spoke's trainer with [training.params] on the training split."""
    from slipway.pipelines import steps

    steps.train(project_root, data.path, model.path)


def evaluate_model(project_root: str, data: Input[Dataset], digest: str, model: Input[Model],
                   plots: Output[Artifact], tracking_uri: str, run_key: str, git_sha: str,
                   git_dirty: bool, pipeline_sha256: str, author: str) -> str:
    """Held-out metrics, confusion matrix and ROC curve on a new MLflow run (its id is out)."""
    from slipway.pipelines import steps

    ctx = steps.context(project_root, tracking_uri, run_key, git_sha, git_dirty,
                        pipeline_sha256, author)
    return steps.evaluate(project_root, data.path, digest, model.path, plots.path, ctx)


def gate_model(project_root: str, data: Input[Dataset], model: Input[Model], run_id: str,
               tracking_uri: str) -> str:
    """Floors from slipway.toml, then at least as good as the champion on the same rows."""
    from slipway.pipelines import steps

    return steps.gate(project_root, data.path, model.path, run_id,
                      steps.resolve_tracking_uri(project_root, tracking_uri))


def register_model(project_root: str, data: Input[Dataset], digest: str, model: Input[Model],
                   run_id: str, verdict: str, tracking_uri: str, run_key: str, git_sha: str,
                   git_dirty: bool, pipeline_sha256: str, author: str) -> int:
    """Register the version with lineage tags and alias it challenger; returns the version."""
    from slipway.pipelines import steps

    ctx = steps.context(project_root, tracking_uri, run_key, git_sha, git_dirty,
                        pipeline_sha256, author)
    return steps.register(project_root, data.path, digest, model.path, run_id, verdict, ctx)


@dataclass(frozen=True)
class Components:
    load: PythonComponent
    validate: PythonComponent
    train: PythonComponent
    evaluate: PythonComponent
    gate: PythonComponent
    register: PythonComponent


def build(base_image: str) -> Components:
    """The six components on the spoke's base image."""

    def make(func: Callable[..., Any]) -> PythonComponent:
        return dsl.component(func, base_image=base_image, install_kfp_package=False)

    return Components(
        load=make(load_data), validate=make(validate_data), train=make(train_model),
        evaluate=make(evaluate_model), gate=make(gate_model), register=make(register_model),
    )
