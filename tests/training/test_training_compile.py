"""What slipway compile writes: the KFP IR a Kubeflow or Vertex AI backend receives.

No cluster here: what is tested is the compiled payload itself (it parses into the
PipelineSpec protobuf, its shape matches a golden file) and that the arguments
`slipway train --kfp-host` sends are exactly the pipeline's parameters.
To accept an intended change of shape:
SLIPWAY_UPDATE_GOLDEN=1 pytest tests/training/test_training_compile.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.training.pipeline import COMPILED_FILE, pipeline_arguments

GOLDEN = Path(__file__).parent / "golden" / "training_pipeline.json"


def _parse(path: Path) -> pipeline_spec_pb2.PipelineSpec:
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(yaml.safe_load(path.read_text()), spec)
    return spec


def _signature(definitions: dict[str, Any]) -> dict[str, str]:
    """name -> parameter type or artifact schema, for one side of a component."""
    params = {k: v["parameterType"] for k, v in definitions.get("parameters", {}).items()}
    artifacts = {
        k: v["artifactType"]["schemaTitle"] for k, v in definitions.get("artifacts", {}).items()
    }
    return dict(sorted({**params, **artifacts}.items()))


def _shape(spec: pipeline_spec_pb2.PipelineSpec) -> dict[str, Any]:
    """Everything a backend acts on except volatile fields (kfp's version, step source code)."""
    raw = json_format.MessageToDict(spec)
    tasks = raw["root"]["dag"]["tasks"]
    return {
        "name": raw["pipelineInfo"]["name"],
        "parameters": raw["root"]["inputDefinitions"]["parameters"],
        "tasks": {
            name: {
                "component": task["componentRef"]["name"],
                "after": sorted(task.get("dependentTasks", [])),
                "caching": task.get("cachingOptions", {}),
                "inputs": sorted(
                    [*task["inputs"].get("parameters", {}), *task["inputs"].get("artifacts", {})]
                ),
            }
            for name, task in sorted(tasks.items())
        },
        "components": {
            name: {
                side: _signature(component.get(f"{side}Definitions", {}))
                for side in ("input", "output")
            }
            for name, component in sorted(raw["components"].items())
        },
        "images": sorted(
            {e["container"]["image"] for e in raw["deploymentSpec"]["executors"].values()}
        ),
    }


@pytest.fixture
def compiled(render) -> tuple[Path, Path]:
    spoke = render()
    result = CliRunner().invoke(main, ["--project", str(spoke), "compile"])
    assert result.exit_code == 0, result.output
    path = spoke / COMPILED_FILE
    assert str(path) in result.output
    return spoke, path


def test_compiled_pipeline_parses_and_matches_the_golden_shape(compiled):
    _, path = compiled
    shape = json.loads(json.dumps(_shape(_parse(path))))
    if os.environ.get("SLIPWAY_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(shape, indent=2, sort_keys=True) + "\n")
    assert shape == json.loads(GOLDEN.read_text())


def test_every_step_runs_on_the_configured_image_without_installing_kfp(compiled):
    spoke, path = compiled
    text = path.read_text()
    assert "pip install" not in text and "kfp==" not in text
    toml = spoke / "slipway.toml"
    toml.write_text(
        toml.read_text().replace(
            'base_image = "python:3.11-slim"', 'base_image = "registry.example.com/spoke:1.2"'
        )
    )
    result = CliRunner().invoke(main, ["--project", str(spoke), "compile"])
    assert result.exit_code == 0, result.output
    assert _shape(_parse(path))["images"] == ["registry.example.com/spoke:1.2"]


def test_submitted_arguments_are_exactly_the_pipeline_parameters(compiled):
    spoke, path = compiled
    params = _parse(path).root.input_definitions.parameters
    arguments = pipeline_arguments(spoke, path, tracking_uri="http://mlflow.internal:5000")
    # The image's working directory holds the spoke: project_root keeps its default there.
    assert set(arguments) == set(params) - {"project_root"}
    kinds = {"STRING": str, "BOOLEAN": bool}
    for name, value in arguments.items():
        kind = pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(params[name].parameter_type)
        assert isinstance(value, kinds[kind]), name
    assert arguments["pipeline_sha256"] != ""
    assert arguments["run_key"] != pipeline_arguments(spoke, path, tracking_uri="x")["run_key"]
    assert load_config(spoke).training.base_image in path.read_text()


def test_kfp_host_without_a_reachable_registry_is_refused(render, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spoke = render()
    result = CliRunner().invoke(
        main,
        ["--project", str(spoke), "train", "--kfp-host", "http://127.0.0.1:9", "--image", "a/b:1"],
    )
    assert result.exit_code == Exit.USAGE
    assert "needs MLFLOW_TRACKING_URI" in result.output
    assert not (spoke / COMPILED_FILE).exists()


def test_an_unreachable_kubeflow_is_exit_8_and_submits_nothing(render):
    spoke = render()
    result = CliRunner().invoke(
        main,
        ["--project", str(spoke), "train", "--kfp-host", "http://127.0.0.1:9", "--image", "a/b:1"],
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )
    assert result.exit_code == Exit.UNREACHABLE, result.output
    assert "cannot reach Kubeflow Pipelines at http://127.0.0.1:9" in result.output
    assert "nothing was submitted" in result.output


def test_a_spoke_without_its_pipeline_file_gets_a_clear_error(render):
    spoke = render()
    (spoke / "pipelines" / "training.py").unlink()
    result = CliRunner().invoke(main, ["--project", str(spoke), "compile"])
    assert result.exit_code == Exit.CONFIG
    assert "pipelines/training.py is missing" in result.output
    assert "copier update" in result.output


def test_a_deploy_wiring_without_build_pipeline_gets_a_clear_error(render):
    spoke = render()
    (spoke / "pipelines" / "deploy.py").write_text("PIPELINE = None\n")
    result = CliRunner().invoke(main, ["--project", str(spoke), "compile"])
    assert result.exit_code == Exit.CONFIG, result.output
    assert "pipelines/deploy.py must define build_pipeline(config)" in result.output
    assert "docs/spoke/deploy.md" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_unchanged_pipeline_is_not_compiled_again_and_any_change_is(compiled, monkeypatch):
    """The IR is kept while the pipeline, image and kfp are the same and the file untouched;
    what is kept is byte for byte what a fresh compile writes (so the pipeline sha256 every
    version carries cannot differ)."""
    from kfp import compiler

    from slipway.pipelines.training.pipeline import compile_training

    spoke, path = compiled
    first = path.read_bytes()
    calls: list[str] = []
    original = compiler.Compiler.compile

    def counted(self: Any, pipeline: Any, package_path: str, **kwargs: Any) -> None:
        calls.append(package_path)
        original(self, pipeline, package_path, **kwargs)

    monkeypatch.setattr(compiler.Compiler, "compile", counted)
    config = load_config(spoke)
    assert compile_training(spoke, config) == path
    assert (calls, path.read_bytes()) == ([], first)
    fresh = compile_training(spoke, config, output=spoke / "build" / "fresh.yaml")
    assert (calls, fresh.read_bytes()) == ([str(fresh)], first)
    path.write_bytes(first + b"# edited by hand\n")  # a changed file is written again
    compile_training(spoke, config)
    assert (len(calls), path.read_bytes()) == (2, first)
    image = "registry.example.com/spoke@sha256:" + "a" * 64  # another input: compiled again
    compile_training(spoke, config, image=image)
    assert len(calls) == 3
    assert image in path.read_text()
