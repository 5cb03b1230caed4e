"""slipway.infra.policies as Pulumi stack policies: the checks the mock tests run, enforced
by `pulumi preview --policy-pack infra/policy` (or a Pulumi Cloud policy group).

Every policy is mandatory and fails closed. pulumi-policy turns a policy that reads a value
unknown during preview (an output of a resource not created yet) into an advisory note and
lets the preview pass; here that is a violation instead: a policy that cannot see a value
cannot vouch for it. Names are derived strings (see docs/platform/infrastructure.md), so a
CD preview of an existing stack reads no unknowns; the first `pulumi up` of a stack is the
platform team's.
"""

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
from pulumi_policy.proxy import UnknownValueError

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
        try:
            violations = check(resources)
        except UnknownValueError as unknown:
            report_violation(
                f"cannot be checked: the {unknown.message}, and a mandatory policy does not "
                "pass what it cannot see; fix: derive the value from known names (as "
                "slipway.infra does), or have the platform team run the stack's first "
                "`pulumi up`",
                None,
            )
            return
        for violation in violations:
            report_violation(violation.message, urns.get(violation.resource))

    return StackValidationPolicy(
        name=name,
        description=(check.__doc__ or name).strip().splitlines()[0],
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def build_policies() -> list[StackValidationPolicy]:
    return [as_stack_policy(name, check) for name, check in ALL_POLICIES.items()]
