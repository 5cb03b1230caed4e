"""The compiled batch pipeline has the shape the open-source Kubeflow backend runs: a loop
over shards in its own sub-pipeline with the [batch] parallelism, a merge that depends on
that sub-pipeline (no dsl.Collected, no artifact crossing a step), every step on --image."""

from __future__ import annotations

from pathlib import Path

import yaml

from slipway.pipelines.batch.kubeflow import compile_batch
from slipway.pipelines.config import parse_config
from slipway.pipelines.training.images import executor_images

DATA = Path(__file__).resolve().parents[1] / "data"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway/churn-guard-staging:0a1b2c3"


def _compiled(tmp_path: Path, shards: int) -> dict:
    text = (DATA / "mixed_contract_spoke.toml").read_text()
    config = parse_config(f"{text}\n[batch]\nshards = {shards}\n")
    path = compile_batch(tmp_path, config, tmp_path / "batch.yaml", image=IMAGE)
    assert path == tmp_path / "batch.yaml"
    assert set(executor_images(path).values()) == {IMAGE}
    return next(d for d in yaml.safe_load_all(path.read_text()) if d)


def test_the_merge_waits_for_the_shards_sub_pipeline_without_collecting_anything(tmp_path):
    spec = _compiled(tmp_path, shards=6)
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"plan-batch", "score-shards", "merge-batch"}
    assert set(root["merge-batch"]["dependentTasks"]) == {"plan-batch", "score-shards"}
    merge_inputs = root["merge-batch"]["inputs"]["parameters"]
    producers = {
        p["taskOutputParameter"]["producerTask"]
        for p in merge_inputs.values()
        if "taskOutputParameter" in p
    }
    assert producers == {"plan-batch"}  # nothing collected from the loop
    loop_dag = spec["components"]["comp-score-shards"]["dag"]
    assert "outputs" not in loop_dag  # the sub-pipeline hands nothing on
    (loop,) = loop_dag["tasks"].values()
    assert loop["iteratorPolicy"]["parallelismLimit"] == 6
    assert "Collected" not in (tmp_path / "batch.yaml").read_text()
    for name, component in spec["components"].items():
        for side in ("inputDefinitions", "outputDefinitions"):
            assert "artifacts" not in component.get(side, {}), (name, side)
    for task in ("plan-batch", "merge-batch"):
        assert root[task]["cachingOptions"] == {}  # caching off (kfp writes it as empty)


def test_parallelism_follows_the_batch_section(tmp_path):
    spec = _compiled(tmp_path, shards=2)
    (loop,) = spec["components"]["comp-score-shards"]["dag"]["tasks"].values()
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2
