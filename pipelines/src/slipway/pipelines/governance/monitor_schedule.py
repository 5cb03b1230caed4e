"""The monitoring schedule on Kubeflow: a recurring run of a pipeline that runs
`slipway monitor [--env ENV] --source SOURCE` in the spoke's image, one step per source the
spoke's schedule judges (governance.monitor_sources), for teams whose schedules live in
Kubeflow rather than in GitHub Actions.

The step is the same command the monitor workflow runs, with the same retraining target:
this Kubeflow (`--kfp-host`, the commit's `--image`). Exit 9 (drift, acted on) is not a
failed step. What the pod needs and must not be written into the pipeline spec (every user
of the Kubeflow namespace can read a run's spec) comes from the Kubernetes Secret
`slipway-monitor` in the namespace, through kfp-kubernetes: keys `state-url`
(SLIPWAY_STATE_URL, the team's audit trail that counts windows), `kfp-token`
(KF_PIPELINES_TOKEN) and, optionally, `alert-webhook` (SLIPWAY_ALERT_WEBHOOK). The registry
URL is not a secret and is set on the step. AWS access to the capture is the pod's service
account's (IRSA), named with `service_account`.

The recurring run has `max_concurrency` 1 and `no_catchup`: one window at a time per
endpoint, and a paused schedule does not replay missed windows at resume.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.pipelines.training import images

if TYPE_CHECKING:
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.training.kubeflow import KubeflowTarget

__all__ = ["SECRET", "ScheduledMonitor", "compile_monitoring", "schedule_monitoring"]

SECRET = "slipway-monitor"
SECRET_ENV = {"state-url": "SLIPWAY_STATE_URL", "kfp-token": "KF_PIPELINES_TOKEN"}
OPTIONAL_SECRET_ENV = {"alert-webhook": "SLIPWAY_ALERT_WEBHOOK"}
SPOKE_IN_IMAGE = "/app"  # the Dockerfile's WORKDIR


@dataclass(frozen=True)
class ScheduledMonitor:
    recurring_run_id: str
    name: str
    cron: str
    url: str


def _label(env: str | None, source: str) -> str:
    return f"{env}-{source}" if env else source


def _command(config: SpokeConfig, target: KubeflowTarget, env: str | None, source: str) -> str:
    args = ["slipway", "--project", SPOKE_IN_IMAGE, "monitor"]
    if env and source == "capture":  # the other sources are not per environment
        args += ["--env", env]
    args += [
        "--source",
        source,
        "--kfp-host",
        target.api,
        "--image",
        target.image,
        # The window's HTML report, logged to the champion's run from the pod.
        "--report",
        f"/tmp/monitor-{_label(env, source)}.html",
    ]
    if target.namespace:
        args += ["--namespace", target.namespace]
    if target.experiment != config.model_name:
        args += ["--experiment", target.experiment]
    # Exit 9 is drift found and acted on: the window did its job.
    return f'{shlex.join(args)} || [ "$?" -eq 9 ]'


def _step(image: str, command: str, source: str) -> Any:
    """One monitor step, its component named after its source (kfp names components by
    their function)."""
    from kfp import dsl

    def monitor_window():  # the same: no annotation
        return dsl.ContainerSpec(image=image, command=["sh", "-c"], args=[command])

    monitor_window.__name__ = f"monitor_{source}"
    return dsl.container_component(monitor_window)


def pipeline_name(config: SpokeConfig, env: str | None) -> str:
    return f"{config.model_name}-monitor" + (f"-{env}" if env else "")


def compile_monitoring(
    config: SpokeConfig,
    target: KubeflowTarget,
    env: str | None,
    sources: Sequence[str],
    tracking_uri: str,
    out: Path,
) -> Path:
    """The monitoring pipeline (one step per source) as KFP IR YAML at `out`."""
    from kfp import compiler, dsl, kubernetes

    image = images.validate_image_ref(target.image)
    steps = {s: _step(image, _command(config, target, env, s), s) for s in sources}

    @dsl.pipeline(
        name=pipeline_name(config, env),
        description=f"slipway monitor ({', '.join(sources)}): one window of "
        f"{config.model_name}'s traffic",
    )
    def monitoring():  # kfp reads annotations, which `from __future__` turns into strings
        for source, step in steps.items():
            task = step()
            task.set_caching_options(False)
            task.set_env_variable("MLFLOW_TRACKING_URI", tracking_uri)
            task.set_env_variable("SLIPWAY_ACTOR", f"kfp-monitor-{_label(env, source)}")
            kubernetes.use_secret_as_env(task, SECRET, {k: v for k, v in SECRET_ENV.items()})
            kubernetes.use_secret_as_env(task, SECRET, dict(OPTIONAL_SECRET_ENV), optional=True)

    compiler.Compiler().compile(monitoring, str(out))  # pyright: ignore[reportArgumentType]
    return out


def schedule_monitoring(
    config: SpokeConfig,
    target: KubeflowTarget,
    env: str | None,
    sources: Sequence[str],
    *,
    cron: str,
    tracking_uri: str,
    service_account: str | None = None,
) -> ScheduledMonitor:
    """Create the recurring run (KubeflowError with its exit code when Kubeflow refuses)."""
    from slipway.pipelines.training.kubeflow import api_call, client_for, preflight

    preflight(target)
    name = pipeline_name(config, env)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_monitoring(
            config, target, env, sources, tracking_uri, Path(tmp) / "monitor.yaml"
        )
        client = client_for(target)
        with api_call(target, f"creating the recurring run in {target.experiment!r}"):
            experiment = client.create_experiment(
                target.experiment,
                namespace=target.namespace,  # pyright: ignore[reportArgumentType]
            )
            created = client.create_recurring_run(
                experiment_id=str(experiment.experiment_id),
                job_name=name,
                description=f"slipway monitor ({', '.join(sources)}), cron {cron}",
                cron_expression=cron,
                max_concurrency=1,
                no_catchup=True,
                pipeline_package_path=str(package),
                enabled=True,
                enable_caching=False,
                service_account=service_account,
            )
    run_id = str(getattr(created, "recurring_run_id", "") or "")
    ui = target.run_url(run_id).split("/#/")[0]
    return ScheduledMonitor(run_id, name, cron, f"{ui}/#/recurringrun/details/{run_id}")
