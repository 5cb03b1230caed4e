"""The Pulumi policy pack in infra/policy/ loads and enforces the same policies, in its own
environment (pulumi-policy pins protobuf 5, which the hub's kfp cannot share).

Slow: builds a fresh venv with uv. Resources come from a mock-mode stack (Pulumi's stand-in
for AWS) recorded in the hub's environment and handed to the pack's policies as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slipway.infra.plan import Environment
from slipway.infra.spoke_stack import StackInputs, build_spoke_stack
from slipway.infra.testing import run_stack

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("policy-pack")]

PACK = Path(__file__).resolve().parents[1] / "policy"

VALIDATE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pulumi_policy import PolicyResource, PolicyResourceOptions, PolicyCustomTimeouts
from pulumi_policy import StackValidationArgs
from pulumi_policy.proxy import unknown_checking_proxy
import google.protobuf
from slipway_policies import build_policies

def resource(r):
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    # As the policy engine hands props over: wrapped so that reading an unknown raises.
    props = unknown_checking_proxy(r["props"])
    return PolicyResource(r["type"], props, "urn:" + r["name"], r["name"], opts, None, None,
                          [], {})

resources = [resource(r) for r in json.load(open(sys.argv[2]))]
reports = []
for policy in build_policies():
    policy.validate(StackValidationArgs(resources),
                    lambda message, urn=None, p=policy.name: reports.append([p, message, urn]))
print(json.dumps({"protobuf": google.protobuf.__version__, "reports": reports}))
"""


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        pytest.skip("uv is not on PATH (make setup bootstraps it)")
    return found


@pytest.fixture(scope="module")
def pack_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("policy-pack") / "venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([uv(), "venv", "-q", "-p", sys.executable, str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    # Exactly what `pulumi policy` does with requirements.txt, from the pack's directory.
    subprocess.run(
        [uv(), "pip", "install", "-q", "-p", str(python), "-r", "requirements.txt"],
        cwd=PACK,
        check=True,
        env=env,
    )
    return python


def validate(pack_python: Path, resources, tmp_path: Path) -> dict:
    data = tmp_path / "resources.json"
    data.write_text(
        json.dumps([{"type": r.type, "name": r.name, "props": dict(r.props)} for r in resources])
    )
    out = subprocess.run(
        [str(pack_python), "-c", VALIDATE, str(PACK), str(data)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_pack_reports_what_the_functions_report(configs, pack_python, tmp_path):
    config = configs["medium"]
    result = run_stack(
        lambda: build_spoke_stack(config, Environment.prod, StackInputs(model_version=1)),
        project=config.project.slug,
        stack="prod",
    )
    good = validate(pack_python, result.resources, tmp_path)
    assert good["protobuf"].startswith("5.")
    assert good["reports"] == []
    mutable = [
        r
        if r.type != "aws:ecr/repository:Repository"
        else type(r)(r.type, r.name, {**r.props, "imageTagMutability": "MUTABLE"}, r.id)
        for r in result.resources
    ]
    bad = validate(pack_python, mutable, tmp_path)
    repo = next(r.name for r in result.resources if r.type == "aws:ecr/repository:Repository")
    assert bad["reports"] == [
        [
            "images-scanned-immutable",
            "image tags are mutable; fix: set image_tag_mutability=IMMUTABLE",
            f"urn:{repo}",
        ]
    ]


# pulumi-policy's sentinel for a string output that is unknown during preview.
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def test_a_value_unknown_during_preview_fails_closed(configs, pack_python, tmp_path):
    """pulumi-policy reports a policy that reads an unknown value as advisory and lets the
    preview pass; the pack reports it as a mandatory violation of that policy instead."""
    config = configs["medium"]
    result = run_stack(
        lambda: build_spoke_stack(config, Environment.prod, StackInputs(model_version=1)),
        project=config.project.slug,
        stack="prod",
    )
    unknown = [
        type(r)(r.type, r.name, {**r.props, "policy": UNKNOWN_STRING}, r.id)
        if r.type == "aws:iam/rolePolicy:RolePolicy"
        else r
        for r in result.resources
    ]
    reports = validate(pack_python, unknown, tmp_path)["reports"]
    assert [(name, urn) for name, _, urn in reports] == [("no-wildcard-iam", None)]
    [[_, message, _]] = reports
    assert message.startswith("cannot be checked: the string value at .policy can't be known")
    assert "a mandatory policy does not pass what it cannot see" in message


def test_the_pack_entry_point_starts_its_analyzer_on_loopback(pack_python):
    # PolicyPack(...) serves the policy engine's gRPC API on 127.0.0.1 and prints the port.
    proc = subprocess.Popen(
        [str(pack_python), "__main__.py"],
        cwd=PACK,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.isdigit(), proc.stderr.read() if proc.poll() is not None else port
        assert int(port) > 0
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_the_packs_dependencies_are_pinned_exactly_and_pulumi_matches_the_workflows():
    """Before, the pack installed `pulumi-policy>=1.21,<2` and whatever its dependencies
    resolved to on the day of the CD run: the policies ran on versions nobody tested."""
    import re

    lines = [
        line.split(";")[0].strip()
        for line in (PACK / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    local = [line for line in lines if line.startswith("../")]
    assert local == ["../../pipelines"]  # the library checkout the pack wraps, no range
    pins = dict(line.split("==") for line in lines if line not in local)
    unpinned = [line for line in lines if line not in local and "==" not in line]
    assert unpinned == [] and {"pulumi-policy", "pulumi", "protobuf", "pydantic"} <= set(pins)
    assert pins["protobuf"].startswith("5.")  # pulumi-policy's own pin
    # The pack's Pulumi SDK is the CLI version the spoke's workflows install.
    template = Path(__file__).resolve().parents[2] / "template" / ".github" / "workflows"
    for workflow in ("cd.yml.jinja", "deploy-model.yml.jinja"):
        [version] = re.findall(r"PULUMI_VERSION: (\S+)", (template / workflow).read_text())
        assert version == pins["pulumi"], workflow
