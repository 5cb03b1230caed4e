"""Starting retraining where training runs: a Kubeflow run, or the spoke's training workflow.

Monitoring decides (drift_policy); this module only starts the run and says where it is.
Retraining never runs on the machine that monitored: a CI runner or a pipeline pod has
neither the resources nor the image-for-this-commit that training must run in, so a scheduled
monitor that is given neither a Kubeflow API nor a workflow to dispatch refuses to train
(`on_ci`) and says what to configure. The new version then goes through the same gate,
approvals and rollout as any other: nothing here promotes or deploys.

- Kubeflow: the training pipeline compiled on the image named for this commit (`--image`,
  as cd.yml pushes it), submitted through kfp.Client with the same auth and checks as
  `slipway train --kfp-host` (training/kubeflow.py); not waited for.
- GitHub Actions: `POST /repos/{repo}/actions/workflows/{file}/dispatches` with the job's
  GITHUB_TOKEN (the workflow needs `actions: write`), on the ref being monitored; the
  dispatched workflow (cd.yml) builds the image and submits training to Kubeflow itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

if TYPE_CHECKING:
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.training.kubeflow import SubmitOptions

__all__ = ["RetrainError", "Started", "dispatch_workflow", "on_ci", "submit_to_kubeflow"]

GITHUB_API = "https://api.github.com"
TIMEOUT = 30.0


class RetrainError(SlipwayError):
    """Retraining could not be started; the message says what to fix. Nothing was started,
    so the next drifted window tries again."""

    exit_code = Exit.ERROR


@dataclass(frozen=True)
class Started:
    """A retraining run that was started: where (kubeflow, workflow), its id and its page."""

    where: str
    run_id: str
    url: str


def on_ci(env: Mapping[str, str]) -> bool:
    """A CI runner (CI=true, as GitHub Actions, GitLab and most others set) or a Kubernetes
    pod (a KFP recurring run): places that must never train."""
    return env.get("CI", "").lower() in {"true", "1"} or bool(env.get("KUBERNETES_SERVICE_HOST"))


def submit_to_kubeflow(
    root: Path, config: SpokeConfig, options: SubmitOptions, env: Mapping[str, str], reason: str
) -> Started:
    """Submit the training pipeline on the commit's image; KubeflowError (its own exit code)
    when Kubeflow refuses or the image or registry is missing."""
    from slipway.pipelines.training import kubeflow

    target, uri = kubeflow.target_for(root, config, options, env)
    run = kubeflow.submit(
        root,
        config,
        target,
        tracking_uri=uri,
        run_name=f"{config.model_name}-retrain-{reason}"[:100],
    )
    return Started("kubeflow", run.run_id, run.url)


def dispatch_workflow(workflow: str, env: Mapping[str, str], inputs: Mapping[str, str]) -> Started:
    """Dispatch `workflow` (a file in .github/workflows) on the monitored ref."""
    repository = env.get("GITHUB_REPOSITORY", "")
    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or ""
    if not repository or not token:
        raise RetrainError(
            f"dispatching {workflow} needs GITHUB_REPOSITORY and GITHUB_TOKEN (a token with "
            "`actions: write`, as the monitor workflow passes it); training was not started"
        )
    api = env.get("GITHUB_API_URL", GITHUB_API).rstrip("/")
    ref = env.get("GITHUB_REF_NAME") or "main"
    body = json.dumps({"ref": ref, "inputs": dict(inputs)}).encode()
    request = urllib.request.Request(
        f"{api}/repos/{repository}/actions/workflows/{workflow}/dispatches",
        data=body,
        method="POST",
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        said = exc.read().decode("utf-8", "replace")[:300]
        hint = {
            401: "the token was not accepted",
            403: "the token may not dispatch workflows: give the job `permissions: actions: write`",
            404: f"no workflow {workflow} in {repository} (or the token cannot see it)",
            422: f"{workflow} has no `workflow_dispatch` trigger, or not on ref {ref}",
        }.get(exc.code, "")
        hint = f"; {hint}" if hint else ""
        raise RetrainError(
            f"GitHub refused to dispatch {workflow} (HTTP {exc.code}: {said}){hint}; "
            "training was not started"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise RetrainError(
            f"cannot reach GitHub at {api} ({getattr(exc, 'reason', exc)}); "
            "training was not started",
            exit_code=Exit.UNREACHABLE,
        ) from None
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    return Started(
        "workflow", f"{workflow}@{ref}", f"{server}/{repository}/actions/workflows/{workflow}"
    )
