"""Spill files: bodies too big to keep in memory, kept whole on disk instead.

The UI shows every body whole, however big, while memory stays bounded: a body that grows past
`--spill-threshold` bytes goes to a file of its own under ``<home>/spill/<pid>-<token>/`` (home is
``~/.omniproxy`` or ``$OMNIPROXY_HOME``), written chunk by chunk as it arrives and read back only
when somebody needs it (the detail view, an export, `b`/`v`). The flow holds a `SpilledBody` in
place of its chunks. A file is deleted when its flow leaves the store (``--max-flows`` eviction,
delete, clear), when nothing holds its body any more, and the directory when the proxy stops (and
at exit); directories of processes that died are removed by the next start.

Bounded both ways: ``--spill-max-total`` caps the bytes on disk; past it, or when the disk is full
or the directory is not writable, the body is kept cut at ``--max-body-size`` in memory as it was
before spilling existed, and a one-line warning says so (once per cause).

Only the UI's proxy spills (the flows it keeps); headless mode keeps no flows and never spills.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from proxycore import safefile

# One recently read body, kept so that repeated reads (a detail view builds several documents from
# the same body) return the same object and read the file once. One body at most: memory stays
# bounded by the largest body being looked at.
_last: tuple[SpilledBody, bytes] | None = None
_last_lock = threading.Lock()  # exports and the detail's `f` read from worker threads
_READ_CACHE_MAX = 256 << 20


class SpillStore:
    """The spill directory of one proxy and its byte budget."""

    def __init__(self, home: Path, threshold: int, max_total: int, fallback_cap: int,
                 warn: Callable[[str], None] | None = None) -> None:
        self.home = home
        self.threshold = threshold  # bodies growing past this many bytes are spilled
        self.fallback_cap = fallback_cap  # where a body is cut when it cannot be spilled
        self.max_total = max_total
        self.warn = warn
        self.total = 0  # bytes in live spill files
        self.files = 0
        self.directory: Path | None = None
        self._seq = 0
        self._warned: set[str] = set()
        self._broken = False  # the directory could not be made: stop trying

    @property
    def root(self) -> Path:
        return self.home / "spill"

    def _warn(self, key: str, message: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        if self.warn is not None:
            self.warn(message)

    def _ensure_dir(self) -> Path | None:
        if self.directory is not None:
            return self.directory
        if self._broken:
            return None
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            remove_stale(self.root)
            d = self.root / f"{os.getpid()}-{secrets.token_hex(4)}"
            d.mkdir(mode=0o700)
        except OSError as exc:
            self._broken = True
            self._warn("dir", f"cannot spill big bodies to {self.root}: {exc.strerror or exc}; "
                       "they are kept cut at --max-body-size")
            return None
        self.directory = d
        atexit.register(self.close)
        return d

    def over_cap(self, more: int) -> bool:
        """True (and a warning, once) when `more` bytes would pass --spill-max-total."""
        if self.total + more <= self.max_total:
            return False
        self._warn("cap", f"spill files reached --spill-max-total ({self.max_total:,} bytes); "
                   "bigger bodies are kept cut at --max-body-size")
        return True

    def open(self) -> SpillWriter | None:
        """A new spill file, or None (over the budget, or no usable directory: warned once)."""
        if self.over_cap(1):
            return None
        d = self._ensure_dir()
        if d is None:
            return None
        self._seq += 1
        path = d / f"{self._seq}.body"
        try:
            fd, _ = safefile.open_for_writing(path)  # created 0600, never through a link
        except OSError as exc:
            self._warn("open", f"cannot write spill file {path}: {exc.strerror or exc}; "
                       "bigger bodies are kept cut at --max-body-size")
            return None
        self.files += 1
        return SpillWriter(self, path, fd)

    def failed(self, exc: OSError, path: Path) -> None:
        """A write failed (a full disk): warn once per cause."""
        self._warn(f"write-{exc.errno}", f"cannot write spill file {path}: {exc.strerror or exc}; "
                   "the body is kept cut at --max-body-size")

    def forget(self, size: int) -> None:
        self.total -= size
        self.files -= 1

    def close(self) -> None:
        """Remove this proxy's spill directory (on stop and at exit)."""
        d, self.directory = self.directory, None
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.root.rmdir()  # only when no other proxy spills there
        self.total = 0
        self.files = 0
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)


def remove_stale(root: Path) -> None:
    """Remove spill directories left by processes that are gone (killed, crashed)."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        pid_s = entry.name.split("-", 1)[0]
        if not pid_s.isdigit() or int(pid_s) == os.getpid():
            continue
        try:
            os.kill(int(pid_s), 0)
            continue  # alive (or not ours to signal): leave it
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)


class SpillWriter:
    """Appends one body's bytes to its spill file while they arrive."""

    __slots__ = ("store", "path", "fd", "size")

    def __init__(self, store: SpillStore, path: Path, fd: int) -> None:
        self.store = store
        self.path = path
        self.fd = fd
        self.size = 0

    def write(self, data: bytes) -> bool:
        """False when the write failed or would pass --spill-max-total (the caller keeps what it
        can and abandons the file)."""
        if self.store.over_cap(len(data)):  # one huge body must not fill the disk either
            return False
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError as exc:
            self.store.failed(exc, self.path)
            return False  # the caller keeps what it can and abandons the file
        self.size += len(data)
        self.store.total += len(data)
        return True

    def read_head(self, n: int) -> bytes:
        try:
            with open(self.path, "rb") as f:
                return f.read(n)
        except OSError:
            return b""

    def abandon(self) -> None:
        if self.fd < 0 and self.size == 0:
            return  # already abandoned or finished
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.store.forget(self.size)
        self.size = 0

    def finish(self) -> SpilledBody:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        body = SpilledBody(self.store, self.path, self.size)
        self.size = 0  # the body owns the file now
        return body

    def __del__(self) -> None:
        # a flow that never finished (its connection was torn down): no fd or file left behind
        if self.fd >= 0:
            with contextlib.suppress(Exception):
                self.abandon()


class SpilledBody:
    """A whole body in a spill file. Shared, never copied (a snapshot of a flow reads the same
    file); the file goes when the flow is dropped (`discard`) or this object is."""

    __slots__ = ("store", "path", "size", "__weakref__")

    def __init__(self, store: SpillStore, path: Path, size: int) -> None:
        self.store = store
        self.path: Path | None = path
        self.size = size

    def read(self, limit: int | None = None) -> bytes:
        """The body (or its first `limit` bytes). A file removed meanwhile reads as b""."""
        global _last
        whole = limit is None or limit >= self.size
        if whole:
            with _last_lock:
                last = _last
            if last is not None and last[0] is self:
                return last[1]
        path = self.path
        if path is None:
            return b""
        try:
            with open(path, "rb") as f:
                data = f.read() if whole else f.read(limit)
        except OSError:
            return b""
        if whole and len(data) <= _READ_CACHE_MAX:
            with _last_lock:
                _last = (self, data)
        return data

    def discard(self) -> None:
        """Delete the file (the flow was dropped)."""
        global _last
        path, self.path = self.path, None
        if path is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(path)
        if self.store.directory is not None:  # not after close(): the budget was reset
            self.store.forget(self.size)
        with _last_lock:
            if _last is not None and _last[0] is self:
                _last = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.discard()

    def __copy__(self) -> SpilledBody:
        return self

    def __deepcopy__(self, memo: dict) -> SpilledBody:
        """A copy (a duplicated flow) must outlive the original's deletion: it gets its own name for
        the same bytes, a hard link (nothing copied on disk). Where linking fails it shares."""
        path = self.path
        if path is None:
            return self
        twin = path.with_name(f"{path.stem}-{secrets.token_hex(4)}.body")
        try:
            os.link(path, twin)
        except OSError:
            return self
        self.store.files += 1
        self.store.total += self.size  # counted twice: the cap errs on the safe side
        return SpilledBody(self.store, twin, self.size)

    def __repr__(self) -> str:
        return f"<SpilledBody {self.size} bytes at {self.path}>"


def release_flow(flow: object) -> None:
    """Delete the spill files of a flow the store dropped."""
    for name in ("request", "response", "original_request", "original_response"):
        msg = getattr(flow, name, None)
        sp = getattr(msg, "spilled", None) if msg is not None else None
        if sp is not None:
            sp.discard()


__all__ = ["SpillStore", "SpillWriter", "SpilledBody", "release_flow", "remove_stale"]
