"""slipway.infra.policies as Pulumi stack policies: the checks the mock tests run, enforced
by `pulumi preview --policy-pack infra/policy` (or a Pulumi Cloud policy group)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The pack ships next to the library it wraps: load slipway.infra from this checkout, so
# the policies enforced are byte for byte the ones the tests ran.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from slipway.infra.policies import ALL_POLICIES, Policy


@dataclass(frozen=True)
class PackResource:
    """A policy-engine resource seen the way slipway.infra.policies reads resources."""

    type: str
    name: str
    props: Mapping[str, Any]


def as_stack_policy(name: str, check: Policy) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [PackResource(r.resource_type, r.name, r.props) for r in args.resources]
        urns = {r.name: r.urn for r in args.resources}
        for violation in check(resources):
            report_violation(violation.message, urns.get(violation.resource))

    return StackValidationPolicy(
        name=name,
        description=(check.__doc__ or name).strip().splitlines()[0],
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def build_policies() -> list[StackValidationPolicy]:
    return [as_stack_policy(name, check) for name, check in ALL_POLICIES.items()]
