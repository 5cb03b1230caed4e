"""Promotion and rollback in the registry: the alias moves, tags and audit records.

Each function is idempotent (safe to repeat after a crash half way) and does the same
things whoever calls it: the rollout controller, `slipway promote`, `slipway rollback`.
- promotion: `champion` -> the version, the old champion -> `previous`, `challenger` removed
  if it pointed at the version, outcome tag, audit record;
- rollback of a challenger: alias `challenger` removed, the version tagged with outcome and
  reason, audit record (traffic is the caller's job and always comes first);
- revert of a promotion: `champion` -> `previous`, the reverted version tagged, audit record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slipway.pipelines._compat import spoke_or_root
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    TAG_ROLLOUT_OUTCOME,
    TAG_ROLLOUT_REASON,
    version_by_alias,
    version_exists,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from slipway.pipelines.spoke import Spoke

PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"


class ReleaseError(SlipwayError, RuntimeError):
    """The registry is not in a state this operation can act on; the message says why."""


def _alias_version(client: MlflowClient, model: str, alias: str) -> str | None:
    found = version_by_alias(client, model, alias)
    return None if found is None else str(found.version)


def tag_outcome(client: MlflowClient, model: str, version: str, outcome: str, reason: str) -> None:
    """Record a rollout's outcome and why on the version (every deploy target does)."""
    client.set_model_version_tag(model, version, TAG_ROLLOUT_OUTCOME, outcome)
    client.set_model_version_tag(model, version, TAG_ROLLOUT_REASON, reason[:5000])


def candidate_version(client: MlflowClient, model: str, version: str | None) -> str:
    """The version a deploy or promotion means: `version`, else the `challenger` alias; a
    version that is not registered is a typo, said as such (not a governance refusal)."""
    if version is None:
        version = _alias_version(client, model, CHALLENGER)
        if version is None:
            raise ReleaseError(
                f"{model} has no `challenger` to roll out; train one (`slipway train`) "
                "or name a registered version with --version N"
            )
    if not version_exists(client, model, version):
        raise ReleaseError(
            f"{model} has no version {version!r}; `slipway catalog` and `slipway status` "
            "show the registered versions"
        )
    return version


@spoke_or_root
def promote(
    spoke: Spoke,
    client: MlflowClient,
    model: str,
    version: str,
    *,
    reason: str,
    old_champion: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Make `version` the champion; the champion it replaces (or `old_champion`, recorded
    when a rollout started, so a repeat after a crash stays right) becomes `previous`."""
    client.get_model_version(model, version)  # raises with MLflow's message if unknown
    current = _alias_version(client, model, CHAMPION)
    old = old_champion if old_champion is not None else current
    details = {"previous": old, **(details or {})}
    # The audit entry first: a trail that refuses it (tampered, unreachable) leaves every
    # alias as it was, so a promotion never happens without its entry.
    entry = spoke.record("promote", model=model, version=version, reason=reason, details=details)
    if old is not None and old != version:
        client.set_registered_model_alias(model, PREVIOUS, old)
    client.set_registered_model_alias(model, CHAMPION, version)
    _drop_challenger(client, model, version)
    _tag(client, model, version, PROMOTED, reason, entry)
    return entry


@spoke_or_root
def reject_challenger(
    spoke: Spoke,
    client: MlflowClient,
    model: str,
    version: str,
    *,
    reason: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Take `version` out of its rollout: alias removed, outcome tagged, audit record."""
    _drop_challenger(client, model, version)
    details = {"kind": "challenger", **(details or {})}
    return _record(spoke, client, model, version, ROLLED_BACK, "rollback", reason, details)


class RejectedPrevious(ReleaseError):
    """The version a rollback would restore was rejected since it last served."""

    exit_code = Exit.NOT_APPROVED


def _rejected(spoke: Spoke, client: MlflowClient, model: str, version: str) -> str | None:
    """'it was rejected by WHO (WHY)' when the latest decision on `version` is a rejection,
    in the registry's tags or in the audit trail (tags set back to an approval after a
    rejection do not make the version servable again)."""
    from slipway.pipelines.governance.approvals import Decision, approval_of
    from slipway.pipelines.governance.trail_checkpoint import latest_decision

    latest = latest_decision(spoke.audit.read(), model, version)
    if latest is not None and latest.get("action") == "reject":
        by = (latest.get("details") or {}).get("by", latest.get("actor", "?"))
        return (
            f"it was rejected by {by} ({latest.get('reason', '')}; audit seq {latest.get('seq')})"
        )
    decision = approval_of(client.get_model_version(model, version))
    if decision is None or decision.decision is not Decision.rejected:
        return None
    return f"it was rejected by {decision.by} ({decision.reason})"


@spoke_or_root
def revert_promotion(spoke: Spoke, client: MlflowClient, model: str, *, reason: str) -> dict:
    """Give `champion` back to the `previous` version at once; tag the reverted one."""
    current = _alias_version(client, model, CHAMPION)
    previous = _alias_version(client, model, PREVIOUS)
    if previous is None or current is None:
        raise ReleaseError(
            f"nothing to revert: {model} has no `previous` version (champion is {current}); "
            "promote a known-good version with `slipway promote VERSION` instead"
        )
    if problem := _rejected(spoke, client, model, previous):
        raise RejectedPrevious(
            f"rollback refused: `previous` is version {previous}, and {problem}, so restoring "
            f"it would serve a rejected model; nothing was changed (champion stays {current}). "
            "Promote a known-good version with `slipway promote VERSION --reason TEXT`"
        )
    client.set_registered_model_alias(model, CHAMPION, previous)
    client.delete_registered_model_alias(model, PREVIOUS)
    details = {"kind": "promotion", "champion": previous}
    return _record(spoke, client, model, current, ROLLED_BACK, "rollback", reason, details)


def _drop_challenger(client: MlflowClient, model: str, version: str) -> None:
    """`version` leaves its rollout: the `challenger` alias goes, if it still names it."""
    if _alias_version(client, model, CHALLENGER) == version:
        client.delete_registered_model_alias(model, CHALLENGER)


def _record(
    spoke: Spoke,
    client: MlflowClient,
    model: str,
    version: str,
    outcome: str,
    action: str,
    reason: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    """Every release decision leaves the same two traces: the audit entry (returned), then
    the outcome tag on the version naming that entry (trail_checkpoint.py)."""
    entry = spoke.record(action, model=model, version=version, reason=reason, details=details)
    _tag(client, model, version, outcome, reason, entry)
    if action == "rollback":
        _alert_rollback(model, version, reason)
    return entry


def _tag(
    client: MlflowClient,
    model: str,
    version: str,
    outcome: str,
    reason: str,
    entry: dict[str, Any],
) -> None:
    from slipway.pipelines.governance.trail_checkpoint import stamp

    tag_outcome(client, model, version, outcome, reason)
    stamp(client, model, version, entry)


def _alert_rollback(model: str, version: str, reason: str) -> None:
    """Tell the team's channel (SLIPWAY_ALERT_WEBHOOK); a failed alert never undoes or
    stops the rollback it reports, it is logged."""
    import logging

    from slipway.pipelines.governance.alerts import Event, notify

    if warning := notify(Event.ROLLBACK, model, f"version {version} rolled back: {reason}"):
        logging.getLogger(__name__).warning(warning)
