"""Publishing a version's release (release_artifacts, packaging) against moto's server mode on
127.0.0.1: a stand-in for AWS's S3 and ECR, not AWS.

The model is real: the rendered spoke's own trainer fits it and MLflow registers it in the
spoke's sqlite registry; what lands in S3 is loaded back with MLflow, as the serving image's
`mlflow models serve --model-uri /opt/ml/model` would load it. The image is not: moto keeps
manifests, not layers, so the "commit image" cd.yml would push is a manifest put under the
commit's tag.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pytest
from pulumi.automation import OutputValue

from slipway.infra.access import AccessScope, ci_policy, endpoint_policy
from slipway.infra.release_artifacts import (
    PublishedRelease,
    ReleaseRefused,
    publish_model_data,
    publish_release,
    tag_release_image,
)
from slipway.infra.spoke_stack import release_for
from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.rollout.packaging import ModelPackage, NotReleasable, package_version

MOTO_ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
COMMIT = "3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
BUCKET = f"demo-staging-{MOTO_ACCOUNT}"
REPOSITORY = "slipway/demo-staging"
REPOSITORY_URL = f"{MOTO_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}"


@dataclass(frozen=True)
class Registered:
    root: Path
    model: str
    clean: str  # trained from a clean commit
    dirty: str  # the same model, trained from a dirty working tree
    untracked: str  # the same model, with no commit recorded


@pytest.fixture(scope="module")
def registered(
    spokes: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registered]:
    """A low-tier spoke whose registry holds one real trained model, as three versions that
    differ only in their lineage tags."""
    from slipway.pipelines.rollout.rehearsal import register_trained

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        root = tmp_path_factory.mktemp("release") / "spoke"
        shutil.copytree(spokes["low"], root, ignore=shutil.ignore_patterns(".slipway"))
        config = load_config(root)
        client = registry.client(root)
        clean = register_trained(root, config, {"C": 1.0, "max_iter": 500})
        source = client.get_model_version(config.model_name, clean).source
        dirty, untracked = (
            str(client.create_model_version(config.model_name, source).version) for _ in range(2)
        )
        lineage = {
            clean: {registry.TAG_GIT_SHA: COMMIT, registry.TAG_GIT_DIRTY: "false"},
            dirty: {registry.TAG_GIT_SHA: COMMIT, registry.TAG_GIT_DIRTY: "true"},
            untracked: {registry.TAG_GIT_DIRTY: "false"},
        }
        for version, tags in lineage.items():
            for key, value in tags.items():
                client.set_model_version_tag(config.model_name, version, key, value)
        yield Registered(root, config.model_name, clean, dirty, untracked)


def package(registered: Registered, version: str, workdir: Path) -> ModelPackage:
    workdir.mkdir(parents=True, exist_ok=True)
    return package_version(
        registered.root, registry.client(registered.root), registered.model, version, workdir
    )


def image_manifest(layer: str) -> str:
    """An image manifest as `docker push` sends it; its digest differs per layer."""

    def blob(media_type: str, content: str) -> dict[str, Any]:
        return {
            "mediaType": media_type,
            "size": len(content),
            "digest": "sha256:" + hashlib.sha256(content.encode()).hexdigest(),
        }

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": blob("application/vnd.docker.container.image.v1+json", f"config {layer}"),
            "layers": [blob("application/vnd.docker.image.rootfs.diff.tar.gzip", layer)],
        }
    )


@dataclass(frozen=True)
class Aws:
    s3: Any
    ecr: Any
    outputs: dict[str, OutputValue]  # as pulumi.automation.Stack.outputs() returns them
    commit_digest: str


@pytest.fixture
def aws(aws_stand_in: str) -> Aws:
    """The stack's bucket and IMMUTABLE image repository in the moto stand-in, holding the
    image cd.yml pushed for COMMIT."""
    s3 = boto3.client("s3", region_name=REGION)
    ecr = boto3.client("ecr", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    ecr.create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
    pushed = ecr.put_image(
        repositoryName=REPOSITORY, imageManifest=image_manifest("model"), imageTag=COMMIT
    )
    outputs = {
        "bucket_name": OutputValue(BUCKET, False),
        "repository_url": OutputValue(REPOSITORY_URL, False),
    }
    return Aws(s3, ecr, outputs, pushed["image"]["imageId"]["imageDigest"])


def publish(aws: Aws, built: ModelPackage, version: int | None = None) -> PublishedRelease:
    return publish_release(
        aws.s3,
        aws.ecr,
        aws.outputs,
        "staging",
        built.version if version is None else version,
        built.tarball,
        built.commit_sha,
    )


def digest_of(aws: Aws, tag: str) -> str:
    [image] = aws.ecr.describe_images(repositoryName=REPOSITORY, imageIds=[{"imageTag": tag}])[
        "imageDetails"
    ]
    return str(image["imageDigest"])


def test_publish_puts_a_servable_model_and_the_commits_image_where_the_stack_looks(
    registered, aws, tmp_path
):
    built = package(registered, registered.clean, tmp_path / "build")
    published = publish(aws, built)
    version = int(registered.clean)
    expected = release_for(version, None, None, repository_url=REPOSITORY_URL, bucket_name=BUCKET)
    assert (published.image_uri, published.model_data_url) == (
        expected.image_uri,
        expected.model_data_url,
    )
    assert digest_of(aws, f"v{version}") == aws.commit_digest
    key = f"models/v{version}/model.tar.gz"
    tarball = tmp_path / "downloaded.tar.gz"
    aws.s3.download_file(BUCKET, key, str(tarball))
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        archive.extractall(tmp_path / "opt-ml-model", filter="data")
    assert "MLmodel" in names and not any(n.startswith(("/", "model/")) for n in names)
    # What SageMaker extracts into /opt/ml/model is what the serving image loads and scores.
    import mlflow.pyfunc
    import pandas as pd

    served = mlflow.pyfunc.load_model(str(tmp_path / "opt-ml-model"))
    example = served.input_example
    assert len(served.predict(pd.DataFrame(example))) == len(example)


def test_publishing_a_version_again_changes_nothing(registered, aws, tmp_path):
    first = package(registered, registered.clean, tmp_path / "first")
    key = f"models/v{first.version}/model.tar.gz"
    assert publish(aws, first) == publish(
        aws, package(registered, registered.clean, tmp_path / "second")
    )
    head = aws.s3.head_object(Bucket=BUCKET, Key=key)
    assert head["Metadata"] == {"sha256": hashlib.sha256(first.tarball.read_bytes()).hexdigest()}
    again = publish(aws, first)
    assert aws.s3.head_object(Bucket=BUCKET, Key=key)["LastModified"] == head["LastModified"]
    assert again.image_uri.endswith(f":v{first.version}")
    images = aws.ecr.describe_images(repositoryName=REPOSITORY)["imageDetails"]
    assert [sorted(i["imageTags"]) for i in images] == [sorted([COMMIT, f"v{first.version}"])]


def test_another_model_for_a_published_version_is_refused(registered, aws, tmp_path):
    built = package(registered, registered.clean, tmp_path / "build")
    publish(aws, built)
    before = aws.s3.head_object(Bucket=BUCKET, Key=f"models/v{built.version}/model.tar.gz")
    other = tmp_path / "other.tar.gz"
    other.write_bytes(built.tarball.read_bytes() + b"\0")
    with pytest.raises(
        ReleaseRefused,
        match=r"already holds another model for version .*"
        r"published versions are immutable",
    ):
        publish_model_data(aws.s3, BUCKET, built.version, other)
    after = aws.s3.head_object(Bucket=BUCKET, Key=f"models/v{built.version}/model.tar.gz")
    assert after["Metadata"] == before["Metadata"]


def test_a_version_tag_already_on_another_image_is_refused(aws):
    aws.ecr.put_image(
        repositoryName=REPOSITORY, imageManifest=image_manifest("older"), imageTag="v4"
    )
    with pytest.raises(
        ReleaseRefused,
        match=r"slipway/demo-staging:v4 is already another "
        r"image .*tags are immutable",
    ):
        tag_release_image(aws.ecr, REPOSITORY, COMMIT, 4)
    assert digest_of(aws, "v4") != aws.commit_digest


def test_a_commit_without_an_image_is_refused_with_the_push_hint(registered, aws, tmp_path):
    built = package(registered, registered.clean, tmp_path / "build")
    unpushed = ModelPackage(built.version, "0" * 40, built.tarball)
    with pytest.raises(
        ReleaseRefused,
        match=r"no image for commit 0{40}.*Push that commit to "
        r"main so cd.yml builds its image, then deploy",
    ):
        publish(aws, unpushed)
    listed = aws.s3.list_objects_v2(Bucket=BUCKET)
    assert listed["KeyCount"] == 0  # the image is checked first: nothing was uploaded


def test_a_stack_never_deployed_is_refused_naming_cd_yml_first_run(registered, aws, tmp_path):
    built = package(registered, registered.clean, tmp_path / "build")
    with pytest.raises(
        ReleaseRefused,
        match=r"stack staging has no outputs.*cd.yml's first "
        r"run on main",
    ):
        publish_release(
            aws.s3, aws.ecr, {}, "staging", built.version, built.tarball, built.commit_sha
        )


@pytest.mark.parametrize(
    ("which", "reason"), [("dirty", "uncommitted changes"), ("untracked", "records no git commit")]
)
def test_a_version_without_a_clean_commit_is_not_packaged(registered, tmp_path, which, reason):
    with pytest.raises(NotReleasable, match=rf"{reason}.*retrain it from a clean checkout"):
        package(registered, getattr(registered, which), tmp_path)
    assert list(tmp_path.iterdir()) == []  # refused before anything was downloaded


# -- IAM: who may publish a release, and who may read it ----------------------------------


SCOPE = AccessScope(
    name_prefix="demo-staging",
    region=REGION,
    account_id=MOTO_ACCOUNT,
    bucket_name=BUCKET,
    bucket_prefix="",
    kms_key_arn="key-arn",
    repository_arn="repo-arn",
)


def allowed(policy: str, action: str, resource: str) -> bool:
    """Whether an Allow statement of `policy` grants `action` on `resource` (no conditions)."""
    return any(
        action in s["Action"] and any(fnmatchcase(resource, r) for r in s["Resource"])
        for s in json.loads(policy)["Statement"]
        if "Condition" not in s
    )


def test_the_ci_role_may_publish_a_release_to_its_own_bucket_and_repository_only():
    ci = ci_policy(SCOPE, MOTO_ACCOUNT, "key-arn", "repo-arn", "endpoint-role-arn")
    model = f"arn:aws:s3:::{BUCKET}/models/v3/model.tar.gz"
    for action in ("s3:PutObject", "s3:GetObject"):
        assert allowed(ci, action, model)
        assert not allowed(ci, action, "arn:aws:s3:::demo-prod-123456789012/models/v3/x")
    assert allowed(ci, "kms:GenerateDataKey", "key-arn")
    for action in ("ecr:BatchGetImage", "ecr:PutImage", "ecr:DescribeImages"):
        assert allowed(ci, action, "repo-arn")
        assert not allowed(ci, action, "another-repo-arn")


def test_the_endpoint_role_reads_models_and_pulls_its_image_and_publishes_nothing():
    endpoint = endpoint_policy(SCOPE, MOTO_ACCOUNT, "key-arn", "repo-arn")
    model = f"arn:aws:s3:::{BUCKET}/models/v3/model.tar.gz"
    assert allowed(endpoint, "s3:GetObject", model)
    assert allowed(endpoint, "kms:Decrypt", "key-arn")
    assert all(
        allowed(endpoint, a, "repo-arn")
        for a in (
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchCheckLayerAvailability",
        )
    )
    assert not any(
        allowed(endpoint, a, r)
        for a, r in (
            ("s3:PutObject", model),
            ("ecr:PutImage", "repo-arn"),
            ("ecr:DescribeImages", "repo-arn"),
        )
    )


def test_a_transform_job_writes_its_output_under_batch_output_and_nowhere_else():
    """Batch Transform runs as the Model's role (the endpoint's): it may write its job's
    output, not the models it serves, not its own staged input, not another bucket."""
    endpoint = endpoint_policy(SCOPE, MOTO_ACCOUNT, "key-arn", "repo-arn")
    bucket = f"arn:aws:s3:::{BUCKET}"
    assert allowed(endpoint, "s3:PutObject", f"{bucket}/batch/demo-staging-batch-1/output/a.out")
    assert allowed(endpoint, "s3:GetObject", f"{bucket}/batch/demo-staging-batch-1/input/a.csv")
    for attack in (
        f"{bucket}/models/v3/model.tar.gz",
        f"{bucket}/batch/demo-staging-batch-1/input/a.csv",
        f"{bucket}/batch/output.parquet",
        "arn:aws:s3:::demo-prod-123456789012/batch/j/output/a.out",
    ):
        assert not allowed(endpoint, "s3:PutObject", attack), attack


def test_ci_runs_transform_jobs_of_its_own_spoke_only():
    ci = ci_policy(SCOPE, MOTO_ACCOUNT, "key-arn", "repo-arn", "endpoint-role-arn")
    base = f"arn:aws:sagemaker:{REGION}:{MOTO_ACCOUNT}"
    prefix = SCOPE.name_prefix
    for action in ("sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob"):
        assert allowed(ci, action, f"{base}:transform-job/{prefix}-batch-20261207")
        assert allowed(ci, action, f"{base}:model/{prefix}-v3")
        assert not allowed(ci, action, f"{base}:transform-job/other-spoke-batch-1")
        assert not allowed(ci, action, f"{base}:transform-job/{prefix}x-batch-1")
        assert not allowed(ci, action, f"{base}:model/other-spoke-v3")
