"""The serving-target question: a KServe spoke gets its [deploy.kserve] settings, the
deploy-kserve workflow, its deployer's least-privilege RBAC and a deploy pipeline whose rollout
targets KServe by default; a SageMaker spoke none of it."""

from __future__ import annotations

import pytest
import yaml

from slipway.pipelines.config import load_config
from slipway.pipelines.cli._monitor_sources import choose
from slipway.pipelines.governance.monitor_sources import SourceNotConfigured, configured_sources
from slipway.pipelines.rollout.kserve_rbac import deployer_rbac
from slipway.pipelines.spoke import Spoke

from .test_workflows import check_jsonschema, zizmor_findings


def test_a_kserve_spoke_gets_its_settings_workflow_and_rbac(render):
    spoke = render(deploy_target="kserve")
    config = load_config(spoke)
    assert config.deploy.target == "kserve"
    assert config.deploy.kserve.namespace == config.project.slug
    workflow = spoke / ".github" / "workflows" / "deploy-kserve.yml"
    text = workflow.read_text()
    assert "slipway deploy --target kserve --image" in text
    assert "uv sync --locked" in text  # the lock the team committed, as CI and CD install
    assert check_jsonschema([workflow]).returncode == 0
    assert zizmor_findings([workflow]) == []
    # The RBAC the spoke applies is exactly what the hub's deployer_rbac says (and the KServe
    # rollout test checks that against the calls a rollout makes).
    rendered = list(yaml.safe_load_all((spoke / "infra" / "kserve-rbac.yaml").read_text()))
    assert rendered == deployer_rbac(config)
    # The monitor schedule judges the predictors' samples, once (no SageMaker environments);
    # until sample_store is set, `slipway monitor --source kserve` says to set it.
    assert configured_sources(config) == ("kserve",)
    monitor = spoke / ".github" / "workflows" / "monitor.yml"
    job = yaml.safe_load(monitor.read_text())["jobs"]["monitor"]
    assert job["strategy"]["matrix"]["environment"] == ["prod"]
    assert check_jsonschema([monitor]).returncode == 0
    assert zizmor_findings([monitor]) == []
    with pytest.raises(SourceNotConfigured, match=r"sample_store, which is empty: set it"):
        choose(Spoke(spoke, config), source="kserve", env=None, hours=None)
    # Its deploy pipeline, as it compiles it, rolls out on KServe unless told otherwise.
    assert deploy_target_default(spoke) == "kserve"


def deploy_target_default(spoke) -> str:
    from slipway.pipelines.rollout.pipeline import compile_deploy

    compiled = compile_deploy(spoke, load_config(spoke), spoke / "build" / "deploy.yaml")
    spec = yaml.safe_load(compiled.read_text())
    return spec["root"]["inputDefinitions"]["parameters"]["target"]["defaultValue"]


def test_a_sagemaker_spoke_has_no_kserve_files_and_both_has_both(render):
    sagemaker = render("sagemaker")
    assert load_config(sagemaker).deploy.target == "sagemaker"
    assert not (sagemaker / ".github" / "workflows" / "deploy-kserve.yml").exists()
    assert not (sagemaker / "infra" / "kserve-rbac.yaml").exists()
    assert deploy_target_default(sagemaker) == "gateway"
    both = render("both", deploy_target="both")
    assert (both / ".github" / "workflows" / "deploy-kserve.yml").exists()
    assert (both / ".github" / "workflows" / "deploy-model.yml").exists()  # SageMaker's too
    assert deploy_target_default(both) == "kserve"  # the pipeline runs on the KServe cluster
