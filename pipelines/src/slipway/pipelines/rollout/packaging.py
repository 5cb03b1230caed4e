"""A registered version as SageMaker takes it: model.tar.gz, plus the commit of its image.

SageMaker extracts model.tar.gz into /opt/ml/model, and the spoke's image serves it there
with the gateway's single-model mode (template/docker/serve, serving.sagemaker): so the
tarball holds the MLflow model directory's contents at its root, MLmodel at the top level.

The image is the one cd.yml built from the commit that trained the version (the version's
TAG_GIT_SHA): a version trained from a dirty working tree, or with no commit recorded, has no
image that is known to match its code, and is refused.

The tarball also carries the model's drift baseline (serving.guardrail_metrics.REFERENCE_FILE:
its predictions on the spoke's training split, the reference `slipway monitor` uses), so the
SageMaker container can publish prediction PSI without reaching the registry or the data.

The tarball is byte-for-byte reproducible (sorted entries, fixed times and owners, gzip
without a timestamp), so packaging a version twice gives the same sha256 and publishing it
again is recognised as the same release.
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slipway.pipelines import registry
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.registry import fluent_registry
from slipway.pipelines.training.lineage import UNKNOWN

if TYPE_CHECKING:
    from mlflow import MlflowClient

TARBALL = "model.tar.gz"
MLMODEL = "MLmodel"


class NotReleasable(SlipwayError, RuntimeError):
    """The version cannot go to SageMaker as registered; the message says what to do."""

    exit_code = Exit.NOT_APPROVED


@dataclass(frozen=True)
class ModelPackage:
    version: int
    commit_sha: str  # the image cd.yml built from this commit serves it
    tarball: Path


def release_commit(tags: Mapping[str, str], model: str, version: str) -> str:
    """The commit whose image serves the version, or NotReleasable when it is not known."""
    retrain = (
        "retrain it from a clean checkout of a commit on main (`slipway train`, or "
        "cd.yml's training run), then deploy the new version"
    )
    if tags.get(registry.TAG_GIT_DIRTY) == "true":
        raise NotReleasable(
            f"{model} version {version} was trained from a working tree with uncommitted "
            "changes, so no image is known to hold its code: " + retrain
        )
    sha = tags.get(registry.TAG_GIT_SHA, "")
    if sha in {"", UNKNOWN}:
        raise NotReleasable(
            f"{model} version {version} records no git commit ({registry.TAG_GIT_SHA}), so "
            "its image cannot be known: " + retrain
        )
    return sha


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """The same entry whatever the checkout: no times, owners or umask in the archive."""
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() or info.mode & 0o100 else 0o644
    return info


def write_model_tarball(model_dir: Path, tarball: Path) -> Path:
    """model.tar.gz with `model_dir`'s contents at its root (MLmodel at the top level)."""
    if not (model_dir / MLMODEL).is_file():
        raise NotReleasable(
            f"{model_dir} has no {MLMODEL} at its root: it is not an MLflow model directory, "
            "and the serving image loads only those; register models with mlflow's log_model"
        )
    entries = sorted(model_dir.rglob("*"), key=lambda p: p.relative_to(model_dir).as_posix())
    with (
        tarball.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in entries:
            archive.add(
                path,
                arcname=path.relative_to(model_dir).as_posix(),
                recursive=False,
                filter=_normalised,
            )
    return tarball


def package_version(
    root: Path, client: MlflowClient, model: str, version: str, workdir: Path
) -> ModelPackage:
    """Download the version's model from the spoke's registry and package it in `workdir`.

    The download goes through the spoke's registry (fluent_registry), never MLflow's
    default tracking URI, which may be another spoke's or a server nobody meant.
    """
    import mlflow.artifacts

    commit = release_commit(client.get_model_version(model, version).tags, model, version)
    with fluent_registry(root):
        local = mlflow.artifacts.download_artifacts(
            f"models:/{model}/{version}", dst_path=str(workdir / "model")
        )
    add_reference(root, Path(local))
    tarball = write_model_tarball(Path(local), workdir / TARBALL)
    return ModelPackage(version=int(version), commit_sha=commit, tarball=tarball)


REFERENCE_MAX_ROWS = 10_000  # plenty for a PSI, small enough for the tarball


def add_reference(root: Path, model_dir: Path) -> Path | None:
    """Write the model's predictions on the training split into `model_dir`, unless the
    model already carries them (a model logged with its own reference keeps it). A model
    without the python_function flavor gets none: the serving image cannot load it either,
    and it is refused when it starts, with that reason."""
    import logging

    import mlflow.pyfunc
    import yaml

    from slipway.pipelines.config import load_config
    from slipway.pipelines.serving.guardrail_metrics import REFERENCE_FILE, write_reference
    from slipway.pipelines.serving.predictors import _to_list
    from slipway.pipelines.training.spoke_code import features, load_frame, split

    existing = model_dir / REFERENCE_FILE
    if existing.is_file():
        return existing
    flavors = (yaml.safe_load((model_dir / MLMODEL).read_text()) or {}).get("flavors", {})
    if "python_function" not in flavors:
        logging.getLogger(__name__).warning(
            "%s has no python_function flavor: packaged without a drift reference", model_dir
        )
        return None
    config = load_config(root)
    reference = split(load_frame(root, config), config).x_train.head(REFERENCE_MAX_ROWS)
    model = mlflow.pyfunc.load_model(str(model_dir))
    predictions = _to_list(model.predict(features(reference, config)))
    return write_reference(
        model_dir, predictions, f"predictions on {len(reference)} rows of the training split"
    )
