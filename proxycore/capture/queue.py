"""The capture queue: a non-blocking, batching hand-off from the proxy to the sinks.

The proxy calls ``put(flow)`` on its hot path: an append to a deque and a counter, nothing else.
Turning flows into records (strings, JSON, redaction) is the expensive part, so it happens in the
worker task, a batch at a time, together with the sink writes. When the queue is full the item is
dropped and counted, never waited for: capture must not slow proxying down.

Single event loop only: ``put`` is not thread-safe (use ``loop.call_soon_threadsafe`` from threads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

_YIELD_EVERY = 25  # records converted between two yields to the event loop


class CaptureQueue:
    def __init__(
        self,
        sinks: Sequence[Any],
        to_record: Callable[[Any], dict],
        queue_size: int = 10000,
        batch_size: int = 100,
        flush_interval: float = 0.1,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or flush_interval < 0:
            raise ValueError("capture queue: queue_size and batch_size must be >= 1, flush_interval >= 0")
        self.sinks = list(sinks)
        self.to_record = to_record
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.on_error = on_error
        self.queued = 0  # items accepted by put()
        self.written = 0  # records every sink took without error
        self.dropped = 0  # items refused because the queue was full (or closed)
        self._failed = 0  # items that could not be turned into records / sink exceptions
        self._done = 0  # items processed (written or failed), for flush()
        self._items: deque[Any] = deque()
        self._wake = asyncio.Event()  # "there is something to do"
        self._full = asyncio.Event()  # "a batch is ready (or a flush/close wants it now)"
        self._closing = False
        self._closed = False
        self._urgent = 0  # pending flush() calls: skip the batching delay
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._reported: set[str] = set()

    # --- the hot path -------------------------------------------------------------------------

    def put(self, item: Any) -> bool:
        """Queue one item; never blocks. False (and `dropped` += 1) when full or closed."""
        items = self._items
        if len(items) >= self.queue_size or self._closed:
            self.dropped += 1
            return False
        items.append(item)
        self.queued += 1
        n = len(items)
        if n == 1:
            self._wake.set()
        if n >= self.batch_size:
            self._full.set()
        return True

    # --- counters -----------------------------------------------------------------------------

    @property
    def failed(self) -> int:
        """Records lost to errors: conversion failures plus what the sinks could not write."""
        return self._failed + sum(getattr(s, "failed", 0) for s in self.sinks)

    @property
    def pending(self) -> int:
        return len(self._items)

    def stats(self) -> dict[str, int]:
        return {"queued": self.queued, "written": self.written, "dropped": self.dropped,
                "failed": self.failed, "pending": self.pending}

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open any sink not opened yet (SinkError propagates) and start the worker."""
        for s in self.sinks:
            if not getattr(s, "opened", False):
                await s.open()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="capture-queue")

    async def flush(self) -> None:
        """Wait until everything queued so far has been handed to the sinks."""
        target = self.queued
        if self._done >= target:
            return
        if self._task is None or self._task.done():
            await self._drain_inline()
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, fut))
        self._urgent += 1
        self._full.set()
        try:
            await fut
        finally:
            self._urgent -= 1

    async def close(self) -> None:
        """Stop accepting items, write everything still queued, then close the sinks."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._wake.set()
        self._full.set()
        if self._task is not None:
            await asyncio.wait([self._task])  # never raises, even if the task died or was cancelled
        await self._drain_inline()  # never started, or the worker died: still lose nothing
        for s in self.sinks:
            try:
                await s.close()
            except Exception as e:  # one bad sink must not keep the others from closing
                self._report(f"close:{id(s)}", f"capture: closing the {getattr(s, 'name', 'sink')} "
                                               f"sink failed: {e}")
        self._resolve_waiters()

    # --- the worker ---------------------------------------------------------------------------

    async def _run(self) -> None:
        items = self._items
        while True:
            if not items:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(items) < self.batch_size and not self._closing and not self._urgent:
                # Let a batch build up, but never hold records longer than flush_interval.
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.flush_interval)
            try:
                await self._process_one_batch()
            except Exception as e:  # pragma: no cover - _process_one_batch already guards
                self._report("worker", f"capture: worker error: {e}")

    async def _drain_inline(self) -> None:
        while self._items:
            await self._process_one_batch()

    async def _process_one_batch(self) -> None:
        items = self._items
        n = min(len(items), self.batch_size)
        if n == 0:
            return
        batch = [items.popleft() for _ in range(n)]
        records: list[dict] = []
        to_record = self.to_record
        for i, item in enumerate(batch, 1):
            try:
                records.append(to_record(item))
            except Exception as e:
                self._failed += 1
                self._report("to_record", f"capture: could not build a record: {type(e).__name__}: {e}")
            if i % _YIELD_EVERY == 0 and i < n:
                # ~50 µs a record: let the proxy run between slices instead of stalling it for a batch
                await asyncio.sleep(0)
        lost = 0
        if records:
            for s in self.sinks:
                before = getattr(s, "failed", 0)
                try:
                    await s.write_batch(records)
                except Exception as e:
                    self._failed += len(records)
                    lost = len(records)
                    self._report(f"sink:{id(s)}", f"capture: the {getattr(s, 'name', 'sink')} sink "
                                                  f"failed: {type(e).__name__}: {e}")
                    continue
                lost = max(lost, getattr(s, "failed", 0) - before)
        self.written += len(records) - lost
        self._done += n
        self._resolve_waiters()

    def _resolve_waiters(self) -> None:
        if not self._flush_waiters:
            return
        keep = []
        for target, fut in self._flush_waiters:
            if self._done >= target or self._closed and not self._items:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._flush_waiters = keep

    def _report(self, key: str, msg: str) -> None:
        """Tell the user once per kind of failure; the counters carry the rest."""
        if key in self._reported:
            return
        self._reported.add(key)
        if self.on_error is not None:
            with contextlib.suppress(Exception):
                self.on_error(msg)
