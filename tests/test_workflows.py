"""The generated GitHub workflows are valid, hardened and wired to what the spoke runs.

One spoke per risk tier is rendered; every workflow in it must pass the GitHub workflow
schema (check-jsonschema's vendored copy) and zizmor's offline audits with no medium or
high finding. The structural rules zizmor does not know about (every action pinned to a
commit, OIDC only, prod behind its environment) are asserted here, and each checker is
shown to fire on a deliberately bad workflow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from copier import run_copy

BIN = Path(sys.executable).parent
TIERS = ("low", "medium", "high")
WORKFLOWS = ("ci.yml", "cd.yml", "template-update.yml")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def spokes(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One rendered spoke per risk tier."""
    out: dict[str, Path] = {}
    for tier in TIERS:
        dst = tmp_path_factory.mktemp("workflows") / tier
        run_copy(str(template_repo), dst, data={"risk_tier": tier}, defaults=True,
                 vcs_ref="HEAD", quiet=True, unsafe=False)
        out[tier] = dst
    return out


def workflow_files(spokes: dict[str, Path]) -> list[Path]:
    return [spoke / ".github" / "workflows" / name for spoke in spokes.values()
            for name in WORKFLOWS]


def load(spoke: Path, name: str) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); the schema and GitHub read it as "on".
    return yaml.safe_load((spoke / ".github" / "workflows" / name).read_text())


def check_jsonschema(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
         *map(str, paths)], capture_output=True, text=True,
    )


def zizmor_findings(paths: list[Path]) -> list[dict[str, Any]]:
    """zizmor's offline audits, medium severity and above."""
    proc = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--format", "json", "--min-severity", "medium",
         *map(str, paths)], capture_output=True, text=True,
    )
    assert proc.stdout.strip(), f"zizmor printed nothing: {proc.stderr}"
    return json.loads(proc.stdout)


def test_every_tier_generates_the_three_workflows(spokes: dict[str, Path]) -> None:
    for tier, spoke in spokes.items():
        present = sorted(p.name for p in (spoke / ".github" / "workflows").iterdir())
        assert present == sorted(WORKFLOWS), tier


def test_workflows_match_the_github_schema(spokes: dict[str, Path]) -> None:
    proc = check_jsonschema(workflow_files(spokes))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing_medium_or_high(spokes: dict[str, Path]) -> None:
    findings = zizmor_findings(workflow_files(spokes))
    assert findings == [], json.dumps(findings, indent=1)[:4000]


def test_the_checkers_fire_on_a_bad_workflow(spokes: dict[str, Path], tmp_path: Path) -> None:
    """An unpinned action, a template injection and a schema typo are all caught."""
    good = (spokes["low"] / ".github" / "workflows" / "ci.yml").read_text()
    injected = good.replace(
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
        "actions/checkout@v4",
    ).replace(
        "run: uv run --no-sync slipway check",
        "run: echo ${{ github.event.pull_request.title }} && uv run --no-sync slipway check",
    )
    bad = tmp_path / "bad" / ".github" / "workflows" / "ci.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(injected)
    audits = {f["ident"] for f in zizmor_findings([bad])}
    assert {"unpinned-uses", "template-injection"} <= audits, audits

    typo = tmp_path / "typo.yml"
    typo.write_text(good.replace("runs-on:", "runs_on:", 1))
    proc = check_jsonschema([typo])
    assert proc.returncode != 0 and "runs_on" in proc.stdout + proc.stderr


def test_every_action_is_pinned_to_a_commit(spokes: dict[str, Path]) -> None:
    for spoke in spokes.values():
        for name in WORKFLOWS:
            for job_id, job in load(spoke, name)["jobs"].items():
                for step in job["steps"]:
                    if "uses" in step:
                        assert PINNED.match(step["uses"]), f"{name}:{job_id}: {step['uses']}"


def test_permissions_are_least_privilege(spokes: dict[str, Path]) -> None:
    """Nothing at the top; each job names its own; write only where it must."""
    allowed_writes = {
        ("cd.yml", "id-token"),  # OIDC role assumption, the only way to AWS
        ("template-update.yml", "contents"),  # push the update branch
        ("template-update.yml", "pull-requests"),  # open the pull request
    }
    for spoke in spokes.values():
        for name in WORKFLOWS:
            wf = load(spoke, name)
            assert wf["permissions"] == {}, name
            for job_id, job in wf["jobs"].items():
                assert "permissions" in job, f"{name}:{job_id} inherits permissions"
                for scope, level in job["permissions"].items():
                    if level == "write":
                        assert (name, scope) in allowed_writes, f"{name}:{job_id}: {scope}"
                uses_aws = any("configure-aws-credentials" in s.get("uses", "")
                               for s in job["steps"])
                assert (job["permissions"].get("id-token") == "write") == uses_aws, job_id


def test_aws_access_is_oidc_only(spokes: dict[str, Path]) -> None:
    for spoke in spokes.values():
        for name in WORKFLOWS:
            text = (spoke / ".github" / "workflows" / name).read_text()
            assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
        for job in load(spoke, "cd.yml")["jobs"].values():
            for step in job["steps"]:
                if "configure-aws-credentials" in step.get("uses", ""):
                    assert set(step["with"]) == {"role-to-assume", "aws-region"}


def run_lines(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_ci_runs_lint_tests_check_compile_and_infra_mocks(spokes: dict[str, Path]) -> None:
    jobs = load(spokes["medium"], "ci.yml")["jobs"]
    test = run_lines(jobs["test"])
    for command in ("uv sync --group dev", "ruff check .", "pytest", "slipway check",
                    "slipway compile"):
        assert command in test, command
    upload = [s for s in jobs["test"]["steps"] if "upload-artifact" in s.get("uses", "")]
    assert upload and upload[0]["with"]["path"] == "build/pipelines/"
    assert "--group infra" in run_lines(jobs["infra"])
    infra_tests = re.search(r"pytest (\S+)", run_lines(jobs["infra"])).group(1)
    assert (spokes["medium"] / infra_tests).is_file(), f"{infra_tests} is not in the spoke"


@pytest.mark.parametrize("tier", TIERS)
def test_cd_goes_image_train_staging_prod(spokes: dict[str, Path], tier: str) -> None:
    jobs = load(spokes[tier], "cd.yml")["jobs"]
    slug = "diagnosis-assist"  # the default project name
    assert "docker push" in run_lines(jobs["image"])
    assert 'slipway train --kfp-host "$KFP_HOST"' in run_lines(jobs["train"])
    assert jobs["train"]["needs"] == "image"
    assert jobs["staging"]["needs"] == ["image", "train"]
    for stack in ("staging", "prod"):
        pulumi = [line.strip() for line in run_lines(jobs[stack]).splitlines()
                  if "pulumi " in line and "get.pulumi.com" not in line]
        assert pulumi == [
            'pulumi login "$PULUMI_BACKEND_URL"',
            f'pulumi config set imageUri "$registry/$REPOSITORY:$GITHUB_SHA" --stack {stack}',
            f"uv run --no-sync pulumi preview --stack {stack} --non-interactive --diff",
            f"uv run --no-sync pulumi up --stack {stack} --non-interactive --yes",
        ]
        assert jobs[stack]["environment"] == stack
    # Each stack's image goes to that stack's repository (the spoke's Pulumi program's name),
    # and the stack serves the image pushed from the same repository.
    pushes = {job: s["env"]["REPOSITORY"] for job in ("image", "prod")
              for s in jobs[job]["steps"] if "docker push" in s.get("run", "")}
    assert pushes == {"image": f"slipway/{slug}-staging", "prod": f"slipway/{slug}-prod"}
    for stack in ("staging", "prod"):
        served = [s["env"]["REPOSITORY"] for s in jobs[stack]["steps"]
                  if "imageUri" in s.get("run", "")]
        assert served == [f"slipway/{slug}-{stack}"]
    if tier == "high":
        # Reviewers live on the environment (repo settings); the workflow refuses without.
        assert jobs["prod-protection"]["needs"] == "staging"
        assert jobs["prod"]["needs"] == "prod-protection"
        assert "required_reviewers" in run_lines(jobs["prod-protection"])
    else:
        assert "prod-protection" not in jobs
        assert jobs["prod"]["needs"] == "staging"


def test_template_update_refuses_conflicts_before_opening_a_pr(
    spokes: dict[str, Path],
) -> None:
    wf = load(spokes["low"], "template-update.yml")
    assert wf[True]["schedule"], "runs weekly"
    script = run_lines(wf["jobs"]["update"])
    order = ["copier check-update", "copier update --defaults", "git ls-files -u",
             "exit 1", "gh pr create"]
    positions = [script.index(s) for s in order]
    assert positions == sorted(positions), order


@pytest.mark.slow
def test_ci_steps_pass_in_a_fresh_spoke(render) -> None:
    """Every `run:` of ci.yml, in order, in a freshly rendered spoke, as the runner would
    (bash -eo pipefail, uv on PATH); then the artifact path holds the compiled pipelines."""
    spoke = render("ci-spoke")
    jobs = load(spoke, "ci.yml")["jobs"]
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    for job_id in ("test", "infra"):
        for step in jobs[job_id]["steps"]:
            if "run" not in step:
                continue
            done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                                   step["run"]], cwd=spoke, env=env, capture_output=True,
                                  text=True)
            assert done.returncode == 0, (
                f"{job_id}: {step['run']}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    upload = next(s for s in jobs["test"]["steps"] if "upload-artifact" in s.get("uses", ""))
    compiled = sorted((spoke / upload["with"]["path"]).glob("*.yaml"))
    assert compiled, f"nothing under {upload['with']['path']} to keep as an artifact"
