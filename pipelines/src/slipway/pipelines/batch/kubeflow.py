"""The batch job as a Kubeflow pipeline: plan -> score the shards in parallel -> merge.

    plan-batch -> score-shards: ParallelFor(shards, parallelism=[batch] shards) score-shard
               -> merge-batch (.after the score-shards sub-pipeline)

Fan-in on the open-source Kubeflow backend: `dsl.Collected` (collecting the loop's outputs
into the next task's input) was for a long time a Vertex-only feature, and collecting
*artifacts* is still refused by the open-source backend; tasks outside a loop may not
`.after()` a task inside it either. So the loop lives in its own sub-pipeline
(`score-shards`), the merge runs `.after()` that sub-pipeline's task (a plain DAG
dependency, which every backend runs), and the merge reads what the shards did from the
manifests they wrote beside the output (batch/shards.py). Steps pass each other only short
strings; no artifact crosses a step. The compiled IR is tested for exactly this shape.

`slipway compile` writes it to build/pipelines/batch.yaml (every executor on `--image`);
`run_local` runs it on kfp.local, the same code a cluster runs.

No `from __future__ import annotations` here: kfp reads the annotations as types.
"""

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from kfp import dsl

from slipway.pipelines.config import SpokeConfig

if TYPE_CHECKING:
    from kfp.dsl.graph_component import GraphComponent

    from slipway.pipelines.spoke import Spoke

COMPILED_FILE = "build/pipelines/batch.yaml"
MAX_PARALLELISM = 64  # [batch] shards' own bound


# -- KFP components (bodies import and call batch.shards) ------------------------------------


def plan_batch(
    project_root: str, input: str, output: str, version: str, alias: str, tracking_uri: str = ""
) -> NamedTuple(  # pyright: ignore[reportInvalidTypeForm]  # kfp reads this form
    "BatchPlan", [("version", str), ("source", str), ("shards", list)]
):
    """Resolve the one version to score with; shard the input by row group."""
    from collections import namedtuple

    from slipway.pipelines.batch import shards

    version, source, planned = shards.plan(
        project_root, input, output, version, alias, tracking_uri
    )
    return namedtuple("BatchPlan", ["version", "source", "shards"])(version, source, planned)


def score_shard(
    project_root: str, source: str, output: str, shard: str, version: str, tracking_uri: str = ""
) -> str:
    """Check, score and quarantine one shard's rows; write its manifest."""
    from slipway.pipelines.batch import shards

    return shards.score_shard(project_root, source, output, shard, version, tracking_uri)


def merge_batch(
    project_root: str, input: str, output: str, version: str, tracking_uri: str = ""
) -> str:
    """Judge the whole file, publish (or nothing), record the run and the audit entry."""
    from slipway.pipelines.batch import shards

    return shards.merge(project_root, input, output, version, tracking_uri)


def batch_pipeline(config: SpokeConfig) -> "GraphComponent":
    """The batch pipeline of a spoke, on its base image (caching off: data changes nightly)."""

    def component(func: Any) -> Any:  # kfp's decorator is untyped
        return dsl.component(func, base_image=config.training.base_image, install_kfp_package=False)

    plan_c, shard_c, merge_c = component(plan_batch), component(score_shard), component(merge_batch)
    parallelism = min(config.batch.shards, MAX_PARALLELISM)

    @dsl.pipeline(name="score-shards")
    def score_shards(
        project_root: str,
        source: str,
        output: str,
        shards: list,
        version: str,
        tracking_uri: str,
    ) -> None:
        with dsl.ParallelFor(shards, parallelism=parallelism) as shard:
            task = shard_c(
                project_root=project_root,
                source=source,
                output=output,
                shard=shard,
                version=version,
                tracking_uri=tracking_uri,
            )
            task.set_caching_options(False)

    @dsl.pipeline(
        name=f"{config.model_name}-batch",
        description=f"Score a file with {config.model_name}, shards in parallel (Slipway).",
    )
    def pipeline(
        input: str,
        output: str,
        project_root: str = ".",
        version: str = "",
        alias: str = "",
        tracking_uri: str = "",
    ) -> str:
        at = {"project_root": project_root, "tracking_uri": tracking_uri}
        planned = plan_c(input=input, output=output, version=version, alias=alias, **at)
        scored = score_shards(
            source=planned.outputs["source"],
            output=output,
            shards=planned.outputs["shards"],
            version=planned.outputs["version"],
            **at,
        )
        merged = merge_c(
            input=input, output=output, version=planned.outputs["version"], **at
        ).after(scored)
        for task in (planned, merged):
            task.set_caching_options(False)
        return merged.output

    return cast("GraphComponent", pipeline)  # dsl.pipeline's stub keeps the function type


def compile_batch(
    root: Path, config: SpokeConfig, output: Path | None = None, *, image: str | None = None
) -> Path:
    """Write the batch pipeline's KFP IR YAML; `image` goes on every executor."""
    from kfp import compiler

    from slipway.pipelines.training import images

    output = output or root / COMPILED_FILE
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(batch_pipeline(images.with_image(config, image)), str(output))
    if image is not None:
        images.set_executor_images(output, image)
    return output


def run_local(
    root: Path,
    config: SpokeConfig,
    input: str,
    output: str,
    *,
    version: str | None = None,
    alias: str | None = None,
) -> dict[str, Any]:
    """Run the pipeline on kfp.local (SubprocessRunner, this Python) against the spoke's
    registry; returns the merge's summary, or raises the step's error."""
    from kfp import local

    from slipway.pipelines import registry

    runs = registry.state_dir(root) / "pipeline-runs"
    runs.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(runs))
    pipeline = batch_pipeline(config)
    with contextlib.redirect_stdout(io.StringIO()):
        run = pipeline(
            input=input,
            output=output,
            project_root=str(root),
            version=version or "",
            alias=alias or "",
            tracking_uri=registry.tracking_uri(root),
        )
    return json.loads(cast("str", run.output))  # kfp.local gives the value itself


def _compiled_for(spoke: "Spoke", target: Any, *, nothing_done: str) -> Path:
    """The step `submit` and `schedule` share: the image reference checked, the API reached
    and authorised (with a namespace on a multi-user deployment), then the pipeline compiled
    onto `target.image`. `nothing_done` ends the refusal (what did not happen)."""
    from slipway.pipelines.exitcodes import Exit
    from slipway.pipelines.training import images, kubeflow

    images.validate_image_ref(target.image)
    multi_user = kubeflow._preflight(target)  # pyright: ignore[reportPrivateUsage]
    if multi_user and not target.namespace:
        raise kubeflow.KubeflowError(
            f"Kubeflow at {target.api} is multi-user: pass --namespace with your profile's "
            f"namespace; {nothing_done}",
            Exit.USAGE,
        )
    return compile_batch(spoke.root, spoke.config, image=target.image)


@dataclass(frozen=True)
class BatchRequest:
    """What one batch scoring scores, the same for one run (`submit`) and a recurring one
    (`schedule`): the pipeline's parameters."""

    input: str
    output: str
    tracking_uri: str
    version: str | None = None
    alias: str | None = None

    def arguments(self) -> dict[str, str]:
        return {
            "input": self.input,
            "output": self.output,
            "version": self.version or "",
            "alias": self.alias or "",
            "tracking_uri": self.tracking_uri,
        }


def submit(spoke: "Spoke", target: Any, request: BatchRequest) -> Any:
    """Compile the batch pipeline on `target.image` and create one run of it, with the
    training submission's checks (reachable, authorised, namespace on a multi-user
    deployment). `target` is a training.kubeflow.KubeflowTarget; returns its KubeflowRun."""
    import uuid

    from slipway.pipelines.training import kubeflow

    compiled = _compiled_for(spoke, target, nothing_done="nothing was submitted")
    arguments = request.arguments()
    key = uuid.uuid4().hex
    client = kubeflow._client(target)  # pyright: ignore[reportPrivateUsage]
    with kubeflow._api_call(target, f"submitting to experiment {target.experiment!r}"):  # pyright: ignore[reportPrivateUsage]
        result = client.create_run_from_pipeline_package(
            str(compiled),
            arguments=arguments,
            run_name=f"{spoke.config.model_name}-batch-{key[:8]}",
            experiment_name=target.experiment,
            namespace=target.namespace,
            pipeline_root=target.pipeline_root,
            enable_caching=False,
        )
    run_id = getattr(result, "run_id", None)
    if not run_id:
        raise kubeflow._not_the_api(target)  # pyright: ignore[reportPrivateUsage]
    return kubeflow.KubeflowRun(
        run_id=str(run_id),
        url=target.run_url(str(run_id)),
        experiment_id=str(getattr(getattr(result, "run_info", None), "experiment_id", "") or ""),
        run_key=key,
        arguments=arguments,
        tasks=("plan-batch", "score-shard", "merge-batch"),
    )


def check_cron(cron: str) -> str:
    """KFP's schedules take six fields, seconds first (robfig/cron); a five-field crontab
    line is refused with the line it should be, rather than read a field off."""
    from slipway.pipelines.errors import CommandError
    from slipway.pipelines.exitcodes import Exit

    fields = cron.split()
    if len(fields) == 5:
        raise CommandError(
            f"--schedule {cron!r} has five fields; Kubeflow's cron has six, seconds first: "
            f"'0 {cron}'",
            exit_code=Exit.USAGE,
        )
    if len(fields) != 6:
        raise CommandError(
            f"--schedule {cron!r} is not a cron expression of six fields (seconds minutes hours "
            "day-of-month month day-of-week), e.g. '0 0 2 * * *' for 02:00 every day",
            exit_code=Exit.USAGE,
        )
    return cron


def schedule(spoke: "Spoke", target: Any, request: BatchRequest, *, cron: str) -> str:
    """A KFP recurring run of the batch pipeline (one at a time, no backfill of missed
    nights); returns its id. Same checks and credentials as `submit`."""
    from slipway.pipelines.training import kubeflow

    check_cron(cron)
    compiled = _compiled_for(spoke, target, nothing_done="nothing was scheduled")
    client = kubeflow._client(target)  # pyright: ignore[reportPrivateUsage]
    with kubeflow._api_call(target, f"scheduling in experiment {target.experiment!r}"):  # pyright: ignore[reportPrivateUsage]
        experiment = client.create_experiment(target.experiment, namespace=target.namespace)
        created = client.create_recurring_run(
            experiment_id=str(experiment.experiment_id),
            job_name=f"{spoke.config.model_name}-batch",
            cron_expression=cron,
            max_concurrency=1,
            no_catchup=True,
            params=request.arguments(),
            pipeline_package_path=str(compiled),
            pipeline_root=target.pipeline_root,
            enable_caching=False,
        )
    return str(getattr(created, "recurring_run_id", "") or "")
