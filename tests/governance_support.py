"""Helpers for the governance and monitoring tests (not a test module: no tests here).

A spoke rendered from the template, copied per test with its risk tier changed, and real
scikit-learn models trained by the spoke's own trainer on the spoke's own data, registered
in the spoke's embedded MLflow registry the way the training pipeline does.
Load it with `support = load_support()` from a test module (the hub's tests are not a
package, so it is loaded by path).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from slipway.pipelines.config import load_config
from slipway.pipelines.registry import (
    TAG_AUTHOR,
    TAG_DATA_DIGEST,
    TAG_GIT_SHA,
    TAG_RISK_TIER,
    artifact_location,
    client,
    fluent_registry,
)

AUTHOR = "ada@example.com"
REVIEWER = "grace@example.com"


def render_spoke(template_repo: Path, dst: Path) -> Path:
    from copier import run_copy

    run_copy(
        str(template_repo),
        dst,
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
        data={"project_slug": "tumour-triage", "package_name": "tumour_triage"},
    )
    return dst


def make_spoke(rendered: Path, dst: Path, tier: str, approvers: list[str] | None = None) -> Path:
    """A copy of the rendered spoke with the risk tier (and approvers) changed in slipway.toml."""
    spoke = dst / f"spoke-{tier}"
    shutil.copytree(rendered, spoke, ignore=shutil.ignore_patterns(".slipway"))
    toml = spoke / "slipway.toml"
    text = re.sub(r'(?m)^risk_tier = "\w+"', f'risk_tier = "{tier}"', toml.read_text())
    if approvers is not None:
        text = text.replace("approvers = []", f"approvers = {approvers!r}".replace("'", '"'))
    toml.write_text(text)
    assert load_config(spoke).governance.risk_tier == tier
    return spoke


def approver_key(root: Path, person: str) -> Path:
    """A fresh SSH key for `person`, its public key listed for them as an approver of this
    spoke in the hub's governance list (the file SLIPWAY_HUB_GOVERNANCE names: the test's
    stand-in for the list the platform ships; set it with the `hub_list` fixture first)."""
    import json
    import os
    import subprocess

    from slipway.pipelines.governance.hub_governance import HUB_LIST_ENV, list_toml

    hub = Path(os.environ[HUB_LIST_ENV])
    key = root.parent / f"{person.split('@')[0]}-{root.name}-ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    listed = hub.with_suffix(".json")
    pairs = json.loads(listed.read_text()) if listed.exists() else []
    pairs.append([person, public])
    listed.write_text(json.dumps(pairs))
    model = load_config(root).model_name
    hub.write_text(list_toml({model: ("low", [(p, k) for p, k in pairs])}))
    return key


def register_version(root: Path, *, author: str, c: float = 1.0) -> str:
    """Train the spoke's own model on its training split and register it as a new version."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from sklearn.metrics import accuracy_score, roc_auc_score

    from slipway.pipelines.training.spoke_code import load_frame, split, train_model

    config = load_config(root)
    config = config.model_copy(
        update={
            "training": config.training.model_copy(update={"params": {"C": c, "max_iter": 500}})
        }
    )
    parts = split(load_frame(root, config), config)
    model = train_model(root, config, parts.x_train, parts.y_train)
    registry = client(root)
    experiment = registry.get_experiment_by_name(config.model_name)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else registry.create_experiment(
            config.model_name, artifact_location=artifact_location(root)
        )
    )
    with fluent_registry(root), mlflow.start_run(experiment_id=experiment_id):
        scores = model.predict_proba(parts.x_test)[:, 1]
        mlflow.log_metrics(
            {
                "test_roc_auc": roc_auc_score(parts.y_test, scores),
                "test_accuracy": accuracy_score(parts.y_test, model.predict(parts.x_test)),
            }
        )
        figure, axes = plt.subplots()
        axes.hist(scores, bins=20)
        mlflow.log_figure(figure, "plots/roc_curve.png")
        plt.close(figure)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=config.model_name,
            pip_requirements=["scikit-learn"],
        )
    version = str(info.registered_model_version)
    for key, value in (
        (TAG_AUTHOR, author),
        (TAG_RISK_TIER, config.governance.risk_tier.value),
        (TAG_GIT_SHA, "0" * 40),
        (TAG_DATA_DIGEST, "1" * 64),
    ):
        registry.set_model_version_tag(config.model_name, version, key, value)
    return version
