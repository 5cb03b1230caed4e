"""`slipway deploy --target kserve`: the rollout on an InferenceService (see rollout.kserve).

Kept apart from cli/deploy.py so the local and SageMaker paths read as they were: this one
needs the `kubernetes` client, a Kubernetes context (in-cluster service account, else the
kubeconfig) and the cluster's Prometheus, and `--dry-run` needs none of them.
"""

from __future__ import annotations

from typing import Any

import click
import yaml

from slipway.pipelines.cli._common import Spoke, fail
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.settings import Settings

IMAGE_ENV = "SLIPWAY_IMAGE"


def _kubernetes_api() -> Any:
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # a pipeline step: its service account's token
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            fail(
                f"no Kubernetes credentials ({exc}): run inside the cluster (the deploy "
                "pipeline's service account) or point KUBECONFIG at a context that may "
                "patch inferenceservices; `--dry-run` prints the manifest without either",
                Exit.UNREACHABLE,
            )
    return client.CustomObjectsApi()


def deploy_kserve(
    spoke: Spoke,
    version: str | None,
    image: str | None,
    *,
    dry_run: bool,
    resume: bool,
    step_seconds: float | None,
    step_timeout: float | None,
) -> None:
    from slipway.pipelines import registry
    from slipway.pipelines.rollout import release
    from slipway.pipelines.rollout.controller import Controller, plan_for
    from slipway.pipelines.rollout.kserve import KServeError, KServeTarget
    from slipway.pipelines.rollout.kserve_manifest import inference_service
    from slipway.pipelines.rollout.kserve_readings import PrometheusReadings, PrometheusUnreachable
    from slipway.pipelines.rollout.traffic import replay_rows
    from slipway.pipelines.serving.client import GatewayUnreachable

    image = image or Settings.from_env().image
    if not image:
        fail(
            f"--target kserve needs the spoke's image for this commit: pass --image or set "
            f"{IMAGE_ENV} (CD builds and pushes it)",
            Exit.USAGE,
        )
    config, model = spoke.config, spoke.config.model_name
    client = registry.client(spoke.root)

    def storage_uri(v: str) -> str:
        return client.get_model_version_download_uri(model, v)

    if dry_run:
        candidate = release.candidate_version(client, model, version)
        manifest = inference_service(
            config, image=image, version=candidate, storage_uri=storage_uri(candidate)
        )
        click.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)
        return
    plan = plan_for(config, step_seconds=step_seconds, shadow_seconds=0, step_timeout=step_timeout)
    if plan.shadow_seconds > 0:
        fail(
            f"risk tier {config.governance.risk_tier!r} requires a shadow phase and KServe has no "
            "shadow traffic: roll this version out on the gateway (`slipway deploy`) or "
            "SageMaker (`--env`)",
            Exit.USAGE,
        )
    kserve = config.deploy.kserve
    target = KServeTarget(
        spoke.root,
        config,
        _kubernetes_api(),
        PrometheusReadings(kserve.prometheus_url, f'inferenceservice="{model}"'),
        image=image,
        storage_uri=storage_uri,
    )
    controller = Controller(
        spoke,
        target,
        plan,
        echo=click.echo,
        smoke_rows=lambda: replay_rows(spoke.root, config),
    )
    try:
        outcome = controller.resume() if resume else controller.deploy(version)
    except (GatewayUnreachable, KServeError, PrometheusUnreachable) as exc:
        fail(
            f"{exc}. The rollout state is kept: fix it, then `slipway deploy --target kserve "
            "--resume` or `slipway rollback`",
            Exit.UNREACHABLE,
        )
    if outcome.status == "promoted":
        click.echo(
            f"promoted: version {outcome.version} serves on KServe {kserve.namespace}/{model}"
        )
        return
    click.secho(f"rolled back: version {outcome.version}: {outcome.reason}", fg="red", err=True)
    raise SystemExit(int(Exit.ROLLED_BACK))
