"""The deploy pipeline's approval step against a real embedded MLflow registry (sqlite).

The version is registered the way the registry expects (a run, its metrics, the author tag)
and carded with the real card writer, so the only thing between it and the rollout is the
approval a high risk tier demands.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.pipelines.config import load_config
from slipway.pipelines.governance.approvals import ApprovalError, Decision, record_decision
from slipway.pipelines.governance.hub_governance import HUB_LIST_ENV, list_toml
from slipway.pipelines.rollout.pipeline import DeployPipelineError, approval_gate
from tests.governance_support import AUTHOR, REVIEWER
from tests.governance_support import register_carded as registered_and_carded
from tests.hub import VALID_SPOKE_TOML as VALID

pytestmark = pytest.mark.usefixtures("embedded_registry_only")


def spoke(root: Path, tier: str, approvers: list[str]) -> Path:
    """A spoke directory holding only slipway.toml: all the approval step reads besides MLflow."""
    listed = ", ".join(f'"{name}"' for name in approvers)
    governance = f'[governance]\nrisk_tier = "{tier}"\napprovers = [{listed}]\n\n[budget]'
    root.mkdir()
    (root / "slipway.toml").write_text(VALID.replace("[budget]", governance))
    return root


def reviewer_key(root: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """REVIEWER's SSH key, listed for them in the hub's governance list for this spoke."""
    key = keys[REVIEWER]
    public = key.with_suffix(".pub").read_text().strip()
    hub = root.parent / "hub-governance.toml"
    hub.write_text(list_toml({load_config(root).model_name: ("low", [(REVIEWER, public)])}))
    monkeypatch.setenv(HUB_LIST_ENV, str(hub))
    return key


def test_an_unapproved_high_risk_version_is_refused_until_someone_else_approves(
    tmp_path: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
):
    root = spoke(tmp_path / "spoke", "high", approvers=[REVIEWER])
    client, version = registered_and_carded(root)
    config = load_config(root)

    with pytest.raises(DeployPipelineError) as refused:
        approval_gate(str(root), version)
    message = str(refused.value)
    assert "risk tier high needs an approval" in message
    assert f"one of {REVIEWER} may run `slipway approve {version} --by NAME" in message
    assert "--sign-with KEY" in message

    with pytest.raises(ApprovalError, match="self-approval is refused"):
        record_decision(
            root, config, client, version, Decision.approved, by=AUTHOR, reason="looks fine to me"
        )
    with pytest.raises(DeployPipelineError, match="needs an approval"):
        approval_gate(str(root), version)

    record_decision(
        root,
        config,
        client,
        version,
        Decision.approved,
        by=REVIEWER,
        reason="bias review done on the hold-out",
        signing_key=reviewer_key(root, keys, monkeypatch),
    )
    assert approval_gate(str(root), version) == "approved"


def test_a_low_risk_version_needs_no_approval(tmp_path: Path):
    root = spoke(tmp_path / "spoke", "low", approvers=[REVIEWER])
    _, version = registered_and_carded(root)
    assert approval_gate(str(root), version) == "approved"
