"""The rollout controller's traffic target on KServe: an InferenceService, not a gateway.

`slipway deploy --target kserve` runs the same Controller as the laptop (governance, the
judge, rollback, promotion, audit trail, durable state); only what moves traffic and what
reads the windows differ. This class answers the calls the controller makes of a gateway:

- reload: serve the registry's aliases. The candidate becomes the predictor's spec (a new
  revision) at canaryTrafficPercent 0; the first deploy creates the InferenceService; after a
  promotion the field is removed, which is KServe's promotion.
- set_weights(N): canaryTrafficPercent N (0 is KServe's rollback).
- window: per-version readings from Prometheus since the step began (kserve_readings).
- invoke: the smoke test of a first deploy, against the InferenceService's URL.

The Kubernetes API is driven with the official `kubernetes` client (CustomObjectsApi): on a
cluster, its service account's token; in tests, against a stand-in API server.

`kserve_target` (with `kserve_plan` and `serving_image`) is the one place a KServe rollout is
put together, from slipway.toml and the process's credentials: `slipway deploy --target
kserve` and the deploy pipeline's rollout step (target=kserve) both call it, so a rollout
from a laptop and one from a pipeline pod are the same rollout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from slipway.pipelines import registry
from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.rollout.controller import Plan, plan_for
from slipway.pipelines.rollout.kserve_manifest import (
    GROUP,
    PLURAL,
    VERSION,
    VERSION_LABEL,
    inference_service,
)
from slipway.pipelines.rollout.kserve_readings import PrometheusReadings
from slipway.pipelines.serving.client import GatewayUnreachable
from slipway.pipelines.serving.window import Window
from slipway.pipelines.settings import Settings

if TYPE_CHECKING:
    from slipway.pipelines.spoke import Spoke

READY_POLL_SECONDS = 0.5


class KServeError(SlipwayError):
    """The Kubernetes API refused or could not be reached; nothing further was changed."""

    exit_code = Exit.UNREACHABLE


class KServeUsageError(SlipwayError):
    """A KServe rollout asked for something it cannot do (no image, a shadow phase)."""

    exit_code = Exit.USAGE


class KServeTarget:
    """One spoke's InferenceService, driven as the controller drives a gateway."""

    def __init__(
        self,
        root: Any,
        config: SpokeConfig,
        api: Any,  # kubernetes.client.CustomObjectsApi
        readings: PrometheusReadings,
        *,
        image: str,
        storage_uri: Callable[[str], str],
        ready_timeout: float = 600.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.root, self.config, self.api, self.readings = root, config, api, readings
        self.image, self.storage_uri = image, storage_uri
        self.name, self.namespace = config.model_name, config.deploy.kserve.namespace
        self.ready_timeout = ready_timeout
        self._http = http or httpx.Client(timeout=30.0)
        self._started, self._weight = time.time(), 0
        # The versions the last reload found rolled out and under canary (the window's two).
        self.champion_version: str | None = None
        self.challenger_version: str | None = None

    # -- the Kubernetes API -----------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(GROUP, VERSION, self.namespace, PLURAL, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404 and what == "get":
                return None
            raise KServeError(
                f"Kubernetes API: {what} inferenceservice {self.namespace}/{self.name}: "
                f"{exc.status} {exc.reason} {str(exc.body)[:300]} (check the pipeline's service "
                "account may get/create/patch inferenceservices in that namespace)"
            ) from exc
        except HTTPError as exc:
            raise GatewayUnreachable(
                f"the Kubernetes API did not answer ({type(exc).__name__}); check the cluster "
                "credentials (in-cluster service account or kubeconfig)"
            ) from exc

    def get(self) -> dict[str, Any] | None:
        return self._call("get", self.api.get_namespaced_custom_object, self.name)

    def _patch(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("patch", self.api.patch_namespaced_custom_object, self.name, body)

    def _spec_version(self, isvc: dict[str, Any]) -> str | None:
        return isvc["spec"]["predictor"].get("labels", {}).get(VERSION_LABEL)

    def _wait_ready(self) -> str | None:
        """None once the latest created revision is ready, else why not (after the timeout)."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            isvc = self.get() or {}
            predictor = isvc.get("status", {}).get("components", {}).get("predictor", {})
            created = predictor.get("latestCreatedRevision")
            if created and predictor.get("latestReadyRevision") == created:
                return None
            if time.monotonic() > deadline:
                conditions = isvc.get("status", {}).get("conditions", [])
                why = "; ".join(c.get("message", "") for c in conditions if c.get("message"))
                return f"revision {created or '(none)'} not ready after {self.ready_timeout:g}s" + (
                    f": {why}" if why else ""
                )
            time.sleep(READY_POLL_SECONDS)

    # -- what the controller calls ----------------------------------------------------------

    def health(self) -> dict[str, Any]:
        isvc = self.get()  # raises if the API is unreachable or refuses
        return {"status": "ok" if isvc else "absent", "url": (isvc or {}).get("status", {})}

    def reload(self) -> dict[str, Any]:
        client = registry.client(self.root)
        champion = registry.version_by_alias(client, self.name, registry.CHAMPION)
        challenger = registry.version_by_alias(client, self.name, registry.CHALLENGER)
        champion_v = str(champion.version) if champion else None
        challenger_v = str(challenger.version) if challenger else None
        isvc = self.get()
        problem = None
        if isvc is None:
            # The first InferenceService serves the champion (the rolled-out revision); a
            # first deploy with no champion yet creates it with the candidate, no canary.
            first = champion_v or challenger_v
            if first is None:
                return self._state(None, None, {})
            isvc = self._call(
                "create", self.api.create_namespaced_custom_object, self.manifest(first, None)
            )
            problem = self._wait_ready()
        if problem is None and challenger_v and self._spec_version(isvc) != challenger_v:
            self._patch(self.manifest(challenger_v, 0))  # a new revision, no traffic yet
            problem = self._wait_ready()
        elif (
            challenger_v is None
            and self._spec_version(isvc) == champion_v
            and "canaryTrafficPercent" in isvc["spec"]["predictor"]
        ):
            # Promoted: removing the field sends all traffic to the latest revision.
            self._patch({"spec": {"predictor": {"canaryTrafficPercent": None}}})
        errors = {registry.CHALLENGER: problem} if problem and challenger_v else {}
        serving = None if problem else challenger_v
        return self._state(champion_v, serving, errors)

    def _state(self, champion: str | None, challenger: str | None, errors: dict) -> dict:
        self.champion_version, self.challenger_version = champion, challenger
        return {"champion": champion, "challenger": challenger, "load_errors": errors}

    def manifest(self, version: str, canary: int | None) -> dict[str, Any]:
        return inference_service(
            self.config,
            image=self.image,
            version=version,
            storage_uri=self.storage_uri(version),
            canary_percent=canary,
        )

    def set_weights(self, challenger: int, shadow: bool = False) -> dict[str, Any]:
        if shadow:
            raise KServeError(
                "KServe has no shadow traffic: set rollout.shadow_seconds = 0 for a KServe "
                "rollout (its canary steps still judge the challenger on live traffic)"
            )
        self._patch({"spec": {"predictor": {"canaryTrafficPercent": challenger}}})
        self._started, self._weight = time.time(), challenger
        return {"seq": int(self._started * 1000), "weight": challenger}

    def window(self, after: int) -> Window:
        # At 100% the rolled-out revision serves nothing (the judge compares with the step
        # before's champion), and Knative may scale it away: it is not waited for.
        champion = self.champion_version if self._weight < 100 else None
        return self.readings.window(champion, self.challenger_version, after / 1000)

    def close(self) -> None:
        self._http.close()
        self.readings.close()

    def invoke(self, frame_split: dict[str, Any]) -> httpx.Response:
        url = ((self.get() or {}).get("status") or {}).get("url")
        if not url:
            raise GatewayUnreachable(f"inferenceservice {self.name} reports no URL yet")
        return self._http.post(f"{url}/invocations", json={"dataframe_split": frame_split})


# -- putting a KServe rollout together (the CLI and the pipeline step) -----------------------


def kubernetes_api() -> Any:
    """CustomObjectsApi with this process's cluster credentials: the pod's service account
    (a pipeline step on the cluster), else the kubeconfig (a laptop, CI: KUBECONFIG)."""
    from kubernetes import client
    from kubernetes import config as kube_config

    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        try:
            kube_config.load_kube_config(config_file=Settings.from_env().kubeconfig)
        except (kube_config.ConfigException, OSError) as exc:
            raise KServeError(
                f"no Kubernetes credentials ({exc}): run inside the cluster (the deploy "
                "pipeline's service account) or point KUBECONFIG at a context that may get, "
                "create and patch inferenceservices"
            ) from exc
    return client.CustomObjectsApi()


def serving_image(given: str | None, *, compiled: str | None = None, asked_as: str) -> str:
    """The predictor's image: `given`, else SLIPWAY_IMAGE, else `compiled` (what `slipway
    compile --image` set on the pipeline's steps); `asked_as` names `given` in the error."""
    from slipway.pipelines.training.images import validate_image_ref

    image = given or Settings.from_env().image or compiled
    if not image:
        raise KServeUsageError(
            f"a KServe rollout needs the spoke's image for this commit: pass {asked_as} or "
            "set SLIPWAY_IMAGE (CD builds and pushes it; `slipway compile --image` also sets "
            "it on the deploy pipeline)"
        )
    return validate_image_ref(image)


def kserve_plan(
    config: SpokeConfig, *, step_seconds: float | None, step_timeout: float | None = None
) -> Plan:
    """The rollout plan on KServe: slipway.toml's canary steps, no shadow phase (KServe has
    no shadow traffic, so a tier that requires one is refused here, before anything moves)."""
    plan = plan_for(config, step_seconds=step_seconds, shadow_seconds=0, step_timeout=step_timeout)
    if plan.shadow_seconds > 0:
        raise KServeUsageError(
            f"risk tier {config.governance.risk_tier!r} requires a shadow phase and KServe has "
            "no shadow traffic: roll this version out on the gateway (`slipway deploy`) or "
            "SageMaker (`--env`)"
        )
    return plan


def storage_uris(root: Any, config: SpokeConfig) -> Callable[[str], str]:
    """version -> the version's artifact URI in the registry (the predictor's STORAGE_URI)."""
    client = registry.client(root)
    return lambda version: client.get_model_version_download_uri(config.model_name, version)


def kserve_target(
    spoke: Spoke,
    *,
    image: str,
    api: Any = None,
    ready_timeout: float = 600.0,
) -> KServeTarget:
    """The spoke's InferenceService as a traffic target: the Kubernetes API with this
    process's credentials (`api` to use another client), the judge's readings from
    [deploy.kserve].prometheus_url, the models from the registry."""
    root, config = spoke.root, spoke.config
    model = config.model_name
    return KServeTarget(
        root,
        config,
        kubernetes_api() if api is None else api,
        PrometheusReadings(config.deploy.kserve.prometheus_url, f'inferenceservice="{model}"'),
        image=image,
        storage_uri=storage_uris(root, config),
        ready_timeout=ready_timeout,
    )
