"""The deploy pipeline: resolve the candidate -> approval gate -> rollout -> record the outcome.

The same rollout controller as `slipway deploy`, as KFP steps, so a cluster (or kfp.local on
a laptop) can run a release next to the training pipeline. The approval step is governance's
slot: it asks `governance.release_blockers` and fails the run, naming who may approve, before
any traffic moves. The spoke's pipelines/deploy.py wires `deploy_pipeline(config)`;
`slipway compile` writes it to build/pipelines/deploy.yaml.

The rollout step drives one of two traffic targets, the `target` parameter:

- `gateway`: a Slipway gateway at `gateway_url` (else SLIPWAY_GATEWAY_URL, else
  slipway.toml), as `slipway deploy` does on a laptop;
- `kserve`: the spoke's InferenceService, as `slipway deploy --target kserve` does (the same
  `rollout.kserve.kserve_target`): the pod's service account for the Kubernetes API, the
  judge's readings from [deploy.kserve].prometheus_url, the predictor's image from the
  `image` parameter, else SLIPWAY_IMAGE, else the image `slipway compile --image` put on the
  steps. The default is `kserve` when slipway.toml's [deploy].target is kserve or both (the
  pipeline runs on the team's Kubeflow cluster), else `gateway`.

On a cluster each step is its own pod with its own disk, so nothing crosses steps through
files: the registry and the gateway come from configuration (the `tracking_uri` and
`gateway_url` parameters, else MLFLOW_TRACKING_URI / SLIPWAY_GATEWAY_URL in the image, else
slipway.toml), the rollout step hands its readings on as its output, and the record step
reads the outcome from the version's tags in the registry, where the controller wrote it
(for every target: the registry tags are the record).

No `from __future__ import annotations` here: kfp reads the annotations as types.
"""

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from kfp import dsl
from kfp.dsl import Artifact, Output

from slipway.pipelines.config import SpokeConfig, load_config
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.training import spoke_code

if TYPE_CHECKING:
    from kfp.dsl.graph_component import GraphComponent

    from slipway.pipelines.rollout.controller import Plan
    from slipway.pipelines.spoke import Spoke

SPOKE_DEPLOY_FILE = "pipelines/deploy.py"
GATEWAY, KSERVE = "gateway", "kserve"
TARGETS = (GATEWAY, KSERVE)
ROLLOUT_COMPONENT = "comp-rollout"
COMPILED_IMAGE = "compiled_image"  # the rollout step's input `compile --image` fills in


class DeployPipelineError(SlipwayError, RuntimeError):
    """A deploy step refused or failed; the message says why and what to run next."""


# -- step bodies (plain functions: the components below import and call them) ---------------


def use_registry(tracking_uri: str) -> None:
    """Point this step's process at the team's registry when the run names one."""
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri


def resolve(project_root: str, version: str, tracking_uri: str = "") -> str:
    """The version to roll out: the one asked for, else the `challenger` alias."""
    from slipway.pipelines import registry
    from slipway.pipelines.rollout.release import ReleaseError, candidate_version

    use_registry(tracking_uri)
    root = Path(project_root)
    config = load_config(root)
    try:
        return candidate_version(registry.client(root), config.model_name, version or None)
    except ReleaseError as exc:
        raise DeployPipelineError(f"{exc} (the pipeline's `version` parameter)") from exc


def approve(project_root: str, version: str, tracking_uri: str = "") -> str:
    """Governance's slot: every blocker fails the run before any traffic moves."""
    from slipway.pipelines import registry
    from slipway.pipelines.governance.blockers import require_release
    from slipway.pipelines.spoke import Spoke

    use_registry(tracking_uri)
    root = Path(project_root)
    config = load_config(root)
    require_release(
        Spoke(root, config),
        registry.client(root),
        version,
        action="rollout",
        error=DeployPipelineError,
    )
    return "approved"


def roll_out(
    project_root: str,
    version: str,
    gateway_url: str,
    step_seconds: float,
    tracking_uri: str = "",
    target: str = GATEWAY,
    image: str = "",
    compiled_image: str = "",
) -> str:
    """Run the controller on `target`; the outcome (promoted or rolled back) is data, not a
    crash. The readings and events go out with it: the next step's pod does not share this
    disk."""
    from slipway.pipelines.rollout.controller import Controller
    from slipway.pipelines.rollout.kserve import KServeError
    from slipway.pipelines.rollout.kserve_readings import PrometheusUnreachable
    from slipway.pipelines.rollout.traffic import replay_rows
    from slipway.pipelines.serving.client import GatewayUnreachable
    from slipway.pipelines.spoke import Spoke

    if target not in TARGETS:
        raise DeployPipelineError(
            f"target {target!r} is not a deploy target: the pipeline's `target` parameter "
            f"takes {' or '.join(repr(t) for t in TARGETS)}; nothing was rolled out"
        )
    use_registry(tracking_uri)
    root = Path(project_root)
    config = load_config(root)
    spoke = Spoke.open(root, config)
    traffic, plan = _traffic_target(spoke, target, gateway_url, image, compiled_image, step_seconds)
    try:
        controller = Controller(spoke, traffic, plan, smoke_rows=lambda: replay_rows(root, config))
        outcome = controller.deploy(version)
    except (GatewayUnreachable, KServeError, PrometheusUnreachable) as exc:
        if target != KSERVE:
            raise
        raise DeployPipelineError(
            f"{exc}. The rollout state is kept: fix it, then `slipway deploy --target kserve "
            "--resume` (or `slipway rollback`) against the same registry"
        ) from exc
    finally:
        traffic.close()
    return json.dumps(
        {
            "status": outcome.status,
            "version": outcome.version,
            "reason": outcome.reason,
            "rollout_id": outcome.rollout_id,
            "target": target,
            "readings": controller.rollouts.readings(outcome.rollout_id),
            "events": controller.rollouts.events(outcome.rollout_id),
        }
    )


def _traffic_target(
    spoke: "Spoke",
    target: str,
    gateway_url: str,
    image: str,
    compiled_image: str,
    step_seconds: float,
) -> tuple[Any, "Plan"]:
    """What moves traffic, and the plan it is driven by: the gateway, or the InferenceService
    put together exactly as `slipway deploy --target kserve` puts it together."""
    from slipway.pipelines.rollout.controller import plan_for
    from slipway.pipelines.serving.client import GatewayClient, resolve_url

    config = spoke.config
    if target == GATEWAY:
        plan = plan_for(config, step_seconds=step_seconds or None)
        return GatewayClient(resolve_url(gateway_url or None, config)), plan
    from slipway.pipelines.rollout.kserve import kserve_plan, kserve_target, serving_image

    if gateway_url:
        raise DeployPipelineError(
            "gateway_url goes with target='gateway'; target='kserve' drives the "
            "InferenceService of slipway.toml [deploy.kserve]: leave gateway_url empty"
        )
    try:
        chosen = serving_image(
            image, compiled=compiled_image or None, asked_as="the pipeline's `image` parameter"
        )
        plan = kserve_plan(config, step_seconds=step_seconds or None)
        return kserve_target(spoke, image=chosen), plan
    except SlipwayError as exc:
        raise DeployPipelineError(f"{exc}; nothing was rolled out") from exc


def record(project_root: str, outcome: str, summary_path: str, tracking_uri: str = "") -> str:
    """Write the outcome with the rollout's readings; a rollback fails the run, on purpose,
    so the pipeline's status says what happened. The verdict is the one the controller
    tagged on the version in the registry (the record every deploy target shares)."""
    from slipway.pipelines import registry

    use_registry(tracking_uri)
    data = json.loads(outcome)
    root = Path(project_root)
    config = load_config(root)
    tags = registry.client(root).get_model_version(config.model_name, str(data["version"])).tags
    recorded = tags.get(registry.TAG_ROLLOUT_OUTCOME)
    if recorded is None:
        raise DeployPipelineError(
            f"version {data['version']} carries no {registry.TAG_ROLLOUT_OUTCOME} tag: the "
            "rollout step did not reach the registry this step reads; check that every step "
            "gets the same tracking_uri"
        )
    data["registry"] = {
        "outcome": recorded,
        "reason": tags.get(registry.TAG_ROLLOUT_REASON, ""),
    }
    Path(summary_path).parent.mkdir(parents=True, exist_ok=True)
    Path(summary_path).write_text(json.dumps(data, indent=2))
    if recorded != "promoted":
        raise DeployPipelineError(
            f"version {data['version']} was {recorded.replace('_', ' ')}: "
            f"{data['registry']['reason'] or data['reason']}"
        )
    return recorded


# -- KFP components ----------------------------------------------------------------------


def resolve_candidate(project_root: str, version: str, tracking_uri: str = "") -> str:
    """The version to roll out (parameter, else the `challenger` alias)."""
    from slipway.pipelines.rollout import pipeline as deploy_steps

    return deploy_steps.resolve(project_root, version, tracking_uri)


def approval_gate(project_root: str, version: str, tracking_uri: str = "") -> str:
    """Governance: approval and model card as the risk tier demands."""
    from slipway.pipelines.rollout import pipeline as deploy_steps

    return deploy_steps.approve(project_root, version, tracking_uri)


def rollout(
    project_root: str,
    version: str,
    gateway_url: str,
    step_seconds: float,
    approval: str,
    tracking_uri: str = "",
    target: str = "gateway",
    image: str = "",
    compiled_image: str = "",
) -> str:
    """Shadow, canary steps and guardrails on the gateway or KServe; promote or roll back."""
    from slipway.pipelines.rollout import pipeline as deploy_steps

    return deploy_steps.roll_out(
        project_root,
        version,
        gateway_url,
        step_seconds,
        tracking_uri,
        target=target,
        image=image,
        compiled_image=compiled_image,
    )


def record_outcome(
    project_root: str, outcome: str, summary: Output[Artifact], tracking_uri: str = ""
) -> str:
    """The outcome and the rollout's readings as an artifact of the run."""
    from slipway.pipelines.rollout import pipeline as deploy_steps

    return deploy_steps.record(project_root, outcome, summary.path, tracking_uri)


def deploy_pipeline(config: SpokeConfig) -> "GraphComponent":
    """The standard deploy pipeline of a spoke (caching off: a release is never cached)."""

    def component(func: Any) -> Any:  # kfp's decorator is untyped
        return dsl.component(func, base_image=config.training.base_image, install_kfp_package=False)

    default_target = KSERVE if config.deploy.target in ("kserve", "both") else GATEWAY
    resolve_c, gate_c = component(resolve_candidate), component(approval_gate)
    rollout_c, record_c = component(rollout), component(record_outcome)

    @dsl.pipeline(
        name=f"{config.model_name}-deploy",
        description=f"Roll {config.model_name} out with guardrails (Slipway).",
    )
    def pipeline(
        project_root: str = ".",
        version: str = "",
        gateway_url: str = "",
        step_seconds: float = 0.0,
        tracking_uri: str = "",
        target: str = default_target,
        image: str = "",
    ) -> None:
        registry_at = {"project_root": project_root, "tracking_uri": tracking_uri}
        candidate = resolve_c(version=version, **registry_at)
        approval = gate_c(version=candidate.output, **registry_at)
        rolled = rollout_c(
            version=candidate.output,
            gateway_url=gateway_url,
            step_seconds=step_seconds,
            approval=approval.output,
            target=target,
            image=image,
            **registry_at,
        )
        recorded = record_c(outcome=rolled.output, **registry_at)
        for task in (candidate, approval, rolled, recorded):
            task.set_caching_options(False)

    return cast("GraphComponent", pipeline)  # dsl.pipeline's stub keeps the function type


def spoke_deploy_pipeline(root: Path, config: SpokeConfig) -> "GraphComponent":
    """The pipeline the spoke wires in pipelines/deploy.py (`build_pipeline(config)`)."""
    return spoke_code.spoke_pipeline(root, config, SPOKE_DEPLOY_FILE, "docs/spoke/deploy.md")


def compile_deploy(
    root: Path, config: SpokeConfig, output: Path, *, image: str | None = None
) -> Path:
    """Write the deploy pipeline's KFP IR YAML (Kubeflow Pipelines or Vertex AI); `image`
    (the spoke's image for the commit) goes on every executor."""
    from kfp import compiler

    from slipway.pipelines.training import images

    output.parent.mkdir(parents=True, exist_ok=True)
    pipeline = spoke_deploy_pipeline(root, images.with_image(config, image))
    compiler.Compiler().compile(pipeline, str(output))
    if image is not None:
        images.set_executor_images(output, image)
        _set_compiled_image(output, image)
    return output


def _set_compiled_image(compiled: Path, image: str) -> None:
    """The image every step runs in is also the one a KServe rollout serves when neither the
    `image` parameter nor SLIPWAY_IMAGE names one: the rollout step's `compiled_image` input
    (no pipeline parameter feeds it) defaults to it. A spoke that wired its own rollout step
    without that input is left as it is."""
    import yaml

    documents = [d for d in yaml.safe_load_all(compiled.read_text(encoding="utf-8")) if d]
    changed = False
    for document in documents:
        component = document.get("components", {}).get(ROLLOUT_COMPONENT, {})
        parameter = component.get("inputDefinitions", {}).get("parameters", {}).get(COMPILED_IMAGE)
        if parameter is not None:
            parameter["defaultValue"] = image
            changed = True
    if changed:
        compiled.write_text(yaml.safe_dump_all(documents, sort_keys=True), encoding="utf-8")
