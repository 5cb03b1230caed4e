"""Approvals prove who approved: SSH signatures checked against the spoke's allowed_signers.

Real keys made by `ssh-keygen -t ed25519`, a real embedded MLflow registry (sqlite) and the
deploy pipeline's real approval step. Each forgery the security review found, or could
think of, is tried and shown refused; then a valid reviewer's signed approval opens the gate.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.governance.approvals import (
    TAG_APPROVAL_BY,
    TAG_APPROVAL_SIGNATURE,
    TAG_APPROVAL_STATE,
    ApprovalError,
    Decision,
    approval_of,
    record_decision,
    statement_of,
)
from slipway.pipelines.governance.blockers import release_blockers
from slipway.pipelines.governance.hub_governance import HUB_LIST_ENV, governance_for, list_toml
from slipway.pipelines.governance.model_card import write_card
from slipway.pipelines.governance.signatures import NAMESPACE
from slipway.pipelines.rollout.pipeline import DeployPipelineError, approval_gate
from tests.governance_support import AUTHOR, OUTSIDER, REVIEWER
from tests.governance_support import register_carded as new_version
from tests.hub import VALID_SPOKE_TOML as VALID

pytestmark = pytest.mark.usefixtures("embedded_registry_only")


@pytest.fixture(autouse=True)
def hub_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hub's governance list for this test (the platform's file, outside every spoke)."""
    path = tmp_path / "hub-governance.toml"
    path.write_text(list_toml({}))
    monkeypatch.setenv(HUB_LIST_ENV, str(path))
    return path


def listed(keys: dict[str, Path], *people: str) -> str:
    """allowed_signers lines naming `people`, each with their own public key."""
    return "".join(f"{p} {keys[p].with_suffix('.pub').read_text().strip()}\n" for p in people)


def hub_lists(root: Path, keys: dict[str, Path], *people: str) -> None:
    """The hub's governance list (next to the spoke) names `people` as the spoke's approvers."""
    pairs = [(p, keys[p].with_suffix(".pub").read_text()) for p in people]
    (root.parent / "hub-governance.toml").write_text(list_toml({"churn-guard": ("low", pairs)}))


def spoke(root: Path, keys: dict[str, Path], tier: str = "high") -> Path:
    """A spoke whose approvers in the hub's list are the author and the reviewer, not the
    outsider (its own approvers/allowed_signers says the same, and is not read)."""
    governance = f'[governance]\nrisk_tier = "{tier}"\n\n[budget]'
    root.mkdir()
    (root / "slipway.toml").write_text(VALID.replace("[budget]", governance))
    hub_lists(root, keys, AUTHOR, REVIEWER)
    (root / "approvers").mkdir()
    (root / "approvers" / "allowed_signers").write_text(
        "# the approvers' keys\n" + listed(keys, AUTHOR, REVIEWER)
    )
    return root


def approval_blocker(root: Path, client: MlflowClient, version: str) -> str:
    config = load_config(root)
    [blocker] = [b for b in release_blockers(root, config, client, version) if "approv" in b]
    return blocker


def decide(root: Path, client: MlflowClient, version: str, **kwargs) -> None:
    kwargs.setdefault("reason", "bias review done on the hold-out")
    decision = kwargs.pop("decision", Decision.approved)
    record_decision(root, load_config(root), client, version, decision, **kwargs)


def tags_of(root: Path, client: MlflowClient, version: str) -> dict[str, str]:
    return dict(client.get_model_version(load_config(root).model_name, version).tags)


def copy_approval(root: Path, client: MlflowClient, src: dict[str, str], version: str) -> None:
    """Write another version's approval tags onto `version`, as a registry writer could."""
    model = load_config(root).model_name
    for key, value in src.items():
        if key.startswith("slipway.approval."):
            client.set_model_version_tag(model, version, key, value)


def test_the_reported_forgery_a_typed_name_no_longer_opens_the_gate(
    tmp_path: Path, keys: dict[str, Path]
):
    # Reproduction: with the author refused, `SLIPWAY_ACTOR=bob slipway approve 1 --by bob`
    # opened the high-tier gate. Unsigned, it is now refused and nothing is recorded.
    root = spoke(tmp_path / "spoke", keys)
    client, version = new_version(root)
    forged = CliRunner().invoke(
        main,
        ["--project", str(root), "approve", version, "--by", "bob@x.io", "--reason", "ok"],
        env={"SLIPWAY_ACTOR": "bob@x.io"},
    )
    assert forged.exit_code == Exit.NOT_APPROVED, forged.output
    assert "bob@x.io is not among the hub's approvers for churn-guard" in forged.output
    assert TAG_APPROVAL_STATE not in tags_of(root, client, version)
    assert [e["action"] for e in audit.read(root)] == ["card"]
    with pytest.raises(DeployPipelineError, match="needs an approval"):
        approval_gate(str(root), version)

    # Written straight into the registry instead (what the old command did), it does not count.
    model = load_config(root).model_name
    client.set_model_version_tag(model, version, TAG_APPROVAL_BY, REVIEWER)
    client.set_model_version_tag(model, version, TAG_APPROVAL_STATE, "approved")
    blocker = approval_blocker(root, client, version)
    assert "does not count: it is not signed" in blocker
    assert f"slipway approve {version} --by NAME --reason TEXT --sign-with KEY" in blocker
    # Nor does the model card vouch for it.
    card = write_card(root, load_config(root), client, client.get_model_version(model, version))
    assert any("does not count: it is not signed" in gap for gap in card.gaps), card.gaps
    assert "(does not count: it is not signed" in card.path.read_text()


def test_a_key_not_listed_for_the_name_is_refused(tmp_path: Path, keys: dict[str, Path]):
    root = spoke(tmp_path / "spoke", keys)
    client, version = new_version(root)
    # The outsider's key claiming the reviewer's name: refused before anything is written.
    with pytest.raises(ApprovalError, match=re.escape("does not verify as grace@example.com")):
        decide(root, client, version, by=REVIEWER, signing_key=keys[OUTSIDER])
    assert TAG_APPROVAL_STATE not in tags_of(root, client, version)
    # The author's own (listed) key claiming the reviewer's name: refused the same way.
    with pytest.raises(ApprovalError, match="a key of the version's author"):
        decide(root, client, version, by=REVIEWER, signing_key=keys[AUTHOR])
    assert TAG_APPROVAL_STATE not in tags_of(root, client, version)
    # And a signature by the wrong key pasted into the registry does not count at the gate.
    # The outsider signs "grace approved" elsewhere, under a governance list of their own
    # that lists their key as grace, and copies the tags over.
    mallory = tmp_path / "mallory" / "spoke"
    mallory.parent.mkdir()
    real_list = os.environ[HUB_LIST_ENV]
    os.environ[HUB_LIST_ENV] = str(mallory.parent / "hub-governance.toml")
    try:
        spoke(mallory, keys)
        (mallory.parent / "hub-governance.toml").write_text(
            list_toml(
                {"churn-guard": ("low", [(REVIEWER, listed(keys, OUTSIDER).split(" ", 1)[1])])}
            )
        )
        other_client, other_version = new_version(mallory)
        decide(mallory, other_client, other_version, by=REVIEWER, signing_key=keys[OUTSIDER])
    finally:
        os.environ[HUB_LIST_ENV] = real_list
    copy_approval(root, client, tags_of(mallory, other_client, other_version), version)
    blocker = approval_blocker(root, client, version)
    assert "does not count" in blocker and "does not verify as grace@example.com" in blocker


def test_a_signer_not_in_allowed_signers_is_refused(tmp_path: Path, keys: dict[str, Path]):
    root = spoke(tmp_path / "spoke", keys)
    client, version = new_version(root)
    with pytest.raises(
        ApprovalError, match=re.escape("mallory@example.com is not among the hub's approvers")
    ):
        decide(root, client, version, by=OUTSIDER, signing_key=keys[OUTSIDER])
    assert TAG_APPROVAL_STATE not in tags_of(root, client, version)


def test_the_author_signing_their_own_version_is_refused(tmp_path: Path, keys: dict[str, Path]):
    root = spoke(tmp_path / "spoke", keys)
    client, version = new_version(root)
    # The author's key is listed (they approve other people's versions), and it is theirs:
    # the proven identity is the author, so it is self-approval.
    with pytest.raises(ApprovalError, match="self-approval is refused"):
        decide(root, client, version, by=AUTHOR, signing_key=keys[AUTHOR])
    assert TAG_APPROVAL_STATE not in tags_of(root, client, version)


def test_a_signature_over_another_version_or_decision_is_refused(
    tmp_path: Path, keys: dict[str, Path]
):
    root = spoke(tmp_path / "spoke", keys)
    client, first = new_version(root)
    _, second = new_version(root)
    decide(root, client, first, by=REVIEWER, signing_key=keys[REVIEWER])
    assert approval_gate(str(root), first) == "approved"

    # The reviewer's valid approval of version 1, copied onto version 2.
    copy_approval(root, client, tags_of(root, client, first), second)
    assert "does not verify as grace@example.com" in approval_blocker(root, client, second)

    # A signed rejection with its state flipped to "approved".
    decide(
        root,
        client,
        second,
        by=REVIEWER,
        signing_key=keys[REVIEWER],
        decision=Decision.rejected,
        reason="recall too low",
    )
    model = load_config(root).model_name
    client.set_model_version_tag(model, second, TAG_APPROVAL_STATE, "approved")
    flipped = approval_blocker(root, client, second)
    assert "was rejected" in flipped and "latest decision on version 2 is seq" in flipped

    # The approval's reason edited after signing.
    client.set_model_version_tag(model, first, "slipway.approval.reason", "no review needed")
    assert "does not verify" in approval_blocker(root, client, first)


def test_a_valid_reviewer_opens_the_gate_and_removing_their_key_closes_it(
    tmp_path: Path, keys: dict[str, Path]
):
    root = spoke(tmp_path / "spoke", keys)
    client, version = new_version(root)
    with pytest.raises(DeployPipelineError, match="needs an approval"):
        approval_gate(str(root), version)

    approved = CliRunner().invoke(
        main,
        [
            "--project",
            str(root),
            "approve",
            version,
            "--by",
            REVIEWER,
            "--reason",
            "bias review done",
            "--sign-with",
            str(keys[REVIEWER]),
        ],
        env={"SLIPWAY_ACTOR": REVIEWER},
    )
    assert approved.exit_code == 0, approved.output
    assert "approved by grace@example.com, signed (bias review done)" in approved.output
    assert "nothing blocks a rollout" in approved.output
    assert approval_gate(str(root), version) == "approved"
    [entry] = [e for e in audit.read(root) if e["action"] == "approve"]
    assert entry["details"]["signed"] is True

    # Anyone can check the approval offline, with the file and ssh-keygen alone, as
    # docs/spoke/governance.md shows.
    tags = tags_of(root, client, version)
    assert tags[TAG_APPROVAL_SIGNATURE].startswith("-----BEGIN SSH SIGNATURE-----")
    config = load_config(root)
    mv = client.get_model_version(config.model_name, version)
    (tmp_path / "approval.sig").write_text(tags[TAG_APPROVAL_SIGNATURE])
    statement = statement_of(config.model_name, mv, approval_of(mv)).canonical()
    assert NAMESPACE == "slipway-approval"
    signers = tmp_path / "hub_allowed_signers"
    signers.write_text(governance_for(config.model_name).allowed_signers())
    offline = [
        "ssh-keygen", "-Y", "verify", "-f", str(signers),
        "-I", REVIEWER, "-n", "slipway-approval", "-s", str(tmp_path / "approval.sig"),
    ]  # fmt: skip
    assert subprocess.run(offline, input=statement, capture_output=True).returncode == 0
    tampered = statement.replace(b"bias review done", b"no review at all")
    assert subprocess.run(offline, input=tampered, capture_output=True).returncode != 0

    # The key withdrawn from the hub's list: its approvals stop counting at once.
    hub_lists(root, keys, AUTHOR)
    with pytest.raises(
        DeployPipelineError, match=re.escape("grace@example.com is not among the hub's")
    ):
        approval_gate(str(root), version)


def test_a_low_risk_spoke_needs_no_keys_and_unsigned_rejections_still_block(
    tmp_path: Path, keys: dict[str, Path]
):
    root = spoke(tmp_path / "spoke", keys, tier="low")
    (root / "approvers" / "allowed_signers").unlink()
    client, version = new_version(root)
    assert approval_gate(str(root), version) == "approved"
    decide(root, client, version, by=REVIEWER)  # informational, unsigned: allowed here
    assert approval_gate(str(root), version) == "approved"

    high = spoke(tmp_path / "high", keys)
    high_client, high_version = new_version(high)
    decide(high, high_client, high_version, by=REVIEWER, decision=Decision.rejected)
    assert "was rejected by grace@example.com" in approval_blocker(high, high_client, high_version)
