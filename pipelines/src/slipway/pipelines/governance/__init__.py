"""Governance: what each risk tier demands, approvals, the audit trail, model cards, drift.

Modules: `tiers` (the one table), `approvals`, `blockers` (may this version roll out now?),
`audit` (the hash-chained trail), `model_card` and `monitoring` (drift of served traffic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines._lazy import lazy_exports

if TYPE_CHECKING:
    from slipway.pipelines.governance.approvals import (
        Approval,
        ApprovalError,
        Decision,
        UnknownVersionError,
        approval_of,
        record_decision,
    )
    from slipway.pipelines.governance.audit import (
        AuditTrailError,
        ImportResult,
        Verification,
        current_actor,
        import_local,
    )
    from slipway.pipelines.governance.blockers import (
        release_blockers,
        who_may_approve,
    )
    from slipway.pipelines.governance.model_card import (
        CardError,
        CardResult,
        card_problem,
        render_card,
        write_card,
    )
    from slipway.pipelines.governance.monitoring import (
        DriftReport,
        MonitorError,
        check_drift,
    )
    from slipway.pipelines.governance.tiers import (
        TIER_RULES,
        TierRules,
        rules_for,
    )

_EXPORTS = {
    "TIER_RULES": "tiers",
    "TierRules": "tiers",
    "rules_for": "tiers",
    "Approval": "approvals",
    "ApprovalError": "approvals",
    "Decision": "approvals",
    "UnknownVersionError": "approvals",
    "approval_of": "approvals",
    "record_decision": "approvals",
    "release_blockers": "blockers",
    "who_may_approve": "blockers",
    "AuditTrailError": "audit",
    "ImportResult": "audit",
    "Verification": "audit",
    "current_actor": "audit",
    "import_local": "audit",
    "CardError": "model_card",
    "CardResult": "model_card",
    "card_problem": "model_card",
    "render_card": "model_card",
    "write_card": "model_card",
    "DriftReport": "monitoring",
    "MonitorError": "monitoring",
    "check_drift": "monitoring",
}
__all__ = [
    "TIER_RULES",
    "Approval",
    "ApprovalError",
    "AuditTrailError",
    "CardError",
    "CardResult",
    "Decision",
    "DriftReport",
    "ImportResult",
    "MonitorError",
    "TierRules",
    "UnknownVersionError",
    "Verification",
    "approval_of",
    "card_problem",
    "check_drift",
    "current_actor",
    "import_local",
    "record_decision",
    "release_blockers",
    "render_card",
    "rules_for",
    "who_may_approve",
    "write_card",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
