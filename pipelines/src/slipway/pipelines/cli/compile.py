"""`slipway compile`: write the spoke's pipelines as KFP IR YAML under build/pipelines/."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from slipway.pipelines.cli._common import fail, spoke_from_context
from slipway.pipelines.exitcodes import Exit

# pipeline -> "module:function(root, config, output) -> Path"; one line per pipeline.
PIPELINES: dict[str, str] = {
    "training": "slipway.pipelines.training.pipeline:compile_training",
    "deploy": "slipway.pipelines.rollout.pipeline:compile_deploy",
}


@click.command(name="compile")
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write <pipeline>.yaml (default: build/pipelines/).",
)
@click.pass_context
def compile_pipelines(ctx: click.Context, output_dir: Path | None) -> None:
    """Compile the pipelines for Kubeflow Pipelines or Vertex AI (same IR YAML)."""
    from slipway.pipelines.training.lineage import file_sha256
    from slipway.pipelines.training.pipeline import TrainingError
    from slipway.pipelines.training.spoke_code import SpokeCodeError

    spoke = spoke_from_context(ctx)
    out = output_dir or spoke.root / "build" / "pipelines"
    for name, target in PIPELINES.items():
        module_name, attr = target.split(":")
        compile_one = getattr(importlib.import_module(module_name), attr)
        try:
            path = compile_one(spoke.root, spoke.config, out / f"{name}.yaml")
        except (TrainingError, SpokeCodeError) as exc:
            fail(str(exc), Exit.CONFIG)
        click.echo(f"{path}  sha256 {file_sha256(path)}")
