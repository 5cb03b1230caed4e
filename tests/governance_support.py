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
from typing import Any

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
from tests.hub import seed_registry

AUTHOR = "ada@example.com"
REVIEWER = "grace@example.com"
OUTSIDER = "mallory@example.com"


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
    seed_registry(spoke)  # an empty registry, copied: MLflow's migrations are not under test
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


def champion_traffic(root: Path, scale: float) -> tuple[str, Any, Any]:
    """A new champion and the traffic it serves: the spoke's held-out rows (contract columns)
    times `scale`. Returns the version, the traffic frame and the loaded model."""
    import mlflow.pyfunc

    from slipway.pipelines.registry import CHAMPION
    from slipway.pipelines.training.spoke_code import held_out_rows

    config = load_config(root)
    version = register_version(root, author=AUTHOR)
    client(root).set_registered_model_alias(config.model_name, CHAMPION, version)
    traffic = held_out_rows(root, config)[list(config.data.contract.columns)] * scale
    with fluent_registry(root):
        model = mlflow.pyfunc.load_model(f"models:/{config.model_name}/{version}")
    return version, traffic, model


def register_carded(root: Path, *, tier: str | None = None) -> tuple[Any, str]:
    """A new version of the spoke's model in its embedded registry, authored by AUTHOR (and
    tagged with `tier` as `slipway train` tags it, when given), with a current model card."""
    from mlflow import MlflowClient

    from slipway.pipelines.governance.model_card import write_card
    from slipway.pipelines.registry import embedded_tracking_uri, experiment_id, state_dir

    if not (state_dir(root) / "mlflow.db").exists():
        seed_registry(root)  # MLflow's migrations are not under test here: seconds saved
    uri = embedded_tracking_uri(root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    config = load_config(root)
    run = client.create_run(experiment_id(client, root, config.model_name))
    client.log_metric(run.info.run_id, "test_roc_auc", 0.97)
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name='{config.model_name}'"):
        client.create_registered_model(config.model_name)
    version = str(
        client.create_model_version(
            config.model_name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        ).version
    )
    client.set_model_version_tag(config.model_name, version, TAG_AUTHOR, AUTHOR)
    if tier is not None:
        client.set_model_version_tag(config.model_name, version, TAG_RISK_TIER, tier)
    write_card(root, config, client, client.get_model_version(config.model_name, version))
    return client, version
