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

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
