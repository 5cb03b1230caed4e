"""Governance: what each risk tier demands, approvals, the audit trail, model cards, drift.

Modules: `tiers` (the one table), `approvals`, `signatures` (proven approver identity),
`blockers` (may this version roll out now?), `audit` (the hash-chained trail), `model_card`,
`monitoring` (drift of served traffic) and `capture` (a SageMaker endpoint's data capture
read back as served traffic).
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
        proof_problem,
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
    from slipway.pipelines.governance.capture import (
        CaptureError,
        CaptureLocation,
        captured_sample,
        read_capture,
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
    from slipway.pipelines.governance.signatures import (
        SignatureError,
        Statement,
        sign,
        verification_problem,
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
    "proof_problem": "approvals",
    "SignatureError": "signatures",
    "Statement": "signatures",
    "sign": "signatures",
    "verification_problem": "signatures",
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
    "CaptureError": "capture",
    "CaptureLocation": "capture",
    "captured_sample": "capture",
    "read_capture": "capture",
}
__all__ = [
    "TIER_RULES",
    "Approval",
    "ApprovalError",
    "AuditTrailError",
    "CaptureError",
    "CaptureLocation",
    "CardError",
    "CardResult",
    "Decision",
    "DriftReport",
    "ImportResult",
    "MonitorError",
    "SignatureError",
    "Statement",
    "TierRules",
    "UnknownVersionError",
    "Verification",
    "approval_of",
    "captured_sample",
    "card_problem",
    "check_drift",
    "current_actor",
    "import_local",
    "proof_problem",
    "read_capture",
    "record_decision",
    "release_blockers",
    "render_card",
    "rules_for",
    "sign",
    "verification_problem",
    "who_may_approve",
    "write_card",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
