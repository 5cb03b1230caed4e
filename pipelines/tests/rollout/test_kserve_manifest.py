"""Every InferenceService Slipway applies is valid against KServe's published CRD schema
(vendored in pipelines/tests/data, see KSERVE_SCHEMA.md), and says what KServe acts on."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for

from slipway.pipelines.config import parse_config
from slipway.pipelines.rollout.kserve_manifest import inference_service

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIG = parse_config((DATA / "mixed_contract_spoke.toml").read_text())


@pytest.fixture(scope="module")
def crd_schema() -> Any:
    """A validator of the CRD's schema (built once: checking the 600 kB schema against its
    metaschema on every call is what jsonschema.validate would spend its time on)."""
    with gzip.open(DATA / "kserve-inferenceservice-v1beta1.schema.json.gz") as f:
        schema = json.load(f)
    return validator_for(schema)(schema)


def manifest(**overrides: Any) -> dict[str, Any]:
    return inference_service(
        CONFIG,
        image="registry.example/churn-guard:0123abc",
        version="7",
        storage_uri="s3://bucket/models/7",
        **overrides,
    )


@pytest.mark.parametrize("canary", [None, 0, 10, 100])
def test_manifests_are_valid_against_kserves_crd(crd_schema, canary):
    crd_schema.validate(manifest(canary_percent=canary))


def test_the_schema_catches_what_kserve_would_refuse(crd_schema):
    """The check has teeth: a manifest KServe's API server would refuse fails it."""
    bad = manifest(canary_percent=10)
    bad["spec"]["predictor"]["canaryTrafficPercent"] = "10%"
    with pytest.raises(ValidationError, match=r"is not of type"):
        crd_schema.validate(bad)
    bad = manifest()
    bad["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(ValidationError):
        crd_schema.validate(bad)


def test_the_predictor_is_the_spokes_image_probed_on_oip_health_with_slipway_toml_resources():
    spec = manifest(canary_percent=10)["spec"]["predictor"]
    [container] = spec["containers"]
    assert container["image"] == "registry.example/churn-guard:0123abc"
    assert container["args"] == ["serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["STORAGE_URI"] == "s3://bucket/models/7" and env["SLIPWAY_MODEL_VERSION"] == "7"
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert spec["canaryTrafficPercent"] == 10
    assert "canaryTrafficPercent" not in manifest()["spec"]["predictor"]  # promoted: no field
