"""The deploy pipeline: resolve the candidate -> approval gate -> rollout -> record the outcome.

The same rollout controller as `slipway deploy`, as KFP steps, so a cluster (or kfp.local on
a laptop) can run a release next to the training pipeline. The approval step is governance's
slot: it asks `governance.release_blockers` and fails the run, naming who may approve, before
any traffic moves. The spoke's pipelines/deploy.py wires `deploy_pipeline(config)`;
`slipway compile` writes it to build/pipelines/deploy.yaml.

No `from __future__ import annotations` here: kfp reads the annotations as types.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Output

from slipway.pipelines.config import SpokeConfig, load_config
from slipway.pipelines.training import spoke_code

if TYPE_CHECKING:
    from kfp.dsl.graph_component import GraphComponent

SPOKE_DEPLOY_FILE = "pipelines/deploy.py"


class DeployPipelineError(RuntimeError):
    """A deploy step refused or failed; the message says why and what to run next."""


# -- step bodies (plain functions: the components below import and call them) ---------------


def resolve(project_root: str, version: str) -> str:
    """The version to roll out: the one asked for, else the `challenger` alias."""
    from slipway.pipelines import registry

    root = Path(project_root)
    config = load_config(root)
    client = registry.client(root)
    if version:
        return str(client.get_model_version(config.model_name, version).version)
    found = registry.version_by_alias(client, config.model_name, registry.CHALLENGER)
    if found is None:
        raise DeployPipelineError(
            f"{config.model_name} has no `challenger`: run the training pipeline first, "
            "or pass the version parameter"
        )
    return str(found.version)


def approve(project_root: str, version: str) -> str:
    """Governance's slot: every blocker fails the run before any traffic moves."""
    from slipway.pipelines import registry
    from slipway.pipelines.governance.blockers import release_blockers

    root = Path(project_root)
    config = load_config(root)
    blockers = release_blockers(root, config, registry.client(root), version)
    if blockers:
        raise DeployPipelineError("rollout refused by governance:\n  - " + "\n  - ".join(blockers))
    return "approved"


def roll_out(project_root: str, version: str, gateway_url: str, step_seconds: float) -> str:
    """Run the controller; the outcome (promoted or rolled back) is data, not a crash."""
    from slipway.pipelines.rollout.controller import Controller, plan_for
    from slipway.pipelines.rollout.traffic import replay_rows
    from slipway.pipelines.serving.client import GatewayClient, resolve_url

    root = Path(project_root)
    config = load_config(root)
    plan = plan_for(config, step_seconds=step_seconds or None)
    gateway = GatewayClient(resolve_url(gateway_url or None, config))
    try:
        controller = Controller(
            root, config, gateway, plan, smoke_rows=lambda: replay_rows(root, config)
        )
        outcome = controller.deploy(version)
    finally:
        gateway.close()
    return json.dumps(
        {
            "status": outcome.status,
            "version": outcome.version,
            "reason": outcome.reason,
            "rollout_id": outcome.rollout_id,
        }
    )


def record(project_root: str, outcome: str, summary_path: str) -> str:
    """Write the outcome with the rollout's readings; a rollback fails the run, on purpose,
    so the pipeline's status says what happened."""
    from slipway.pipelines.rollout import state as rollout_state

    data = json.loads(outcome)
    root = Path(project_root)
    data["readings"] = rollout_state.readings(root, data["rollout_id"])
    data["events"] = rollout_state.events(root, data["rollout_id"])
    Path(summary_path).parent.mkdir(parents=True, exist_ok=True)
    Path(summary_path).write_text(json.dumps(data, indent=2))
    if data["status"] != "promoted":
        raise DeployPipelineError(f"version {data['version']} was rolled back: {data['reason']}")
    return data["status"]


# -- KFP components ----------------------------------------------------------------------


def resolve_candidate(project_root: str, version: str) -> str:
    """The version to roll out (parameter, else the `challenger` alias)."""
    from slipway.pipelines.rollout import pipeline as deploy_steps

    return deploy_steps.resolve(project_root, version)


def approval_gate(project_root: str, version: str) -> str:
    """Governance: approval and model card as the risk tier demands."""
    from slipway.pipelines.rollout import pipeline as deploy_steps

    return deploy_steps.approve(project_root, version)


def rollout(
    project_root: str, version: str, gateway_url: str, step_seconds: float, approval: str
) -> str:
    """Shadow, canary steps and guardrails against the gateway; promote or roll back."""
    from slipway.pipelines.rollout import pipeline as deploy_steps

    return deploy_steps.roll_out(project_root, version, gateway_url, step_seconds)


def record_outcome(project_root: str, outcome: str, summary: Output[Artifact]) -> str:
    """The outcome and the rollout's readings as an artifact of the run."""
    from slipway.pipelines.rollout import pipeline as deploy_steps

    return deploy_steps.record(project_root, outcome, summary.path)


def deploy_pipeline(config: SpokeConfig) -> "GraphComponent":
    """The standard deploy pipeline of a spoke (caching off: a release is never cached)."""

    def component(func):  # kfp's decorator is untyped
        return dsl.component(func, base_image=config.training.base_image, install_kfp_package=False)

    resolve_c, gate_c = component(resolve_candidate), component(approval_gate)
    rollout_c, record_c = component(rollout), component(record_outcome)

    @dsl.pipeline(
        name=f"{config.model_name}-deploy",
        description=f"Roll {config.model_name} out with guardrails (Slipway).",
    )
    def pipeline(
        project_root: str = ".", version: str = "", gateway_url: str = "", step_seconds: float = 0.0
    ) -> None:
        candidate = resolve_c(project_root=project_root, version=version)
        approval = gate_c(project_root=project_root, version=candidate.output)
        rolled = rollout_c(
            project_root=project_root,
            version=candidate.output,
            gateway_url=gateway_url,
            step_seconds=step_seconds,
            approval=approval.output,
        )
        recorded = record_c(project_root=project_root, outcome=rolled.output)
        for task in (candidate, approval, rolled, recorded):
            task.set_caching_options(False)

    return pipeline


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
    return output
