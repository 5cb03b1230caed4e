"""The tags every resource carries, derived from slipway.toml: who owns it and who pays.

Cost reports, budgets and on-call routing all key on these; the `required_tags` policy
checks them on every taggable resource, so a resource without an owner never ships.
"""

from __future__ import annotations

from slipway.pipelines.config import SpokeConfig

# Tag keys the policies require; budgets filter spend by PROJECT_TAG.
PROJECT_TAG = "slipway:project"
REQUIRED_TAGS: tuple[str, ...] = ("owner", "team", "risk-tier", "cost-center", PROJECT_TAG)
# On a CI role: the GitHub repository (owner/name) whose jobs it serves, which its OIDC trust
# must name and nothing else (policies.github_trust_scoped).
GITHUB_REPOSITORY_TAG = "slipway:github-repository"


def spoke_tags(config: SpokeConfig, environment: str) -> dict[str, str]:
    """Tags for every resource of one spoke environment."""
    return {
        "owner": config.project.contact,
        "team": config.project.team,
        "risk-tier": config.governance.risk_tier.value,
        "cost-center": config.project.cost_center,
        PROJECT_TAG: config.project.slug,
        "environment": environment,
        "managed-by": "slipway",
    }
