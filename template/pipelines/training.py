"""This spoke's training pipeline: Slipway's standard steps around the code in src/.

`slipway train` runs it locally and `slipway compile` writes it for Kubeflow; both call
build_pipeline. The steps call the loader and trainer named in slipway.toml, so most teams
never edit this file. To add a step, build your own pipeline around the components in
slipway.pipelines.training.components and keep the parameters of training_pipeline.
"""

from kfp.dsl.graph_component import GraphComponent
from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.training import training_pipeline


def build_pipeline(config: SpokeConfig) -> GraphComponent:
    return training_pipeline(config)
