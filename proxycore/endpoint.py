"""What both sides of a proxied connection share: a transport, flow control and closing."""

from __future__ import annotations

import asyncio


class Endpoint(asyncio.Protocol):
    """An asyncio Protocol with the transport helpers the client and upstream sides both use."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._paused = False

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self._paused and not self.closed:
            self._paused = True
            try:
                self.transport.pause_reading()
            except RuntimeError:  # the transport is closing: nothing left to pause
                pass

    def resume_reading(self) -> None:
        if self.transport is not None and self._paused and not self.closed:
            self._paused = False
            try:
                self.transport.resume_reading()
            except RuntimeError:
                pass

    def close(self) -> None:
        """Close after what is buffered has been sent (idempotent)."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is buffered (idempotent)."""
        if self.transport is not None:
            self.transport.abort()
