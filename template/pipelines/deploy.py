"""This spoke's deploy pipeline: resolve the candidate -> approval gate -> rollout -> record.

`slipway compile` writes it to build/pipelines/deploy.yaml; `slipway deploy` runs the same
rollout from a laptop. The rollout plan and guardrails live in slipway.toml [rollout], so
most teams never edit this file. Its `target` parameter follows slipway.toml [deploy].target:
`kserve` when the team serves on KServe (kserve or both: the rollout step drives the
InferenceService, like `slipway deploy --target kserve`), else `gateway`.
"""

from kfp.dsl.graph_component import GraphComponent
from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.rollout import deploy_pipeline


def build_pipeline(config: SpokeConfig) -> GraphComponent:
    return deploy_pipeline(config)
