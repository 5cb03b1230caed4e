"""The container contract, without Docker: the image's copy set alone runs every step.

On Kubeflow each step runs its executor's command in the spoke's image, from its WORKDIR.
No Docker engine runs here, so the image is rebuilt the way template/Dockerfile builds it:
the files its COPY lines name (read from the Dockerfile, not listed here) go into a fresh
directory, then its `uv sync` line runs there with its ENV (the environment outside that
directory, like /opt/venv), the slipway libraries coming non-editable from the template's
git tag as in a spoke copied from a remote. Then every executor of the compiled IR runs with
that environment's Python, from that directory (kfp.local runs each executor's command and
arguments from the IR), with the hub's source tree nowhere on sys.path: a file a step needs
that the image lacks, or a dependency missing from the runtime extra, fails here.

What this does not cover: the image's base (python:3.11-slim), its non-root user, and the
cluster itself (see docs/spoke/kubeflow.md).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from copier import run_copy

from slipway.pipelines.training.lineage import file_sha256
from tests.hub import hub_locked_versions
from tests.hub import mlflow_server as start_mlflow_server

# One group: its tests share the module's image (built once, ~1 min), on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("container-contract")]

HUB = Path(__file__).resolve().parents[2]
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway/contract-staging:0123abcd"
MODEL = "contract"

# Runs in the image's Python: loads the compiled IR and has kfp.local run every executor.
DRIVER = """
import json, sys
from kfp import components, local

ir, pipeline_root, arguments, strict = sys.argv[1:5]
local.init(
    runner=local.SubprocessRunner(use_venv=False),
    pipeline_root=pipeline_root,
    raise_on_error=strict == "strict",
)
components.load_component_from_file(ir)(**json.loads(arguments))
"""
_FINISHED = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Image:
    app: Path  # the WORKDIR, holding exactly what the Dockerfile copies
    python: Path  # the environment `uv sync` built, outside the WORKDIR
    env: dict[str, str]
    scratch: Path  # outside the image: the driver, pipeline roots, the team's registry

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv], cwd=self.app, env=self.env, capture_output=True, text=True
        )


def dockerfile_instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, rest = (pending + line).partition(" ")
        out.append((instruction.upper(), rest.strip()))
        pending = ""
    return out


def assemble(spoke: Path, app: Path, instructions: list[tuple[str, str]]) -> list[str]:
    """Copy what each COPY into the WORKDIR names, skipping .dockerignore's patterns."""
    ignored = (spoke / ".dockerignore").read_text().split()
    copied: list[str] = []
    for instruction, rest in instructions:
        if instruction != "COPY":
            continue
        *sources, dest = shlex.split(rest)
        if dest.startswith("/"):
            continue  # outside the WORKDIR (the serving entry point): not a pipeline step's
        for source in sources:
            src = spoke / source
            assert src.exists(), f"the Dockerfile copies {source}, which the spoke lacks"
            target = app / dest / src.name if dest.endswith("/") else app / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(
                    src,
                    target,
                    ignore=lambda _d, names: _ignored(names, ignored),
                    dirs_exist_ok=True,
                )
            else:
                shutil.copy2(src, target)
            copied.append(source)
    return copied


def _ignored(names: list[str], patterns: list[str]) -> set[str]:
    bare = [p.removeprefix("**/") for p in patterns]
    return {n for n in names if any(fnmatch.fnmatch(n, p) for p in bare)}


@pytest.fixture(scope="module")
def image(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Image:
    scratch = tmp_path_factory.mktemp("contract")
    spoke = scratch / "spoke"
    # From the template's git URL, as a team copies it: the libraries pin the git tag.
    run_copy(
        f"git+file://{template_repo}",
        spoke,
        data={"project_name": "Contract", "risk_tier": "low"},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
        unsafe=False,
    )
    # The team's first `make setup` locks within the hub's tested versions; the lock is
    # committed, and the Dockerfile copies it and installs it --locked.
    locked = subprocess.run(["uv", "lock"], cwd=spoke, capture_output=True, text=True)
    assert locked.returncode == 0, locked.stderr[-3000:]
    instructions = dockerfile_instructions(spoke / "Dockerfile")
    app = scratch / "app"
    app.mkdir()
    copied = assemble(spoke, app, instructions)
    assert {"src", "pipelines", "pyproject.toml", "uv.lock", "slipway.toml"} <= set(copied)

    # The Dockerfile's ENV, with its absolute paths moved under scratch/ (the image's /).
    # The machine's environment (certificates, proxies, uv's cache) minus what would point
    # the image at the hub: its venv, its source tree, a registry or a Kubeflow of its own.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP"}
        and not key.startswith(("MLFLOW_", "KF_PIPELINES_", "SLIPWAY_", "UV_"))
    }
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    for instruction, rest in instructions:
        if instruction == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value.replace("/opt/", f"{scratch}/opt/").replace(":$PATH", "")
    # uv itself: the hub's, the version the Dockerfile pins (`pip install uv==...`).
    uv = shutil.which("uv") or str(HUB / ".tools" / "bin" / "uv")
    env["PATH"] = f"{env['PATH']}:{Path(uv).parent}:{os.environ['PATH']}"
    sync = [
        rest
        for instruction, rest in instructions
        if instruction == "RUN" and rest.startswith("uv sync")
    ]
    assert len(sync) == 1, f"expected one `RUN uv sync ...` in the Dockerfile, found {sync}"
    built = subprocess.run(
        shlex.split(sync[0]), cwd=app, env=env, capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr[-4000:]
    venv = Path(env["UV_PROJECT_ENVIRONMENT"])
    assert not venv.is_relative_to(app)
    return Image(app=app, python=venv / "bin" / "python", env=env, scratch=scratch)


def test_the_image_environment_has_the_libraries_installed_not_the_hub_source(image: Image):
    probe = image.run(
        image.python,
        "-c",
        "import json, sys, slipway.pipelines, kfp, mlflow, sklearn, contract; "
        "print(json.dumps({'path': sys.path, 'lib': list(slipway.pipelines.__path__), "
        "'spoke': contract.__file__}))",
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert not any(str(HUB) in entry for entry in found["path"] + found["lib"])
    (lib,) = found["lib"]
    assert Path(lib).is_relative_to(image.python.parent.parent), lib  # in site-packages
    assert Path(found["spoke"]).is_relative_to(image.app / "src")


def test_a_spoke_stamped_from_a_release_installs_exactly_the_hubs_locked_versions(image: Image):
    """The spoke's own resolution never picks newer releases from the index: its image holds
    the versions the hub's uv.lock tested for this release."""
    names = ("mlflow", "kfp", "scikit-learn", "pandas")
    probe = image.run(
        image.python,
        "-c",
        "import json, sys; from importlib.metadata import version; "
        "print(json.dumps({n: version(n) for n in sys.argv[1:]}))",
        *names,
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == hub_locked_versions(names)


# What the sagemaker-mlflow plugin's request-header provider makes MLflow log on every call to
# a registry that is not a SageMaker ARN (it parses every tracking URI as one).
PLUGIN_NOISE = "Encountered unexpected error during resolving request headers"
MLFLOW_CALLS = (
    "import logging, sys, mlflow; logging.basicConfig(); "
    "mlflow.set_tracking_uri(sys.argv[1]); c = mlflow.MlflowClient(); "
    "c.search_experiments(); c.search_registered_models(); "
    "import importlib.util as u; print(u.find_spec('sagemaker_mlflow') is not None)"
)


@pytest.fixture(scope="module")
def mlflow_server(image: Image) -> Iterator[str]:
    """A real `mlflow server` (the hub's MLflow, the version the spoke's lock holds)."""
    with start_mlflow_server(image.scratch / "server") as url:
        yield url


def test_a_spoke_on_an_mlflow_server_logs_no_sagemaker_plugin_warning(
    image: Image, mlflow_server: str
):
    """The spoke (registry answer: server) does not install the SageMaker plugin, so MLflow
    calls to an http registry stay quiet; the hub's environment, which has every extra, shows
    what the spoke no longer prints."""
    spoke = image.run(image.python, "-c", MLFLOW_CALLS, mlflow_server)
    assert spoke.returncode == 0, spoke.stderr
    assert spoke.stdout.strip() == "False", "the plugin is installed in the spoke"
    assert PLUGIN_NOISE not in spoke.stderr, spoke.stderr
    with_plugin = subprocess.run(
        [sys.executable, "-c", MLFLOW_CALLS, mlflow_server], capture_output=True, text=True
    )
    assert with_plugin.stdout.strip() == "True"
    assert PLUGIN_NOISE in with_plugin.stderr


def _tasks(output: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _FINISHED.finditer(_ANSI.sub("", output))}


def _run_ir(image: Image, ir: Path, arguments: dict[str, object], *, strict: bool):
    driver = image.scratch / "driver.py"
    driver.write_text(DRIVER)
    root = image.scratch / f"kfp-root-{ir.stem}"
    return image.run(
        image.python, driver, ir, root, json.dumps(arguments), "strict" if strict else "lenient"
    )


@dataclass(frozen=True)
class Trained:
    ir: Path  # where `slipway compile --image` wrote both pipelines
    registry: str  # the team's registry: outside the image, named by the run's parameter
    spec: dict
    run: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def trained(image: Image) -> Trained:
    """The image's own `slipway compile --image`, then the training IR run from the image."""
    out = image.scratch / "ir"
    slipway = image.python.parent / "slipway"
    compiled = image.run(slipway, "compile", "--image", IMAGE, "--output-dir", out)
    assert compiled.returncode == 0, compiled.stderr
    ir = out / "training.yaml"
    (image.scratch / "registry").mkdir()
    uri = f"sqlite:///{image.scratch / 'registry' / 'mlflow.db'}"
    arguments = {
        "tracking_uri": uri,
        "run_key": "contract-run",
        "git_sha": "0123abcd",
        "git_dirty": False,
        "pipeline_sha256": file_sha256(ir),
        "author": "ci@example.com",
    }
    run = _run_ir(image, ir, arguments, strict=True)
    return Trained(out, uri, yaml.safe_load(ir.read_text()), run)


def _images(spec: dict) -> set[str]:
    return {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}


def test_every_training_step_runs_from_the_image_until_a_version_is_registered(
    trained: Trained,
):
    from mlflow import MlflowClient

    assert _images(trained.spec) == {IMAGE}
    output = trained.run.stdout + trained.run.stderr
    assert trained.run.returncode == 0, output[-6000:]
    steps = list(trained.spec["root"]["dag"]["tasks"])
    assert len(steps) == 6
    assert _tasks(output) == dict.fromkeys(steps, "SUCCESS"), output[-3000:]
    client = MlflowClient(tracking_uri=trained.registry, registry_uri=trained.registry)
    version = client.get_model_version_by_alias(MODEL, "challenger")
    assert str(version.version) == "1"
    assert version.tags["slipway.git_sha"] == "0123abcd"
    assert version.tags["slipway.pipeline_sha256"] == file_sha256(trained.ir / "training.yaml")


def test_deploy_steps_run_from_the_image_and_reach_out_through_configuration(
    image: Image, trained: Trained
):
    ir = trained.ir / "deploy.yaml"
    assert _images(yaml.safe_load(ir.read_text())) == {IMAGE}
    # No gateway answers on this port: the rollout step must try the configured URL, not
    # 127.0.0.1:8780 from slipway.toml, and fail saying so.
    gateway = "http://127.0.0.1:9"
    arguments = {"tracking_uri": trained.registry, "gateway_url": gateway, "step_seconds": 1.0}
    run = _run_ir(image, ir, arguments, strict=False)
    output = run.stdout + run.stderr
    tasks = _tasks(output)
    # resolve found the challenger in the team's registry (the image's own .slipway/ holds
    # none), governance let the low-tier version through, and the rollout reached for the
    # configured gateway.
    assert tasks.get("resolve-candidate") == "SUCCESS", output[-4000:]
    assert tasks.get("approval-gate") == "SUCCESS", output[-4000:]
    assert tasks.get("rollout") == "FAILURE", output[-4000:]
    assert f"no gateway answers at {gateway}" in output
    assert not (image.app / ".slipway" / "mlflow.db").exists()


def test_a_file_the_image_lacks_fails_the_step_that_needs_it(image: Image, trained: Trained):
    """The harness fires: the same environment, from a copy of the WORKDIR without
    slipway.toml (as if the Dockerfile stopped copying it), fails at the first step."""
    lacking = image.scratch / "app-without-config"
    shutil.copytree(image.app, lacking, ignore=shutil.ignore_patterns("slipway.toml", ".slipway"))
    arguments = {"tracking_uri": trained.registry, "run_key": "lacking", "author": "ci"}
    run = subprocess.run(
        [
            str(image.python),
            str(image.scratch / "driver.py"),
            str(trained.ir / "training.yaml"),
            str(image.scratch / "kfp-root-lacking"),
            json.dumps(arguments),
            "lenient",
        ],
        cwd=lacking,
        env=image.env,
        capture_output=True,
        text=True,
    )
    output = run.stdout + run.stderr
    assert _tasks(output) == {"load-data": "FAILURE"}, output[-3000:]
    assert "slipway.toml is missing" in output
