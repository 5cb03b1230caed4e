"""The deploy pipeline's rollout step on KServe: the compiled IR (`slipway compile --image`),
run with kfp.local, drives the spoke's InferenceService as `slipway deploy --target kserve`
does, through the same library function (rollout.kserve.kserve_target).

The closest real things here: the compiled deploy.yaml run by kfp.local's SubprocessRunner,
each step a subprocess of its own; the official `kubernetes` client, reaching the API through
a kubeconfig, against the stand-in of the Kubernetes API with KServe's behaviour
(tests/kserve_standin.py: no cluster runs here), which enforces the deployer's Role as the API
server's RBAC authorizer would; one real gateway process per revision behind the router
stand-in; a real Prometheus scraping them, read by the judge at the URL of slipway.toml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.governance import audit
from slipway.pipelines.rollout.kserve import kserve_target
from slipway.pipelines.rollout.kserve_rbac import deployer_rbac
from slipway.pipelines.rollout.rehearsal import register_faulty
from slipway.pipelines.spoke import Spoke as SpokeContext

from ..kserve_standin import Cluster
from .conftest import (
    Load,
    Prometheus,
    Spoke,
    alias,
    canary_patches,
    needs_prometheus,
    revisions,
    slipway,
)

pytestmark = [needs_prometheus, pytest.mark.xdist_group("kfp-local")]

IMAGE = "registry.example/spoke:abc123"


def as_kserve_spoke(spoke: Spoke, prometheus_url: str) -> Spoke:
    """The spoke as the template renders it for serving target `kserve`, its Prometheus the
    test's."""
    path = spoke.root / "slipway.toml"
    text = path.read_text().replace('target = "sagemaker"', 'target = "kserve"')
    slug = spoke.config.project.slug
    section = (
        f'[deploy.kserve]\nnamespace = "{slug}"\nservice_account = "{slug}-deployer"\n'
        f'prometheus_url = "{prometheus_url}"\n\n[budget]'
    )
    path.write_text(text.replace("[budget]", section, 1))
    return Spoke(spoke.root, load_config(spoke.root))


@pytest.fixture
def kubeconfig(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig naming the API stand-in, as a laptop or CI would have one; the pipeline's
    step subprocesses inherit KUBECONFIG. Not in a pod: no in-cluster credentials."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "standin", "cluster": {"server": cluster.api_url}}],
                "users": [{"name": "deployer", "user": {"token": "standin-token"}}],
                "contexts": [
                    {"name": "standin", "context": {"cluster": "standin", "user": "deployer"}}
                ],
                "current-context": "standin",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("SLIPWAY_IMAGE", raising=False)  # the image comes from compile --image
    return path


@pytest.fixture
def local_kfp(tmp_path: Path) -> Path:
    from kfp import local

    root = tmp_path / "kfp-root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    return root


def compiled_deploy(spoke: Spoke) -> Path:
    slipway(spoke.root, "compile", "--image", IMAGE, check=True)
    return spoke.root / "build" / "pipelines" / "deploy.yaml"


def summary(kfp_root: Path) -> dict:
    [found] = kfp_root.glob("**/record-outcome/summary")
    return json.loads(found.read_text())


@pytest.fixture
def on_cluster(
    spoke: Spoke, cluster: Cluster, kubeconfig: Path, tmp_path: Path, request
) -> Iterator[tuple[Spoke, Prometheus]]:
    """Champion v1 rolled out on the InferenceService (an earlier deploy), the candidate's
    revision ready to start; the deployer's Role enforced from here on."""
    candidate = request.param
    if candidate == "faulty":
        candidate = register_faulty(spoke.root, spoke.config, "raise")
    with revisions(spoke, cluster, tmp_path, ["1", candidate]) as prometheus:
        kserve = as_kserve_spoke(spoke, prometheus.url)
        cluster.standin.rbac = deployer_rbac(kserve.config)
        earlier = kserve_target(SpokeContext(kserve.root, kserve.config), image=IMAGE)
        assert earlier.reload()["champion"] == "1"
        earlier.close()
        yield kserve, prometheus


def run_pipeline(spoke: Spoke, cluster: Cluster, version: str) -> None:
    from kfp import components

    pipeline = components.load_component_from_file(str(compiled_deploy(spoke)))
    with Load(cluster.standin.router_url, spoke, concurrency=8):
        pipeline(project_root=str(spoke.root), version=version, target="kserve", step_seconds=1.0)


@pytest.mark.parametrize("on_cluster", ["2"], indirect=True)
def test_the_compiled_pipeline_rolls_a_healthy_version_out_on_kserve_and_promotes_it(
    on_cluster, cluster, local_kfp
):
    spoke, _ = on_cluster
    run_pipeline(spoke, cluster, "2")
    # Each canary step of slipway.toml, then the field removed: KServe's promotion.
    steps = spoke.config.rollout.canary_steps
    assert canary_patches(cluster) == ["absent", 0, *steps, None]
    isvc = next(iter(cluster.standin.objects.values()))
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    [container] = isvc["spec"]["predictor"]["containers"]
    assert container["image"] == IMAGE  # what `compile --image` put on the steps
    # The registry is the record: champion moved, the version tagged, the trail has it.
    assert alias(spoke, "champion") == "2" and alias(spoke, "previous") == "1"
    tags = registry.client(spoke.root).get_model_version(spoke.config.model_name, "2").tags
    assert tags[registry.TAG_ROLLOUT_OUTCOME] == "promoted"
    [entry] = [
        e for e in audit.read(spoke.root) if e["action"] == "promote" and e["version"] == "2"
    ]
    assert entry["details"]["previous"] == "1"
    # The record step's summary: the outcome, and per step the judge's readings, the first
    # step's champion read from Prometheus too.
    recorded = summary(local_kfp)
    assert recorded["target"] == "kserve" and recorded["registry"]["outcome"] == "promoted"
    first = [r for r in recorded["readings"] if r["phase"] == f"{steps[0]}%"][-1]
    assert first["champion_requests"] > 0 and first["challenger_requests"] > 0, first
    # Least privilege: the stand-in enforced the template's Role all along (refusing nothing
    # the step did), the step used every verb the Role grants, and a verb outside the Role
    # is refused.
    assert cluster.standin.refused == []
    made = {method for method, _, _ in cluster.standin.requests}
    assert made == {"GET", "POST", "PATCH"}
    [role] = [d for d in deployer_rbac(spoke.config) if d["kind"] == "Role"]
    assert set(role["rules"][0]["verbs"]) == {"get", "create", "patch"}
    assert_delete_is_forbidden(spoke, cluster)


def assert_delete_is_forbidden(spoke: Spoke, cluster: Cluster) -> None:
    from kubernetes.client.exceptions import ApiException

    from slipway.pipelines.rollout.kserve import kubernetes_api

    api = kubernetes_api()  # the kubeconfig of this test, as the step had it
    kserve = spoke.config.deploy.kserve
    with pytest.raises(ApiException) as refused:
        api.delete_namespaced_custom_object(
            "serving.kserve.io",
            "v1beta1",
            kserve.namespace,
            "inferenceservices",
            spoke.config.model_name,
        )
    assert refused.value.status == 403 and "cannot delete" in str(refused.value.body)
    with pytest.raises(ApiException) as elsewhere:
        api.get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", "kube-system", "inferenceservices", "any"
        )
    assert elsewhere.value.status == 403
    assert [verb for verb, _ in cluster.standin.refused] == ["delete", "get"]
    assert cluster.standin.objects  # the InferenceService is still there


@pytest.mark.parametrize("on_cluster", ["faulty"], indirect=True)
def test_a_failing_version_is_rolled_back_with_canary_traffic_percent_0_and_the_run_fails(
    on_cluster, cluster, local_kfp, capfd
):
    spoke, _ = on_cluster
    bad = alias(spoke, "challenger")
    assert bad is not None
    with pytest.raises(RuntimeError):  # the run fails on purpose: the record step says why
        run_pipeline(spoke, cluster, bad)
    assert canary_patches(cluster)[-1] == 0  # KServe's rollback
    [(revision, percent)] = [s for s in cluster.standin.split() if s[1] == 100]
    assert revision.version == "1" and percent == 100
    assert alias(spoke, "champion") == "1" and alias(spoke, "challenger") is None
    recorded = summary(local_kfp)
    assert recorded["status"] == "rolled_back" and recorded["registry"]["outcome"] == "rolled_back"
    assert "error rate" in recorded["registry"]["reason"]
    [entry] = [e for e in audit.read(spoke.root) if e["action"] == "rollback"]
    assert entry["version"] == bad and "error rate" in entry["reason"]
    out = capfd.readouterr()
    assert re.search(rf"version {bad} was rolled back: step \d+%: error rate", out.out + out.err)


def parsed(compiled: Path):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(yaml.safe_load(compiled.read_text()), spec)
    return spec


def test_the_compiled_ir_takes_target_kserve_and_its_image(spoke):
    # A gateway team's (serving target sagemaker) pipeline keeps `gateway` as its default.
    gateway = parsed(compiled_deploy(spoke)).root.input_definitions.parameters
    assert gateway["target"].default_value.string_value == "gateway"
    # A KServe team's targets KServe by default (slipway.toml [deploy].target).
    spec = parsed(compiled_deploy(as_kserve_spoke(spoke, "http://prometheus.example:9090")))
    root = spec.root.input_definitions.parameters
    assert root["target"].default_value.string_value == "kserve"
    assert root["image"].default_value.string_value == ""
    rollout = spec.root.dag.tasks["rollout"]
    assert rollout.inputs.parameters["target"].component_input_parameter == "target"
    assert rollout.inputs.parameters["image"].component_input_parameter == "image"
    # No parameter feeds `compiled_image`: its default is the image compile put on the steps.
    assert "compiled_image" not in rollout.inputs.parameters
    fallback = spec.components["comp-rollout"].input_definitions.parameters["compiled_image"]
    assert fallback.default_value.string_value == IMAGE
    executors = spec.deployment_spec.fields["executors"].struct_value.fields.values()
    images = {
        e.struct_value.fields["container"].struct_value.fields["image"].string_value
        for e in executors
    }
    assert images == {IMAGE}


def test_an_unknown_target_is_refused_naming_the_allowed_ones(spoke):
    from slipway.pipelines.rollout.pipeline import DeployPipelineError, roll_out

    with pytest.raises(DeployPipelineError, match=r"'k8s'.*'gateway' or 'kserve'"):
        roll_out(str(spoke.root), "2", "", 1.0, target="k8s")
    assert alias(spoke, "challenger") is None  # nothing moved


def test_target_kserve_without_an_image_is_refused_before_anything_moves(
    spoke, cluster, kubeconfig
):
    from slipway.pipelines.rollout.pipeline import DeployPipelineError, roll_out

    kserve = as_kserve_spoke(spoke, "http://127.0.0.1:9")
    with pytest.raises(DeployPipelineError, match=r"`image` parameter or set SLIPWAY_IMAGE"):
        roll_out(str(kserve.root), "2", "", 1.0, target="kserve")
    assert cluster.standin.requests == [] and alias(kserve, "challenger") is None


def test_the_kubeconfig_is_read_when_the_rollout_starts(tmp_path, monkeypatch):
    """The kubernetes client reads KUBECONFIG once, at import: a process that rolls out
    twice (a test session, a long-lived worker) must not reach the first run's cluster."""
    from slipway.pipelines.rollout.kserve import kubernetes_api

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    hosts = []
    for port in (6443, 7443):
        path = tmp_path / f"kubeconfig-{port}"
        cluster = {"server": f"https://10.0.0.1:{port}"}
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": cluster}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        monkeypatch.setenv("KUBECONFIG", str(path))
        hosts.append(kubernetes_api().api_client.configuration.host)
    assert hosts == ["https://10.0.0.1:6443", "https://10.0.0.1:7443"]
