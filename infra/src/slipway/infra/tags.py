"""The tags every resource carries, derived from slipway.toml: who owns it and who pays.

Cost reports, budgets and on-call routing all key on these; the `required_tags` policy
checks them on every taggable resource, so a resource without an owner never ships.
"""

from __future__ import annotations

# The tags live with the configuration model, so that `slipway score --env` (which does not
# import slipway-infra) tags its transform jobs as the stack tags everything else: the
# budget filters spend by PROJECT_TAG.
from slipway.pipelines.tags import PROJECT_TAG, REQUIRED_TAGS, spoke_tags

# On a CI role: the GitHub repository (owner/name) whose jobs it serves, which its OIDC trust
# must name and nothing else (policies.github_trust_scoped).
GITHUB_REPOSITORY_TAG = "slipway:github-repository"

__all__ = ["GITHUB_REPOSITORY_TAG", "PROJECT_TAG", "REQUIRED_TAGS", "spoke_tags"]
