"""The `slipway` command's skeleton: help everywhere, clear errors outside a spoke."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from slipway.pipelines.cli import COMMANDS, main
from slipway.pipelines.exitcodes import Exit
from tests.hub import VALID_SPOKE_TOML as VALID


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_subcommand_has_help(name: str):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main {name}"), result.output
    summary = result.output.split("\n\n")[1].strip()
    assert summary, f"`slipway {name} --help` has no description"


def test_top_level_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_check_outside_a_spoke_exits_with_the_config_code(tmp_path: Path):
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "check"])
    assert result.exit_code == Exit.CONFIG
    assert "is not a Slipway spoke" in result.output


def test_check_reports_a_bad_field(tmp_path: Path):
    (tmp_path / "slipway.toml").write_text(VALID.replace("monthly_usd = 250", "monthly_usd = 0"))
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "check"])
    assert result.exit_code == Exit.CONFIG
    assert "budget.monthly_usd" in result.output


def test_check_summarises_a_good_spoke(tmp_path: Path):
    (tmp_path / "slipway.toml").write_text(VALID)
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "check"])
    assert result.exit_code == Exit.OK, result.output
    assert "churn-guard (risk tier low)" in result.output
    assert "10% -> 32% -> 100%" in result.output
    # The guardrails in requests a team can plan with, from the same judge the rollout runs.
    assert "within every tolerance in at most 1.0% of rollouts" in result.output
    assert "failing 5% of calls against a champion's 1.0%: ~" in result.output


def test_exit_codes_are_documented_as_they_are():
    docs = (Path(__file__).resolve().parents[3] / "docs" / "reference" / "cli.md").read_text()
    for code in Exit:
        assert f"| {int(code)} | {code.name} |" in docs, f"{code.name} missing from cli.md"
