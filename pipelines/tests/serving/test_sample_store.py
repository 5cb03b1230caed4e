"""The gateway's drift sample in an object store (serving.sample_store), against moto's S3
(the stand-in for AWS): one new object per process per minute, never rewritten, bounded in
memory when puts fail, and read back by the window's hours only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from slipway.pipelines.serving.sample_store import StoreLocation, StoreWriter, read_store

BUCKET = "team-samples"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    import boto3
    from moto import mock_aws

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def writer(s3: object, clock: Clock, name: str, capacity: int = 100) -> StoreWriter:
    def put(bucket: str, key: str, body: bytes) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=body)  # pyright: ignore[reportAttributeAccessIssue]

    location = StoreLocation.of(f"s3://{BUCKET}/slipway/samples/", "m")
    return StoreWriter(location, ["a", "b"], capacity, put, writer=name, clock=clock)


def test_each_writer_puts_new_objects_a_minute_apart_and_the_reader_sees_them_all(s3):
    clock = Clock()
    one, two = writer(s3, clock, "pod-a-1-x"), writer(s3, clock, "pod-b-1-y")
    one.add("champion", "3", [(1.0, 2.0), (3.0, 4.0)], [0, 1])
    two.add("champion", "3", [(5.0, 6.0)], [1])
    assert one.flush() is None  # not a minute yet: nothing put
    clock.now = 61
    first = one.flush()
    assert first is not None and first.startswith("slipway/samples/m/")
    assert first.endswith("/pod-a-1-x-000000.jsonl")
    one.add("challenger", "4", [(7.0, 8.0)], [0])
    assert one.flush() is None  # the next object waits for its own minute
    assert two.flush(force=True) is not None and one.flush(force=True) is not None
    assert one.written[-1].endswith("/pod-a-1-x-000001.jsonl")  # a new object, not a rewrite

    now = datetime.now(UTC).timestamp()
    rows = read_store(s3, one.location, now - 3600, now + 1, capacity=100)
    assert sorted(rows["a"].tolist()) == [1.0, 3.0, 5.0, 7.0]
    assert set(rows["_version"]) == {"3", "4"} and set(rows["_prediction"]) == {0, 1}
    assert read_store(s3, one.location, now + 10, now + 20, capacity=100).empty  # out of window
    newest = read_store(s3, one.location, now - 3600, now + 1, capacity=2)
    assert len(newest) == 2  # the newest rows, up to the capacity


def test_a_failed_put_keeps_the_rows_bounded_for_the_next(s3):
    clock = Clock()
    calls: list[str] = []

    def broken(bucket: str, key: str, body: bytes) -> None:
        calls.append(key)
        raise OSError("store unreachable")

    location = StoreLocation.of(f"s3://{BUCKET}/p", "m")
    store = StoreWriter(location, ["a", "b"], 3, broken, writer="w", clock=clock)
    for i in range(5):
        store.add("champion", "1", [(float(i), 0.0)], [i])
    assert store.dropped == 2  # capacity 3: the two oldest requests given up, and counted
    with pytest.raises(OSError, match="unreachable"):
        store.flush(force=True)
    assert store.put_errors == 1 and calls
    # The next put carries the same three rows.
    kept: list[bytes] = []
    store._put = lambda bucket, key, body: kept.append(body)  # pyright: ignore[reportPrivateUsage]
    assert store.flush(force=True) is not None
    assert [line.count('"prediction"') for line in kept[0].decode().splitlines()] == [1, 1, 1]
    assert b'"prediction":2' in kept[0] and b'"prediction":0' not in kept[0]
