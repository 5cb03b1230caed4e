"""SpokeBudget: the monthly budget from slipway.toml, with alerts before and at the limit."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from slipway.infra.plan import BUDGET_ALERT_PERCENTS


def tag_filter(match_tags: dict[str, str]) -> Any:
    """A budget filter matching costs that carry every tag in `match_tags` (cost
    allocation tags, which must be activated once per account in the billing console)."""
    terms = [
        {"tags": {"key": key, "values": [value], "match_options": ["EQUALS"]}}
        for key, value in sorted(match_tags.items())
    ]
    return terms[0] if len(terms) == 1 else {"ands": terms}


class SpokeBudget(pulumi.ComponentResource):
    """An AWS cost budget over the resources carrying all of `match_tags`."""

    budget_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        budget_name: str,
        match_tags: dict[str, str],
        monthly_usd: float,
        email: str,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("slipway:infra:SpokeBudget", name, None, opts)
        budget = aws.budgets.Budget(
            f"{name}-budget",
            name=budget_name,
            budget_type="COST",
            limit_amount=f"{monthly_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            filter_expression=tag_filter(match_tags),
            notifications=[
                {
                    "comparison_operator": "GREATER_THAN",
                    "threshold": percent,
                    "threshold_type": "PERCENTAGE",
                    "notification_type": "ACTUAL",
                    "subscriber_email_addresses": [email],
                }
                for percent in BUDGET_ALERT_PERCENTS
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.budget_name = budget.name
        self.register_outputs({"budget_name": self.budget_name})
