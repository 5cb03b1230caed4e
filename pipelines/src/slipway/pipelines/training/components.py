"""The training steps as KFP v2 lightweight components (typed parameters and artifacts).

kfp ships each function's source to the step's container, so a body holds only imports
and one call into slipway.pipelines.training.steps; the image (training.base_image in slipway.toml)
must have the spoke and slipway-pipelines installed, which is also what makes
`install_kfp_package=False` right. Locally, kfp.local runs the same bodies in this Python.

No `from __future__ import annotations` here: kfp reads the annotations as types.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output
from kfp.dsl.python_component import PythonComponent


def load_data(project_root: str, data: Output[Dataset]) -> str:
    """Call the spoke's data loader; the output parameter is the data digest."""
    from slipway.pipelines.training import steps

    return steps.load(project_root, data.path)


def validate_data(
    project_root: str,
    data: Input[Dataset],
    digest: str,
    tracking_uri: str,
    run_key: str,
    git_sha: str,
    git_dirty: bool,
    pipeline_sha256: str,
    author: str,
) -> int:
    """Check the data contract of slipway.toml; fails the run naming each column and rule."""
    from slipway.pipelines.training import steps

    ctx = steps.context(
        project_root, tracking_uri, run_key, git_sha, git_dirty, pipeline_sha256, author
    )
    return steps.validate(project_root, data.path, digest, ctx)


def train_model(project_root: str, data: Input[Dataset], model: Output[Model]) -> None:
    """Fit the spoke's trainer with [training.params] on the training split."""
    from slipway.pipelines.training import steps

    steps.train(project_root, data.path, model.path)


def evaluate_model(
    project_root: str,
    data: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    plots: Output[Artifact],
) -> None:
    """Held-out metrics (shown by Kubeflow too), confusion matrix and ROC curve."""
    from slipway.pipelines.training import steps

    for name, value in steps.evaluate(project_root, data.path, model.path, plots.path).items():
        metrics.log_metric(name, value)


def gate_model(
    project_root: str,
    data: Input[Dataset],
    digest: str,
    model: Input[Model],
    metrics: Input[Metrics],
    plots: Input[Artifact],
    tracking_uri: str,
    run_key: str,
    git_sha: str,
    git_dirty: bool,
    pipeline_sha256: str,
    author: str,
) -> NamedTuple("GateOutputs", [("run_id", str), ("verdict", str)]):  # pyright: ignore[reportInvalidTypeForm]  # kfp reads this form
    """Log the evaluation on an MLflow run; floors, then at least as good as the champion."""
    from collections import namedtuple

    from slipway.pipelines.training import steps

    ctx = steps.context(
        project_root, tracking_uri, run_key, git_sha, git_dirty, pipeline_sha256, author
    )
    run_id, verdict = steps.gate(
        project_root, data.path, digest, model.path, plots.path, dict(metrics.metadata), ctx
    )
    return namedtuple("GateOutputs", ["run_id", "verdict"])(run_id, verdict)


def register_model(
    project_root: str,
    data: Input[Dataset],
    digest: str,
    model: Input[Model],
    run_id: str,
    verdict: str,
    tracking_uri: str,
    run_key: str,
    git_sha: str,
    git_dirty: bool,
    pipeline_sha256: str,
    author: str,
) -> int:
    """Register the version with lineage tags and alias it challenger; returns the version."""
    from slipway.pipelines.training import steps

    ctx = steps.context(
        project_root, tracking_uri, run_key, git_sha, git_dirty, pipeline_sha256, author
    )
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
        return cast(
            PythonComponent,
            dsl.component(func, base_image=base_image, install_kfp_package=False),
        )

    return Components(
        load=make(load_data),
        validate=make(validate_data),
        train=make(train_model),
        evaluate=make(evaluate_model),
        gate=make(gate_model),
        register=make(register_model),
    )
