"""Governance enforced, not labelled: risk tiers change what blocks a rollout.

Every test works on a spoke rendered from the template and a real MLflow registry (sqlite
under the spoke's .slipway/) holding real scikit-learn models trained on the spoke's own
breast-cancer data. Each safety check is shown firing and then letting a good version pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.governance.approvals import (
    TAG_APPROVAL_BY,
    TAG_APPROVAL_STATE,
    Decision,
    record_decision,
)
from slipway.pipelines.governance.blockers import release_blockers
from slipway.pipelines.governance.model_card import CARD_FILE, write_card
from slipway.pipelines.hub.catalog import catalog
from slipway.pipelines.registry import (
    CHALLENGER,
    CHAMPION,
    TAG_DATA_DIGEST,
    client,
    tracking_uri,
)
from tests import governance_support as support

AUTHOR, REVIEWER = support.AUTHOR, support.REVIEWER
make_spoke, register_version = support.make_spoke, support.register_version


@pytest.fixture(scope="module")
def rendered(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return support.render_spoke(template_repo, tmp_path_factory.mktemp("governed") / "spoke")


def governed(
    rendered: Path, tmp_path: Path, tier: str, **kwargs: Any
) -> tuple[Path, Any, Any, str]:
    """(spoke, its config, its registry client, one freshly registered version by AUTHOR)."""
    root = make_spoke(rendered, tmp_path, tier, **kwargs)
    return root, load_config(root), client(root), register_version(root, author=AUTHOR)


def cli(root: Path, *args: str, actor: str = REVIEWER) -> Any:
    return CliRunner().invoke(main, ["--project", str(root), *args], env={"SLIPWAY_ACTOR": actor})


@pytest.fixture(autouse=True)
def hub_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hub's governance list for this test; support.approver_key lists keys in it."""
    from slipway.pipelines.governance.hub_governance import HUB_LIST_ENV, list_toml

    path = tmp_path / "hub-governance.toml"
    path.write_text(list_toml({}))
    monkeypatch.setenv(HUB_LIST_ENV, str(path))
    return path


@pytest.fixture
def actor(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SLIPWAY_ACTOR", REVIEWER)
    return REVIEWER


def test_unapproved_high_risk_version_is_blocked_until_a_named_other_person_approves(
    rendered: Path, tmp_path: Path, actor: str
):
    root, config, registry, version = governed(
        rendered, tmp_path, "high", approvers=[REVIEWER, AUTHOR]
    )

    blockers = release_blockers(root, config, registry, version)
    assert len(blockers) == 2, blockers  # no approval, no card
    approval = next(b for b in blockers if "approval" in b)
    assert f"slipway approve {version} --by NAME --reason TEXT" in approval
    assert REVIEWER in approval and AUTHOR not in approval.split("may run")[0].split("one of")[1]
    assert f"slipway card {version}" in next(b for b in blockers if "card" in b)

    # Self-approval is refused, even though the author is a listed approver; nothing recorded.
    refused = cli(root, "approve", version, "--by", AUTHOR, "--reason", "looks fine to me")
    assert refused.exit_code == Exit.NOT_APPROVED, refused.output
    assert "self-approval is refused" in refused.output
    assert TAG_APPROVAL_STATE not in registry.get_model_version(config.model_name, version).tags
    assert audit.read(root) == []

    # The author cannot record someone else's approval on their behalf either.
    proxy = cli(root, "approve", version, "--by", REVIEWER, "--reason", "ok", actor=AUTHOR.upper())
    assert proxy.exit_code == Exit.NOT_APPROVED and "on their behalf" in proxy.output

    # Someone outside [governance] approvers may not approve.
    outsider = cli(root, "approve", version, "--by", "mallory@example.com", "--reason", "ok")
    assert outsider.exit_code == Exit.NOT_APPROVED and "not in [governance] approvers" in (
        outsider.output
    )

    key = support.approver_key(root, REVIEWER)
    approved = cli(
        root,
        "approve",
        version,
        "--by",
        REVIEWER,
        "--reason",
        "bias review done",
        "--sign-with",
        str(key),
    )
    assert approved.exit_code == 0, approved.output
    assert "still blocking a rollout" in approved.output  # the card is still missing
    assert [b for b in release_blockers(root, config, registry, version) if "approval" in b] == []

    carded = cli(root, "card", version)
    assert carded.exit_code == 0, carded.output
    assert release_blockers(root, config, registry, version) == []
    entry = next(e for e in audit.read(root) if e["action"] == "approve")
    assert (entry["version"], entry["actor"], entry["details"]["by"], entry["reason"]) == (
        version,
        REVIEWER,
        REVIEWER,
        "bias review done",
    )


def test_a_rejection_blocks_and_a_later_approval_lifts_it(
    rendered: Path, tmp_path: Path, actor: str
):
    root, config, registry, version = governed(rendered, tmp_path, "high")
    write_card(root, config, registry, registry.get_model_version(config.model_name, version))

    rejected = cli(root, "reject", version, "--by", REVIEWER, "--reason", "recall too low")
    assert rejected.exit_code == 0, rejected.output
    [blocker] = release_blockers(root, config, registry, version)
    assert "was rejected by grace@example.com (recall too low)" in blocker

    record_decision(
        root,
        config,
        registry,
        version,
        Decision.approved,
        by=REVIEWER,
        reason="recall re-measured on the full hold-out",
        signing_key=support.approver_key(root, REVIEWER),
    )
    assert release_blockers(root, config, registry, version) == []
    assert [e["action"] for e in audit.read(root)] == ["card", "reject", "approve"]

    # An approval edited by hand in the registry (here: to name the author) does not count.
    registry.set_model_version_tag(config.model_name, version, TAG_APPROVAL_BY, AUTHOR)
    [forged] = release_blockers(root, config, registry, version)
    assert "does not count" in forged and "self-approval is refused" in forged


def test_unknown_version_is_a_usage_error_naming_the_versions_that_exist(
    rendered: Path, tmp_path: Path, actor: str
):
    root = make_spoke(rendered, tmp_path, "high")
    version = register_version(root, author=AUTHOR)
    result = cli(root, "approve", "42", "--by", REVIEWER, "--reason", "ok")
    assert result.exit_code == Exit.USAGE
    assert f"has no version 42; registered versions: {version}" in result.output
    assert release_blockers(root, load_config(root), client(root), "42") == [
        f"model 'tumour-triage' has no version 42; registered versions: {version}"
    ]


def test_medium_risk_version_without_a_current_card_cannot_be_promoted(
    rendered: Path, tmp_path: Path, actor: str
):
    root, config, registry, version = governed(rendered, tmp_path, "medium")

    [blocker] = release_blockers(root, config, registry, version)
    assert "needs a current model card" in blocker and f"slipway card {version}" in blocker
    assert "approval" not in blocker  # medium does not need one

    write_card(root, config, registry, registry.get_model_version(config.model_name, version))
    assert release_blockers(root, config, registry, version) == []

    # The card goes stale when what it states changes: here a limitation is declared.
    toml = root / "slipway.toml"
    toml.write_text(
        toml.read_text().replace(
            "limitations = []", 'limitations = ["Not validated on biopsies from under-18s"]'
        )
    )
    changed = load_config(root)
    [stale] = release_blockers(root, changed, registry, version)
    assert "out of date: slipway.toml changed" in stale

    write_card(root, changed, registry, registry.get_model_version(config.model_name, version))
    assert release_blockers(root, changed, registry, version) == []

    # ... or when the version's registered facts change behind the card's back.
    registry.set_model_version_tag(config.model_name, version, TAG_DATA_DIGEST, "2" * 64)
    [moved] = release_blockers(root, changed, registry, version)
    assert "lineage tags or metrics changed" in moved


def test_low_risk_needs_neither_card_nor_approval(rendered: Path, tmp_path: Path, actor: str):
    root = make_spoke(rendered, tmp_path, "low")
    version = register_version(root, author=AUTHOR)
    assert release_blockers(root, load_config(root), client(root), version) == []


def test_card_states_registry_facts_and_lists_its_gaps(rendered: Path, tmp_path: Path, actor: str):
    root, config, registry, version = governed(rendered, tmp_path, "medium")

    result = cli(root, "card")  # no VERSION: the newest one
    assert result.exit_code == 0, result.output
    text = (root / CARD_FILE).read_text()
    assert f"# Model card: {config.project.name}, version {version}" in text
    assert config.project.contact in text and config.kpi.name in text
    assert "| mean_radius | float | 0.0 | 57.0 | no |" in text
    run_id = registry.get_model_version(config.model_name, version).run_id
    auc = registry.get_run(run_id).data.metrics["test_roc_auc"]
    assert f"| roc_auc | {auc:.4f} | n/a | n/a |" in text
    # Gaps are listed, not hidden: the template declares no limitations, this run logged no
    # confusion matrix, and there is no champion yet.
    gaps = text.split("## Gaps")[1]
    assert "no limitations declared" in gaps
    assert "plots/confusion_matrix.png was not logged" in gaps
    assert "no comparison with a champion" in gaps
    assert "no limitations declared" in result.output
    assert (root / "docs/model_card/roc_curve.png").stat().st_size > 0
    logged = [a.path for a in registry.list_artifacts(run_id, "model_card")]
    assert logged == ["model_card/model_card.md"]


def test_catalog_shows_every_model_and_its_governance_state(
    rendered: Path, tmp_path: Path, actor: str
):
    import json

    root = make_spoke(rendered, tmp_path, "high")
    config = load_config(root)
    registry = client(root)
    first = register_version(root, author=AUTHOR)
    second = register_version(root, author=AUTHOR, c=0.5)
    registry.set_registered_model_alias(config.model_name, CHAMPION, first)
    registry.set_registered_model_alias(config.model_name, CHALLENGER, second)
    registry.set_model_version_tag(
        config.model_name, second, "slipway.rollout.outcome", "rolled_back"
    )
    registry.set_model_version_tag(
        config.model_name, second, "slipway.rollout.reason", "error rate 0.2 > 0.005"
    )
    # A second team's model in the same registry, never carded: the catalog says so.
    registry.create_registered_model("churn-radar")

    [unreviewed, ours] = catalog(registry, config)
    assert (unreviewed.model, unreviewed.champion_version, unreviewed.card_current) == (
        "churn-radar",
        None,
        None,
    )
    assert (ours.owner, ours.risk_tier, ours.champion_version, ours.versions) == (
        config.project.contact,
        "high",
        first,
        2,
    )
    assert (ours.last_rollout_version, ours.last_rollout_outcome) == (second, "rolled_back")
    assert ours.approval == "none" and ours.card_current is False
    assert (ours.challenger_version, ours.challenger_approval) == (second, "none")

    key = support.approver_key(root, REVIEWER)
    record_decision(
        root, config, registry, first, Decision.approved, by=REVIEWER, reason="ok", signing_key=key
    )
    record_decision(root, config, registry, second, Decision.rejected, by=REVIEWER, reason="no")
    write_card(root, config, registry, registry.get_model_version(config.model_name, first))
    result = cli(root, "catalog", "--json")
    assert result.exit_code == 0, result.output
    listed = {m["model"]: m for m in json.loads(result.output)["models"]}
    assert listed["tumour-triage"]["approval"] == f"approved by {REVIEWER}"
    assert listed["tumour-triage"]["card_current"] is True
    assert listed["tumour-triage"]["challenger_approval"] == f"rejected by {REVIEWER}"

    # The hub's view without the spoke's checkout: from the model tags the card recorded.
    hub = CliRunner().invoke(main, ["catalog"], env={"MLFLOW_TRACKING_URI": tracking_uri(root)})
    assert hub.exit_code == 0, hub.output
    row = next(line for line in hub.output.splitlines() if line.startswith("tumour-triage"))
    assert config.project.contact in row and "current" in row and "rolled_back" in row


def test_slipway_deploy_refuses_an_unapproved_high_risk_version(
    rendered: Path, tmp_path: Path, actor: str
):
    from slipway.pipelines.rollout import state as rollout_state

    root, config, registry, version = governed(rendered, tmp_path, "high")
    nowhere = "http://127.0.0.1:9"  # governance is judged before the gateway is contacted
    refused = cli(root, "deploy", "--version", version, "--url", nowhere)
    assert refused.exit_code == Exit.NOT_APPROVED, refused.output
    assert f"slipway approve {version} --by NAME --reason TEXT" in refused.output
    assert rollout_state.latest(root) is None
    assert registry.get_registered_model(config.model_name).aliases == {}

    key = str(support.approver_key(root, REVIEWER))
    approved = cli(
        root, "approve", version, "--by", REVIEWER, "--reason", "reviewed", "--sign-with", key
    )
    assert approved.exit_code == 0, approved.output
    assert cli(root, "card", version).exit_code == 0
    allowed = cli(root, "deploy", "--version", version, "--url", nowhere)
    assert allowed.exit_code == Exit.UNREACHABLE, allowed.output  # past governance now


def test_slipway_promote_refuses_a_medium_risk_version_without_a_current_card(
    rendered: Path, tmp_path: Path, actor: str
):
    root, config, registry, version = governed(rendered, tmp_path, "medium")
    nowhere = "http://127.0.0.1:9"
    typo = cli(root, "promote", "99", "--reason", "hotfix", "--url", nowhere)
    assert typo.exit_code == Exit.ERROR, typo.output  # a typo, not a governance refusal
    assert "has no version '99'" in typo.output
    refused = cli(root, "promote", version, "--reason", "hotfix", "--url", nowhere)
    assert refused.exit_code == Exit.NOT_APPROVED, refused.output
    assert "needs a current model card" in refused.output
    assert registry.get_registered_model(config.model_name).aliases == {}

    assert cli(root, "card", version).exit_code == 0
    promoted = cli(root, "promote", version, "--reason", "hotfix", "--url", nowhere)
    assert promoted.exit_code == 0, promoted.output
    assert registry.get_registered_model(config.model_name).aliases == {CHAMPION: int(version)}
