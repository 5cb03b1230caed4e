"""A canary on KServe, end to end with the closest real things here.

The rollout controller (governance, judge, rollback, promotion, audit) drives a KServeTarget:
the official `kubernetes` client against a stand-in of the Kubernetes API with KServe's
controller behaviour (tests/kserve_standin.py: no cluster runs here), which checks every
InferenceService against KServe's CRD schema. Each revision is a real gateway process (the
image's `serve` entry on one model version); a stand-in of Knative's router splits real load
between them as canaryTrafficPercent says; a real Prometheus (Debian's package) scrapes both,
and the judge's readings are PromQL over what it scraped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from slipway.pipelines.rollout.controller import Controller, Outcome, plan_for
from slipway.pipelines.rollout.kserve import KServeTarget
from slipway.pipelines.rollout.kserve_rbac import allows, deployer_rbac
from slipway.pipelines.rollout.kserve_readings import PrometheusReadings
from slipway.pipelines.rollout.rehearsal import register_faulty
from slipway.pipelines.spoke import Spoke as SpokeContext

from ..kserve_standin import Cluster
from .conftest import (
    KSERVE_GUARD_S,
    Load,
    Spoke,
    alias,
    canary_patches,
    needs_prometheus,
    revisions,
    slipway,
)

pytestmark = needs_prometheus


def run_rollout(
    spoke: Spoke, cluster: Cluster, tmp_path: Path, candidate: str
) -> tuple[Outcome, list[str]]:
    """Champion v1 rolled out on the InferenceService, then `candidate` canaried under load."""
    from kubernetes import client as k8s

    with revisions(spoke, cluster, tmp_path, ["1", candidate]) as prometheus:
        name = spoke.config.model_name
        api = k8s.CustomObjectsApi(k8s.ApiClient(k8s.Configuration(host=cluster.api_url)))
        target = KServeTarget(
            spoke.root,
            spoke.config,
            api,
            PrometheusReadings(prometheus.url, f'inferenceservice="{name}"'),
            image="registry.example/spoke:abc123",
            storage_uri=lambda v: f"s3://models/{name}/{v}",
            ready_timeout=KSERVE_GUARD_S,
        )
        assert target.reload()["champion"] == "1"  # the InferenceService of the champion
        plan = plan_for(spoke.config, step_seconds=1, shadow_seconds=0, step_timeout=KSERVE_GUARD_S)
        lines: list[str] = []
        with Load(cluster.standin.router_url, spoke, concurrency=8):
            context = SpokeContext.open(spoke.root, spoke.config)
            outcome = Controller(context, target, plan, echo=lines.append).deploy(candidate)
        return outcome, lines


def test_a_healthy_challenger_is_stepped_through_its_canary_and_promoted(spoke, cluster, tmp_path):
    outcome, lines = run_rollout(spoke, cluster, tmp_path, "2")
    assert outcome.status == "promoted", "\n".join(lines)
    assert alias(spoke, "champion") == "2"
    # create v1 (no field), v2 at 0, then each step, then the field removed: KServe's promotion.
    steps = spoke.config.rollout.canary_steps
    assert canary_patches(cluster) == ["absent", 0, *steps, None]
    isvc = next(iter(cluster.standin.objects.values()))
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert isvc["status"]["components"]["predictor"]["traffic"][0]["percent"] == 100
    # The champion served its share of every canary step, the first included: a step is
    # judged only on a window Prometheus scraped both revisions for after the step began.
    canary = "\n".join(line for line in lines if re.search(r"step \d+%", line))
    first = rf"step {steps[0]}% passed:\s+errors \d+/\d+ vs champion \d+/[1-9]"
    assert re.search(first, canary), "\n".join(lines)
    assert not re.search(r"vs champion \d+/0\b", canary), "\n".join(lines)
    judged = [line for line in lines if "passed" in line]
    assert len(judged) == len(steps), "\n".join(lines)
    # Least privilege: the deployer's Role allows every call this rollout made, and no more.
    rbac = deployer_rbac(spoke.config)
    verbs = {"GET": "get", "POST": "create", "PATCH": "patch"}
    made = set()
    for method, path, _ in cluster.standin.requests:
        namespace = path.split("/namespaces/")[1].split("/")[0]
        made.add(verbs[method])
        assert allows(rbac, verbs[method], "serving.kserve.io", "inferenceservices", namespace)
    [role] = [doc for doc in rbac if doc["kind"] == "Role"]
    assert made == set(role["rules"][0]["verbs"])  # nothing granted that a rollout never uses
    assert not allows(rbac, "delete", "serving.kserve.io", "inferenceservices", "default")
    assert not allows(rbac, "get", "serving.kserve.io", "inferenceservices", "kube-system")


@pytest.mark.parametrize(
    ("fault", "breach"),
    [("raise", "error rate"), ("slow", "p95 latency")],  # errors; latency (model-time buckets)
)
def test_a_failing_challenger_is_rolled_back_with_canary_traffic_percent_0(
    spoke, cluster, tmp_path, fault, breach
):
    bad = register_faulty(spoke.root, spoke.config, fault)
    outcome, lines = run_rollout(spoke, cluster, tmp_path, bad)
    assert outcome.status == "rolled_back", "\n".join(lines)
    assert breach in outcome.reason, "\n".join(lines)
    assert alias(spoke, "champion") == "1" and alias(spoke, "challenger") is None
    assert canary_patches(cluster)[-1] == 0
    [(revision, percent)] = [s for s in cluster.standin.split() if s[1] == 100]
    assert revision.version == "1" and percent == 100


def test_dry_run_prints_a_valid_inference_service_and_applies_nothing(spoke):
    from ..kserve_standin import crd_validator

    done = slipway(
        spoke.root,
        "deploy",
        "--target",
        "kserve",
        "--version",
        "2",
        "--image",
        "registry.example/spoke:abc123",
        "--dry-run",
        check=True,
    )
    manifest = yaml.safe_load(done.stdout)
    crd_validator().validate(manifest)
    [container] = manifest["spec"]["predictor"]["containers"]
    assert container["image"] == "registry.example/spoke:abc123"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SLIPWAY_MODEL_VERSION"] == "2" and env["STORAGE_URI"]
    assert alias(spoke, "challenger") is None  # nothing moved
    refused = slipway(spoke.root, "deploy", "--target", "kserve", "--dry-run")
    assert refused.returncode == 2 and "--image" in refused.stderr
