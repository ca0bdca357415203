"""The rest of a large response body relayed inside the kernel (Linux splice(2)).

When nothing needs a body's bytes in Python - the capture already has the head it keeps, no hook
holds the body, no throttling, no TLS on either side - what remains of a Content-Length body goes
origin socket -> pipe -> client socket without being copied into the process and back: about half
the CPU per byte of a plain `recv`/`send` relay. All but the body's last byte are spliced; that
byte arrives the usual way, so the message ends, the origin connection is pooled and the flow is
finished by the same code as every other response.

The sockets stay owned by their transports: reading from the origin is paused meanwhile, the
client's transport has nothing buffered (nothing else writes to it until the exchange ends), and
readiness is watched on duplicates of the descriptors (a loop refuses watchers on a transport's
own descriptor).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxycore.proxy.http1 import Exchange
    from proxycore.proxy.upstream import UpstreamConnection

AVAILABLE = sys.platform == "linux" and hasattr(os, "splice")
MIN_BYTES = 256 << 10  # below this the copy costs less than setting up the splice
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK)
_free_pipes: list[tuple[int, int]] = []  # empty pipes kept for the next splice (bounded)
_MAX_FREE_PIPES = 32


def _pipe() -> tuple[int, int]:
    if _free_pipes:
        return _free_pipes.pop()
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:  # above fs.pipe-max-size for this user: the default 64 KiB works too
        pass
    return r, w


class BodySplice:
    """Moves `count` body bytes from `upstream`'s socket to `ex`'s client socket, then hands the
    connection back to the usual path. `cancel` ends it early (the exchange failed)."""

    __slots__ = ("ex", "upstream", "loop", "count", "left", "in_pipe", "src", "dst", "pipe", "watch")

    def __init__(self, ex: Exchange, upstream: UpstreamConnection, src_fd: int, dst_fd: int, count: int) -> None:
        self.ex = ex
        self.upstream = upstream
        self.loop = asyncio.get_running_loop()
        self.count = count
        self.left = count  # still to be read from the origin
        self.in_pipe = 0  # read from the origin, not yet written to the client
        self.src = os.dup(src_fd)
        try:
            self.dst = os.dup(dst_fd)
        except OSError:
            os.close(self.src)
            raise
        self.pipe = _pipe()
        self.watch = ""  # "r": waiting for the origin, "w": for the client

    def start(self) -> None:
        self.upstream.pause_reading()
        self._step()

    def _step(self) -> None:
        src, dst, (pr, pw) = self.src, self.dst, self.pipe
        ex, pool = self.ex, self.upstream.pool
        to_client = False
        try:
            while self.left or self.in_pipe:
                to_client = self.in_pipe > 0
                if to_client:
                    self.in_pipe -= os.splice(pr, dst, self.in_pipe, flags=_FLAGS)
                else:
                    n = os.splice(src, pw, min(self.left, _PIPE_SIZE), flags=_FLAGS)
                    if n == 0:
                        self._end("the origin closed the connection mid-body")
                        return
                    self.left -= n
                    self.in_pipe += n
                    ex.resp_size += n
                if pool is not None:  # progress either way: the body is not idle
                    self.upstream.deadline = pool.loop.time() + pool.body_idle_timeout
        except OSError as exc:
            if exc.errno in _AGAIN:
                want = "w" if to_client else "r"
                if self.watch != want:  # a watch stays registered while it waits on the same side
                    self._unwatch()
                    self.watch = want
                    if to_client:
                        self.loop.add_writer(dst, self._step)
                    else:
                        self.loop.add_reader(src, self._step)
                return
            if to_client:  # the client went away: as when its transport finds out (connection_lost)
                self.cancel()
                ex.conn.abort()
                return
            self._end(f"reading the body from the origin failed: {exc.strerror or exc}")
            return
        self._end(None)

    def _unwatch(self) -> None:
        if self.watch == "r":
            self.loop.remove_reader(self.src)
        elif self.watch == "w":
            self.loop.remove_writer(self.dst)
        self.watch = ""

    def _end(self, error: str | None) -> None:
        """Done (error None: every byte went through) or failed; the descriptors are released."""
        self._release(reuse_pipe=error is None)
        ex, up = self.ex, self.upstream
        ex.splice = None
        if error is None:
            up.codec.skip_body(self.count)
            up.resume_reading()  # the last byte ends the message the usual way
        else:
            up._fail(error)

    def cancel(self) -> None:
        """The exchange ended meanwhile (client gone, timeout): stop, drop what is in flight."""
        if self.src >= 0:
            self._release(reuse_pipe=False)
            self.ex.splice = None

    def _release(self, reuse_pipe: bool) -> None:
        self._unwatch()
        os.close(self.src)
        os.close(self.dst)
        self.src = self.dst = -1
        if reuse_pipe and self.in_pipe == 0 and len(_free_pipes) < _MAX_FREE_PIPES:
            _free_pipes.append(self.pipe)
        else:
            os.close(self.pipe[0])
            os.close(self.pipe[1])
