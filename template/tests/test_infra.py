"""This spoke's infra/__main__.py under Pulumi's mock mode, checked by Slipway's policies.

Pulumi's mocks stand in for AWS (no account, no Pulumi CLI): they prove what the stack asks
for, derived from slipway.toml; `pulumi preview` in CI is where AWS answers.
"""

import runpy
from pathlib import Path

import pytest

pytest.importorskip(
    "slipway.infra", reason="the `infra` dependency group is not installed: run `make setup`"
)

from slipway.infra.policies import check_stack  # noqa: E402
from slipway.infra.testing import run_stack  # noqa: E402
from slipway.pipelines.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config(ROOT)
PROJECT = CONFIG.project.slug


def run(stack: str, **config: str):
    program = ROOT / "infra" / "__main__.py"
    return run_stack(
        lambda: runpy.run_path(str(program))["outputs"],
        project=PROJECT,
        stack=stack,
        config={f"{PROJECT}:{key}": value for key, value in config.items()},
        region=CONFIG.deploy.region,
    )


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_passes_the_policies(stack):
    result = run(stack, modelVersion="1")
    assert check_stack(result.resources) == []


def test_prod_canary_and_rollback_come_from_slipway_toml():
    result = run("prod", modelVersion="2", previousModelVersion="1")
    endpoint = result.one("aws:sagemaker/endpoint:Endpoint").props
    routing = endpoint["deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing["canarySize"]["value"] == CONFIG.rollout.canary_steps[0]
    rollback = endpoint["deploymentConfig"]["autoRollbackConfiguration"]
    assert {a["alarmName"] for a in rollback["alarms"]} == set(result.outputs["alarm_names"])
    assert result.outputs["previous_endpoint_config_name"] == f"{PROJECT}-prod-v1"


def test_first_deploy_without_a_registered_model_bootstraps():
    result = run("prod")
    assert result.outputs["endpoint_status"] == "bootstrap"
    assert result.of_type("aws:sagemaker/endpoint:Endpoint") == []
    assert check_stack(result.resources) == []
