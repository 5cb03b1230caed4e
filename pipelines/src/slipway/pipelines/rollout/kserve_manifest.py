"""The InferenceService `slipway deploy --target kserve` applies, built from slipway.toml.

The predictor is the spoke's own image (the gateway in single-model mode, as on SageMaker),
never a KServe runtime: the same contract check, batching, metrics and protocols (MLflow's
/invocations and the Open Inference Protocol's /v2) serve on both engines. KServe's storage
initializer fetches the version's model into /mnt/models (the container's STORAGE_URI); the
/v2 health endpoints are its probes; resources and replicas come from [deploy.kserve].

A canary is one field: `spec.predictor.canaryTrafficPercent` gives the latest ready revision
that share and the last rolled-out one the rest; 0 rolls back; removing it promotes.
"""

from __future__ import annotations

from typing import Any

from slipway.pipelines.config import SpokeConfig

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
PORT = 8080
MODEL_MOUNT = "/mnt/models"  # where KServe's storage initializer puts STORAGE_URI's content
VERSION_LABEL = "slipway.dev/model-version"


def _sample_store_env(config: SpokeConfig) -> list[dict[str, str]]:
    """Each replica writes its drift sample to the team's object store, where the scheduled
    monitor reads every replica's (a pod's disk goes with the pod): serving.sample_store."""
    store = config.monitoring.sample_store
    return [{"name": "SLIPWAY_SAMPLE_STORE", "value": store}] if store else []


def inference_service(
    config: SpokeConfig,
    *,
    image: str,
    version: str,
    storage_uri: str,
    canary_percent: int | None = None,
) -> dict[str, Any]:
    """The InferenceService serving `version` of the spoke's model from `image`."""
    kserve = config.deploy.kserve
    resources = {"cpu": kserve.cpu, "memory": kserve.memory}
    predictor: dict[str, Any] = {
        "minReplicas": kserve.min_replicas,
        "maxReplicas": kserve.max_replicas,
        "labels": {VERSION_LABEL: version},
        "containers": [
            {
                "name": "kserve-container",  # the name KServe's storage initializer mounts into
                "image": image,
                "args": ["serve"],
                "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                "env": [
                    {"name": "STORAGE_URI", "value": storage_uri},
                    {"name": "SLIPWAY_MODEL_DIR", "value": MODEL_MOUNT},
                    {"name": "SLIPWAY_MODEL_VERSION", "value": version},
                    {"name": "SAGEMAKER_BIND_TO_PORT", "value": str(PORT)},
                    *_sample_store_env(config),
                ],
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "readinessProbe": {
                    "httpGet": {"path": "/v2/health/ready", "port": PORT},
                    "periodSeconds": 5,
                },
                "livenessProbe": {
                    "httpGet": {"path": "/v2/health/live", "port": PORT},
                    "initialDelaySeconds": 10,
                    "periodSeconds": 10,
                },
            }
        ],
    }
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": config.model_name,
            "namespace": kserve.namespace,
            "labels": {"app.kubernetes.io/managed-by": "slipway"},
            "annotations": {"serving.kserve.io/deploymentMode": "Serverless"},
        },
        "spec": {"predictor": predictor},
    }
