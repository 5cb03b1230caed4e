"""Approvals and rejections of a model version: recorded as version tags and in the audit trail.

A decision lives in two places on purpose. The version tags are what a rollout reads (fast,
next to the model); the audit trail is the tamper-evident history of who decided what and
why. The latest decision wins: a rejected version can be re-reviewed and approved later.

A name is a claim; a signature is proof. An approval made with `--sign-with KEY` carries an
SSH signature over the decision (signatures.py), checked against the spoke's allowed_signers
file whenever a gate reads it. A tier that needs an approval counts only a proven one; a
rejection counts signed or not (stopping a release must never need more than asking).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.governance.signatures import (
    SignatureError,
    Statement,
    sign,
    verification_problem,
)
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.registry import TAG_AUTHOR

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from slipway.pipelines.config import SpokeConfig

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


def allowed_signers_file(root: Path, config: SpokeConfig) -> Path:
    return root / config.governance.allowed_signers


def proof_problem(
    root: Path, config: SpokeConfig, version: ModelVersion, approval: Approval
) -> str | None:
    """Why `approval` is not proven to come from `approval.by`, or None when it is."""
    if not approval.signature:
        return (
            f"it is not signed, so nothing proves {approval.by or 'anyone'} made it "
            f"(anyone can type a name); sign it with a key listed in "
            f"{config.governance.allowed_signers}"
        )
    return verification_problem(
        statement_of(config.model_name, version, approval),
        approval.signature,
        allowed_signers_file(root, config),
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
    allowed = config.governance.approvers
    if allowed and not any(same_person(by, name) for name in allowed):
        return f"{by} is not in [governance] approvers ({', '.join(allowed)})"
    return None


def record_decision(
    root: Path,
    config: SpokeConfig,
    client: MlflowClient,
    version: str,
    decision: Decision,
    *,
    by: str,
    reason: str,
    signing_key: Path | None = None,
) -> Approval:
    """Check who decides, then tag the version and append to the audit trail.

    Rejections are open to any listed approver except the author too: an author withdrawing
    their own version should roll back or retrain, not mark it as reviewed. With
    `signing_key` the decision is signed and the signature checked against the spoke's
    allowed_signers for `by` before anything is written; a tier that needs an approval
    refuses an unsigned one here rather than let it sit in the registry counting for nothing.
    """

    by, reason = by.strip(), reason.strip()
    if not by:
        raise ApprovalError("--by must name the approver (a person, e.g. an e-mail address)")
    if not reason:
        raise ApprovalError("--reason must say why (it is kept in the audit trail)")
    model_version = get_version(client, config.model_name, version)
    if problem := approver_problem(config, model_version, by):
        raise ApprovalError(problem)
    actor = audit.current_actor(root)
    if same_person(actor, author_of(model_version)):
        raise ApprovalError(
            f"you ({actor}) are the author of version {version}; a decision must be recorded "
            "by the approver themselves, not on their behalf"
        )
    rules = rules_for(config.governance.risk_tier)
    needs_proof = rules.approval_required or not rules.automatic_promotion
    if decision is Decision.approved and needs_proof and signing_key is None:
        raise ApprovalError(
            f"risk tier {config.governance.risk_tier} counts only signed approvals: add "
            f"--sign-with KEY (your SSH private key, its public key listed for {by} in "
            f"{config.governance.allowed_signers})"
        )
    at = datetime.now(UTC).isoformat(timespec="seconds")
    approval = Approval(decision=decision, by=by, reason=reason, at=at)
    if signing_key is not None:
        statement = statement_of(config.model_name, model_version, approval)
        try:
            signature = sign(statement, signing_key)
        except SignatureError as exc:
            raise ApprovalError(str(exc)) from None
        allowed = allowed_signers_file(root, config)
        if problem := verification_problem(statement, signature, allowed):
            raise ApprovalError(
                f"the decision was signed, but {problem}; the key must be listed for {by} in "
                f"{config.governance.allowed_signers}"
            )
        approval = Approval(decision, by, reason, at, signature)
    # The state goes last: a crash part-way leaves the previous decision in force, never a
    # decision without its approver. The signature is always written (empty when unsigned):
    # an old decision's signature must never sit next to a new decision.
    for key, value in (
        (TAG_APPROVAL_BY, by),
        (TAG_APPROVAL_REASON, reason),
        (TAG_APPROVAL_AT, at),
        (TAG_APPROVAL_SIGNATURE, approval.signature),
        (TAG_APPROVAL_STATE, decision.value),
    ):
        client.set_model_version_tag(config.model_name, str(version), key, value)
    verb = "approve" if decision is Decision.approved else "reject"
    audit.append(
        root,
        verb,
        model=config.model_name,
        version=version,
        reason=reason,
        actor=actor,
        details={
            "by": by,
            "author": author_of(model_version),
            "signed": bool(approval.signature),
        },
    )
    return approval
