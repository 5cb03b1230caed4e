"""`slipway deploy --target kserve`: the rollout on an InferenceService (see rollout.kserve).

Kept apart from cli/deploy.py so the local and SageMaker paths read as they were: this one
needs the `kubernetes` client, a Kubernetes context (in-cluster service account, else the
kubeconfig) and the cluster's Prometheus, and `--dry-run` needs none of them. The target is
put together by rollout.kserve.kserve_target, as the deploy pipeline's rollout step does.
"""

from __future__ import annotations

import click
import yaml

from slipway.pipelines.cli._common import Spoke, fail
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.training.images import ImageRefError


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
    from slipway.pipelines.rollout.controller import Controller
    from slipway.pipelines.rollout.kserve import (
        KServeError,
        KServeUsageError,
        kserve_plan,
        kserve_target,
        serving_image,
        storage_uris,
    )
    from slipway.pipelines.rollout.kserve_manifest import inference_service
    from slipway.pipelines.rollout.kserve_readings import PrometheusUnreachable
    from slipway.pipelines.rollout.traffic import replay_rows
    from slipway.pipelines.serving.client import GatewayUnreachable

    config = spoke.config
    try:
        image = serving_image(image, asked_as="--image")
        if dry_run:
            candidate = release.candidate_version(
                registry.client(spoke.root), config.model_name, version
            )
            manifest = inference_service(
                config,
                image=image,
                version=candidate,
                storage_uri=storage_uris(spoke.root, config)(candidate),
            )
            click.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)
            return
        plan = kserve_plan(config, step_seconds=step_seconds, step_timeout=step_timeout)
        target = kserve_target(spoke, image=image)
    except (KServeUsageError, ImageRefError) as exc:
        fail(str(exc), exc.exit_code)
    except KServeError as exc:
        fail(f"{exc}; `--dry-run` prints the manifest without credentials", exc.exit_code)
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
    finally:
        target.close()
    if outcome.status == "promoted":
        click.echo(
            f"promoted: version {outcome.version} serves on KServe "
            f"{config.deploy.kserve.namespace}/{config.model_name}"
        )
        return
    click.secho(f"rolled back: version {outcome.version}: {outcome.reason}", fg="red", err=True)
    raise SystemExit(int(Exit.ROLLED_BACK))
