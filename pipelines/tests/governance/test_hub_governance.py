"""Governance the author cannot edit: the attacks of the 2026-12-07 review, tried again.

Each test first does what the reviewer did (real ssh-keygen keys, a real embedded MLflow
registry, the real `slipway` CLI) and shows it no longer gets through: approver keys and the
tier floor come from the hub's governance list, never from files the author can edit.
"""

from __future__ import annotations

import subprocess
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.config import RiskTier, load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.governance.approvals import TAG_APPROVAL_STATE, effective_tier
from slipway.pipelines.governance.hub_governance import (
    HUB_LIST_ENV,
    HubGovernanceError,
    governance_for,
    key_fingerprint,
    list_toml,
    strictest,
)
from tests.governance_support import AUTHOR, REVIEWER, register_carded

MODEL = "churn-guard"


def _valid_toml() -> str:
    spec = spec_from_file_location("_valid", Path(__file__).parents[1] / "test_config.py")
    assert spec and spec.loader
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VALID


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("SLIPWAY_STATE_URL", raising=False)
    hub = tmp_path / "platform" / "hub-governance.toml"
    hub.parent.mkdir()
    monkeypatch.setenv(HUB_LIST_ENV, str(hub))
    return hub


def keypair(where: Path, person: str) -> Path:
    key = where / person.split("@")[0]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def public(key: Path) -> str:
    return key.with_suffix(".pub").read_text().strip()


def make_spoke(root: Path, tier: str) -> Path:
    root.mkdir()
    governance = f'[governance]\nrisk_tier = "{tier}"\n\n[budget]'
    (root / "slipway.toml").write_text(_valid_toml().replace("[budget]", governance))
    (root / "approvers").mkdir()
    (root / "approvers" / "allowed_signers").write_text("# the spoke's copy: not a source\n")
    return root


def slipway(root: Path, *args: str, actor: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--project", str(root), *args], env={"SLIPWAY_ACTOR": actor})
    return result.exit_code, result.output


def test_an_author_listing_their_own_key_as_an_approver_cannot_approve(
    tmp_path: Path, isolated: Path
):
    # The hub lists the spoke at tier high with grace as its approver.
    grace = keypair(tmp_path, REVIEWER)
    isolated.write_text(list_toml({MODEL: ("high", [(REVIEWER, public(grace))])}))
    root = make_spoke(tmp_path / "spoke", "high")
    client, version = register_carded(root, tier="high")

    # The reproduction: the author makes a key, lists it as bob in the spoke's
    # approvers/allowed_signers, and approves as bob with it.
    mine = keypair(tmp_path, "bob@x.io")
    signers = root / "approvers" / "allowed_signers"
    signers.write_text(signers.read_text() + f"bob@x.io {public(mine)}\n")
    code, output = slipway(
        root, "approve", version, "--by", "bob@x.io", "--reason", "lgtm",
        "--sign-with", str(mine), actor="bob@x.io",
    )  # fmt: skip
    assert code == Exit.NOT_APPROVED, output
    assert "bob@x.io is not among the hub's approvers for churn-guard" in output
    # Claiming grace's name with the author's key fails too: the hub holds grace's key.
    code, output = slipway(
        root, "approve", version, "--by", REVIEWER, "--reason", "lgtm",
        "--sign-with", str(mine), actor=REVIEWER,
    )  # fmt: skip
    assert code == Exit.NOT_APPROVED, output
    assert "does not verify as grace@example.com" in output
    assert TAG_APPROVAL_STATE not in client.get_model_version(MODEL, version).tags
    assert [e["action"] for e in audit.read(root)] == ["card"]
    code, output = slipway(root, "promote", version, "--reason", "ship it", actor=AUTHOR)
    assert code == Exit.NOT_APPROVED, output
    assert "promotion refused by governance" in output
    assert not client.get_registered_model(MODEL).aliases

    # Grace, with the key the hub lists for her, opens the gate.
    code, output = slipway(
        root, "approve", version, "--by", REVIEWER, "--reason", "bias review done",
        "--sign-with", str(grace), actor=REVIEWER,
    )  # fmt: skip
    assert code == 0, output
    [entry] = [e for e in audit.read(root) if e["action"] == "approve"]
    assert entry["details"]["hub_list_sha256"] == governance_for(MODEL).digest
    assert entry["details"]["key"] == key_fingerprint(public(grace))


def test_the_author_s_key_does_not_count_under_another_name(tmp_path: Path, isolated: Path):
    # The author approves other people's versions, so the hub lists their key; the hub also
    # (by mistake) lists that same key for grace. The key is the author's: refused.
    ada = keypair(tmp_path, AUTHOR)
    isolated.write_text(
        list_toml({MODEL: ("high", [(AUTHOR, public(ada)), (REVIEWER, public(ada))])})
    )
    root = make_spoke(tmp_path / "spoke", "high")
    _, version = register_carded(root, tier="high")
    code, output = slipway(
        root, "approve", version, "--by", REVIEWER, "--reason", "lgtm",
        "--sign-with", str(ada), actor=REVIEWER,
    )  # fmt: skip
    assert code == Exit.NOT_APPROVED, output
    assert "a key of the version's author (ada@example.com); self-approval is refused" in output


def test_lowering_the_tier_in_slipway_toml_does_not_open_the_gate(tmp_path: Path, isolated: Path):
    isolated.write_text(list_toml({}))  # the hub says nothing about this spoke
    root = make_spoke(tmp_path / "spoke", "high")
    client, version = register_carded(root, tier="high")
    code, output = slipway(root, "promote", version, "--reason", "ship it", actor=AUTHOR)
    assert code == Exit.NOT_APPROVED, output

    # The reproduction: an uncommitted `sed -i 's/"high"/"low"/' slipway.toml`.
    toml = root / "slipway.toml"
    toml.write_text(toml.read_text().replace('risk_tier = "high"', 'risk_tier = "low"'))
    assert load_config(root).governance.risk_tier == "low"
    code, output = slipway(root, "promote", version, "--reason", "ship it", actor=AUTHOR)
    assert code == Exit.NOT_APPROVED, output
    assert "risk tier high needs an approval" in output
    assert not client.get_registered_model(MODEL).aliases


def test_the_hub_s_tier_is_a_floor_the_spoke_can_only_raise(tmp_path: Path, isolated: Path):
    isolated.write_text(list_toml({MODEL: ("high", [])}))
    root = make_spoke(tmp_path / "spoke", "low")
    assert load_config(root).governance.risk_tier == RiskTier.high  # hub floor applies
    client, version = register_carded(root, tier="low")
    assert effective_tier(load_config(root), client.get_model_version(MODEL, version)) == "high"
    code, output = slipway(root, "promote", version, "--reason", "ship it", actor=AUTHOR)
    assert code == Exit.NOT_APPROVED and "risk tier high needs an approval" in output
    # A spoke raising its tier above the hub's is honoured.
    isolated.write_text(list_toml({MODEL: ("low", [])}))
    toml = root / "slipway.toml"
    toml.write_text(toml.read_text().replace('risk_tier = "low"', 'risk_tier = "medium"'))
    assert load_config(root).governance.risk_tier == RiskTier.medium
    assert strictest("low", None, "medium", "nonsense") == RiskTier.medium


def test_an_unreadable_hub_list_refuses_with_what_to_do(tmp_path: Path, isolated: Path):
    isolated.write_text("[spokes.churn-guard]\nrisk_tier = 'extreme'\n")
    with pytest.raises(HubGovernanceError, match="risk_tier 'extreme' is not one of"):
        governance_for(MODEL)
    isolated.unlink()
    with pytest.raises(HubGovernanceError, match="unset it to use the one pinned"):
        governance_for(MODEL)


def test_the_packaged_list_is_the_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(HUB_LIST_ENV)
    pinned = governance_for("some-spoke")
    assert pinned.source == "slipway-pipelines:hub_governance.toml" and not pinned.listed
    assert pinned.risk_tier == RiskTier.low and pinned.approvers == ()


def test_an_approval_replayed_after_a_rejection_does_not_count(tmp_path: Path, isolated: Path):
    grace = keypair(tmp_path, REVIEWER)
    isolated.write_text(list_toml({MODEL: ("high", [(REVIEWER, public(grace))])}))
    root = make_spoke(tmp_path / "spoke", "high")
    client, version = register_carded(root, tier="high")
    approve = ["approve", version, "--by", REVIEWER, "--reason", "ok", "--sign-with", str(grace)]
    assert slipway(root, *approve, actor=REVIEWER)[0] == 0
    approved = {
        k: v for k, v in client.get_model_version(MODEL, version).tags.items() if "slipway." in k
    }
    code, _ = slipway(
        root, "reject", version, "--by", REVIEWER, "--reason", "drift found", actor=REVIEWER
    )
    assert code == 0
    # The reproduction: the earlier approval's tags (valid signature included) set again.
    for key, value in approved.items():
        client.set_model_version_tag(MODEL, version, key, value)
    assert client.get_model_version(MODEL, version).tags[TAG_APPROVAL_STATE] == "approved"
    code, output = slipway(root, "promote", version, "--reason", "ship it", actor=AUTHOR)
    assert code == Exit.NOT_APPROVED, output
    assert "was rejected" in output and "rejected by grace@example.com" in output
    assert not client.get_registered_model(MODEL).aliases
