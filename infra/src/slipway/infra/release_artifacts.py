"""Publish what a stack's release of a model version points at, before `pulumi up`.

The spoke's stack (spoke_stack.release_for) serves version N from the image
`<repository_url>:vN` and the artifact `s3://<bucket_name>/models/vN/model.tar.gz`. Nothing
else writes either, so `slipway deploy --env` calls `publish_release` first: the tarball of
the registered MLflow model goes to S3, and the image cd.yml built for the version's commit
(tagged with the commit sha) gets the tag vN as well.

Versions are immutable, like the repository's tags: publishing the same version again with
the same content changes nothing, and different content for a published version is refused
rather than swapped under an endpoint that may serve (or roll back to) it.

boto3 only (clients are passed in), so it is tested against moto's server mode on
127.0.0.1: a stand-in for AWS, not AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.training.lineage import file_sha256

SHA256_METADATA = "sha256"  # S3 object metadata: x-amz-meta-sha256
FIRST_RUN = (
    "cd.yml's first run on main creates it (it builds the image and runs `pulumi up` "
    "on staging and prod): push to main, let cd.yml finish, then deploy again"
)


class ReleaseRefused(SlipwayError, RuntimeError):
    """A version cannot be published as asked; the message says what to do next."""


@dataclass(frozen=True)
class PublishedRelease:
    """Where the stack's release of the version finds its image and its model."""

    image_uri: str
    model_data_url: str


def release_clients(region: str) -> tuple[Any, Any]:
    """boto3 S3 and ECR clients; AWS_ENDPOINT_URL (botocore's own setting) redirects them."""
    import boto3

    return boto3.client("s3", region_name=region), boto3.client("ecr", region_name=region)


def model_data_key(version: int) -> str:
    """The object key release_for expects a version's model at."""
    return f"models/v{version}/model.tar.gz"


def release_tag(version: int) -> str:
    """The image tag release_for expects a version's image at."""
    return f"v{version}"


def _published_sha256(s3: Any, bucket: str, key: str) -> str | None:
    """The sha256 recorded on an existing object, "" when it has none, None when absent."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    return str(head.get("Metadata", {}).get(SHA256_METADATA, ""))


def publish_model_data(s3: Any, bucket: str, version: int, tarball_path: Path) -> str:
    """Upload the version's model.tar.gz, once; return its s3:// URL.

    The object carries the tarball's sha256 as metadata: an object already there with the
    same digest is left as is (a rerun of the same deploy), any other is refused.
    """
    key = model_data_key(version)
    url = f"s3://{bucket}/{key}"
    digest = file_sha256(tarball_path)
    published = _published_sha256(s3, bucket, key)
    if published == digest:
        return url
    if published is not None:
        raise ReleaseRefused(
            f"{url} already holds another model for version {version} (sha256 "
            f"{published or 'not recorded'}, this one {digest}): published versions are "
            "immutable. A registry that numbered a different model as version "
            f"{version} (e.g. a reset embedded registry) cannot deploy to this stack: deploy "
            "from the registry that published it, or register and deploy a new version"
        )
    s3.upload_file(
        str(tarball_path), bucket, key, ExtraArgs={"Metadata": {SHA256_METADATA: digest}}
    )
    return url


def _image_uri(ecr: Any, registry_id: str, repository_name: str, tag: str) -> str:
    """How SageMaker names an image of this registry, as the stack's repository_url does."""
    return f"{registry_id}.dkr.ecr.{ecr.meta.region_name}.amazonaws.com/{repository_name}:{tag}"


def _commit_image(ecr: Any, repository_name: str, commit_sha: str) -> dict[str, Any]:
    """The image cd.yml pushed for `commit_sha` (its manifest and digest)."""
    try:
        found = ecr.batch_get_image(
            repositoryName=repository_name, imageIds=[{"imageTag": commit_sha}]
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "RepositoryNotFoundException":
            raise ReleaseRefused(
                f"the stack's image repository {repository_name} does not exist: {FIRST_RUN}"
            ) from exc
        raise
    if not found["images"]:
        raise ReleaseRefused(
            f"{repository_name} has no image for commit {commit_sha}, which trained this "
            "version (cd.yml tags each image with its commit). Push that commit to main so "
            "cd.yml builds its image, then deploy again"
        )
    image: dict[str, Any] = found["images"][0]
    return image


def _tagged_digest(ecr: Any, repository_name: str, tag: str) -> str | None:
    """The digest the repository's `tag` points at, or None when the tag is free."""
    try:
        described = ecr.describe_images(
            repositoryName=repository_name, imageIds=[{"imageTag": tag}]
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ImageNotFoundException":
            return None
        raise
    return str(described["imageDetails"][0]["imageDigest"])


def tag_release_image(ecr: Any, repository_name: str, commit_sha: str, version: int) -> str:
    """Give the image built for the version's commit the tag vN; return its URI.

    The repository's tags are IMMUTABLE: vN already on that image is a rerun and fine, vN on
    another image is refused (the version was published from another commit).
    """
    image = _commit_image(ecr, repository_name, commit_sha)
    digest = image["imageId"]["imageDigest"]
    tag = release_tag(version)
    uri = _image_uri(ecr, image["registryId"], repository_name, tag)
    tagged = _tagged_digest(ecr, repository_name, tag)
    if tagged == digest:
        return uri
    if tagged is not None:
        raise ReleaseRefused(
            f"{repository_name}:{tag} is already another image ({tagged}), not the one of "
            f"commit {commit_sha} ({digest}): the repository's tags are immutable, so version "
            f"{version} keeps the image it was published with. Register and deploy a new "
            "version instead"
        )
    extra = (
        {"imageManifestMediaType": image["imageManifestMediaType"]}
        if image.get("imageManifestMediaType")
        else {}
    )
    ecr.put_image(
        repositoryName=repository_name,
        imageManifest=image["imageManifest"],
        imageTag=tag,
        imageDigest=digest,
        **extra,
    )
    return uri


def _output(outputs: Mapping[str, Any], name: str, environment: str) -> str:
    """A stack output's value (outputs as pulumi.automation.Stack.outputs() returns them)."""
    if not outputs:
        raise ReleaseRefused(
            f"stack {environment} has no outputs, so no bucket or image "
            f"repository to publish to: it was never deployed; {FIRST_RUN}"
        )
    if name not in outputs or not outputs[name].value:
        raise ReleaseRefused(
            f"stack {environment} has no `{name}` output; its last `pulumi up` ran another "
            "program than slipway.infra.spoke_stack: run cd.yml on main, then deploy again"
        )
    return str(outputs[name].value)


def publish_release(
    s3: Any,
    ecr: Any,
    outputs: Mapping[str, Any],
    environment: str,
    version: int,
    tarball_path: Path,
    commit_sha: str,
) -> PublishedRelease:
    """Publish version `version` where stack `environment` (its `outputs`) will look.

    The image first: a missing commit image, the likelier refusal, is then found before
    anything is uploaded.
    """
    bucket = _output(outputs, "bucket_name", environment)
    repository_url = _output(outputs, "repository_url", environment)
    repository_name = repository_url.partition("/")[2]
    image_uri = tag_release_image(ecr, repository_name, commit_sha, version)
    model_data_url = publish_model_data(s3, bucket, version, tarball_path)
    return PublishedRelease(image_uri=image_uri, model_data_url=model_data_url)
