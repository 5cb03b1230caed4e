"""`s3://` inputs and outputs through pyarrow's S3 filesystem, against moto's server (the
stand-in for S3): a Parquet file scored in chunks from a bucket, and an output that appears
under its name only when published (a refused batch leaves no object behind)."""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from slipway.pipelines.batch.scoring import BatchPlan, ModelRef, RejectedBatch, score_file
from slipway.pipelines.config import Batch, ColumnRule, DataContract

# moto keeps its state per process (another test's in-process server shares it): a bucket
# of this module's own, never a reset that would empty someone else's.
BUCKET = f"batch-test-{uuid.uuid4().hex[:12]}"
CONTRACT = DataContract(columns={"x": ColumnRule(min=0, max=1), "y": ColumnRule(min=0, max=1)})
REF = ModelRef("m", "1", "run", "models:/m/1")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    try:
        yield client
    finally:
        server.stop()


def _keys(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_a_file_in_a_bucket_is_scored_into_the_bucket(s3):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.uniform(0, 1, 2_500), "y": rng.uniform(0, 1, 2_500)})
    frame.loc[5, "x"] = 7.0
    body = io.BytesIO()
    frame.to_parquet(body, row_group_size=1_000)
    s3.put_object(Bucket=BUCKET, Key="in/rows.parquet", Body=body.getvalue())
    model = LogisticRegression().fit(frame[["x", "y"]], (frame["y"] > 0.5).astype(int))
    plan = BatchPlan(
        f"s3://{BUCKET}/in/rows.parquet",
        f"s3://{BUCKET}/out/scores.parquet",
        f"s3://{BUCKET}/out/scores.quarantine.parquet",
        Batch(chunk_rows=1_000),
        CONTRACT,
    )
    result = score_file(plan, REF, model.predict)
    assert (result.rows_in, result.quarantined) == (2_500, 1)
    scores = pd.read_parquet(
        io.BytesIO(s3.get_object(Bucket=BUCKET, Key="out/scores.parquet")["Body"].read())
    )
    assert len(scores) == 2_499 and 5 not in set(scores["row"])
    assert "out/scores.quarantine.parquet" in _keys(s3)
    assert not [k for k in _keys(s3) if k.endswith(".partial")]


def test_a_refused_batch_leaves_nothing_in_the_bucket(s3):
    frame = pd.DataFrame({"x": [5.0] * 1_000, "y": [0.5] * 1_000})
    body = io.BytesIO()
    frame.to_parquet(body)
    s3.put_object(Bucket=BUCKET, Key="in/bad.parquet", Body=body.getvalue())
    plan = BatchPlan(
        f"s3://{BUCKET}/in/bad.parquet",
        f"s3://{BUCKET}/out/bad.parquet",
        f"s3://{BUCKET}/out/bad.quarantine.parquet",
        Batch(),
        CONTRACT,
    )
    with pytest.raises(RejectedBatch):
        score_file(plan, REF, lambda rows: [0] * len(rows))
    assert [k for k in _keys(s3) if "bad" in k] == ["in/bad.parquet"]
