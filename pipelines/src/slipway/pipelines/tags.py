"""The tags every AWS resource of a spoke carries, derived from slipway.toml.

Here rather than in slipway-infra so that `slipway score --env` (which does not import
slipway-infra) tags its transform jobs as the spoke stack tags everything else; the stack's
budget filters spend by PROJECT_TAG. slipway.infra.tags re-exports these names.
"""

from __future__ import annotations

from slipway.pipelines.config import SpokeConfig

# Tag keys the hub's policies require on every resource; budgets filter spend by PROJECT_TAG.
PROJECT_TAG = "slipway:project"
REQUIRED_TAGS: tuple[str, ...] = ("owner", "team", "risk-tier", "cost-center", PROJECT_TAG)


def spoke_tags(config: SpokeConfig, environment: str) -> dict[str, str]:
    """Tags for every resource of one spoke environment: who owns it and who pays."""
    return {
        "owner": config.project.contact,
        "team": config.project.team,
        "risk-tier": config.governance.risk_tier.value,
        "cost-center": config.project.cost_center,
        PROJECT_TAG: config.project.slug,
        "environment": environment,
        "managed-by": "slipway",
    }
