"""The spoke context: config loaded once, the state location resolved once, the stores
typed by their Protocols."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.pipelines.governance.audit import FileTrail, SharedTrail
from slipway.pipelines.rollout.state import FileRollouts, SharedRollouts
from slipway.pipelines.spoke import AuditTrail, RolloutStore, Spoke
from tests.hub import VALID_SPOKE_TOML as VALID

TEAM_DB = "postgresql://slipway@db.invalid:5432/team"  # never connected to here


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "slipway.toml").write_text(VALID)
    (tmp_path / ".slipway").mkdir()
    for name in ("SLIPWAY_STATE_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_spoke_on_a_laptop_keeps_its_state_in_files(root: Path):
    spoke = Spoke.open(root)
    assert spoke.config.project.slug == spoke.key == "churn-guard"
    assert spoke.state_url is None
    assert isinstance(spoke.rollouts, FileRollouts) and isinstance(spoke.rollouts, RolloutStore)
    assert isinstance(spoke.audit, FileTrail) and isinstance(spoke.audit, AuditTrail)
    assert spoke.rollouts is spoke.rollouts  # opened once


def test_the_state_location_is_resolved_once(root: Path, monkeypatch: pytest.MonkeyPatch):
    """The controller used to re-read the environment and re-parse slipway.toml at every
    poll; a Spoke asks once, so a later change of the environment does not move it."""
    spoke = Spoke.open(root)
    assert spoke.state_url is None
    monkeypatch.setenv("SLIPWAY_STATE_URL", TEAM_DB)
    assert spoke.state_url is None and isinstance(spoke.rollouts, FileRollouts)
    team = Spoke.open(root)
    assert team.state_url == TEAM_DB


def test_a_team_spoke_opens_the_shared_stores_under_its_key(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    from slipway.pipelines import store
    from slipway.pipelines.governance import audit

    monkeypatch.setenv("SLIPWAY_STATE_URL", TEAM_DB)
    monkeypatch.setattr(store, "ensure_schema", lambda *a: None)  # no server in this test
    monkeypatch.setattr(audit, "_is_managed", lambda url: False)
    spoke = Spoke.open(root)
    assert isinstance(spoke.rollouts, SharedRollouts)
    assert isinstance(spoke.audit, SharedTrail) and spoke.audit.trail == "churn-guard"
    assert "db.invalid" in spoke.rollouts.where and "slipway" in spoke.rollouts.where


def test_a_spoke_records_audit_entries_with_the_actor(root: Path, monkeypatch):
    monkeypatch.setenv("SLIPWAY_ACTOR", "ci-bot")
    spoke = Spoke.open(root)
    entry = spoke.record("register", model="churn-guard", version=3, reason="gate passed")
    assert (entry["actor"], entry["version"], entry["action"]) == ("ci-bot", "3", "register")
    assert spoke.audit.verify().ok


def test_the_controller_takes_a_spoke_and_says_so_when_given_a_root(root: Path):
    from slipway.pipelines.rollout.controller import Controller

    with pytest.raises(TypeError, match=r"Controller\(Spoke.open\(root, config\)"):
        Controller(root, None, None)  # type: ignore[arg-type]


def test_team_state_left_on_one_machine_is_a_warning_the_library_does_not_print(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """A registry server without SLIPWAY_STATE_URL keeps the files, and says so through
    `warnings` (a SlipwayWarning the caller shows or filters), never by printing."""
    import warnings

    from slipway.pipelines import store
    from slipway.pipelines.errors import SlipwayWarning

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.com")
    with pytest.warns(SlipwayWarning, match="SLIPWAY_STATE_URL is not set"):
        assert Spoke.open(root).state_url is None
    assert capsys.readouterr() == ("", "")
    # Set to `local`, or to the team's database, nothing warns.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlipwayWarning)
        monkeypatch.setenv("SLIPWAY_STATE_URL", "local")
        assert store.state_url() is None
        monkeypatch.setenv("SLIPWAY_STATE_URL", TEAM_DB)
        assert store.state_url() == TEAM_DB


def test_the_command_prints_the_warning_as_a_line_for_people(monkeypatch):
    """Inside a `slipway` command a SlipwayWarning is `warning: ...` where the libraries'
    output goes (the command's log; the terminal with -v), not a Python warning's
    `file:line: Category:` form; other warnings are shown as Python shows them."""
    import io
    import sys
    import warnings

    from slipway.pipelines import console
    from slipway.pipelines.errors import SlipwayWarning

    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    with pytest.warns(FutureWarning) as others, console.quiet_libraries(verbose=True):
        warnings.warn("the state stays here", SlipwayWarning, stacklevel=1)
        warnings.warn("a library's own", FutureWarning, stacklevel=1)
    assert terminal.getvalue() == "warning: the state stays here\n"
    assert [str(w.message) for w in others] == ["a library's own"]
