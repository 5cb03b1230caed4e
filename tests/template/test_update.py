"""`copier update` from the previous release to the working tree, as a domain team lives it.

The releases come from CHANGELOG.md and are tagged in a temporary clone (tests/releases.py);
spokes copy from its `git+file://` URL, so they pin the libraries by a git source at the tag,
as a copy from the hub's remote does. A team copies at the previous release, commits its own
edits, and updates with `--defaults`: the update must leave no conflict, keep the edits,
migrate the answers, move the library pin, and the spoke must still pass its own tests.
An untouched spoke, updated, must equal a fresh copy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.hub import GIT_ENV, HUB, git, hub_locked_versions
from tests.releases import (
    COPIER,
    ReleaseRepo,
    add_release,
    assert_in_history,
    build_release_repo,
    commit_all,
    copier,
    copy,
    released,
    update,
)

pytestmark = pytest.mark.xdist_group("releases")

# Answers a team chose at copy time; the update must keep them.
ANSWERS = {
    "project_name": "Fraud Radar",
    "team": "payments-ml",
    "risk_tier": "high",
    "canary_first_percent": "5",
}
TEAM_NOTE = "Escalations: #payments-ml-oncall, never the platform team."
TEAM_HELPER = '\n\ndef team_helper() -> str:\n    """Our own code."""\n    return "ours"\n'


def conflicts(spoke: Path) -> list[str]:
    """Unmerged paths, .rej files and conflict markers: what an update must never leave."""
    found = [f"unmerged: {line}" for line in git(spoke, "ls-files", "-u").splitlines()]
    for path in spoke.rglob("*"):
        if ".git" in path.relative_to(spoke).parts or not path.is_file():
            continue
        if path.suffix == ".rej":
            found.append(f"rejected hunk: {path.relative_to(spoke)}")
            continue
        text = path.read_text(errors="replace")
        if any(line.startswith(("<<<<<<< ", ">>>>>>> ")) for line in text.splitlines()):
            found.append(f"conflict markers: {path.relative_to(spoke)}")
    return found


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory: pytest.TempPathFactory) -> ReleaseRepo:
    return build_release_repo(tmp_path_factory.mktemp("releases") / "slipway")


@pytest.fixture(scope="module")
def updated_spoke(release_repo: ReleaseRepo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copied at the previous release, edited by its team, updated to the working tree."""
    spoke = copy(
        release_repo,
        release_repo.previous,
        tmp_path_factory.mktemp("team") / "fraud-radar",
        ANSWERS,
    )
    # The team's first `make setup` locked its dependencies and they committed the lock (at
    # the previous release that lock followed the index: mlflow 3.18 reached spokes so).
    locked = subprocess.run(["uv", "lock"], cwd=spoke, capture_output=True, text=True)
    assert locked.returncode == 0, locked.stderr[-3000:]
    commit_all(spoke, "copied from slipway")
    package = spoke / "src" / "fraud_radar"
    with (package / "train.py").open("a") as f:
        f.write(TEAM_HELPER)
    toml = spoke / "slipway.toml"
    toml.write_text(
        toml.read_text().replace("C = 1.0", "C = 0.3").replace("roc_auc = 0.95", "roc_auc = 0.97")
    )
    readme = spoke / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    readme.write_text("".join([*lines[:2], TEAM_NOTE + "\n", *lines[2:]]))
    commit_all(spoke, "our model, our gates, our escalation path")
    done = update(spoke, release_repo.current)
    assert done.returncode == 0, done.stderr
    return spoke


def test_every_release_is_a_commit_whose_version_file_says_so() -> None:
    releases = released((HUB / "CHANGELOG.md").read_text())
    assert releases, "CHANGELOG.md names no release commit"
    for release in releases:
        assert_in_history(release)
        assert git(HUB, "show", f"{release.commit}:VERSION") == release.version


def test_update_leaves_no_conflict(updated_spoke: Path) -> None:
    assert conflicts(updated_spoke) == []


def test_team_edits_survive_the_update(updated_spoke: Path) -> None:
    assert (updated_spoke / "src" / "fraud_radar" / "train.py").read_text().endswith(TEAM_HELPER)
    config = tomllib.loads((updated_spoke / "slipway.toml").read_text())
    assert config["training"]["params"]["C"] == 0.3
    assert config["gates"]["minimum"]["roc_auc"] == 0.97
    assert TEAM_NOTE in (updated_spoke / "README.md").read_text()


def test_answers_are_migrated(updated_spoke: Path, release_repo: ReleaseRepo) -> None:
    answers = yaml.safe_load((updated_spoke / ".copier-answers.yml").read_text())
    assert answers["_commit"] == release_repo.current
    assert answers["_src_path"] == release_repo.url
    for key, value in ANSWERS.items():
        assert str(answers[key]) == value, key
    questions = yaml.safe_load((HUB / "copier.yml").read_text())
    asked = {
        k
        for k, v in questions.items()
        if not k.startswith("_") and not (isinstance(v, dict) and v.get("when") is False)
    }
    assert asked <= set(answers), f"not in the answers file: {sorted(asked - set(answers))}"


def test_library_pin_moves_with_the_template(
    updated_spoke: Path, release_repo: ReleaseRepo
) -> None:
    sources = tomllib.loads((updated_spoke / "pyproject.toml").read_text())["tool"]["uv"]["sources"]
    for name, subdir in (("slipway-pipelines", "pipelines"), ("slipway-infra", "infra")):
        assert sources[name] == {
            "git": release_repo.url,
            "tag": release_repo.current,
            "subdirectory": subdir,
        }


@pytest.mark.slow
def test_updated_spoke_passes_its_own_tests(updated_spoke: Path) -> None:
    """The team's `make setup && make test` on their machine (not CI, where a lock older
    than pyproject.toml is refused), libraries fetched from the git tag."""
    commit_all(updated_spoke, "update the slipway template")
    laptop = {k: v for k, v in os.environ.items() if k != "CI"}
    # In CI the lock the update left stale is refused, never silently re-made.
    ci = subprocess.run(
        ["make", "setup"], cwd=updated_spoke, capture_output=True, text=True,
        env={**laptop, "CI": "true"},
    )
    assert ci.returncode != 0 and "needs to be updated" in ci.stderr, ci.stderr[-3000:]
    for target in ("setup", "test"):
        run = subprocess.run(
            ["make", target], cwd=updated_spoke, capture_output=True, text=True, env=laptop
        )
        assert run.returncode == 0, f"make {target}:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    # The lock moved with the template: the team's lock now holds the hub's tested versions.
    names = ("mlflow", "kfp", "scikit-learn", "pandas")
    lock = tomllib.loads((updated_spoke / "uv.lock").read_text())
    spoke_versions = {p["name"]: p["version"] for p in lock["package"] if p["name"] in names}
    assert spoke_versions == hub_locked_versions(names)


@pytest.fixture(scope="module")
def untouched(
    release_repo: ReleaseRepo,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, bytes]]:
    """Trees of: a copy at the previous release, the same copy updated, a fresh copy."""
    root = tmp_path_factory.mktemp("untouched")
    (root / "a").mkdir()
    (root / "b").mkdir()
    old = copy(release_repo, release_repo.previous, root / "a" / "spoke", ANSWERS)
    commit_all(old, "copied")
    before = tree(old)
    done = update(old, release_repo.current)
    assert done.returncode == 0, done.stderr
    # The same answers as the updated spoke holds: a default that changed since the previous
    # release (max_p95_latency_ratio 1.5 -> 1.3) stays as the team got it, which is right.
    kept = yaml.safe_load((old / ".copier-answers.yml").read_text())
    answers = {
        k: v if isinstance(v, str) else json.dumps(v)  # JSON is YAML: lists, numbers, null
        for k, v in kept.items()
        if not k.startswith("_")
    }
    fresh = copy(release_repo, release_repo.current, root / "b" / "spoke", answers)
    return {"previous": before, "updated": tree(old), "fresh": tree(fresh)}


def test_untouched_spoke_updated_equals_a_fresh_copy(untouched: dict) -> None:
    updated, expected = untouched["updated"], untouched["fresh"]
    assert sorted(updated) == sorted(expected)
    differing = [path for path in expected if updated[path] != expected[path]]
    assert differing == []


MIGRATION = """
_migrations:
  - version: {tag}
    when: "{{{{ _stage == 'after' }}}}"
    command:
      - "{{{{ _copier_python }}}}"
      - "{{{{ _copier_conf.src_path }}}}/migrations/keep_renamed.py"
      - README.md
      - OVERVIEW.md
"""


def vanished(old: dict[str, bytes], new: dict[str, bytes], copier_yml: str) -> list[str]:
    """Files of an old copy missing from a new one and named by no migration."""
    return [path for path in sorted(set(old) - set(new)) if path not in copier_yml]


def test_every_file_that_vanishes_between_releases_is_migrated(untouched: dict) -> None:
    gone = vanished(untouched["previous"], untouched["fresh"], (HUB / "copier.yml").read_text())
    assert gone == []


def test_a_renamed_file_ships_a_migration_that_keeps_team_edits(tmp_path: Path) -> None:
    """A release renames README.md: without the migration the team's edit is deleted
    silently (copier exits 0); with it, the edit moves to the new name."""
    repo = build_release_repo(tmp_path / "slipway")
    spoke = copy(repo, repo.current, tmp_path / "spoke", ANSWERS)
    commit_all(spoke, "copied")
    readme = spoke / "README.md"
    readme.write_text(readme.read_text() + TEAM_NOTE + "\n")
    commit_all(spoke, "our escalation path")

    git(repo.path, "mv", "template/README.md.jinja", "template/OVERVIEW.md.jinja")
    git(repo.path, "commit", "-q", "-m", "rename README.md to OVERVIEW.md, no migration")
    git(repo.path, "tag", "v98.0.0")
    bare = copy(repo, "v98.0.0", tmp_path / "fresh", ANSWERS)
    assert vanished(tree(spoke), tree(bare), (repo.path / "copier.yml").read_text()) == [
        "README.md"
    ]
    unmigrated = tmp_path / "unmigrated"
    subprocess.run(["git", "clone", "-q", str(spoke), str(unmigrated)], check=True)
    lost = update(unmigrated, "v98.0.0")
    assert lost.returncode == 0, lost.stderr  # copier reports nothing...
    assert not (unmigrated / "README.md").exists()  # ...and the team's edit is gone
    assert TEAM_NOTE not in (unmigrated / "OVERVIEW.md").read_text()

    copier_yml = repo.path / "copier.yml"
    copier_yml.write_text(copier_yml.read_text() + MIGRATION.format(tag="v99.0.0"))
    git(repo.path, "commit", "-q", "-am", "the rename's migration")
    git(repo.path, "tag", "v99.0.0")
    assert vanished(tree(spoke), tree(bare), copier_yml.read_text()) == []

    refused = update(spoke, "v99.0.0")
    assert refused.returncode == 4 and "migrations" in refused.stderr
    assert git(spoke, "status", "--porcelain") == ""  # nothing changed

    done = update(spoke, "v99.0.0", "--trust")
    assert done.returncode == 0, done.stderr
    assert conflicts(spoke) == []
    assert not readme.exists()
    overview = spoke / "OVERVIEW.md"
    assert TEAM_NOTE in overview.read_text()

    before = overview.read_bytes()
    again = subprocess.run(
        [sys.executable, str(HUB / "migrations" / "keep_renamed.py"), "README.md", "OVERVIEW.md"],
        cwd=spoke,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and overview.read_bytes() == before  # idempotent


def test_a_pushed_release_is_found_by_check_update_and_taken_by_update(
    release_repo: ReleaseRepo,
    tmp_path: Path,
) -> None:
    """The release procedure's last step (push the tags) and a team's weekly check."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(
        release_repo.path,
        "push",
        "-q",
        str(origin),
        "HEAD:refs/heads/main",
        release_repo.previous,
        release_repo.current,
    )
    hub = ReleaseRepo(origin, release_repo.releases, release_repo.current)
    spoke = copy(hub, release_repo.previous, tmp_path / "spoke", ANSWERS)
    commit_all(spoke, "copied")

    check = copier("check-update", "--output-format", "json", cwd=spoke)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout) == {
        "update_available": True,
        "current_version": release_repo.previous.removeprefix("v"),
        "latest_version": release_repo.current.removeprefix("v"),
    }
    done = copier("update", "--defaults", "--quiet", cwd=spoke)  # no --vcs-ref: the latest
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((spoke / ".copier-answers.yml").read_text())["_commit"] == (
        release_repo.current
    )
    assert git(spoke, "ls-files", "-u") == ""


def workflow_script(spoke: Path, step_name: str) -> str:
    workflow = yaml.safe_load((spoke / ".github/workflows/template-update.yml").read_text())
    steps = workflow["jobs"]["update"]["steps"]
    return next(s["run"] for s in steps if s.get("name") == step_name)


def run_step(spoke: Path, script: str, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """A workflow step as GitHub runs it (bash -eo pipefail), `uvx` being the hub's copier."""
    output = spoke.parent / f"{spoke.name}.github_output"
    env = {
        **os.environ,
        **GIT_ENV,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_RUN_ID": "7",
        "COPIER": "copier==9.19.1",
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=spoke,
        env=env,
        capture_output=True,
        text=True,
    )


def test_template_update_workflow_refuses_conflicts_and_commits_clean_updates(
    tmp_path: Path,
) -> None:
    """The generated template-update.yml's own shell, run for real on two spokes."""
    repo = build_release_repo(tmp_path / "slipway")
    line = "`make help` lists every target."
    clean = copy(repo, repo.current, tmp_path / "clean", ANSWERS)
    conflicted = copy(repo, repo.current, tmp_path / "conflicted", ANSWERS)
    for spoke in (clean, conflicted):
        commit_all(spoke, "copied")
    readme = conflicted / "README.md"
    readme.write_text(readme.read_text().replace(line, "`make help`: ask #payments-ml."))
    commit_all(conflicted, "our README line")
    newest = add_release(repo, "template/README.md.jinja", line, "`make help` lists them.")

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    uvx = bin_dir / "uvx"  # `uvx --from copier==X copier ARGS` -> the hub's copier ARGS
    uvx.write_text(f'#!/bin/sh\nshift 3\nexec "{COPIER}" "$@"\n')
    uvx.chmod(0o755)

    for spoke in (clean, conflicted):
        check = run_step(spoke, workflow_script(spoke, "Is a newer template released?"), bin_dir)
        assert check.returncode == 0, check.stderr
        assert "behind=true" in (spoke.parent / f"{spoke.name}.github_output").read_text()

    script = workflow_script(clean, "Update on a branch and refuse conflicts")
    done = run_step(clean, script, bin_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert git(clean, "status", "--porcelain") == ""
    assert git(clean, "branch", "--show-current") == "template-update/7"
    assert newest in git(clean, "log", "-1", "--format=%s")
    assert "uv.lock" in git(clean, "show", "--name-only", "--format=", "HEAD").split()

    refused = run_step(conflicted, script, bin_dir)
    assert refused.returncode == 1
    assert "copier update left conflicts" in refused.stdout
    assert "README.md" in refused.stdout
    assert git(conflicted, "log", "-1", "--format=%s") == "our README line"  # no commit
