"""Real data without surprises (issue 22): missing values on the way in, huge bodies bounded
while they are read, large parses kept to their own small pool, and the batcher's queue
bounded in rows. Each test reproduces the case as it was found, then shows the guard firing."""

from __future__ import annotations

import asyncio
import csv
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from slipway.pipelines.config import parse_config
from slipway.pipelines.serving import parsing
from slipway.pipelines.serving.batching import Batcher, Overloaded
from slipway.pipelines.serving.client import GatewayClient
from slipway.pipelines.serving.gateway import CHAMPION, Gateway, Limits, build_app
from slipway.pipelines.serving.parsing import MAX_ROWS_PER_REQUEST, BadRequest, parse_csv

DATA = Path(__file__).resolve().parents[1] / "data" / "mixed_contract_spoke.toml"
# The churn table's case: a float column (monthly charges) that may be unknown.
NULLABLE = parse_config(
    DATA.read_text().replace(
        'score = { dtype = "float" }', 'score = { dtype = "float", nullable = true }'
    )
)
COLUMNS = list(NULLABLE.data.contract.columns)
GUARD_S = 20  # a hang fails the test instead of stalling the suite; never a speed claim


def nan_aware(gw: Gateway):
    """The real row -> DataFrame step, then a model that scores a missing value (as
    HistGradientBoosting and LightGBM do): 1 where the score is unknown."""
    to_frame = gw._frame_builder()

    def predict(rows: list[tuple[Any, ...]]) -> list[int]:
        return [int(v) for v in to_frame(rows)["score"].isna()]

    return predict


def gateway(tmp_path: Path, limits: Limits | None = None, predict=nan_aware) -> Gateway:
    gw = Gateway(tmp_path, NULLABLE, limits=limits or Limits())
    gw.variants = {CHAMPION: gw._variant(CHAMPION, "1", Batcher(predict(gw), CHAMPION))}
    gw._champion_wanted = True
    gw.loaded.set()
    return gw


def test_a_held_out_row_with_nan_reaches_the_gateway_as_null_and_is_scored(tmp_path):
    row = {"tenure": 3, "score": float("nan"), "visits": 2, "active": True, "plan": "a"}
    frame_split = {"columns": list(row), "data": [list(row.values())]}
    # The case as found: the smoke test's client encoded rows with httpx's json=, which
    # refuses NaN, so `slipway deploy` died with a traceback and left the rollout open.
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        httpx.Request("POST", "http://gateway/invocations", json={"dataframe_split": frame_split})

    client = GatewayClient("http://testserver")
    client._http = TestClient(build_app(gateway(tmp_path)), base_url="http://testserver")
    answer = client.invoke(frame_split)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [1]  # the model saw a missing value, not a guess
    # Where the contract forbids nulls, the same row is the caller's 400 naming the column.
    answer = client.invoke({**frame_split, "data": [[float("nan"), 0.5, 2, True, "a"]]})
    assert answer.status_code == 400
    assert "column 'tenure', row 0: value is missing" in answer.json()["message"]


def test_a_csv_body_of_millions_of_rows_is_refused_after_reading_one_past_the_cap(monkeypatch):
    body = b"1,0.5,2,true,a\n" * 400_000  # 5.6 MiB, under the body limit: 400,000 rows
    read = 0
    real_reader = csv.reader

    def counting_reader(*args: Any, **kwargs: Any) -> Iterator[list[str]]:
        nonlocal read
        for line in real_reader(*args, **kwargs):
            read += 1
            yield line

    monkeypatch.setattr(parsing.csv, "reader", counting_reader)
    with pytest.raises(BadRequest, match=f"more than {MAX_ROWS_PER_REQUEST} rows; split it"):
        parse_csv(body, NULLABLE.data.contract)
    # Before: every one of the 400,000 lines was decoded into a list, then counted.
    assert read <= MAX_ROWS_PER_REQUEST + 2
    # A body at the cap itself is still scored.
    header = ",".join(COLUMNS).encode() + b"\n"
    assert len(
        parse_csv(header + b"1,,2,true,a\n" * MAX_ROWS_PER_REQUEST, NULLABLE.data.contract)
    ) == (MAX_ROWS_PER_REQUEST)


def test_large_bodies_are_parsed_on_a_bounded_pool_while_small_ones_stay_inline(
    tmp_path, monkeypatch
):
    # /invocations parses in mlflow_protocol since the gateway split (issue 24).
    from slipway.pipelines.serving import mlflow_protocol as gateway_module

    gw = gateway(tmp_path, Limits(inline_parse_bytes=1_000))
    lock = threading.Lock()
    running, most, threads = 0, 0, set()
    real = gateway_module.parse_body

    def watched(*args: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.current_thread().name)
        try:
            time.sleep(0.05)  # long enough for the burst to overlap, if nothing bounded it
            return real(*args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(gateway_module, "parse_body", watched)
    row = [3, None, 2, True, "a"]
    big = {"dataframe_split": {"columns": COLUMNS, "data": [row] * 200}}

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=build_app(gw), client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            answers = await asyncio.gather(*(http.post("/invocations", json=big) for _ in range(8)))
        return [a.status_code for a in answers]

    assert asyncio.run(asyncio.wait_for(burst(), GUARD_S)) == [200] * 8
    assert most <= parsing.LARGE_PARSE_THREADS
    assert threads and all(name.startswith("slipway-parse") for name in threads)


def test_the_batcher_queue_is_bounded_in_rows_not_only_in_requests():
    release, entered = threading.Event(), threading.Event()

    def hanging(rows: list[tuple[int]]) -> list[int]:
        entered.set()
        release.wait(GUARD_S)
        return [0] * len(rows)

    async def scenario() -> tuple[BaseException, list[Any], int]:
        batcher = Batcher(hanging, "rows", max_rows=10, max_queued=1024, max_queued_rows=25)
        held = [asyncio.create_task(batcher.predict([(0,)] * 10))]
        await asyncio.to_thread(entered.wait, GUARD_S)  # the model holds the first 10 rows
        held += [asyncio.create_task(batcher.predict([(0,)] * 10)) for _ in "ab"]
        while batcher.queued < 2:
            await asyncio.sleep(0.01)
        queued_rows = batcher.queued_rows
        # Two requests wait, far under 1,024 requests: only the row bound can shed the third.
        with pytest.raises(Overloaded) as shed:
            await batcher.predict([(0,)] * 10)
        small = asyncio.create_task(batcher.predict([(0,)] * 5))  # 25 rows: still fits
        release.set()
        answers = await asyncio.wait_for(asyncio.gather(*held, small), GUARD_S)
        return shed.value, [len(a[0]) for a in answers], queued_rows

    try:
        shed, sizes, queued_rows = asyncio.run(scenario())
    finally:
        release.set()
    assert queued_rows == 20
    assert "20 rows already wait" in str(shed) and "at most 25" in str(shed)
    assert sizes == [10, 10, 10, 5]


def test_the_row_bound_is_settable_by_environment():
    assert Limits.from_env({"SLIPWAY_MAX_QUEUED_ROWS": "5000"}).max_queued_rows == 5000
    assert Limits.from_env({}).max_queued_rows == Limits().max_queued_rows


def test_nan_written_by_python_in_a_nullable_column_is_the_same_missing_value():
    body = json.dumps(
        {"dataframe_split": {"columns": COLUMNS, "data": [[3, float("nan"), 2, True, "a"]]}}
    ).encode()
    assert parsing.parse_rows(body, NULLABLE.data.contract) == [(3, None, 2, True, "a")]
