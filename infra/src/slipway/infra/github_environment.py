"""The spoke's GitHub environment, created beside the AWS role that trusts it.

Why: the CI role's OIDC trust names `repo:<owner>/<name>:environment:<env>` (access.py), and
GitHub issues that subject to any job that enters the environment. `deploy-model.yml` can be
dispatched from any branch, with the workflow file of that branch. So what keeps a feature
branch out of prod is the environment's own protection, which GitHub enforces: a deployment
branch policy naming only the default branch, required reviewers (prod), no self-review and
no admin bypass. Until now nothing created or checked it; this component creates it with
Pulumi's GitHub provider, and the policy `github-environment-protected` refuses a stack
whose OIDC trust names an environment this stack does not protect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
BRANCH_POLICY = (
    "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
)
# Environments that need a person's review before a job may use their role.
REVIEWED = ("prod",)


class GitHubEnvironment(pulumi.ComponentResource):
    """One GitHub environment of the spoke's repository: deployable from `default_branch`
    only; for prod, only after a review by `reviewer_teams` / `reviewer_users` (GitHub ids),
    never by the person who started the run, with no admin bypass."""

    def __init__(
        self,
        name: str,
        *,
        repository: str,
        environment: str,
        default_branch: str,
        reviewer_teams: Sequence[int] = (),
        reviewer_users: Sequence[int] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        import pulumi_github as github

        super().__init__("slipway:infra:GitHubEnvironment", name, None, opts)
        owner, repo = repository.split("/", 1)
        provider = github.Provider(
            f"{name}-github", owner=owner, opts=pulumi.ResourceOptions(parent=self)
        )
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        reviewers = (
            [
                github.RepositoryEnvironmentReviewerArgs(
                    teams=list(reviewer_teams), users=list(reviewer_users)
                )
            ]
            if reviewer_teams or reviewer_users
            else None
        )
        created = github.RepositoryEnvironment(
            f"{name}-environment",
            repository=repo,
            environment=environment,
            reviewers=reviewers,
            prevent_self_review=True,
            can_admins_bypass=False,
            deployment_branch_policy=github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
                protected_branches=False, custom_branch_policies=True
            ),
            opts=child,
        )
        github.RepositoryEnvironmentDeploymentPolicy(
            f"{name}-default-branch",
            repository=repo,
            environment=created.environment,
            branch_pattern=default_branch,
            opts=child,
        )
        self.environment = created.environment
        self.register_outputs({"environment": self.environment})


def _trusted_environments(resources: Sequence[Any], oidc_host: str) -> dict[str, str]:
    """{GitHub environment: role name} for every environment a role's OIDC trust names."""
    from slipway.infra.policies import ROLE, _of, _statements

    found: dict[str, str] = {}
    for role in _of(resources, ROLE):
        for stmt in _statements(role.props.get("assumeRolePolicy")):
            if oidc_host not in str((stmt.get("Principal") or {}).get("Federated", "")):
                continue
            for block in (stmt.get("Condition") or {}).values():
                if not isinstance(block, Mapping):
                    continue
                subjects = block.get(f"{oidc_host}:sub") or []
                for subject in subjects if isinstance(subjects, list) else [subjects]:
                    _, sep, env = str(subject).partition(":environment:")
                    if sep:
                        found[env] = role.name
    return found


def environment_problems(
    env: Mapping[str, Any], policies: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What leaves this GitHub environment open to a job it should not admit."""
    name = env.get("environment")
    problems = []
    branch = env.get("deploymentBranchPolicy") or {}
    if not branch.get("customBranchPolicies") or branch.get("protectedBranches"):
        problems.append("its deployment-branch policy does not name the default branch alone")
    elif not [p for p in policies if p.get("environment") == name and p.get("branchPattern")]:
        problems.append("it has no deployment-branch rule")
    if env.get("canAdminsBypass", True):
        problems.append("administrators may bypass its protection")
    if name in REVIEWED:
        reviewers = env.get("reviewers") or []
        if not any((r.get("teams") or r.get("users")) for r in reviewers):
            problems.append("it has no required reviewers")
        if not env.get("preventSelfReview"):
            problems.append("the person who started a run may approve it")
    return problems


def github_environment_protected(resources: Sequence[Any]) -> list[Any]:
    """Every GitHub environment a role's OIDC trust names is created by this stack, limited
    to the default branch, with required reviewers for prod."""
    from slipway.infra.plan import GITHUB_OIDC_HOST
    from slipway.infra.policies import _of, _violation

    environments = {str(r.props.get("environment")): r for r in _of(resources, ENVIRONMENT)}
    policies = [r.props for r in _of(resources, BRANCH_POLICY)]
    found = []
    fix = (
        "create it with slipway.infra.github_environment.GitHubEnvironment (stack config "
        "githubReviewerTeams for prod; docs/spoke/security.md)"
    )
    for env, role in sorted(_trusted_environments(resources, GITHUB_OIDC_HOST).items()):
        created = environments.get(env)
        if created is None:
            found.append(
                _violation(
                    "github-environment-protected",
                    role,
                    f"trusts GitHub environment {env!r}, which this stack does not create or "
                    "protect: any branch's workflow can enter it and assume the role",
                    fix,
                )
            )
            continue
        for problem in environment_problems(created.props, policies):
            found.append(
                _violation(
                    "github-environment-protected",
                    created.name,
                    f"GitHub environment {env!r}: {problem}",
                    fix,
                )
            )
    return found
