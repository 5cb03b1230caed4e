"""The risk-tier table in the docs is the one in tiers.py, not a copy that drifts from it."""

from __future__ import annotations

import re
from pathlib import Path

from slipway.pipelines.governance.blockers import tier_table

PAGE = Path(__file__).resolve().parents[2] / "docs" / "spoke" / "governance.md"
MARKED = re.compile(r"<!-- tiers:start -->\n(.*?)\n<!-- tiers:end -->", re.S)


def documented_table(markdown: str) -> str:
    match = MARKED.search(markdown)
    assert match, f"{PAGE} lost its <!-- tiers:start/end --> markers"
    return match.group(1)


def test_the_documented_tier_table_is_generated_from_tiers_py():
    assert documented_table(PAGE.read_text(encoding="utf-8")) == tier_table(), (
        f"{PAGE} is out of step with tiers.py: paste the output of "
        "`python -c 'from slipway.pipelines.governance.blockers import tier_table; "
        "print(tier_table())'`"
        " between the markers"
    )


def test_the_comparison_notices_a_hand_edited_table():
    edited = PAGE.read_text(encoding="utf-8").replace("| 0.5 |", "| 0.8 |")
    assert documented_table(edited) != tier_table()
