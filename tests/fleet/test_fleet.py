"""`slipway fleet status` over real spokes copied at different template releases.

A temporary clone of the hub holds the releases (tests/releases.py) plus one more release
on top that changes a README line. Four spokes: one at the previous release, one at the
working tree's version, one at the newest release, and one whose team edited that README
line before updating to the newest release, so copier really leaves a conflict behind
(and exits 0, as it does).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.version import Version

from slipway.pipelines.cli import main
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.hub.fleet import git_url, parse_version
from tests.releases import (
    ReleaseRepo,
    add_release,
    build_release_repo,
    commit_all,
    copy,
    update,
)

pytestmark = pytest.mark.xdist_group("fleet")

README_LINE = "`make help` lists every target."


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    root = tmp_path_factory.mktemp("fleet")
    repo: ReleaseRepo = build_release_repo(root / "slipway")
    newest = add_release(
        repo,
        "template/README.md.jinja",
        README_LINE,
        "`make help` lists every target; the Slipway docs explain each.",
    )
    spokes: dict[str, Path | str] = {"newest": newest}
    spokes["old"] = copy(
        repo,
        repo.previous,
        root / "old",
        {"project_name": "Churn Guard", "team": "retention-ml", "risk_tier": "low"},
    )
    spokes["current"] = copy(
        repo,
        repo.current,
        root / "current",
        {"project_name": "Fraud Radar", "team": "payments-ml", "risk_tier": "high"},
    )
    spokes["latest"] = copy(repo, newest, root / "latest", {"project_name": "Claims Triage"})
    conflicted = copy(
        repo,
        repo.current,
        root / "conflicted",
        {"project_name": "Credit Limits", "team": "lending-ml"},
    )
    commit_all(conflicted, "copied")
    readme = conflicted / "README.md"
    readme.write_text(readme.read_text().replace(README_LINE, "`make help`: ask #lending-ml."))
    commit_all(conflicted, "our own README line")
    done = update(conflicted, newest)
    assert done.returncode == 0, done.stderr  # copier says nothing went wrong...
    spokes["conflicted"] = conflicted
    spokes["repo"] = str(repo.path)
    spokes["previous"], spokes["current_tag"] = repo.previous, repo.current
    return spokes


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["fleet", "status", *args])
    return result.exit_code, result.stdout, result.stderr


def status_json(*paths: Path | str, template: str | None = None) -> dict[str, dict]:
    extra = ["--template", template] if template else []
    code, out, err = run("--json", *extra, *map(str, paths))
    assert code == 0, err
    return {Path(s["path"]).name: s for s in json.loads(out)}


def test_reports_version_lag_tier_and_owner(fleet: dict) -> None:
    report = status_json(fleet["old"], fleet["current"], fleet["latest"])
    newest = fleet["newest"].removeprefix("v")
    assert {s["latest_version"] for s in report.values()} == {newest}
    assert report["old"]["template_version"] == fleet["previous"]
    assert report["old"]["behind"] == 2
    assert report["current"]["template_version"] == fleet["current_tag"]
    assert report["current"]["behind"] == 1
    assert report["latest"]["behind"] == 0
    assert (report["old"]["risk_tier"], report["old"]["team"]) == ("low", "retention-ml")
    assert (report["current"]["risk_tier"], report["current"]["team"]) == ("high", "payments-ml")
    assert report["current"]["project"] == "Fraud Radar"
    assert all(s["conflicts"] == [] for s in report.values())


def test_a_conflicted_update_is_reported(fleet: dict) -> None:
    report = status_json(fleet["conflicted"])["conflicted"]
    assert report["template_version"] == fleet["newest"]
    assert "unmerged: README.md" in report["conflicts"]
    assert "conflict markers: README.md" in report["conflicts"]


def test_table_names_each_spoke_and_its_conflicts(fleet: dict) -> None:
    code, out, _ = run(str(fleet["old"]), str(fleet["conflicted"]))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "SPOKE",
        "VERSION",
        "LATEST",
        "BEHIND",
        "TIER",
        "OWNER",
        "CONFLICTS",
    ]
    old_row = next(line for line in lines if line.startswith(str(fleet["old"])))
    assert old_row.split()[1:5] == [
        fleet["previous"],
        fleet["newest"].removeprefix("v"),
        "2",
        "low",
    ]
    assert f"{fleet['conflicted']}: unmerged: README.md" in lines


def test_template_source_can_be_named_explicitly(fleet: dict) -> None:
    """The hub checkout itself (a plain path) as the source: same answer."""
    report = status_json(fleet["old"], template=fleet["repo"])
    assert report["old"]["behind"] == 2
    assert report["old"]["template_source"] == fleet["repo"]


def test_an_unreachable_source_is_said_not_guessed(fleet: dict, tmp_path: Path) -> None:
    report = status_json(fleet["old"], template=str(tmp_path / "no-such-hub"))["old"]
    assert report["latest_version"] is None and report["behind"] is None
    assert "cannot list the tags" in report["note"]


def test_a_path_that_is_not_a_spoke_is_refused_by_name(fleet: dict, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    code, out, err = run(str(fleet["old"]), str(tmp_path / "plain"))
    assert code == Exit.CONFIG
    assert out == ""  # nothing half-reported
    assert f"{tmp_path / 'plain'} is not a Slipway spoke: slipway.toml is missing" in err

    hand_made = tmp_path / "hand-made"
    hand_made.mkdir()
    (hand_made / "slipway.toml").write_text((fleet["old"] / "slipway.toml").read_text())
    code, _, err = run(str(hand_made))
    assert code == Exit.CONFIG
    assert ".copier-answers.yml is missing" in err


def test_versions_and_sources_are_read_as_copier_writes_them() -> None:
    assert parse_version("v0.2.0") == Version("0.2.0")
    assert parse_version("v0.2.0-3-gabc1234") == Version("0.2.0")  # 3 commits after v0.2.0
    assert parse_version("a1b2c3d") is None  # a bare commit: no version to compare
    assert parse_version("1234567") is None
    assert git_url("gh:acme/slipway") == "https://github.com/acme/slipway"
    assert git_url("git+file:///srv/slipway") == "file:///srv/slipway"
    assert git_url("/srv/slipway") == "/srv/slipway"
