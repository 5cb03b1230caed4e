"""slipway.toml stays valid: the same check CI and `make check` run."""

from pathlib import Path

from click.testing import CliRunner
from slipway.pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_slipway_check_accepts_this_spoke():
    result = CliRunner().invoke(main, ["--project", str(ROOT), "check"])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
