"""The KFP deploy pipeline: compiled by `slipway compile` (run here as: slipway compile),
run with kfp.local against a real gateway under concurrent load, with governance's approval
step in front of the rollout."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.pipelines import registry

from .conftest import Load, slipway

pytestmark = pytest.mark.xdist_group("kfp-local")


def test_slipway_compile_writes_a_valid_deploy_pipeline(spoke):
    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    slipway(spoke.root, "compile", check=True)
    compiled = spoke.root / "build" / "pipelines" / "deploy.yaml"
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(yaml.safe_load(compiled.read_text()), spec)
    tasks = list(spec.root.dag.tasks)
    assert sorted(tasks) == ["approval-gate", "record-outcome", "resolve-candidate", "rollout"]
    # The approval slot sits between the candidate and the rollout: no traffic moves before it.
    assert set(spec.root.dag.tasks["rollout"].dependent_tasks) == {
        "approval-gate",
        "resolve-candidate",
    }


def test_deploy_pipeline_runs_locally_and_promotes_a_healthy_challenger(
    spoke, gateway, tmp_path: Path
):
    from kfp import local

    from slipway.pipelines.rollout.pipeline import spoke_deploy_pipeline

    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root")
    )
    pipeline = spoke_deploy_pipeline(spoke.root, spoke.config)
    with Load(gateway.url, spoke, concurrency=20, rate=200.0) as load:
        pipeline(
            project_root=str(spoke.root), version="2", gateway_url=gateway.url, step_seconds=1.0
        )
    print(load.report.summary())
    assert load.report.failed == 0
    client = registry.client(spoke.root)
    champion = registry.version_by_alias(client, spoke.config.model_name, registry.CHAMPION)
    assert str(champion.version) == "2"
