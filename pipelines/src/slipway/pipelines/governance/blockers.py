"""May this version be rolled out now? The one question every rollout asks governance.

The answer is driven by the tier table in tiers.py, never by tier names: a tier that needs
approval needs a recorded approval by a named approver who is not the version's author,
proven by that approver's SSH signature (checked here, every time, against
the hub's governance list: a key removed from it stops counting at once); a tier that needs a
model card needs one generated for exactly this version from the current slipway.toml. Each
blocker says who may act and the exact command to run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines._compat import spoke_or_root_and_config
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.approvals import (
    ApprovalError,
    Decision,
    approval_of,
    approver_problem,
    author_of,
    effective_tier,
    get_version,
    proof_problem,
)
from slipway.pipelines.governance.hub_governance import governance_for
from slipway.pipelines.governance.model_card import card_problem
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.governance.trail_checkpoint import decision_problem, latest_decision

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.spoke import Spoke


class GovernanceRefusal(SlipwayError):
    """Governance refuses this version now; the message lists every blocker and who may act."""

    exit_code = Exit.NOT_APPROVED


@spoke_or_root_and_config
def require_release(
    spoke: Spoke,
    client: MlflowClient,
    version: str,
    *,
    action: str,
    error: type[SlipwayError] = GovernanceRefusal,
) -> None:
    """Raise `error` (exit 7) naming every blocker when `version` may not be released now.

    `action` says what was refused ("rollout", "promotion", ...), so every command words the
    refusal the same way."""
    blockers = release_blockers(spoke, client, version)
    if blockers:
        raise error(
            f"{action} refused by governance:\n  - " + "\n  - ".join(blockers),
            exit_code=Exit.NOT_APPROVED,
        )


def who_may_approve(config: SpokeConfig, author: str) -> str:
    named = config.governance.approvers or list(governance_for(config.model_name).names())
    others = [name for name in named if name.strip().casefold() != author.casefold()]
    if others:
        return "one of " + ", ".join(others)
    return f"anyone but the author ({author or 'unknown'})"


@spoke_or_root_and_config
def release_blockers(spoke: Spoke, client: MlflowClient, version: str) -> list[str]:
    """Every reason `version` may not be rolled out now; an empty list means it may proceed.

    The card must be current with the spoke's slipway.toml (`spoke.config`).
    """
    config = spoke.config
    try:
        model_version = get_version(client, config.model_name, str(version))
    except ApprovalError as exc:
        return [str(exc)]
    # The hub's tier, the version's registered tier and slipway.toml: the strictest wins, so
    # an edit to slipway.toml can tighten a gate and never open one.
    tier = effective_tier(config, model_version)
    rules = rules_for(tier)
    blockers: list[str] = []
    author = author_of(model_version)
    approve = f"slipway approve {version} --by NAME --reason TEXT --sign-with KEY"
    who = who_may_approve(config, author)
    decision = approval_of(model_version)
    # The tags count only as the trail's latest decision on this version: a rejection
    # recorded in the trail stops the release even if the tags were set back to an approval
    # (replayed), and an approval whose audit entry is not the latest decision does not count.
    entries = spoke.audit.read()
    tags_state = decision.decision.value if decision is not None else None
    mismatch = decision_problem(entries, model_version, tags_state)
    latest = latest_decision(entries, config.model_name, str(version))
    # A recorded rejection stops a release in every tier: a tier that promotes without a
    # human decision still listens to a human who says no.
    if mismatch and latest is not None and latest.get("action") == "reject":
        blockers.append(
            f"version {version} was rejected ({mismatch}); train a new version, or after a "
            f"new review {who} may run `{approve}`"
        )
    elif decision is not None and decision.decision is Decision.rejected:
        blockers.append(
            f"version {version} was rejected by {decision.by} ({decision.reason}); "
            f"train a new version, or after a new review {who} may run `{approve}`"
        )
    # A tier without automatic promotion needs a person's decision: that decision is the
    # approval, so both flags lead here.
    elif rules.approval_required or not rules.automatic_promotion:
        if decision is None:
            blockers.append(
                f"risk tier {tier} needs an approval of version {version} by a named approver "
                f"who is not its author; {who} may run `{approve}`"
            )
        elif problem := (
            approver_problem(config, model_version, decision.by)
            or proof_problem(config, model_version, decision)
            or mismatch
        ):
            blockers.append(
                f"the approval of version {version} does not count: {problem}; "
                f"{who} may run `{approve}`"
            )
    if rules.card_required and (problem := card_problem(config, client, model_version)):
        blockers.append(
            f"risk tier {tier} needs a current model card before promotion: {problem}; "
            f"an owner of {config.model_name} ({config.project.contact}) may run "
            f"`slipway card {version}`"
        )
    return blockers


def tier_table() -> str:
    """The risk-tier table as Markdown, straight from tiers.py (docs/spoke/governance.md
    shows exactly this; a test keeps the two in step)."""
    from slipway.pipelines.config import RiskTier
    from slipway.pipelines.governance.tiers import TIER_RULES

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    rows: list[tuple[str, ...]] = [
        ("rule", *(tier.value for tier in RiskTier)),
        (
            "promotes with no human decision (gates + canary decide)",
            *(yes(TIER_RULES[t].automatic_promotion) for t in RiskTier),
        ),
        (
            "current model card before promotion",
            *(yes(TIER_RULES[t].card_required) for t in RiskTier),
        ),
        (
            "approval by a named approver who is not the author, signed by their key",
            *(yes(TIER_RULES[t].approval_required) for t in RiskTier),
        ),
        ("shadow phase required", *(yes(TIER_RULES[t].shadow_required) for t in RiskTier)),
        ("guardrails multiplied by", *(f"{TIER_RULES[t].guardrail_factor:g}" for t in RiskTier)),
        (
            "minimum seconds per canary step",
            *(str(TIER_RULES[t].min_step_seconds) for t in RiskTier),
        ),
        (
            "SageMaker instance types allowed",
            *(", ".join(TIER_RULES[t].instance_types) for t in RiskTier),
        ),
    ]
    header, *body = rows
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
