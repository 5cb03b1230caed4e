"""Training: the pipeline that loads, validates, trains, evaluates, gates and registers.

Modules: `pipeline` (the KFP pipeline, compiling and running it), `steps` (what each step does),
`components` (the steps as KFP components), `data_contract`, `evaluation`, `quality_gate`,
`spoke_code` (calling the team's loader and trainer), `lineage` (facts every version carries),
`images` (the image every step runs in on a cluster) and `kubeflow` (submitting and watching).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines._lazy import lazy_exports

if TYPE_CHECKING:
    from slipway.pipelines.training.data_contract import (
        Violation,
        format_report,
        schema_for,
        validate_frame,
    )
    from slipway.pipelines.training.flavors import Flavor, UnsupportedModelError, flavor_of
    from slipway.pipelines.training.images import ImageRefError, validate_image_ref
    from slipway.pipelines.training.kubeflow import (
        KubeflowError,
        KubeflowOutcome,
        KubeflowRun,
        KubeflowTarget,
        SubmitOptions,
        resolve_auth,
        submit,
        target_for,
        wait,
    )
    from slipway.pipelines.training.lineage import (
        GitState,
        data_digest,
        file_sha256,
        git_state,
    )
    from slipway.pipelines.training.pipeline import (
        COMPILED_FILE,
        TrainingError,
        TrainingOutcome,
        TrainingSummary,
        compile_training,
        find_outcome,
        pipeline_arguments,
        run_local_training,
        training_pipeline,
    )
    from slipway.pipelines.training.quality_gate import (
        Baseline,
        Verdict,
    )
    from slipway.pipelines.training.spoke_code import (
        Split,
        SpokeCodeError,
        held_out_rows,
        load_frame,
        split,
    )
    from slipway.pipelines.training.zygote import Zygote, warm_steps

_EXPORTS = {
    "COMPILED_FILE": "pipeline",
    "TrainingError": "pipeline",
    "TrainingOutcome": "pipeline",
    "TrainingSummary": "pipeline",
    "Zygote": "zygote",
    "warm_steps": "zygote",
    "compile_training": "pipeline",
    "pipeline_arguments": "pipeline",
    "run_local_training": "pipeline",
    "find_outcome": "pipeline",
    "KubeflowError": "kubeflow",
    "KubeflowOutcome": "kubeflow",
    "KubeflowRun": "kubeflow",
    "KubeflowTarget": "kubeflow",
    "resolve_auth": "kubeflow",
    "SubmitOptions": "kubeflow",
    "submit": "kubeflow",
    "target_for": "kubeflow",
    "wait": "kubeflow",
    "ImageRefError": "images",
    "validate_image_ref": "images",
    "training_pipeline": "pipeline",
    "Violation": "data_contract",
    "format_report": "data_contract",
    "schema_for": "data_contract",
    "validate_frame": "data_contract",
    "Baseline": "quality_gate",
    "Flavor": "flavors",
    "UnsupportedModelError": "flavors",
    "flavor_of": "flavors",
    "Verdict": "quality_gate",
    "SpokeCodeError": "spoke_code",
    "Split": "spoke_code",
    "held_out_rows": "spoke_code",
    "load_frame": "spoke_code",
    "split": "spoke_code",
    "GitState": "lineage",
    "data_digest": "lineage",
    "file_sha256": "lineage",
    "git_state": "lineage",
}
__all__ = [
    "COMPILED_FILE",
    "Baseline",
    "Flavor",
    "GitState",
    "ImageRefError",
    "KubeflowError",
    "KubeflowOutcome",
    "KubeflowRun",
    "KubeflowTarget",
    "Split",
    "SpokeCodeError",
    "SubmitOptions",
    "TrainingError",
    "TrainingOutcome",
    "TrainingSummary",
    "UnsupportedModelError",
    "Verdict",
    "Violation",
    "Zygote",
    "compile_training",
    "data_digest",
    "file_sha256",
    "find_outcome",
    "flavor_of",
    "format_report",
    "git_state",
    "held_out_rows",
    "load_frame",
    "pipeline_arguments",
    "resolve_auth",
    "run_local_training",
    "schema_for",
    "split",
    "submit",
    "target_for",
    "training_pipeline",
    "validate_frame",
    "validate_image_ref",
    "wait",
    "warm_steps",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
