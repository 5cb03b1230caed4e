"""The batcher on a real event loop and a real worker thread (no model server needed)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from slipway.pipelines.serving.batching import Batcher, Retired

GUARD_S = 10  # a hang must fail the test, never stall the suite; not a speed claim


def doubling(rows: list[tuple[int]]) -> list[int]:
    return [2 * row[0] for row in rows]


def test_requests_queued_before_close_are_answered_and_later_ones_are_refused() -> None:
    release = threading.Event()

    def slow(rows: list[tuple[int]]) -> list[int]:
        release.wait(GUARD_S)
        return doubling(rows)

    async def scenario() -> tuple[list, BaseException]:
        batcher = Batcher(slow, "test")
        queued = [asyncio.create_task(batcher.predict([(i,)])) for i in range(3)]
        await asyncio.sleep(0.05)  # all three are in, the first batch is in the model
        batcher.close()
        with pytest.raises(Retired) as late:
            await asyncio.wait_for(batcher.predict([(9,)]), GUARD_S)
        release.set()
        answers = await asyncio.wait_for(asyncio.gather(*queued), GUARD_S)
        return [outputs for outputs, _ in answers], late.value

    answers, late = asyncio.run(scenario())
    assert answers == [[0], [2], [4]]
    assert "taken out of service" in str(late)


def test_a_batcher_closed_while_idle_refuses_at_once() -> None:
    async def scenario() -> None:
        batcher = Batcher(doubling, "idle")
        assert (await batcher.predict([(1,), (2,)]))[0] == [2, 4]
        batcher.close()
        with pytest.raises(Retired):
            await asyncio.wait_for(batcher.predict([(3,)]), GUARD_S)

    asyncio.run(scenario())
