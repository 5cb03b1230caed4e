"""`slipway score --env staging|prod`: the same batch as a SageMaker Batch Transform job.

The job runs the environment's Model of the version (`<slug>-<env>-v<N>`, the one the spoke
stack made for its endpoint: the spoke's image and the version's model.tar.gz), with
`SLIPWAY_TRANSFORM=1` added to its environment so /invocations answers per line
(serving.transform). Three steps, each a function here:

1. `stage`: the input's contract columns as CSV without a header (the container's order),
   in parts of at most `[batch] chunk_rows` lines under `s3://<bucket>/batch/<job>/input/`;
   the ids and row numbers stay on this side, in the same order.
2. `transform_request` + `start`: CreateTransformJob with SplitType=Line,
   BatchStrategy=MultiRecord, AssembleWith=Line, output encrypted with the spoke's KMS key
   (also the instances' volumes), the job tagged with the spoke's cost tags (its budget
   counts it) and its instance type checked against the risk tier's allow-list first.
3. `collect`: each output line beside its input line: predictions with ids and lineage to
   OUTPUT, refused lines to the quarantine, the rejected share judged on the whole file;
   published only when the share is within `[batch] max_rejected_fraction`.

The job's execution role is the Model's (the endpoint role): slipway-infra grants it reading
`batch/*/input/` and writing `batch/*/output/` in the spoke's bucket, nothing more.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slipway.pipelines.batch.files import Sink, open_source
from slipway.pipelines.batch.scoring import (
    REASON,
    ROW,
    BatchPlan,
    BatchResult,
    ModelRef,
    RejectedBatch,
    check_columns,
)
from slipway.pipelines.config import BATCH_PREFIX, SpokeConfig
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.serving.transform import MAX_PAYLOAD_MB

TRANSFORM_ENV = {"SLIPWAY_TRANSFORM": "1"}
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})


class TransformError(SlipwayError):
    """The transform job cannot be started or did not complete; nothing was published."""


class InstanceNotAllowed(SlipwayError):
    """[batch] instance_type is outside the risk tier's allow-list."""

    exit_code = Exit.CONFIG


@dataclass(frozen=True)
class TransformTarget:
    """Where a job of this spoke runs: its names follow the spoke stack's conventions."""

    env: str
    bucket: str
    bucket_prefix: str  # "" for the spoke's own bucket
    kms_key_arn: str
    model_version: str
    job_name: str

    @property
    def model_name(self) -> str:
        return f"{self.job_name.rsplit('-batch-', 1)[0]}-v{self.model_version}"

    def uri(self, part: str) -> str:
        return f"s3://{self.bucket}/{self.bucket_prefix}{BATCH_PREFIX}/{self.job_name}/{part}"


def target_for(
    config: SpokeConfig,
    env: str,
    account_id: str,
    version: str,
    kms_key_arn: str,
    now: datetime | None = None,
) -> TransformTarget:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    prefix = f"{config.project.slug}-{env}"
    return TransformTarget(
        env=env,
        bucket=f"{prefix}-{account_id}",
        bucket_prefix="",
        kms_key_arn=kms_key_arn,
        model_version=version,
        job_name=f"{prefix}-batch-{stamp}"[:63],
    )


def check_instance(config: SpokeConfig) -> None:
    """The tier's instance allow-list holds for batch instances as for endpoints."""
    from slipway.pipelines.governance.tiers import rules_for

    allowed = rules_for(config.governance.risk_tier).instance_types
    if config.batch.instance_type not in allowed:
        raise InstanceNotAllowed(
            f"[batch] instance_type = {config.batch.instance_type!r} is not allowed for risk "
            f"tier {config.governance.risk_tier.value}; use one of {', '.join(allowed)}"
        )


@dataclass
class Staged:
    """What stage() kept on this side: per input line, its row number and ids."""

    parts: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    ids: dict[str, list[Any]] = field(default_factory=dict)


def stage(plan: BatchPlan, target: TransformTarget, put: Callable[[str, bytes], None]) -> Staged:
    """Write the input's contract columns as header-less CSV parts through `put(uri, body)`."""
    source = open_source(plan.input)
    check_columns(source, plan)
    columns = list(plan.contract.columns)
    staged = Staged(ids={c: [] for c in plan.settings.id_columns})
    for i, chunk in enumerate(source.chunks(plan.settings.chunk_rows)):
        first = len(staged.rows)
        staged.rows += list(range(first, first + len(chunk)))
        for c in plan.settings.id_columns:
            staged.ids[c] += chunk[c].tolist()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for values in chunk[columns].itertuples(index=False, name=None):
            writer.writerow(["" if v is None or v != v else v for v in values])
        uri = target.uri(f"input/part-{i:05d}.csv")
        put(uri, out.getvalue().encode())
        staged.parts.append(uri)
    return staged


def transform_request(
    config: SpokeConfig, target: TransformTarget, tags: dict[str, str]
) -> dict[str, Any]:
    """CreateTransformJob's arguments: line-split CSV in, one JSON line out per input line."""
    return {
        "TransformJobName": target.job_name,
        "ModelName": target.model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "Environment": dict(TRANSFORM_ENV),
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": target.uri("input/")}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": target.uri("output/"),
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
            "KmsKeyId": target.kms_key_arn,
        },
        "TransformResources": {
            "InstanceType": config.batch.instance_type,
            "InstanceCount": config.batch.instance_count,
            "VolumeKmsKeyId": target.kms_key_arn,
        },
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
    }


def start(client: Any, config: SpokeConfig, target: TransformTarget, tags: dict[str, str]) -> str:
    """Create the job (after the tier's instance check); its ARN."""
    check_instance(config)
    try:
        answer = client.create_transform_job(**transform_request(config, target, tags))
    except Exception as exc:  # botocore's ClientError and friends
        raise TransformError(
            f"SageMaker refused transform job {target.job_name}: {exc}. Check that model "
            f"{target.model_name} exists (deploy version {target.model_version} to "
            f"{target.env} first) and the credentials may create transform jobs"
        ) from None
    return str(answer["TransformJobArn"])


def wait(client: Any, job_name: str, timeout_s: float, poll_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        described = client.describe_transform_job(TransformJobName=job_name)
        status = described.get("TransformJobStatus")
        if status in TERMINAL:
            if status != "Completed":
                raise TransformError(
                    f"transform job {job_name} ended {status}: "
                    f"{described.get('FailureReason', 'no reason given')}; nothing was published"
                )
            return described
        if time.monotonic() > deadline:
            raise TransformError(
                f"transform job {job_name} still {status} after {timeout_s:.0f} s; it goes on: "
                "collect it later with the same command and --job",
                exit_code=Exit.TIMED_OUT,
            )
        time.sleep(poll_s)


def output_uri(part: str, target: TransformTarget) -> str:
    """SageMaker writes `<S3OutputPath>/<input file name>.out` for each input object."""
    return target.uri(f"output/{part.rsplit('/', 1)[-1]}.out")


def _answers(
    parts: list[str], target: TransformTarget, get: Callable[[str], bytes]
) -> Iterator[Any]:
    for part in parts:
        for line in get(output_uri(part, target)).decode().splitlines():
            if line.strip():
                yield json.loads(line)


def collect(
    plan: BatchPlan,
    model: ModelRef,
    staged: Staged,
    target: TransformTarget,
    get: Callable[[str], bytes],
    started: float,
) -> BatchResult:
    """Pair each output line with its input line; publish predictions and quarantine, or
    nothing above the rejected-share limit (RejectedBatch)."""
    import pandas as pd

    answers = list(_answers(staged.parts, target, get))
    if len(answers) != len(staged.rows):
        raise TransformError(
            f"transform job {target.job_name} answered {len(answers)} lines for "
            f"{len(staged.rows)} input lines; nothing was published"
        )
    scored_at = datetime.now(UTC).replace(microsecond=0)
    result = BatchResult(
        plan.input, plan.output, plan.quarantine, model, scored_at=scored_at.isoformat()
    )
    good = [i for i, a in enumerate(answers) if "prediction" in a]
    bad = [i for i, a in enumerate(answers) if "prediction" not in a]
    result.rows_in, result.scored, result.quarantined = len(answers), len(good), len(bad)
    for i in bad:
        reason = str(answers[i].get("rejected", answers[i]))
        key = reason.split(": ", 1)[-1][:80]
        result.reasons[key] = result.reasons.get(key, 0) + 1
    result.prediction_sample = [answers[i]["prediction"] for i in good[:20_000]]
    result.seconds = time.perf_counter() - started
    limit = plan.settings.max_rejected_fraction
    if result.rejected_fraction > limit:
        raise RejectedBatch.of(result, limit)
    out = pd.DataFrame({c: [staged.ids[c][i] for i in good] for c in plan.settings.id_columns})
    out[ROW] = [staged.rows[i] for i in good]
    out["prediction"] = [answers[i]["prediction"] for i in good]
    out["model_name"], out["model_version"] = model.name, model.version
    out["model_run_id"], out["scored_at"] = model.run_id, pd.Timestamp(scored_at)
    sink = Sink(plan.output)
    sink.write(out)
    if bad:
        quarantine = pd.DataFrame({ROW: [staged.rows[i] for i in bad]})
        for c in plan.settings.id_columns:
            quarantine[c] = [staged.ids[c][i] for i in bad]
        quarantine[REASON] = [str(answers[i].get("rejected")) for i in bad]
        rejected = Sink(plan.quarantine)
        rejected.write(quarantine)
        rejected.publish()
    sink.publish()
    result.published = True
    return result


@dataclass(frozen=True)
class AwsClients:
    """boto3's S3 and SageMaker clients and the account the spoke stack runs in."""

    s3: Any
    sagemaker: Any
    account_id: str

    @classmethod
    def default(cls) -> AwsClients:
        import boto3

        account = boto3.client("sts").get_caller_identity()["Account"]
        return cls(boto3.client("s3"), boto3.client("sagemaker"), str(account))

    def put(self, uri: str, body: bytes) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def get(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore's NoSuchKey and friends
            raise TransformError(
                f"the transform job's output {uri} cannot be read ({exc}); nothing was "
                "published. Its CloudWatch log (/aws/sagemaker/TransformJobs) says why"
            ) from None


@dataclass(frozen=True)
class TransformOutcome:
    result: BatchResult
    job_name: str
    run_id: str
    prediction_psi: float | None


def run(
    root: Any,
    config: SpokeConfig,
    plan: BatchPlan,
    *,
    env: str,
    kms_key_arn: str,
    clients: AwsClients,
    version: str | None = None,
    alias: str | None = None,
    timeout_s: float = 6 * 3600,
    poll_s: float = 30.0,
) -> TransformOutcome:
    """The whole `slipway score --env`: resolve, stage, start, wait, collect, record."""
    from slipway.pipelines.batch import lineage
    from slipway.pipelines.tags import spoke_tags

    started = time.perf_counter()
    check_instance(config)
    ref = lineage.resolve(root, config, version, alias)
    target = target_for(config, env, clients.account_id, ref.version, kms_key_arn)
    staged = stage(plan, target, clients.put)
    start(clients.sagemaker, config, target, spoke_tags(config, env))
    wait(clients.sagemaker, target.job_name, timeout_s, poll_s)
    where = f"sagemaker-{env}"
    try:
        result = collect(plan, ref, staged, target, clients.get, started)
    except RejectedBatch as refused:
        lineage.record(root, config, refused.result, None, where=where)
        raise
    model = lineage.load(root, ref)
    drift = lineage.prediction_psi(lineage.reference_predictions(root, config, model), result)
    run_id = lineage.record(root, config, result, drift, where=where)
    return TransformOutcome(result, target.job_name, run_id, drift)
