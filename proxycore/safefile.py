"""Creating the files we write (captures, databases, exports) safely: one set of rules.

Capture files hold bodies always, and cookies and tokens whenever redaction is off, so:

- A file we create is created with mode 0600 (whatever the umask).
- An existing *regular* file keeps its permission bits: it is the user's file and a chmod they
  made on purpose (say, a group-readable capture directory) is respected. Written in place it is
  truncated like a shell's ``>``; replaced atomically, the new file gets the old file's bits.
- A symbolic link as the final path component is refused: following it would write secrets
  wherever the link points (as root, over any file), and replacing it would silently break the
  link. Links in the directories above are followed as usual, and so is a link to a FIFO or
  character device (``/dev/stdout``, ``/dev/fd/1``), as nothing is created or replaced there.
- A FIFO or a character device (``/dev/null``, a terminal) is written through, never replaced:
  nothing is ever renamed over it or truncated. Anything else (a directory, a socket, a block
  device) is refused.

Errors are ``SafeFileError`` (an ``OSError`` with a one-line message naming the path and what to
do) or the plain ``OSError`` of the system call.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)

REGULAR = "regular"  # a regular file (created or existing): seekable, replaceable
STREAM = "stream"  # a FIFO or character device: written through, not seekable
LINKED_STREAM = "linked-stream"  # a symlink to a FIFO or character device (classify() only)
_LINK = "is a symbolic link; capture files are not written through links (give the link's target instead)"


class SafeFileError(OSError):
    """A path we will not write to; ``str()`` is one line for the user."""

    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        super().__init__(errno.EPERM, why, str(path))
        self.why = why

    def __str__(self) -> str:
        return f"{self.filename}: {self.why}"


def _kind(path: str, st: os.stat_result) -> str:
    """REGULAR or STREAM for a path we may write; SafeFileError for one we may not."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return REGULAR
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return STREAM
    if stat.S_ISLNK(mode):
        # A link to a FIFO or character device (/dev/stdout, /dev/fd/N) only streams through it:
        # nothing is created, replaced or truncated, so it is followed. A link to anything else is not.
        try:
            target = os.stat(path)
        except OSError:
            target = None
        if target is not None and (stat.S_ISFIFO(target.st_mode) or stat.S_ISCHR(target.st_mode)):
            return LINKED_STREAM
        raise SafeFileError(path, _LINK)
    if stat.S_ISDIR(mode):
        raise SafeFileError(path, "is a directory (give a file name)")
    raise SafeFileError(path, "is not a regular file, FIFO or character device (give a file name)")


def classify(path: str | os.PathLike[str]) -> str | None:
    """REGULAR, STREAM, LINKED_STREAM, or None when nothing is there yet; SafeFileError for a
    refused path."""
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    return _kind(p, st)


def open_for_writing(path: str | os.PathLike[str], *, nonblock: bool = False) -> tuple[int, str]:
    """Open `path` to write a capture from the start: (fd, REGULAR | STREAM).

    A new file is created 0600; an existing regular file is truncated and keeps its mode; a FIFO
    or character device is opened as it is. Opening a FIFO waits for a reader; with `nonblock` it
    fails with ENXIO instead (see ``open_for_writing_async``). The fd returned is blocking.
    """
    p = os.fspath(path)
    extra = os.O_NONBLOCK if nonblock and hasattr(os, "O_NONBLOCK") else 0
    for _ in range(3):  # the path may appear or vanish between the lstat and the open
        kind = classify(p)
        if kind is None:
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY,
                             FILE_MODE)
            except FileExistsError:
                continue
            return fd, REGULAR
        linked = kind == LINKED_STREAM
        try:
            # No O_CREAT: whatever we open is what lstat saw (or we loop); O_NOFOLLOW refuses a
            # symlink swapped in meanwhile. No O_TRUNC yet: check what it is first.
            fd = os.open(p, os.O_WRONLY | (0 if linked else _NOFOLLOW) | _CLOEXEC | _BINARY | extra)
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise SafeFileError(p, _LINK) from None
            raise
        try:
            kind = _kind(p, os.fstat(fd))
            if linked and kind != STREAM:
                raise SafeFileError(p, _LINK)  # the link was pointed elsewhere meanwhile
            if kind == REGULAR:
                os.ftruncate(fd, 0)
            if extra:
                os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd, kind
    raise SafeFileError(p, "keeps changing while being opened (try again)")


async def open_for_writing_async(path: str | os.PathLike[str]) -> tuple[int, str]:
    """``open_for_writing`` without blocking the event loop while a FIFO has no reader: the open is
    retried until one comes (or the task is cancelled, say by Ctrl-C)."""
    while True:
        try:
            return open_for_writing(path, nonblock=True)
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: a FIFO with no reader yet
                raise
        await asyncio.sleep(0.05)


def write_atomic(path: str | os.PathLike[str], data: bytes | Iterable[bytes]) -> None:
    """Write a whole file: a regular file (or a new one) is replaced atomically via a 0600 temp file
    in the same directory; a FIFO or character device is written through; a symlink is refused.

    A crash at any point leaves either the previous file or the new one, never half a file.
    """
    p = os.fspath(path)
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    kind = classify(p)
    if kind in (STREAM, LINKED_STREAM):
        fd, _ = open_for_writing(p)
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        return
    mode = FILE_MODE
    if kind == REGULAR:
        with contextlib.suppress(OSError):
            mode = stat.S_IMODE(os.lstat(p).st_mode) & 0o777  # keep the user's chmod; never setuid
    target = Path(p)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        # os.replace renames over the path itself: were it swapped for a link meanwhile, the link
        # is replaced, never the file it points to.
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def precreate(path: str | os.PathLike[str]) -> bool:
    """Create an empty 0600 file at `path` if nothing is there (for SQLite, which creates its
    database 0644 and gives its -wal/-shm/-journal files the database's mode). True if created."""
    try:
        fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                     FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True
