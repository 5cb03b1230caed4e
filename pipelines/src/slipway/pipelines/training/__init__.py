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

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
