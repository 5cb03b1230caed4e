"""The training pipeline of this spoke compiles, and its data meets the contract.

Fast checks for every commit; `slipway train` runs the whole pipeline.
"""

from pathlib import Path

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from slipway.pipelines.config import load_config
from slipway.pipelines.training import (
    compile_training,
    format_report,
    held_out_rows,
    load_frame,
    validate_frame,
)

ROOT = Path(__file__).resolve().parents[1]
STEPS = {
    "load-data",
    "validate-data",
    "train-model",
    "evaluate-model",
    "gate-model",
    "register-model",
}


def test_pipeline_compiles_to_kfp_ir(tmp_path):
    path = compile_training(ROOT, load_config(ROOT), tmp_path / "training.yaml")
    spec = pipeline_spec_pb2.PipelineSpec()  # pyright: ignore[reportAttributeAccessIssue]  # protobuf
    json_format.ParseDict(yaml.safe_load(path.read_text()), spec)
    assert set(spec.root.dag.tasks) == STEPS


def test_training_data_meets_the_contract():
    config = load_config(ROOT)
    frame = load_frame(ROOT, config)
    violations = validate_frame(
        frame, config.data.contract, require_target=config.data.target, enforce_min_rows=True
    )
    assert violations == [], format_report(violations)


def test_held_out_rows_are_the_same_every_time():
    config = load_config(ROOT)
    assert held_out_rows(ROOT, config).equals(held_out_rows(ROOT, config))
