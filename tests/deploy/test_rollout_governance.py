"""Governance is asked again during a rollout, and a rollback never restores a rejected version.

Real gateway on 127.0.0.1, real registry, real load. The interleaving is forced, not timed:
the rejection is recorded from inside the controller's own event callback, at the moment the
named step starts, so it lands during the canary every time.
"""

from __future__ import annotations

import re

import httpx
import pytest

from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.governance.approvals import Decision, record_decision
from slipway.pipelines.rollout import state as rollout_state
from slipway.pipelines.rollout.controller import Controller, plan_for
from slipway.pipelines.serving.client import GatewayClient
from slipway.pipelines.spoke import Spoke as SpokeContext

from .conftest import GatewayProcess, Load, Spoke, slipway

REVIEWER = "reviewer-of-rollouts@example.com"
AUTHOR = "ada@example.com"


def aliases(spoke: Spoke) -> dict[str, str | None]:
    client = registry.client(spoke.root)
    found = {
        alias: registry.version_by_alias(client, spoke.config.model_name, alias)
        for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS)
    }
    return {alias: None if v is None else str(v.version) for alias, v in found.items()}


def reject(spoke: Spoke, version: str, reason: str) -> None:
    record_decision(
        spoke.root,
        spoke.config,
        registry.client(spoke.root),
        version,
        Decision.rejected,
        by=REVIEWER,
        reason=reason,
    )


@pytest.fixture(autouse=True)
def reviewer(monkeypatch: pytest.MonkeyPatch, spoke: Spoke) -> None:
    """The reviewer acts; both versions carry an author, as `slipway train` records one."""
    monkeypatch.setenv("SLIPWAY_ACTOR", REVIEWER)
    # Guardrails are not under test here: a latency limit this machine's shared cores can
    # trip would end the rollout for a reason other than the one this file proves.
    toml = spoke.root / "slipway.toml"
    text = re.sub(
        r"(?m)^max_p95_latency_ratio = .*$", "max_p95_latency_ratio = 100", toml.read_text()
    )
    toml.write_text(text)
    client = registry.client(spoke.root)
    for version in ("1", "2"):
        client.set_model_version_tag(spoke.config.model_name, version, registry.TAG_AUTHOR, AUTHOR)


@pytest.mark.parametrize("lands_at", ["step 1/3", "step 3/3"])
def test_a_rejection_during_the_canary_stops_the_promotion(
    spoke: Spoke, gateway: GatewayProcess, lands_at: str
):
    # Reproduction: governance was checked only when the rollout started, so `slipway
    # reject 2` during the canary did not stop version 2 being promoted.
    landed = []

    def echo(message: str) -> None:
        print(message)
        if lands_at in message and not landed:
            reject(spoke, "2", "bias found in the subgroup review")
            landed.append(message)

    config = load_config(spoke.root)
    assert config.rollout.guardrails.max_p95_latency_ratio == 100
    client = GatewayClient(gateway.url)
    controller = Controller(
        SpokeContext.open(spoke.root, config), client, plan_for(config, step_seconds=1), echo=echo
    )
    try:
        with Load(gateway.url, spoke, concurrency=20, rate=200.0) as load:
            outcome = controller.deploy("2")
    finally:
        client.close()

    assert landed, f"the rollout never reached {lands_at}"
    assert outcome.status == rollout_state.ROLLED_BACK, outcome
    assert outcome.reason.startswith("governance: version 2 was rejected by " + REVIEWER)
    assert aliases(spoke) == {"champion": "1", "challenger": None, "previous": None}
    assert [e["version"] for e in audit.read(spoke.root) if e["action"] == "promote"] == ["1"]
    mv = registry.client(spoke.root).get_model_version(spoke.config.model_name, "2")
    assert mv.tags[registry.TAG_ROLLOUT_OUTCOME] == "rolled_back"
    state = httpx.get(f"{gateway.url}/admin/state", timeout=10).json()
    assert (state["champion"], state["challenger"], state["weight"]) == ("1", None, 0)
    # Stopped at the first boundary after the rejection: no step after it was entered.
    phases = {r["phase"] for r in rollout_state.readings(spoke.root, outcome.rollout_id)}
    assert phases == ({"10%"} if lands_at == "step 1/3" else {"10%", "32%", "100%"})
    assert load.report.failed == 0


def test_a_rejection_landing_after_the_last_check_reverts_the_promotion(
    spoke: Spoke, gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch
):
    # Reproduction: a `slipway reject` that landed after the controller's last governance
    # check and before the alias moved was lost: promoted, exit 0. The rejection is forced
    # into exactly that window: recorded as release.promote starts moving the aliases.
    from slipway.pipelines.rollout import release

    moving = release.promote

    def promote_after_a_rejection(*args, **kwargs):
        if args[3] == "2":
            reject(spoke, "2", "bias found as it was promoted")
        return moving(*args, **kwargs)

    monkeypatch.setattr(release, "promote", promote_after_a_rejection)
    config = load_config(spoke.root)
    client = GatewayClient(gateway.url)
    controller = Controller(
        SpokeContext.open(spoke.root, config), client, plan_for(config, step_seconds=1)
    )
    try:
        with Load(gateway.url, spoke, concurrency=10, rate=100.0):
            outcome = controller.deploy("2")
    finally:
        client.close()
    assert outcome.status == rollout_state.ROLLED_BACK, outcome
    assert "version 2 was rejected by " + REVIEWER in outcome.reason
    assert aliases(spoke)["champion"] == "1"
    actions = [(e["action"], e["version"]) for e in audit.read(spoke.root)]
    assert actions[-3:] == [("reject", "2"), ("promote", "2"), ("rollback", "2")], actions
    state = httpx.get(f"{gateway.url}/admin/state", timeout=10).json()
    assert state["champion"] == "1"


def test_slipway_reject_closes_the_version_s_open_rollout_at_once(
    spoke: Spoke, gateway: GatewayProcess
):
    """`slipway reject` is a compare-and-set on the open rollout: it marks it rolling back
    itself, so the driving controller's next change fails whatever it was about to do."""
    said: list[str] = []

    def echo(message: str) -> None:
        if "step 1/3" in message and not said:
            done = slipway(
                spoke.root, "reject", "2", "--by", REVIEWER, "--reason", "found in review",
                "--url", gateway.url,
            )  # fmt: skip
            said.append(done.stdout + done.stderr)
            assert done.returncode == 0, said

    config = load_config(spoke.root)
    client = GatewayClient(gateway.url)
    controller = Controller(
        SpokeContext.open(spoke.root, config), client, plan_for(config, step_seconds=1), echo=echo
    )
    try:
        with Load(gateway.url, spoke, concurrency=10, rate=100.0):
            outcome = controller.deploy("2")
    finally:
        client.close()
    assert said and "closed: rolled_back" in said[0], said
    assert outcome.status == rollout_state.ROLLED_BACK, outcome
    assert "version 2 was rejected by " + REVIEWER in outcome.reason
    assert aliases(spoke)["champion"] == "1"


def test_a_promotion_the_audit_trail_refuses_is_not_made_and_not_left_promoting(
    spoke: Spoke, gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch
):
    # Reproduction: with a tampered trail, `slipway deploy` moved the champion, then exited 1
    # and left the rollout `promoting` at 100% with no audit entry. The trail's refusal is
    # forced at the promotion's entry (what a row written past the head does).
    config = load_config(spoke.root)
    context = SpokeContext.open(spoke.root, config)
    appending = context.audit.append

    def refuse_the_promotion(new: audit.NewEntry) -> dict:
        if new.action == "promote":
            raise audit.AuditTrailError("row seq 9 sits past the trail's head (forced here)")
        return appending(new)

    monkeypatch.setattr(context.audit, "append", refuse_the_promotion)
    client = GatewayClient(gateway.url)
    controller = Controller(context, client, plan_for(config, step_seconds=1))
    try:
        with (
            Load(gateway.url, spoke, concurrency=10, rate=100.0),
            pytest.raises(audit.AuditTrailError, match="row seq 9"),
        ):
            controller.deploy("2")
    finally:
        client.close()
    row = rollout_state.latest(spoke.root)
    assert row is not None and row.status == rollout_state.ROLLED_BACK, row
    assert "the audit trail refused the promotion" in (row.reason or "")
    assert aliases(spoke)["champion"] == "1"
    assert "promote" not in [e["action"] for e in audit.read(spoke.root) if e["version"] == "2"]
    state = httpx.get(f"{gateway.url}/admin/state", timeout=10).json()
    assert (state["champion"], state["weight"]) == ("1", 0)


def test_rollback_with_no_rollout_open_refuses_to_restore_a_rejected_previous(spoke: Spoke):
    nowhere = "http://127.0.0.1:9"  # refused before any gateway is contacted
    slipway(spoke.root, "promote", "2", "--reason", "hotfix", "--url", nowhere, check=True)
    assert aliases(spoke) == {"champion": "2", "challenger": None, "previous": "1"}
    reject(spoke, "1", "leaks a protected attribute")

    # Reproduction: `slipway rollback` restored `previous` even though it was rejected since.
    refused = slipway(spoke.root, "rollback", "--url", nowhere, "--reason", "bad KPI")
    assert refused.returncode == Exit.NOT_APPROVED, refused.stdout + refused.stderr
    said = " ".join(refused.stderr.split())
    # The rejection is named by its audit entry (the trail, not a tag, is the record).
    assert (
        f"`previous` is version 1, and it was rejected by {REVIEWER} (leaks a protected "
        "attribute; audit seq "
    ) in said
    assert (
        "so restoring it would serve a rejected model; nothing was changed (champion stays 2)"
        in said
    )
    assert aliases(spoke) == {"champion": "2", "challenger": None, "previous": "1"}
    assert [e["action"] for e in audit.read(spoke.root)][-1] == "reject"
