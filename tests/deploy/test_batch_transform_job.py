"""`slipway score --env`'s Batch Transform job: created with boto3 against moto's server (the
stand-in for AWS's control plane: it accepts and describes the job, it runs nothing), and
its data plane done here the way SageMaker does it (named as a stand-in): each staged input
object split by line into MultiRecord mini-batches, POSTed to the image's `serve` running
for real with the job's environment, the answers assembled by line into `<object>.out`.
The collected output is compared with `slipway score` on the same file.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import httpx
import pandas as pd
import pytest

from slipway.pipelines.batch import lineage
from slipway.pipelines.batch.job import plan_for
from slipway.pipelines.batch.transform import (
    InstanceNotAllowed,
    TransformTarget,
    collect,
    output_uri,
    stage,
    start,
    target_for,
    transform_request,
    wait,
)

from .conftest import Spoke
from .test_batch_score import ROWS, _with_batch, feature_table, slipway, spoil
from .test_sagemaker_serving import AWS_ENV, Container, model_dir, moto_server  # noqa: F401

ACCOUNT = "123456789012"
REGION = "eu-west-1"


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def run_data_plane(s3, target: TransformTarget, request: dict, container: Container) -> None:
    """SageMaker's part of a transform job (stand-in): SplitType=Line, MultiRecord up to
    MaxPayloadInMB, the container's answers assembled by line into <object>.out."""
    bucket, prefix = _split(request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
    limit = request["MaxPayloadInMB"] * 2**20
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        lines = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().splitlines(True)
        answers, batch, size = [], [], 0
        for line in [*lines, None]:
            if line is None or size + len(line) > limit:
                reply = httpx.post(
                    f"{container.url}/invocations",
                    content=b"".join(batch),
                    headers={
                        "content-type": request["TransformInput"]["ContentType"],
                        "accept": request["TransformOutput"]["Accept"],
                    },
                    timeout=60,
                )
                assert reply.status_code == 200, reply.text
                answers.append(reply.content)
                batch, size = [], 0
            if line is not None:
                batch.append(line)
                size += len(line)
        out_bucket, out_key = _split(output_uri(f"s3://{bucket}/{item['Key']}", target))
        s3.put_object(Bucket=out_bucket, Key=out_key, Body=b"".join(answers))


def test_a_transform_job_scores_the_file_like_slipway_score_and_quarantines_bad_rows(
    spoke: Spoke,
    model_dir: Path,  # noqa: F811
    moto_server: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    for key, value in {**AWS_ENV, "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    spoke = _with_batch(
        spoke, id_columns=["customer_id"], max_rejected_fraction=0.01, chunk_rows=1_000
    )
    table = feature_table(spoke)
    bad = spoil(table, spoke)
    source = tmp_path / "customers.parquet"
    table.to_parquet(source)
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION)
    sagemaker = boto3.client("sagemaker", endpoint_url=moto_server, region_name=REGION)
    kms = boto3.client("kms", endpoint_url=moto_server, region_name=REGION)
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    target = target_for(spoke.config, "staging", ACCOUNT, "1", key_arn)
    s3.create_bucket(Bucket=target.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    sagemaker.create_model(  # what the spoke stack made for version 1 in staging
        ModelName=target.model_name,
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{spoke.config.project.slug}-staging-endpoint",
        PrimaryContainer={"Image": "registry.example/spoke:0a1b2c3"},
    )
    plan = plan_for(spoke.config, str(source), str(tmp_path / "sm" / "scores.parquet"))
    ref = lineage.resolve(spoke.root, spoke.config, "1", None)
    started = 0.0

    staged = stage(
        plan,
        target,
        lambda uri, body: s3.put_object(
            **dict(zip(("Bucket", "Key"), _split(uri), strict=True)), Body=body
        ),
    )
    arn = start(sagemaker, spoke.config, target, {"team": spoke.config.project.team})
    described = wait(sagemaker, target.job_name, timeout_s=60, poll_s=0.1)
    request = transform_request(spoke.config, target, {})
    container = Container(
        spoke, model_dir, {"SLIPWAY_MODEL_VERSION": "1", **described["Environment"]}
    )
    try:
        run_data_plane(s3, target, request, container)
    finally:
        container.stop()
    result = collect(
        plan,
        ref,
        staged,
        target,
        lambda uri: s3.get_object(**dict(zip(("Bucket", "Key"), _split(uri), strict=True)))[
            "Body"
        ].read(),
        started,
    )

    assert arn.endswith(f"transform-job/{target.job_name}")
    assert described["TransformOutput"]["KmsKeyId"] == key_arn
    assert described["TransformResources"]["VolumeKmsKeyId"] == key_arn
    assert described["TransformInput"]["SplitType"] == "Line"
    assert described["BatchStrategy"] == "MultiRecord"
    assert described["ModelName"] == f"{spoke.config.project.slug}-staging-v1"
    assert len(staged.parts) == 3  # 2,500 rows in parts of chunk_rows 1,000
    assert (result.rows_in, result.scored, result.quarantined) == (ROWS, ROWS - 3, 3)
    local_out = tmp_path / "local.parquet"
    done = slipway(spoke.root, "score", str(source), "-o", str(local_out), "--version", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    columns = ["customer_id", "row", "prediction", "model_version", "model_run_id"]
    by_sagemaker = pd.read_parquet(plan.output)[columns]
    assert by_sagemaker.equals(pd.read_parquet(local_out)[columns])
    quarantine = pd.read_parquet(plan.quarantine)
    assert quarantine["row"].tolist() == sorted(bad)
    assert quarantine["customer_id"].tolist() == [f"c{r:05d}" for r in sorted(bad)]


def test_a_batch_instance_outside_the_tiers_allow_list_is_refused_before_any_job(
    spoke: Spoke,
    moto_server: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    for key, value in {**AWS_ENV, "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    spoke = _with_batch(spoke, instance_type="ml.p4d.24xlarge")
    sagemaker = boto3.client("sagemaker", endpoint_url=moto_server, region_name=REGION)
    target = target_for(spoke.config, "prod", ACCOUNT, "1", "arn:aws:kms:eu-west-1:1:key/k")
    with pytest.raises(
        InstanceNotAllowed, match=r"ml\.p4d\.24xlarge' is not allowed for risk tier"
    ):
        start(sagemaker, spoke.config, target, {})
    assert sagemaker.list_transform_jobs()["TransformJobSummaries"] == []
    assert os.environ["AWS_DEFAULT_REGION"] == REGION


def test_a_job_that_left_no_output_publishes_nothing_and_says_where_to_look(
    spoke: Spoke,
    moto_server: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """moto completes a job without running it: the collect step must notice the missing
    output instead of publishing an empty table."""
    from slipway.pipelines.batch.transform import AwsClients, TransformError, run

    for key, value in {**AWS_ENV, "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    spoke = _with_batch(spoke, chunk_rows=1_000)
    source = tmp_path / "customers.parquet"
    feature_table(spoke, 1_200).to_parquet(source)
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION)
    sagemaker = boto3.client("sagemaker", endpoint_url=moto_server, region_name=REGION)
    clients = AwsClients(s3, sagemaker, ACCOUNT)
    bucket = target_for(spoke.config, "prod", ACCOUNT, "1", "k").bucket
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    plan = plan_for(spoke.config, str(source), str(tmp_path / "scores.parquet"))

    with pytest.raises(TransformError, match=r"cannot be read .*nothing was published"):
        run(
            spoke.root,
            spoke.config,
            plan,
            env="prod",
            kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
            clients=clients,
            alias="champion",
            poll_s=0.1,
        )
    (job,) = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    assert job["TransformJobName"].startswith(f"{spoke.config.project.slug}-prod-batch-")
    tags = sagemaker.list_tags(ResourceArn=job["TransformJobArn"])["Tags"]
    assert {"Key": "slipway:project", "Value": spoke.config.project.slug} in tags
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.parquet", "moto.log", "spoke"]
    done = slipway(spoke.root, "score", str(source), "-o", "x.parquet", "--env", "prod")
    assert done.returncode == 2 and "--env needs the spoke's KMS key ARN" in done.stderr
