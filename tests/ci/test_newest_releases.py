"""The daily job that tries the newest releases, without ever moving main's lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from scripts.newest_releases import Move, moves, report
from tests.hub import HUB

WORKFLOW = HUB / ".github" / "workflows" / "newest-releases.yml"
BIN = Path(sys.executable).parent


def test_moves_lists_what_the_newest_releases_change_watched_first():
    lock = (HUB / "uv.lock").read_text()
    current = next(
        line.split('"')[1]
        for line in lock.split('name = "mlflow"\n', 1)[1].splitlines()[:1]
        if line.startswith("version")
    )
    bumped = lock.replace(
        f'name = "mlflow"\nversion = "{current}"', 'name = "mlflow"\nversion = "99.0.0"'
    )
    bumped = bumped.replace('name = "zipp"\nversion = "', 'name = "zipp"\nversion = "0.0.0+x')
    found = moves(lock, bumped)
    assert found[0] == Move("mlflow", current, "99.0.0")
    assert [m.package for m in found] == ["mlflow", "zipp"]
    assert moves(lock, lock) == []


def test_the_report_names_each_move_and_each_failure():
    text = report(
        [Move("mlflow", "3.17.2", "3.18.0")],
        "broken: 1 failed, 10 passed",
        ["tests/demo/test_demo.py::test_make_demo_tells_the_whole_story"],
        612.0,
    )
    assert "| mlflow | 3.17.2 | 3.18.0 |" in text
    assert "broken: 1 failed, 10 passed" in text
    assert "`tests/demo/test_demo.py::test_make_demo_tells_the_whole_story`" in text


def test_the_hub_workflow_is_scheduled_read_only_and_runs_the_make_target():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True]["schedule"], "runs on a schedule"  # YAML 1.1 reads `on` as True
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read"}, "it never pushes a lock"
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs == ["make test-newest"]
    valid = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr
    audit = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--min-severity", "medium", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
