"""`slipway rollback` never restores a rejected `previous`, even with its approval replayed.

A real embedded MLflow registry and the file audit trail; the aliases are set as a promotion
leaves them (champion 2, previous 1), then version 1 is rejected and its earlier approval's
tags are set again, as a registry writer could.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow import MlflowClient

from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.governance.approvals import Decision, record_decision
from slipway.pipelines.governance.hub_governance import HUB_LIST_ENV, list_toml
from slipway.pipelines.rollout.release import RejectedPrevious, revert_promotion


def _valid_toml() -> str:
    namespace: dict[str, object] = {}
    source = Path(__file__).parents[1] / "test_config.py"
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    return str(namespace["VALID"])


def test_a_rejected_previous_is_not_restored_even_with_its_approval_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SLIPWAY_STATE_URL", raising=False)
    monkeypatch.setenv("SLIPWAY_ACTOR", "grace@example.com")
    hub = tmp_path / "hub.toml"
    hub.write_text(list_toml({}))
    monkeypatch.setenv(HUB_LIST_ENV, str(hub))
    root = tmp_path / "spoke"
    root.mkdir()
    (root / "slipway.toml").write_text(_valid_toml())
    config = load_config(root)
    uri = registry.embedded_tracking_uri(root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.create_run(registry.experiment_id(client, root, config.model_name))
    client.create_registered_model(config.model_name)
    for _ in range(2):
        version = client.create_model_version(config.model_name, "s3://x/m", run.info.run_id)
        client.set_model_version_tag(
            config.model_name, version.version, registry.TAG_AUTHOR, "ada@example.com"
        )
    client.set_registered_model_alias(config.model_name, registry.CHAMPION, "2")
    client.set_registered_model_alias(config.model_name, registry.PREVIOUS, "1")

    def decide(decision: Decision, reason: str) -> None:
        record_decision(root, config, client, "1", decision, by="grace@example.com", reason=reason)

    decide(Decision.approved, "fine at the time")
    approved = {
        k: v
        for k, v in client.get_model_version(config.model_name, "1").tags.items()
        if k.startswith("slipway.")
    }
    decide(Decision.rejected, "leaks a protected attribute")
    for key, value in approved.items():  # the replay
        client.set_model_version_tag(config.model_name, "1", key, value)

    with pytest.raises(RejectedPrevious, match=re.escape("rejected by grace@example.com")):
        revert_promotion(root, client, config.model_name, reason="manual rollback")
    champion = registry.version_by_alias(client, config.model_name, registry.CHAMPION)
    assert champion is not None and str(champion.version) == "2"
