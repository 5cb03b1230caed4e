"""Least privilege for the deploy pipeline's service account on KServe.

`slipway deploy --target kserve` (and the deploy pipeline's rollout step on a cluster) reads,
creates and patches one resource type, InferenceServices, in the spoke's namespace: that is
all the Role grants. No delete (a rollback is `canaryTrafficPercent: 0`, never a deletion),
no list or watch, no other resource, no cluster scope. The test checks the Role against the
calls a real rollout made (through the stand-in API server), both ways.
"""

from __future__ import annotations

from typing import Any

from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.rollout.kserve_manifest import GROUP, PLURAL

VERBS = ("get", "create", "patch")


def deployer_rbac(config: SpokeConfig) -> list[dict[str, Any]]:
    """The ServiceAccount, Role and RoleBinding of the spoke's deployer, in its namespace."""
    kserve = config.deploy.kserve
    account = kserve.service_account or f"{config.model_name}-deployer"
    namespace = kserve.namespace
    meta = {"namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "slipway"}}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": account, **meta},
            "rules": [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": list(VERBS)}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]


def allows(
    rbac: list[dict[str, Any]], verb: str, group: str, resource: str, namespace: str
) -> bool:
    """Whether the Role (bound in `namespace`) grants `verb` on `group`/`resource` there."""
    for doc in rbac:
        if doc["kind"] != "Role" or doc["metadata"]["namespace"] != namespace:
            continue
        for rule in doc["rules"]:
            if (
                group in rule["apiGroups"]
                and resource in rule["resources"]
                and verb in rule["verbs"]
            ):
                return True
    return False
