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
    "batch": "slipway.pipelines.batch.kubeflow:compile_batch",
}


@click.command(name="compile")
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write <pipeline>.yaml (default: build/pipelines/).",
)
@click.option(
    "--image",
    metavar="REF",
    default=None,
    help="The spoke's image for this commit (what cd.yml pushes), set on every step; "
    "without it steps name training.base_image, which cannot run them on a cluster.",
)
@click.pass_context
def compile_pipelines(ctx: click.Context, output_dir: Path | None, image: str | None) -> None:
    """Compile the pipelines for Kubeflow Pipelines or Vertex AI (same IR YAML)."""
    from slipway.pipelines.training.images import ImageRefError, validate_image_ref
    from slipway.pipelines.training.lineage import file_sha256
    from slipway.pipelines.training.pipeline import TrainingError
    from slipway.pipelines.training.spoke_code import SpokeCodeError

    spoke = spoke_from_context(ctx)
    if image is not None:
        try:
            validate_image_ref(image)
        except ImageRefError as exc:
            fail(str(exc), exc.exit_code)
    out = output_dir or spoke.root / "build" / "pipelines"
    for name, target in PIPELINES.items():
        module_name, attr = target.split(":")
        compile_one = getattr(importlib.import_module(module_name), attr)
        try:
            path = compile_one(spoke.root, spoke.config, out / f"{name}.yaml", image=image)
        except (TrainingError, SpokeCodeError) as exc:
            fail(str(exc), Exit.CONFIG)
        click.echo(f"{path}  sha256 {file_sha256(path)}")
    if image is None:
        click.echo(
            f"steps run on {spoke.config.training.base_image} (training.base_image): fine for "
            "kfp.local; for a cluster pass --image with the spoke's image for the commit"
        )
