"""Batch concurrent predictions into one model call, with a bounded queue and a deadline.

One pyfunc `predict` costs about a millisecond whatever the row count (schema enforcement,
DataFrame building), so answering 20 concurrent callers one by one caps a server near
1,000 rows/s of pure overhead and queues everyone behind everyone. Here each variant has one
worker: while a predict runs, new requests queue; the next call takes everything queued at
once (up to `max_rows`). No timer is involved, so a lone request is never delayed, and
under load the batch grows by itself. A failing batch is retried request by request, so
one request a model cannot handle never fails its neighbours.

A model that hangs must not hang every caller: a request waits at most `timeout` seconds
(PredictTimeout), and at most `max_queued` requests holding at most `max_queued_rows` rows
wait per variant (Overloaded beyond): both become a 503 with Retry-After, and memory stays
bounded whatever the model does. The bound is in rows as well as requests because a request
may hold up to 10,000 rows: 1,024 of those queued would be about 9.6 GiB per variant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slipway.pipelines.errors import SlipwayError

PredictFn = Callable[[list[tuple[Any, ...]]], list[Any]]
# One request's outputs and its batch's model seconds, or what the model raised.
Result = tuple[list[Any], float] | BaseException


class Retired(SlipwayError, RuntimeError):
    """The variant was taken out of service before this request reached it: route again."""


class Overloaded(SlipwayError, RuntimeError):
    """Too many requests already wait for this model: shed this one (503, retry later)."""


class PredictTimeout(SlipwayError, TimeoutError):
    """The model did not answer within the deadline: it counts against the variant.

    Still a TimeoutError, so callers that caught the builtin keep catching it."""


class Batcher:
    """Serialises one model's predictions and merges the requests that wait together."""

    def __init__(
        self,
        predict: PredictFn,
        name: str,
        max_rows: int = 512,
        *,
        timeout: float = 30.0,
        max_queued: int = 1024,
        max_queued_rows: int = 100_000,
    ) -> None:
        self._predict = predict
        self._max_rows = max_rows
        self._timeout = timeout
        self._max_queued = max_queued
        self._max_queued_rows = max_queued_rows
        self._queued_rows = 0  # rows of the requests in the queue, not yet taken by _run
        self._queue: asyncio.Queue[tuple[list[tuple[Any, ...]], asyncio.Future]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"predict-{name}")
        self._worker: asyncio.Task | None = None
        self._busy = False
        self._closing = False

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def predict(self, rows: list[tuple[Any, ...]]) -> tuple[list[Any], float]:
        """The model's outputs for `rows`, computed in a batch with whoever else is waiting,
        and the seconds the model spent on that batch (its service time, without queueing:
        what a guardrail should compare between variants that carry different loads)."""
        if self._closing:  # its worker is stopping or gone: nothing would ever answer
            raise Retired("this model version was taken out of service; route the request again")
        if self._queue.qsize() >= self._max_queued:
            raise Overloaded(
                f"{self._queue.qsize()} requests already wait for this model; retry shortly"
            )
        # An empty queue takes any request the row cap allowed: the bound sheds backlog only.
        if self._queued_rows and self._queued_rows + len(rows) > self._max_queued_rows:
            raise Overloaded(
                f"{self._queued_rows} rows already wait for this model (at most "
                f"{self._max_queued_rows}); retry shortly, or send fewer rows per request"
            )
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = loop.create_task(self._run())
        future: asyncio.Future = loop.create_future()
        self._queue.put_nowait((rows, future))
        self._queued_rows += len(rows)
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise PredictTimeout(f"the model did not answer within {self._timeout:g} s") from None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._closing and self._queue.empty()):
            batch = [await self._queue.get()]
            self._busy = True
            size = len(batch[0][0])
            while not self._queue.empty() and size < self._max_rows:
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item[0])
            self._queued_rows -= size
            # Callers that gave up (deadline passed) are not scored: a hung model's backlog
            # must not be replayed once it recovers.
            batch = [item for item in batch if not item[1].done()]
            if not batch:
                self._busy = False
                continue
            results = await loop.run_in_executor(self._executor, self._predict_batch, batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the caller went away
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
            self._busy = False
        self._executor.shutdown(wait=False)

    def _predict_batch(
        self, batch: Sequence[tuple[list[tuple[Any, ...]], asyncio.Future]]
    ) -> list[Result]:
        rows = [row for request_rows, _ in batch for row in request_rows]
        started = time.perf_counter()
        try:
            outputs = self._predict(rows)
            if len(outputs) != len(rows):
                raise ValueError(f"model returned {len(outputs)} predictions for {len(rows)} rows")
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            return [self._predict_alone(request_rows) for request_rows, _ in batch]
        seconds = time.perf_counter() - started
        results: list[Result] = []
        start = 0
        for request_rows, _ in batch:
            results.append((outputs[start : start + len(request_rows)], seconds))
            start += len(request_rows)
        return results

    def _predict_alone(self, rows: list[tuple[Any, ...]]) -> Result:
        started = time.perf_counter()
        try:
            return self._predict(rows), time.perf_counter() - started
        except Exception as exc:
            return exc

    def close(self) -> None:
        """Stop once the requests already queued are answered: a variant taken out of
        service (rollback, promotion) still owes its in-flight callers an answer."""
        self._closing = True
        if self._worker is None or (self._queue.empty() and not self._busy):
            if self._worker is not None:
                self._worker.cancel()
            self._executor.shutdown(wait=False)
