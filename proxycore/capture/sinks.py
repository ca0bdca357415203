"""Capture sinks: where batches of IR records go (files, stdout, SQLite).

Every sink has ``name``, ``async open()``, ``async write_batch(records)``, ``async close()`` and a
``failed`` counter. Sinks are fed by ``proxycore.capture.queue.CaptureQueue``, never by the proxy directly.

File formats:
- ``ndjson`` / ``ir``: one compact JSON record per line (identical; "ir" is the name APISpecRift
  uses). Each batch is one write, so a crash loses at most the batch in flight.
- ``json``: a JSON array, one record per line: ``[\\n{..},\\n{..}\\n]\\n``. A process killed with -9
  leaves the file without its closing ``]``; ``proxycore.capture.convert.read_records`` tolerates that.
- ``har``: HAR 1.2, kept in memory as records and rewritten atomically on close and at checkpoints
  (every ~5 s when something changed), so a crash loses only the last few seconds.

Disk errors (ENOSPC, EACCES, EIO ...) never escape ``write_batch``: they are reported once through
``on_error`` (one line), the records are counted in ``failed`` and later batches are tried again.
A failed partial write is cut back (truncate) so the file stays parseable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from proxycore import __version__
from proxycore.capture.har import records_to_har, write_har_atomic
from proxycore.options import FORMATS, Options

ErrorCallback = Callable[[str], None]


class SinkError(Exception):
    """A sink could not be opened; the message is one line for the user."""


try:  # orjson encodes records ~5x faster than json; capture is a large share of proxy CPU
    import orjson as _orjson
except ImportError:  # pragma: no cover - optional speed-up
    _orjson = None


def encode_record(rec: dict) -> bytes:
    """One compact JSON line (without the newline), UTF-8."""
    if _orjson is not None:
        try:
            return _orjson.dumps(rec)
        except (TypeError, _orjson.JSONEncodeError):
            pass  # lone surrogates, huge ints: the stdlib encoder below copes
    try:
        return json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (undecodable bytes) cannot be UTF-8: escape them instead of failing.
        return json.dumps(rec, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _oserror_text(e: OSError) -> str:
    return e.strerror or str(e)


class _Reporter:
    """Shared error bookkeeping: report the first failure of a streak once, count lost records."""

    name = "sink"

    def __init__(self, on_error: ErrorCallback | None) -> None:
        self.on_error = on_error
        self.failed = 0
        self._failing = False

    def _fail(self, n: int, msg: str) -> None:
        self.failed += n
        if not self._failing:
            self._failing = True
            if self.on_error is not None:
                with contextlib.suppress(Exception):
                    self.on_error(msg)

    def _ok(self) -> None:
        self._failing = False


class _StreamSink(_Reporter):
    """Base for sinks that append bytes to one file (or stdout)."""

    def __init__(self, path: str | None, on_error: ErrorCallback | None = None) -> None:
        super().__init__(on_error)
        self.path = path
        self.count = 0  # records written
        self._f: IO[bytes] | None = None
        self._good = 0  # file offset after the last complete batch
        self._seekable = False
        self.opened = False

    async def open(self) -> None:
        if self.opened:
            return
        if self.path is None:
            self._f = sys.stdout.buffer
        else:
            try:
                # Unbuffered: one write per batch, nothing held back in a Python buffer.
                self._f = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
            except OSError as e:
                raise SinkError(f"cannot write capture file {self.path}: {_oserror_text(e)}") from None
            self._seekable = True
        self.opened = True
        head = self._header()
        if head:
            self._write_all(head, 0)

    def _header(self) -> bytes:
        return b""

    def _footer(self) -> bytes:
        return b""

    def _chunk(self, lines: list[bytes]) -> bytes:
        raise NotImplementedError

    def _write_all(self, data: bytes, n: int) -> bool:
        f = self._f
        if f is None:
            self._fail(n, f"capture: {self.name} sink is closed")
            return False
        try:
            view = memoryview(data)
            while view:
                written = f.write(view)
                if written is None:  # non-blocking stdout with a full pipe: treat as an error
                    raise BlockingIOError(11, "output would block")
                view = view[written:]
            if not self._seekable:
                f.flush()
        except OSError as e:
            if self._seekable:
                with contextlib.suppress(OSError):
                    f.truncate(self._good)  # drop the half batch so the file stays parseable
                    f.seek(self._good)
            where = self.path or "stdout"
            self._fail(n, f"capture: cannot write to {where}: {_oserror_text(e)} "
                          f"(records are being dropped until it works again)")
            return False
        self._good += len(data)
        self._ok()
        return True

    async def write_batch(self, records: list[dict]) -> None:
        if not records:
            return
        lines = [encode_record(r) for r in records]
        if self._write_all(self._chunk(lines), len(records)):
            self.count += len(records)

    async def close(self) -> None:
        if self._f is None:
            return
        foot = self._footer()
        if foot:
            self._write_all(foot, 0)
        if self.path is not None:
            with contextlib.suppress(OSError):
                self._f.close()
        else:
            with contextlib.suppress(OSError, ValueError):
                self._f.flush()
        self._f = None


class NdjsonSink(_StreamSink):
    """NDJSON (and IR): one compact record per line; file truncated on open; stdout when path is None."""

    def __init__(self, path: str | None, on_error: ErrorCallback | None = None, fmt: str = "ndjson") -> None:
        super().__init__(path, on_error)
        self.name = fmt

    def _chunk(self, lines: list[bytes]) -> bytes:
        lines.append(b"")
        return b"\n".join(lines)


class JsonSink(_StreamSink):
    """A JSON array written incrementally: valid as soon as it is closed, even with 0 records."""

    name = "json"

    def _header(self) -> bytes:
        return b"[\n"

    def _footer(self) -> bytes:
        return b"\n]\n"

    def _chunk(self, lines: list[bytes]) -> bytes:
        body = b",\n".join(lines)
        return b",\n" + body if self.count else body


class HarSink(_Reporter):
    """HAR 1.2, rewritten atomically at checkpoints and on close.

    HAR is one JSON document, so it cannot be appended to: the sink keeps the (small, immutable)
    records — never flows — and rebuilds the file. Checkpoints run every `checkpoint_interval`
    seconds when records were added, stretched to 10x the last write time on huge captures so
    rewriting never dominates.
    """

    name = "har"

    def __init__(self, path: str, on_error: ErrorCallback | None = None,
                 checkpoint_interval: float = 5.0, creator_version: str = __version__) -> None:
        super().__init__(on_error)
        self.path = path
        self.records: list[dict] = []
        self.checkpoint_interval = checkpoint_interval
        self.creator_version = creator_version
        self.opened = False
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._last_write_s = 0.0
        self.checkpoints = 0  # files written (for tests and stats)
        self.last_error = ""

    async def open(self) -> None:
        if self.opened:
            return
        # Truncate-on-start like the other formats, and find an unwritable path now, not at exit.
        try:
            await asyncio.to_thread(write_har_atomic, self.path, records_to_har([], self.creator_version))
        except OSError as e:
            raise SinkError(f"cannot write capture file {self.path}: {_oserror_text(e)}") from None
        self.opened = True
        if self.checkpoint_interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._periodic())

    async def write_batch(self, records: list[dict]) -> None:
        self.records.extend(records)
        self._dirty = True

    async def checkpoint(self) -> bool:
        """Rewrite the file if records were added since the last write. True when written."""
        async with self._lock:
            if not self._dirty:
                return False
            self._dirty = False
            snapshot = list(self.records)  # records are immutable; the list keeps growing
            t0 = time.monotonic()
            try:
                # Building and writing a big HAR is slow: keep it off the event loop.
                await asyncio.to_thread(self._write, snapshot)
            except OSError as e:
                self._dirty = True  # try again at the next checkpoint
                self.last_error = _oserror_text(e)
                self._fail(0, f"capture: cannot write HAR file {self.path}: {_oserror_text(e)} "
                              f"(will retry; records are kept in memory)")
                return False
            self._last_write_s = time.monotonic() - t0
            self.checkpoints += 1
            self._ok()
            return True

    def _write(self, records: list[dict]) -> None:
        write_har_atomic(self.path, records_to_har(records, self.creator_version))

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(max(self.checkpoint_interval, self._last_write_s * 10))
            with contextlib.suppress(Exception):
                await self.checkpoint()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not self.opened:
            return
        self._dirty = True  # always leave a complete file on exit
        if not await self.checkpoint():
            self.failed += len(self.records)
            if self.on_error is not None:
                with contextlib.suppress(Exception):
                    self.on_error(f"capture: HAR file {self.path} not written: {self.last_error} "
                                  f"({len(self.records)} records lost)")
        self.opened = False


def make_sinks(opts: Options, stdout_fallback: bool, on_error: ErrorCallback | None = None) -> list[Any]:
    """Build (not open) the sinks the options ask for. ValueError on a bad format or --db URL."""
    fmt = (opts.capture_format or "ndjson").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown capture format '{fmt}' (use one of: {', '.join(FORMATS)})")
    sinks: list[Any] = []
    if opts.output:
        path = os.path.expanduser(opts.output)
        if fmt == "har":
            sinks.append(HarSink(path, on_error))
        elif fmt == "json":
            sinks.append(JsonSink(path, on_error))
        else:
            sinks.append(NdjsonSink(path, on_error, fmt))
    elif stdout_fallback and not opts.db:
        if fmt == "har":
            raise ValueError("format 'har' needs an output file (-o FILE.har)")
        sinks.append(JsonSink(None, on_error) if fmt == "json" else NdjsonSink(None, on_error, fmt))
    if opts.db:
        from proxycore.capture.dburl import validate_db_url
        from proxycore.capture.sqlite import SqliteStore

        sinks.append(SqliteStore(validate_db_url(opts.db), on_error))
    return sinks


async def open_sinks(opts: Options, stdout_fallback: bool,
                     on_error: ErrorCallback | None = None) -> list[Any]:
    """Build and open the sinks; on failure close those already open and raise SinkError/ValueError."""
    sinks = make_sinks(opts, stdout_fallback, on_error)
    opened: list[Any] = []
    try:
        for s in sinks:
            await s.open()
            opened.append(s)
    except BaseException:
        for s in opened:
            with contextlib.suppress(Exception):
                await s.close()
        raise
    return sinks
