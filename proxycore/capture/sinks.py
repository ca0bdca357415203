"""Capture sinks: where batches of IR records go (files, stdout, SQLite).

Every sink has ``name``, ``async open()``, ``async write_batch(records)``, ``async close()`` and a
``failed`` counter. Sinks are fed by ``proxycore.capture.queue.CaptureQueue``, never by the proxy directly.

File formats:
- ``ndjson`` / ``ir``: one compact JSON record per line (identical; "ir" is the name APISpecRift
  uses). Each batch is one write, so a crash loses at most the batch in flight.
- ``json``: a JSON array, one record per line: ``[\\n{..},\\n{..}\\n]\\n``. A process killed with -9
  leaves the file without its closing ``]``; ``proxycore.capture.convert.read_records`` tolerates that.
- ``har``: HAR 1.2 written as a stream (see ``HarSink``): valid after every batch, nothing kept in
  memory, a crash loses only the batch in flight.

Files are opened by ``proxycore.safefile``: new ones are 0600, a symlink is refused, a FIFO or
character device is written through.

Disk errors (ENOSPC, EACCES, EIO ...) never escape ``write_batch``: they are reported once through
``on_error`` (one line), the records are counted in ``failed`` and later batches are tried again.
A failed partial write is cut back (truncate) so the file stays parseable.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from proxycore import __version__
from proxycore.capture.har import HAR_TAIL, har_head, is_tcp_record, record_to_har_entry
from proxycore.options import FORMATS, Options
from proxycore.safefile import REGULAR, open_for_writing_async

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
        self._threaded = False  # writes in a worker thread (FIFOs, devices): never for stdout
        self.opened = False

    async def open(self) -> None:
        if self.opened:
            return
        if self.path is None:
            self._f = sys.stdout.buffer
        else:
            try:
                fd, kind = await open_for_writing_async(self.path)
            except OSError as e:
                raise SinkError(f"cannot write capture file {self.path}: {_oserror_text(e)}") from None
            # Unbuffered: one write per batch, nothing held back in a Python buffer.
            self._f = os.fdopen(fd, "wb", buffering=0)
            self._seekable = kind == REGULAR
            self._threaded = not self._seekable
        self.opened = True
        head = self._header()
        if head:
            await self._write_all(head, 0)

    def _header(self) -> bytes:
        return b""

    def _footer(self) -> bytes:
        return b""

    def _chunk(self, lines: list[bytes]) -> bytes:
        raise NotImplementedError

    def _put(self, data: bytes) -> None:
        f = self._f
        assert f is not None
        view = memoryview(data)
        while view:
            written = f.write(view)
            if written is None:  # non-blocking stdout with a full pipe: treat as an error
                raise BlockingIOError(11, "output would block")
            view = view[written:]
        if not self._seekable:
            f.flush()

    async def _write_all(self, data: bytes, n: int) -> bool:
        f = self._f
        if f is None:
            self._fail(n, f"capture: {self.name} sink is closed")
            return False
        try:
            if self._threaded:
                # A FIFO whose reader is slow blocks the write: let it fill the capture queue
                # (records dropped and counted), not stall the proxy's event loop.
                await asyncio.to_thread(self._put, data)
            else:
                self._put(data)
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
        if await self._write_all(self._chunk(lines), len(records)):
            self.count += len(records)

    async def close(self) -> None:
        if self._f is None:
            return
        foot = self._footer()
        if foot:
            await self._write_all(foot, 0)
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
    """HAR 1.2 written as a stream: one JSON document that is complete after every batch.

    The file is the head, one compact entry per line, and a tail closing the arrays and objects.
    Each batch is one write at the tail's offset: the new entries followed by the tail again, so
    only the tail is ever rewritten and no record is kept in memory. Records reach the file once
    per batch (at least every ~0.1 s, see the capture queue), so SIGKILL loses only the batch in
    flight; fsync runs at most once per `fsync_interval` (power loss, not SIGKILL).

    A failed write (ENOSPC, EIO ...) is reported once, its records counted in ``failed``, and the
    tail put back where it was, so the file stays valid. A FIFO or character device target cannot
    seek: entries are written through and the tail only at close (from a thread, so a slow
    reader fills the capture queue instead of stalling the proxy).
    """

    name = "har"

    def __init__(self, path: str, on_error: ErrorCallback | None = None,
                 fsync_interval: float = 1.0, creator_version: str = __version__) -> None:
        super().__init__(on_error)
        self.path = path
        self.fsync_interval = fsync_interval
        self.creator_version = creator_version
        self.count = 0  # entries in the file
        self.opened = False
        self._fd: int | None = None
        self._seekable = False
        self._good = 0  # offset of the tail: the end of the last complete entry
        self._synced = 0.0

    async def open(self) -> None:
        if self.opened:
            return
        try:
            fd, kind = await open_for_writing_async(self.path)
        except OSError as e:
            raise SinkError(f"cannot write capture file {self.path}: {_oserror_text(e)}") from None
        self._fd, self._seekable = fd, kind == REGULAR
        head = har_head(self.creator_version)
        try:
            # A valid, empty HAR from the start; an unwritable target is found now, not at exit.
            if self._seekable:
                _pwrite_all(fd, head + HAR_TAIL, 0)
            else:
                await asyncio.to_thread(_write_all_fd, fd, head)
        except OSError as e:
            self._fd = None
            with contextlib.suppress(OSError):
                os.close(fd)
            raise SinkError(f"cannot write capture file {self.path}: {_oserror_text(e)}") from None
        self._good = len(head)
        self._synced = time.monotonic()
        self.opened = True

    def _entries(self, records: list[dict]) -> list[bytes]:
        out = []
        for r in records:
            if is_tcp_record(r):
                continue  # HAR has no TCP flows (as mitmproxy's HAR export)
            try:
                out.append(encode_record(record_to_har_entry(r)))
            except Exception as e:  # a record HAR cannot express: lose it, not the batch
                self._fail(1, f"capture: cannot build a HAR entry: {type(e).__name__}: {e}")
        return out

    async def write_batch(self, records: list[dict]) -> None:
        if not records:
            return
        fd = self._fd
        if fd is None:
            self._fail(len(records), "capture: har sink is closed")
            return
        lines = self._entries(records)
        if not lines:
            return
        data = (b",\n" if self.count else b"") + b",\n".join(lines)
        try:
            if self._seekable:
                _pwrite_all(fd, data + HAR_TAIL, self._good)
            else:
                await asyncio.to_thread(_write_all_fd, fd, data)
        except OSError as e:
            if self._seekable:
                with contextlib.suppress(OSError):
                    # Put the tail back over the half batch: the file ends where it did before.
                    _pwrite_all(fd, HAR_TAIL, self._good)
                    os.ftruncate(fd, self._good + len(HAR_TAIL))
            self._fail(len(lines), f"capture: cannot write to {self.path}: {_oserror_text(e)} "
                                   f"(records are being dropped until it works again)")
            return
        self._good += len(data)
        self.count += len(lines)
        self._ok()
        if self._seekable and time.monotonic() - self._synced >= self.fsync_interval:
            self._synced = time.monotonic()
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.fsync, fd)

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        self.opened = False
        if fd is None:
            return
        try:
            if self._seekable:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(os.fsync, fd)  # a big file's fsync may take a while
            else:
                try:
                    await asyncio.to_thread(_write_all_fd, fd, HAR_TAIL)
                except OSError as e:
                    self._fail(0, f"capture: cannot finish {self.path}: {_oserror_text(e)}")
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        if hasattr(os, "pwrite"):
            n = os.pwrite(fd, view, offset)
        else:  # Windows: only this task writes the fd, so seek + write is as good
            os.lseek(fd, offset, os.SEEK_SET)
            n = os.write(fd, view)
        if n <= 0:  # pragma: no cover - a regular file never writes nothing without an error
            raise OSError(errno.EIO, "short write")
        view, offset = view[n:], offset + n


def _write_all_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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
