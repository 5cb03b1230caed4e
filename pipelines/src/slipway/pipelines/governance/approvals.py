"""Approvals and rejections of a model version: recorded as version tags and in the audit trail.

A decision lives in two places on purpose. The version tags are what a rollout reads (fast,
next to the model); the audit trail is the tamper-evident history of who decided what and
why. The latest decision wins: a rejected version can be re-reviewed and approved later.

A name is a claim; a signature is proof. An approval made with `--sign-with KEY` carries an
SSH signature over the decision (signatures.py), checked whenever a gate reads it against the
keys the hub lists for the spoke (hub_governance.py), never against a file in the spoke: the
author can edit the spoke. The author never approves, by name nor by key: a signature made
with a key the hub lists for the author does not count under any name. A tier that needs an
approval counts only a proven one; a rejection counts signed or not (stopping a release must
never need more than asking). The tier is the strictest of the hub's, the version's
registered one and the spoke's file (hub_governance.strictest).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from slipway.pipelines._compat import spoke_or_root_and_config, without_root
from slipway.pipelines.config import RiskTier
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.hub_governance import (
    SpokeGovernance,
    blob_fingerprint,
    governance_for,
    strictest,
)
from slipway.pipelines.governance.signatures import (
    SignatureError,
    Statement,
    sign,
    signing_key_blob,
    verification_problem,
)
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.governance.trail_checkpoint import TAG_CHECKPOINT, Checkpoint
from slipway.pipelines.registry import TAG_AUTHOR, TAG_RISK_TIER
from slipway.pipelines.spoke import current_actor

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.spoke import Spoke

TAG_APPROVAL_STATE = "slipway.approval.state"  # approved | rejected
TAG_APPROVAL_BY = "slipway.approval.by"
TAG_APPROVAL_REASON = "slipway.approval.reason"
TAG_APPROVAL_AT = "slipway.approval.at"
TAG_APPROVAL_SIGNATURE = "slipway.approval.signature"


class Decision(StrEnum):
    approved = "approved"
    rejected = "rejected"


class ApprovalError(SlipwayError):
    """A decision was refused (self-approval, unlisted approver, unknown version); says why."""

    exit_code = Exit.NOT_APPROVED


class UnknownVersionError(ApprovalError):
    """The model has no such version; the message lists the ones it has."""

    exit_code = Exit.USAGE


@dataclass(frozen=True)
class Approval:
    decision: Decision
    by: str
    reason: str
    at: str
    signature: str = ""


def same_person(a: str, b: str) -> bool:
    """Names and e-mails compare without case or surrounding space: 'Ann ' is 'ann'."""
    return a.strip().casefold() == b.strip().casefold()


def approval_of(version: ModelVersion) -> Approval | None:
    """The latest recorded decision on a version, or None when nobody has decided yet."""
    tags = version.tags or {}
    state = tags.get(TAG_APPROVAL_STATE)
    if state not in {d.value for d in Decision}:
        return None
    return Approval(
        decision=Decision(state),
        by=tags.get(TAG_APPROVAL_BY, ""),
        reason=tags.get(TAG_APPROVAL_REASON, ""),
        at=tags.get(TAG_APPROVAL_AT, ""),
        signature=tags.get(TAG_APPROVAL_SIGNATURE, ""),
    )


def statement_of(model: str, version: ModelVersion, approval: Approval) -> Statement:
    """The statement `approval` of `version` must be a signature over (signatures.py)."""
    return Statement(
        model=model,
        version=str(version.version),
        run_id=version.run_id or "",
        decision=approval.decision.value,
        signer=approval.by,
        reason=approval.reason,
        at=approval.at,
    )


def effective_tier(config: SpokeConfig, version: ModelVersion | None = None) -> RiskTier:
    """The tier every gate applies: the strictest of the hub's word on this spoke, the tier
    the version was registered with, and the spoke's slipway.toml (which may only tighten)."""
    registered = (version.tags or {}).get(TAG_RISK_TIER) if version is not None else None
    hub = governance_for(config.model_name)
    return strictest(hub.risk_tier, registered, config.governance.risk_tier)


@contextmanager
def hub_signers(hub: SpokeGovernance) -> Iterator[Path]:
    """The hub's keys for this spoke as an allowed_signers file, for `ssh-keygen -Y verify`."""
    with tempfile.TemporaryDirectory(prefix="slipway-hub-signers-") as tmp:
        path = Path(tmp) / f"hub-approvers-{hub.spoke}"
        path.write_text(hub.allowed_signers())
        yield path


def _hub_keys_problem(hub: SpokeGovernance, who: str) -> str | None:
    if hub.keys_of(who):
        return None
    return (
        f"the hub's governance list ({hub.source}) lists no key for {who} on spoke "
        f"{hub.spoke}; approver keys count only from the hub (a spoke's own "
        "approvers/allowed_signers is not a source): ask the platform team to add it"
    )


def _author_key_problem(hub: SpokeGovernance, version: ModelVersion, signature: str) -> str | None:
    """The author never approves by key: a signature made with a key the hub lists for the
    version's author does not count, whatever name it claims."""
    blob = signing_key_blob(signature)
    if blob is None:
        return "its signature is not an SSH signature"
    fingerprint = blob_fingerprint(blob)
    if any(a.fingerprint == fingerprint for a in hub.keys_of(author_of(version))):
        return (
            f"it was signed with {fingerprint}, a key of the version's author "
            f"({author_of(version)}); self-approval is refused"
        )
    return None


def _key_of(signature: str) -> str:
    blob = signing_key_blob(signature) if signature else None
    return blob_fingerprint(blob) if blob is not None else ""


@without_root
def proof_problem(config: SpokeConfig, version: ModelVersion, approval: Approval) -> str | None:
    """Why `approval` is not proven to come from `approval.by`, or None when it is.

    No spoke root: the keys are the hub's, never the spoke's files."""
    hub = governance_for(config.model_name)
    if not approval.signature:
        return (
            f"it is not signed, so nothing proves {approval.by or 'anyone'} made it "
            f"(anyone can type a name); sign it with the key the hub lists for {approval.by}"
        )
    if problem := _hub_keys_problem(hub, approval.by):
        return problem
    if problem := _author_key_problem(hub, version, approval.signature):
        return problem
    with hub_signers(hub) as signers:
        return verification_problem(
            statement_of(config.model_name, version, approval), approval.signature, signers
        )


def author_of(version: ModelVersion) -> str:
    return (version.tags or {}).get(TAG_AUTHOR, "").strip()


def get_version(client: MlflowClient, model: str, version: str) -> ModelVersion:
    """The registry version, or UnknownVersionError naming the versions that do exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model, str(version))
    except MlflowException:
        known = sorted(
            (int(v.version) for v in client.search_model_versions(f"name='{model}'")),
        )
        listing = ", ".join(map(str, known)) if known else "none yet (run `slipway train`)"
        raise UnknownVersionError(
            f"model {model!r} has no version {version}; registered versions: {listing}"
        ) from None


def approver_problem(config: SpokeConfig, version: ModelVersion, by: str) -> str | None:
    """Why `by` may not approve this version, or None when they may."""
    if not by.strip():
        return "the decision names no approver"
    author = author_of(version)
    if not author:
        return (
            f"version {version.version} has no {TAG_AUTHOR} tag, so nobody can show the "
            "approver is not its author; register it through `slipway train`"
        )
    if same_person(by, author):
        return f"{by} is the author of version {version.version}; self-approval is refused"
    hub = governance_for(config.model_name).names()
    if hub and not any(same_person(by, name) for name in hub):
        return f"{by} is not among the hub's approvers for {config.model_name} ({', '.join(hub)})"
    allowed = config.governance.approvers  # the spoke may narrow the hub's list, never widen it
    if allowed and not any(same_person(by, name) for name in allowed):
        return f"{by} is not in [governance] approvers ({', '.join(allowed)})"
    return None


@spoke_or_root_and_config
def record_decision(
    spoke: Spoke,
    client: MlflowClient,
    version: str,
    decision: Decision,
    *,
    by: str,
    reason: str,
    signing_key: Path | None = None,
) -> Approval:
    """Check who decides, then append to the audit trail and tag the version with it.

    Rejections are open to any listed approver except the author too: an author withdrawing
    their own version should roll back or retrain, not mark it as reviewed. With
    `signing_key` the decision is signed and the signature checked against the hub's keys
    for `by` before anything is written; a tier that needs an approval
    refuses an unsigned one here rather than let it sit in the registry counting for nothing.
    """

    config = spoke.config
    by, reason = by.strip(), reason.strip()
    if not by:
        raise ApprovalError("--by must name the approver (a person, e.g. an e-mail address)")
    if not reason:
        raise ApprovalError("--reason must say why (it is kept in the audit trail)")
    model_version = get_version(client, config.model_name, version)
    if problem := approver_problem(config, model_version, by):
        raise ApprovalError(problem)
    actor = current_actor(spoke.root)
    if same_person(actor, author_of(model_version)):
        raise ApprovalError(
            f"you ({actor}) are the author of version {version}; a decision must be recorded "
            "by the approver themselves, not on their behalf"
        )
    tier = effective_tier(config, model_version)
    rules = rules_for(tier)
    needs_proof = rules.approval_required or not rules.automatic_promotion
    if decision is Decision.approved and needs_proof and signing_key is None:
        raise ApprovalError(
            f"risk tier {tier} counts only signed approvals: add --sign-with KEY (your SSH "
            f"private key, its public key listed for {by} in the hub's governance list)"
        )
    at = datetime.now(UTC).isoformat(timespec="seconds")
    approval = Approval(decision=decision, by=by, reason=reason, at=at)
    if signing_key is not None:
        statement = statement_of(config.model_name, model_version, approval)
        try:
            signature = sign(statement, signing_key)
        except SignatureError as exc:
            raise ApprovalError(str(exc)) from None
        approval = Approval(decision, by, reason, at, signature)
        if problem := proof_problem(config, model_version, approval):
            raise ApprovalError(
                f"the decision was signed, but {problem}; the key must be the one the hub's "
                f"governance list names for {by}"
            )
    # The audit entry goes first and the registry's tags name it (trail_checkpoint.py): a
    # trail that refuses the entry leaves the registry untouched, and tags whose entry is not
    # the trail's latest decision on this version (half written, or replayed after a later
    # rejection) do not count at any gate. The state goes last: a crash part-way leaves the
    # previous decision in force. The signature is always written (empty when unsigned).
    verb = "approve" if decision is Decision.approved else "reject"
    entry = spoke.record(
        verb,
        model=config.model_name,
        version=version,
        reason=reason,
        actor=actor,
        details={
            "by": by,
            "author": author_of(model_version),
            "signed": bool(approval.signature),
            "tier": tier.value,
            "hub_list_sha256": governance_for(config.model_name).digest,
            "key": _key_of(approval.signature),
        },
    )
    for key, value in (
        (TAG_APPROVAL_BY, by),
        (TAG_APPROVAL_REASON, reason),
        (TAG_APPROVAL_AT, at),
        (TAG_APPROVAL_SIGNATURE, approval.signature),
        (TAG_CHECKPOINT, Checkpoint.of(entry).tag()),
        (TAG_APPROVAL_STATE, decision.value),
    ):
        client.set_model_version_tag(config.model_name, str(version), key, value)
    return approval
