"""CaptureQueue: never blocks put(), batches, drains on close, counts drops and failures."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from proxycore.capture.queue import CaptureQueue
from proxycore.capture.sinks import NdjsonSink


class ListSink:
    """A sink that keeps its batches; optionally blocks until released or fails some batches."""

    name = "list"

    def __init__(self, fail_batches: set[int] | None = None, gate: asyncio.Event | None = None) -> None:
        self.batches: list[list[dict]] = []
        self.failed = 0
        self.opened = False
        self.closed = False
        self.calls = 0
        self.fail_batches = fail_batches or set()
        self.gate = gate

    async def open(self) -> None:
        self.opened = True

    async def write_batch(self, records: list[dict]) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.calls in self.fail_batches:
            raise RuntimeError(f"boom {self.calls}")
        self.batches.append(list(records))

    async def close(self) -> None:
        self.closed = True

    @property
    def records(self) -> list[dict]:
        return [r for b in self.batches for r in b]


def to_record(item: int) -> dict:
    return {"id": item}


async def wait_for(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_batches_and_conversion_in_worker() -> None:
    sink = ListSink()
    converted: list[int] = []

    def conv(i: int) -> dict:
        converted.append(i)
        return {"id": i}

    q = CaptureQueue([sink], conv, batch_size=100, flush_interval=5.0)
    await q.start()
    assert sink.opened
    for i in range(250):
        assert q.put(i) is True
    assert converted == []  # put() only queues: records are built by the worker
    await q.flush()
    assert [r["id"] for r in sink.records] == list(range(250))
    assert all(len(b) <= 100 for b in sink.batches)
    assert len(sink.batches[0]) == 100  # a full batch goes without waiting for the interval
    assert q.queued == 250 and q.written == 250 and q.dropped == 0 and q.failed == 0
    await q.close()
    assert sink.closed


async def test_flush_interval_sends_a_partial_batch() -> None:
    sink = ListSink()
    q = CaptureQueue([sink], to_record, batch_size=100, flush_interval=0.02)
    await q.start()
    q.put(1)
    q.put(2)
    await wait_for(lambda: len(sink.records) == 2)  # without flush() or close()
    assert sink.batches == [[{"id": 1}, {"id": 2}]]
    await q.close()


async def test_close_drains_everything(tmp_path: Path) -> None:
    path = tmp_path / "cap.ndjson"
    sink = NdjsonSink(str(path))
    q = CaptureQueue([sink], to_record, queue_size=10000, batch_size=100, flush_interval=1.0)
    await q.start()
    for i in range(5000):
        assert q.put(i)
    await q.close()
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert ids == list(range(5000))
    assert q.written == 5000 and q.dropped == 0 and q.failed == 0 and q.pending == 0


async def test_full_queue_drops_and_counts() -> None:
    gate = asyncio.Event()
    sink = ListSink(gate=gate)
    q = CaptureQueue([sink], to_record, queue_size=10, batch_size=4, flush_interval=0.01)
    await q.start()
    results = [q.put(i) for i in range(25)]  # no await in between: the worker cannot run
    assert results == [True] * 10 + [False] * 15
    assert q.dropped == 15 and q.queued == 10
    await wait_for(lambda: sink.calls == 1)  # the worker took a batch and is stuck in the sink
    assert q.pending == 6
    # put() still never blocks while the sink is stuck
    t0 = time.perf_counter()
    ok = [q.put(100 + i) for i in range(10)]
    assert time.perf_counter() - t0 < 0.5
    assert ok.count(True) == 4 and q.dropped == 21
    gate.set()
    await q.close()
    assert len(sink.records) == 14 and q.written == 14
    assert q.put(999) is False and q.dropped == 22  # closed


async def test_worker_survives_conversion_and_sink_errors() -> None:
    errors: list[str] = []
    sink = ListSink(fail_batches={2})

    def conv(i: int) -> dict:
        if i % 10 == 3:
            raise KeyError(f"bad item {i}")
        return {"id": i}

    q = CaptureQueue([sink], conv, batch_size=10, flush_interval=0.01, on_error=errors.append)
    await q.start()
    for i in range(50):
        q.put(i)
    await q.flush()
    for i in range(50, 60):
        q.put(i)
    await q.close()
    written = [r["id"] for r in sink.records]
    # 6 conversion failures; batch 2 (items 10..19 minus 13) failed in the sink: 9 more
    assert len(written) == 60 - 6 - 9
    assert 13 not in written and 15 not in written and 55 in written and 59 in written
    assert q.failed == 6 + 9 and q.written == len(written)
    assert len(errors) == 2  # one line per kind of failure, not one per item
    assert any("could not build a record" in e and "bad item" in e for e in errors)
    assert any("list sink failed" in e and "boom 2" in e for e in errors)
    assert all("\n" not in e for e in errors)


async def test_disk_errors_counted_through_sink_failed() -> None:
    errors: list[str] = []
    sink = NdjsonSink("/dev/full", errors.append)
    q = CaptureQueue([sink], to_record, batch_size=5, flush_interval=0.01, on_error=errors.append)
    await q.start()
    for i in range(20):
        q.put(i)
    await q.close()
    assert q.failed == 20 and q.written == 0
    assert len(errors) == 1 and "No space left" in errors[0]


async def test_close_without_start_still_drains() -> None:
    sink = ListSink()
    q = CaptureQueue([sink], to_record, batch_size=3)
    for i in range(10):
        q.put(i)
    await q.close()
    assert [r["id"] for r in sink.records] == list(range(10)) and sink.closed


async def test_flush_with_nothing_queued_returns() -> None:
    q = CaptureQueue([ListSink()], to_record)
    await q.start()
    await asyncio.wait_for(q.flush(), 2)
    await q.close()


async def test_one_bad_sink_does_not_starve_the_others(tmp_path: Path) -> None:
    bad = ListSink(fail_batches={1, 2, 3})
    good = NdjsonSink(str(tmp_path / "ok.ndjson"))
    q = CaptureQueue([bad, good], to_record, batch_size=10, flush_interval=0.01)
    await q.start()
    for i in range(30):
        q.put(i)
    await q.close()
    assert len((tmp_path / "ok.ndjson").read_text().splitlines()) == 30


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        CaptureQueue([], to_record, queue_size=0)
