"""Micro-batching: concurrent requests share one model call.

Each request submits its items and awaits their results. A worker task takes the first waiting request,
gathers others for up to ``max_wait_ms`` or until ``max_batch`` items, runs the function once in the
model thread, and hands every request its slice. All model work runs in one executor thread, so the
model is never called from two threads at once (2 CPU cores gain nothing from that anyway). With
``max_wait_ms=0`` (the service's default) batching is greedy: while the model runs a batch, new requests
queue, and the next batch is everything queued (up to ``max_batch``); a lone request never waits.
When a batch fails, its requests are run again one by one, so that only the culprit fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any


class MicroBatcher:
    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], executor: Executor, *, max_batch: int = 64,
                 max_wait_ms: float = 5.0, name: str = "batch") -> None:
        self.fn, self.executor, self.name = fn, executor, name
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self.calls = 0
        self.items = 0
        self.failed_batches = 0  # batches that failed and were retried request by request
        self.busy_s = 0.0  # seconds from a batch's hand-off to the model thread to its return, for /health

    async def submit(self, items: list[Any]) -> list[Any]:
        """Results for ``items``, in order (computed together with other requests' items)."""
        if not items:
            return []
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run(), name=f"lextune-{self.name}")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((items, fut))
        return await fut

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            size = len(first[0])
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch:
                timeout = deadline - time.monotonic()
                try:
                    nxt = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                batch.append(nxt)
                size += len(nxt[0])
            live = [(items, fut) for items, fut in batch if not fut.cancelled()]
            if not live:
                continue
            flat = [x for items, _ in live for x in items]
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self.fn, flat)
            except Exception as exc:
                self.failed_batches += 1
                await self._one_by_one(live, exc)
                continue
            self.calls += 1
            self.items += len(flat)
            self.busy_s += time.perf_counter() - started
            pos = 0
            for items, fut in live:
                if not fut.done():
                    fut.set_result(list(results[pos : pos + len(items)]))
                pos += len(items)

    async def _one_by_one(self, live: list[tuple[list[Any], asyncio.Future]], exc: Exception) -> None:
        """A batch failed: run each request's items alone, so that only the request that caused the
        failure gets it and its neighbours get their results (one bad input never fails another)."""
        if len(live) == 1:
            if not live[0][1].done():
                live[0][1].set_exception(exc)
            return
        loop = asyncio.get_running_loop()
        for items, fut in live:
            if fut.done():
                continue
            try:
                results = await loop.run_in_executor(self.executor, self.fn, items)
            except Exception as own:
                fut.set_exception(own)
                continue
            self.calls += 1
            self.items += len(items)
            fut.set_result(list(results))

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
            self._worker = None
