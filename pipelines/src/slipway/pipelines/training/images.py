"""The container image every pipeline step runs in on a cluster: validated, then set everywhere.

On Kubeflow each task runs its component's command in its component's image. The base image
of slipway.toml (`training.base_image`, python:3.11-slim by default) has neither the spoke's
code nor the slipway libraries, and the components are built with
`install_kfp_package=False`, so a step on it fails at its first import. The image that can
run a step is the spoke's own, built by cd.yml for the commit; it enters as `--image REF`
and is set on every executor of the compiled IR, whatever component the spoke wired.
"""

from __future__ import annotations

import re
from pathlib import Path

from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

__all__ = [
    "ImageRefError",
    "executor_images",
    "image_hint",
    "set_executor_images",
    "validate_image_ref",
    "with_image",
]

# The reference grammar of the OCI distribution spec (github.com/distribution/reference,
# regexp.go): [domain[:port]/]path[:tag][@digest], path components in lower case.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_NAME_MAX = 255


class ImageRefError(SlipwayError, ValueError):
    """--image is not an OCI image reference; the message shows the expected shape."""

    exit_code = Exit.USAGE


def validate_image_ref(ref: str) -> str:
    """Return `ref` unchanged if it is an OCI image reference, else raise ImageRefError."""
    match = _REFERENCE.match(ref)
    problem = None
    if not ref.strip():
        problem = "it is empty"
    elif ref != ref.strip() or any(c.isspace() for c in ref):
        problem = "it contains whitespace"
    elif "://" in ref:
        problem = "a reference has no scheme (drop the http:// or docker://)"
    elif match is None:
        problem = (
            "it does not match [registry[:port]/]repository[:tag][@sha256:digest] "
            "(repository in lower case; a tag of letters, digits, '.', '_' or '-')"
        )
    elif len(match.group("name")) > _NAME_MAX:
        problem = f"its name is longer than {_NAME_MAX} characters"
    if problem:
        raise ImageRefError(
            f"--image {ref!r} is not an image reference: {problem}. Pass the image cd.yml "
            "built for the commit, e.g. "
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway/my-model-staging:<git sha>"
        )
    return ref


def image_hint(config: SpokeConfig, git_sha: str) -> str:
    """The reference cd.yml pushes for this commit (account id left for the reader)."""
    return (
        f"<account>.dkr.ecr.{config.deploy.region}.amazonaws.com/"
        f"slipway/{config.project.slug}-staging:{git_sha}"
    )


def with_image(config: SpokeConfig, image: str | None) -> SpokeConfig:
    """The config whose components are built on `image` (unchanged when image is None)."""
    if image is None:
        return config
    training = config.training.model_copy(update={"base_image": validate_image_ref(image)})
    return config.model_copy(update={"training": training})


def executor_images(compiled: Path) -> dict[str, str]:
    """executor name -> image, read from a compiled IR YAML."""
    return {name: image for name, image in _executors(_documents(compiled))}


def set_executor_images(compiled: Path, image: str) -> None:
    """Put `image` on every executor of a compiled IR (a component the spoke built on another
    image included): a step that cannot import the spoke's code cannot run."""
    import yaml

    documents = _documents(compiled)
    if all(current == image for _, current in _executors(documents)):
        return  # the usual case: the file stays exactly as kfp wrote it
    for document in documents:
        for executor in document.get("deploymentSpec", {}).get("executors", {}).values():
            if "container" in executor:
                executor["container"]["image"] = image
    compiled.write_text(yaml.safe_dump_all(documents, sort_keys=True), encoding="utf-8")


def _documents(compiled: Path) -> list[dict]:
    import yaml

    return [d for d in yaml.safe_load_all(compiled.read_text(encoding="utf-8")) if d]


def _executors(documents: list[dict]) -> list[tuple[str, str]]:
    return [
        (name, executor["container"]["image"])
        for document in documents
        for name, executor in document.get("deploymentSpec", {}).get("executors", {}).items()
        if "container" in executor
    ]
