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
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from copier import run_copy

from slipway.pipelines.config import load_config

BIN = Path(sys.executable).parent
TIERS = ("low", "medium", "high")
WORKFLOWS = ("ci.yml", "cd.yml", "deploy-model.yml", "monitor.yml", "template-update.yml")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
CARRY = "uv run --no-sync python -m slipway.infra.deploy_settings"
# What reads the stack config: from here on the last deployment's settings must be in it.
USES_STACK_CONFIG = re.compile(r"pulumi (preview|up)\b|slipway deploy")


@pytest.fixture(scope="module")
def spokes(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One rendered spoke per risk tier."""
    out: dict[str, Path] = {}
    for tier in TIERS:
        dst = tmp_path_factory.mktemp("workflows") / tier
        run_copy(
            str(template_repo),
            dst,
            data={"risk_tier": tier},
            defaults=True,
            vcs_ref="HEAD",
            quiet=True,
            unsafe=False,
        )
        out[tier] = dst
    return out


def workflow_files(spokes: dict[str, Path]) -> list[Path]:
    return [
        spoke / ".github" / "workflows" / name for spoke in spokes.values() for name in WORKFLOWS
    ]


def load(spoke: Path, name: str) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); the schema and GitHub read it as "on".
    return yaml.safe_load((spoke / ".github" / "workflows" / name).read_text())


def check_jsonschema(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
    )


def zizmor_findings(paths: list[Path]) -> list[dict[str, Any]]:
    """zizmor's offline audits, medium severity and above."""
    proc = subprocess.run(
        [
            str(BIN / "zizmor"),
            "--offline",
            "--format",
            "json",
            "--min-severity",
            "medium",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip(), f"zizmor printed nothing: {proc.stderr}"
    return json.loads(proc.stdout)


def test_every_tier_generates_the_workflows(spokes: dict[str, Path]) -> None:
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
        ("deploy-model.yml", "id-token"),  # the same, for `slipway deploy --env`
        ("monitor.yml", "id-token"),  # the same, to read the endpoint's capture
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
                uses_aws = any(
                    "configure-aws-credentials" in s.get("uses", "") for s in job["steps"]
                )
                assert (job["permissions"].get("id-token") == "write") == uses_aws, job_id


def test_aws_access_is_oidc_only(spokes: dict[str, Path]) -> None:
    for spoke in spokes.values():
        for name in WORKFLOWS:
            text = (spoke / ".github" / "workflows" / name).read_text()
            assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
            for job in load(spoke, name)["jobs"].values():
                for step in job["steps"]:
                    if "configure-aws-credentials" in step.get("uses", ""):
                        assert set(step["with"]) == {"role-to-assume", "aws-region"}, name


def run_lines(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def assert_carries_deploy_settings_first(job: dict[str, Any], stack: str) -> None:
    """After `pulumi login`, before anything reads the stack config, the job carries the last
    deployment's deploy settings (a runner keeps none; without modelVersion the stack would
    bootstrap and `pulumi up` delete the endpoint)."""
    steps = job["steps"]
    carry = step_named(job, CARRY)
    assert carry["run"] == f"{CARRY} {stack}"
    assert carry["working-directory"] == "infra"
    first_use = next(i for i, s in enumerate(steps) if USES_STACK_CONFIG.search(s.get("run", "")))
    assert steps.index(step_named(job, "pulumi login")) < steps.index(carry) < first_use


def test_no_workflow_takes_the_whole_config_of_the_last_deployment(
    spokes: dict[str, Path],
) -> None:
    # `pulumi config refresh --force` would silently drop committed infra changes.
    for path in workflow_files(spokes):
        assert "config refresh" not in path.read_text(), path


def test_ci_runs_lint_tests_check_compile_and_infra_mocks(spokes: dict[str, Path]) -> None:
    jobs = load(spokes["medium"], "ci.yml")["jobs"]
    test = run_lines(jobs["test"])
    for command in (
        "uv sync --locked --group dev",
        "ruff check .",
        "pytest",
        "slipway check",
        "slipway compile",
    ):
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
    assert_train_runs_on_the_image_just_pushed(jobs)
    assert jobs["staging"]["needs"] == ["image", "train"]
    for stack in ("staging", "prod"):
        pulumi = [
            line.strip()
            for line in run_lines(jobs[stack]).splitlines()
            if "pulumi " in line and "get.pulumi.com" not in line
        ]
        # Reproduction: CD ran preview and up without the policy pack, so the only gate was
        # the spoke's own mock test. Both now run the hub's pack.
        assert pulumi == [
            'pulumi login "$PULUMI_BACKEND_URL"',
            f"uv run --no-sync pulumi preview --stack {stack} --non-interactive --diff {PACK}",
            f"uv run --no-sync pulumi up --stack {stack} --non-interactive --yes {PACK}",
        ]
        assert_fetches_the_pinned_policy_pack(spokes[tier], jobs[stack])
        assert jobs[stack]["environment"] == stack
        assert_carries_deploy_settings_first(jobs[stack], stack)
    # Each stack's image goes to that stack's repository (the spoke's Pulumi program's name),
    # tagged with the commit; no infra run points a serving model at it (a version serves
    # its own `:v<N>` tag, given by `slipway deploy --env`).
    pushes = {
        job: s["env"]["REPOSITORY"]
        for job in ("image", "prod")
        for s in jobs[job]["steps"]
        if "docker push" in s.get("run", "")
    }
    assert pushes == {"image": f"slipway/{slug}-staging", "prod": f"slipway/{slug}-prod"}
    assert "imageUri" not in run_lines(jobs["staging"]) + run_lines(jobs["prod"])
    if tier == "high":
        # Reviewers live on the environment (repo settings); the workflow refuses without.
        assert jobs["prod-protection"]["needs"] == "staging"
        assert jobs["prod"]["needs"] == "prod-protection"
        assert "required_reviewers" in run_lines(jobs["prod-protection"])
    else:
        assert "prod-protection" not in jobs
        assert jobs["prod"]["needs"] == "staging"


def assert_train_runs_on_the_image_just_pushed(jobs: dict[str, Any]) -> None:
    """The training job hands Kubeflow the image the image job built and pushed for this
    commit (the base image of slipway.toml cannot run a step), and waits for the outcome."""
    push = step_named(jobs["image"], "docker push")
    pushed = re.findall(r'docker push "([^"]+)"', push["run"])
    assert pushed == ["$registry/$REPOSITORY:$GITHUB_SHA"]
    assert f'echo "image={pushed[0]}" >> "$GITHUB_OUTPUT"' in push["run"]
    assert jobs["image"]["outputs"]["image"] == f"${{{{ steps.{push['id']}.outputs.image }}}}"
    train = step_named(jobs["train"], "slipway train")
    assert train["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
    argv = shlex.split(train["run"])
    assert argv[argv.index("--image") + 1] == "$IMAGE"
    assert "--wait" in argv
    assert int(argv[argv.index("--timeout") + 1]) < jobs["train"]["timeout-minutes"] * 60
    assert train["env"]["KF_PIPELINES_TOKEN"] == "${{ secrets.KF_PIPELINES_TOKEN }}"


PACK = "--policy-pack ../.slipway-hub/infra/policy"


def assert_fetches_the_pinned_policy_pack(
    spoke: Path, job: dict[str, Any], before: str = "pulumi preview"
) -> None:
    """Before the preview (or `slipway deploy`), the job checks the hub out at the source
    and ref pyproject.toml pins slipway-infra to (the pack and the libraries never disagree)
    into .slipway-hub, and builds the pack's own environment from its requirements.txt."""
    import tomllib

    names = [s.get("name", "") for s in job["steps"]]
    fetch = next(s for s in job["steps"] if "git -C .slipway-hub fetch" in s.get("run", ""))
    preview = next(i for i, s in enumerate(job["steps"]) if before in s.get("run", ""))
    assert names.index(fetch["name"]) < preview
    assert "uv pip install -q -p venv/bin/python -r requirements.txt" in fetch["run"]
    assert "cd .slipway-hub/infra/policy" in fetch["run"]
    source = tomllib.loads((spoke / "pyproject.toml").read_text())["tool"]["uv"]["sources"][
        "slipway-infra"
    ]
    if "git" in source:
        assert fetch["env"] == {
            "HUB_URL": source["git"],
            "HUB_REF": source.get("tag") or source["rev"],
        }
    else:  # copied from a local checkout: the same checkout, at the commit copied from
        assert fetch["env"]["HUB_URL"] + "/infra" == source["path"]
        ref = fetch["env"]["HUB_REF"]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+\S*|[0-9a-f]{40}", ref), fetch["env"]


def step_named(job: dict[str, Any], needle: str) -> dict[str, Any]:
    """The one step whose `run:` or `uses:` contains `needle`."""
    found = [s for s in job["steps"] if needle in s.get("run", "") + s.get("uses", "")]
    assert len(found) == 1, f"{needle}: {len(found)} steps"
    return found[0]


@pytest.mark.parametrize("tier", TIERS)
def test_deploy_model_runs_slipway_deploy_on_the_chosen_environment(
    spokes: dict[str, Path],
    tier: str,
) -> None:
    """workflow_dispatch(environment, version) -> one job in that GitHub environment, one
    deploy per endpoint at a time, AWS through OIDC as cd.yml does it, inputs only via env."""
    wf = load(spokes[tier], "deploy-model.yml")
    cd = load(spokes[tier], "cd.yml")
    inputs = wf[True]["workflow_dispatch"]["inputs"]
    assert list(wf[True]) == ["workflow_dispatch"]
    assert inputs["environment"]["type"] == "choice"
    assert inputs["environment"]["options"] == ["staging", "prod"]
    assert inputs["environment"]["default"] == "staging"
    assert inputs["version"]["type"] == "string" and not inputs["version"].get("required")
    assert wf["concurrency"] == {
        "group": "deploy-model-${{ inputs.environment }}",
        "cancel-in-progress": False,
    }

    job = wf["jobs"]["deploy"]
    assert job["environment"] == "${{ inputs.environment }}"  # prod's reviewers apply
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert 0 < job["timeout-minutes"] <= 360
    # Role assumption exactly as cd.yml: the same pinned action, the environment's role.
    aws = step_named(job, "configure-aws-credentials")
    cd_aws = step_named(cd["jobs"]["staging"], "configure-aws-credentials")
    assert aws["uses"] == cd_aws["uses"] and aws["with"] == cd_aws["with"]
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert wf["env"] == cd["env"]  # region and the pinned Pulumi CLI
    assert "uv sync --locked --group infra" in run_lines(job)  # slipway-infra: the SageMaker target

    deploy = step_named(job, "slipway deploy")
    assert deploy["env"]["ENVIRONMENT"] == "${{ inputs.environment }}"
    assert deploy["env"]["VERSION"] == "${{ inputs.version }}"
    assert deploy["env"]["MLFLOW_TRACKING_URI"] == "${{ vars.MLFLOW_TRACKING_URI }}"
    assert deploy["env"]["SLIPWAY_STATE_URL"] == "${{ secrets.SLIPWAY_STATE_URL }}"
    assert "${{" not in run_lines(job), "inputs reach `run:` through env only"
    # Login, then the last deployment's deploy settings, then the deploy.
    assert_carries_deploy_settings_first(job, '"$ENVIRONMENT"')
    assert step_named(job, CARRY)["env"] == {"ENVIRONMENT": "${{ inputs.environment }}"}
    login = step_named(job, "pulumi login")
    assert login["env"] == step_named(cd["jobs"]["staging"], "pulumi login")["env"]
    steps = job["steps"]
    assert steps.index(aws) < steps.index(deploy)

    if tier == "high":
        # cd.yml's refusal of a prod environment without required reviewers, unchanged.
        guard = wf["jobs"]["prod-protection"]
        assert guard["if"] == "inputs.environment == 'prod'"
        assert guard["permissions"] == cd["jobs"]["prod-protection"]["permissions"]
        assert guard["steps"] == cd["jobs"]["prod-protection"]["steps"]
        assert job["needs"] == "prod-protection"
        # staging skips the guard and must still run; a failed guard stops prod.
        assert "needs.prod-protection.result == 'success'" in job["if"]
        assert "needs.prod-protection.result == 'skipped'" in job["if"]
        assert "always()" not in job["if"]
    else:
        assert set(wf["jobs"]) == {"deploy"}
        assert "needs" not in job and "if" not in job


def test_deploy_model_passes_the_version_only_when_given(
    spokes: dict[str, Path],
    tmp_path: Path,
) -> None:
    """The deploy step's script, run by bash with a `uv` that prints its arguments."""
    script = step_named(
        load(spokes["low"], "deploy-model.yml")["jobs"]["deploy"], "slipway deploy"
    )["run"]
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "uv").write_text('#!/bin/sh\nprintf "%s|" "$@"\n')
    (fake / "uv").chmod(0o755)

    def argv(**env: str) -> list[str]:
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            env={"PATH": f"{fake}:/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip("|").split("|")

    base = ["run", "--no-sync", "slipway", "deploy", "--env"]
    assert argv(ENVIRONMENT="staging", VERSION="") == [*base, "staging"]
    assert argv(ENVIRONMENT="prod", VERSION="3") == [*base, "prod", "--version", "3"]
    # A hostile input stays one argument (click then rejects it); it is never shell code.
    assert argv(ENVIRONMENT="prod", VERSION="1; rm -rf /") == [
        *base,
        "prod",
        "--version",
        "1; rm -rf /",
    ]


def test_deploy_model_names_the_actor_and_keeps_the_audit_trail(
    spokes: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The variable the workflow sets is the one the CLI reads as the actor, and the files it
    uploads are where the audit trail is written."""
    from slipway.pipelines.governance import audit

    job = load(spokes["low"], "deploy-model.yml")["jobs"]["deploy"]
    deploy = step_named(job, "slipway deploy")
    actors = {k: v for k, v in deploy["env"].items() if "ACTOR" in k}
    assert actors == {"SLIPWAY_ACTOR": "${{ github.actor }}"}
    monkeypatch.setenv("SLIPWAY_ACTOR", "octocat")
    assert audit.current_actor(tmp_path) == "octocat"

    upload = step_named(job, "upload-artifact")
    assert upload["if"] == "${{ !cancelled() }}"  # a rollback (6) or refusal (7) is kept too
    assert upload["with"]["include-hidden-files"] is True
    kept = upload["with"]["path"].split()
    for written in (audit.audit_path(tmp_path), audit.head_path(tmp_path)):
        assert str(written.relative_to(tmp_path)) in kept


def test_template_update_refuses_conflicts_before_opening_a_pr(
    spokes: dict[str, Path],
) -> None:
    wf = load(spokes["low"], "template-update.yml")
    assert wf[True]["schedule"], "runs weekly"
    script = run_lines(wf["jobs"]["update"])
    order = [
        "copier check-update",
        "copier update --defaults",
        "git ls-files -u",
        "exit 1",
        "gh pr create",
    ]
    positions = [script.index(s) for s in order]
    assert positions == sorted(positions), order


@pytest.mark.slow
def test_ci_steps_pass_in_a_fresh_spoke(render) -> None:
    """Every `run:` of ci.yml, in order, in a freshly rendered spoke, as the runner would
    (bash -eo pipefail, uv on PATH); then the artifact path holds the compiled pipelines, and
    the pre-commit hooks, as getting-started shows them, install and pass on the copy.

    (`make setup`, `make check` and `make test` on a fresh copy run in `make demo`'s test,
    tests/demo/test_demo.py: a second fresh spoke's whole `make test` here would repeat it.)"""
    spoke = render("ci-spoke")
    jobs = load(spoke, "ci.yml")["jobs"]
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    # The team's first `make setup` made uv.lock and they committed it: CI installs it --locked.
    locked = subprocess.run(["uv", "lock"], cwd=spoke, env=env, capture_output=True, text=True)
    assert locked.returncode == 0, locked.stderr[-3000:]
    for job_id in ("test", "infra"):
        for step in jobs[job_id]["steps"]:
            if "run" not in step:
                continue
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=spoke,
                env=env,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, (
                f"{job_id}: {step['run']}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
    upload = next(s for s in jobs["test"]["steps"] if "upload-artifact" in s.get("uses", ""))
    compiled = sorted((spoke / upload["with"]["path"]).glob("*.yaml"))
    assert compiled, f"nothing under {upload['with']['path']} to keep as an artifact"
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=spoke, check=True)
    subprocess.run(["git", "add", "-A"], cwd=spoke, check=True)
    for argv in (["uv", "run", "pre-commit", "install"], ["uv", "run", "pre-commit", "run", "-a"]):
        run = subprocess.run(argv, cwd=spoke, env=env, capture_output=True, text=True)
        assert run.returncode == 0, f"{argv}:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    assert (spoke / ".git" / "hooks" / "pre-commit").is_file()


def test_codeowners_guard_the_governed_files(spokes: dict[str, Path]) -> None:
    """The files that govern a spoke's releases need the platform's review (the copier
    answer governance_reviewers), not only the governed team's."""
    for spoke in spokes.values():
        text = (spoke / ".github" / "CODEOWNERS").read_text()
        rules = {
            parts[0]: parts[1:]
            for parts in (line.split() for line in text.splitlines())
            if parts and not parts[0].startswith("#")
        }
        for path in ("/approvers/", "/slipway.toml", "/infra/", "/.github/"):
            assert rules[path] == ["@slipway-platform/governance"], (spoke, path)


def test_deploy_model_refuses_prod_off_the_default_branch(spokes: dict[str, Path]) -> None:
    """The review's reproduction: deploy-model.yml dispatched from any branch into prod. The
    guard runs first, before any credential, and its script refuses for real under bash."""
    for spoke in spokes.values():
        job = load(spoke, "deploy-model.yml")["jobs"]["deploy"]
        guard = step_named(job, "prod deploys run only from")
        assert guard["if"] == "inputs.environment == 'prod'"
        assert job["steps"].index(guard) == 0
        assert guard["env"] == {
            "REF_NAME": "${{ github.ref_name }}",
            "DEFAULT_BRANCH": "${{ github.event.repository.default_branch }}",
        }
        for ref, code in (("feature/skip-review", 1), ("main", 0)):
            done = subprocess.run(
                ["bash", "-e", "-c", guard["run"]],
                env={"REF_NAME": ref, "DEFAULT_BRANCH": "main", "PATH": os.environ["PATH"]},
                capture_output=True,
                text=True,
            )
            assert done.returncode == code, (ref, done.stdout, done.stderr)
            if code:
                assert "prod deploys run only from main" in done.stdout


@pytest.mark.parametrize("tier", TIERS)
def test_deploy_model_runs_pulumi_with_the_hubs_policy_pack(spokes: dict[str, Path], tier: str):
    # Reproduction: deploy-model.yml never fetched the pack, and `slipway deploy --env` ran
    # `pulumi up` without one: the prod path skipped the policies CD enforces.
    job = load(spokes[tier], "deploy-model.yml")["jobs"]["deploy"]
    assert_fetches_the_pinned_policy_pack(spokes[tier], job, before="slipway deploy")
    deploy = step_named(job, "uv run --no-sync slipway deploy --env")
    assert deploy["env"]["SLIPWAY_GITHUB_REPOSITORY"] == "${{ github.repository }}"
    for stack in ("staging", "prod"):
        cd = load(spokes[tier], "cd.yml")["jobs"][stack]
        for command in ("pulumi preview", "pulumi up"):
            step = step_named(cd, f"uv run --no-sync {command}")
            assert step["env"]["SLIPWAY_GITHUB_REPOSITORY"] == "${{ github.repository }}"


def test_no_workflow_pipes_a_download_into_a_shell_and_pulumi_is_verified(
    spokes: dict[str, Path],
):
    """The Pulumi CLI went in by `curl https://get.pulumi.com | sh` in jobs that hold
    `id-token: write`: whoever served that script could mint the job's AWS credentials."""
    piped = re.compile(r"(curl|wget)[^\n|]*\|\s*(sudo\s+)?(ba|z)?sh\b")
    for path in workflow_files(spokes):
        text = path.read_text()
        assert not piped.search(text), path
        assert "get.pulumi.com" not in text, path
    for tier in TIERS:
        for name in ("cd.yml", "deploy-model.yml"):
            for job in load(spokes[tier], name)["jobs"].values():
                steps = [s for s in job["steps"] if "pulumi-v$PULUMI_VERSION" in s.get("run", "")]
                if not steps:
                    continue
                [install] = steps
                lines = [line.strip() for line in install["run"].splitlines()]
                check = next(i for i, x in enumerate(lines) if "sha256sum --check --strict" in x)
                unpack = next(i for i, x in enumerate(lines) if x.startswith("tar -xzf"))
                assert check < unpack  # nothing unverified is unpacked, let alone run
                assert all("--proto '=https'" in x for x in lines if x.startswith("curl"))


def test_monitor_runs_the_schedules_command_per_endpoint(spokes: dict[str, Path]) -> None:
    """Every 6 h ([monitoring] window_hours), per environment, one window at a time: the
    command tests/monitoring runs against moto and the stand-in KFP API, retraining on the
    commit's image, the team's state (the window count) and the alert webhook passed in."""
    for spoke in spokes.values():
        wf = load(spoke, "monitor.yml")
        assert wf[True]["schedule"] == [{"cron": "17 */6 * * *"}]
        job = wf["jobs"]["monitor"]
        assert job["strategy"]["matrix"]["environment"] == ["staging", "prod"]
        assert job["concurrency"]["group"] == "monitor-${{ matrix.environment }}"
        step = step_named(job, "slipway monitor --list-sources")
        script = step["run"]
        # Each source slipway.toml names: capture per environment, the others once (prod).
        assert "for source in $(uv run --no-sync slipway monitor --list-sources)" in script
        assert 'where=(--env "$ENVIRONMENT")' in script
        assert 'slipway monitor "${where[@]}" --source "$source"' in script
        assert '--kfp-host "$KFP_HOST" --image "$IMAGE"' in script
        assert '[ "$code" -eq 9 ]' in script  # drift acted on is not a failed job
        env = step["env"]
        assert env["SLIPWAY_STATE_URL"] == "${{ secrets.SLIPWAY_STATE_URL }}"
        assert env["SLIPWAY_ALERT_WEBHOOK"] == "${{ secrets.SLIPWAY_ALERT_WEBHOOK }}"
        assert env["IMAGE"] == "${{ steps.image.outputs.image }}"
        image = step_named(job, "get-caller-identity")["run"]
        assert ":$GITHUB_SHA" in image and "docker build" not in image  # cd.yml's, not a new one
    assert load_config(spokes["low"]).monitoring.window_hours == 6
