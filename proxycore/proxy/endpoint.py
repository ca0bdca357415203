"""What both sides of a proxied connection share: a transport, flow control and closing."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

# Linux: ACK at once instead of after the 40 ms delayed-ACK timer (see Endpoint.quickack).
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
# A read this small mid-message may be a peer's first write held back by Nagle's algorithm until
# it sees our ACK; in a bulk transfer ACKs flow anyway, and a syscall per read would cost.
_SMALL_READ = 4096


class Endpoint:
    """An asyncio protocol with the transport helpers the client and upstream sides both use.

    Deliberately not an `asyncio.Protocol` subclass: uvloop reads into a protocol's own buffer
    (`get_buffer`/`buffer_updated`, see UpstreamConnection) only for one that is not, and over TLS
    that decrypts each record straight into it instead of into a fresh 256 KiB bytes object
    that is then shrunk and joined with the others."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._paused = False
        self.sock: socket.socket | None = None
        # The throttling shaper (proxycore.throttle) while this connection carries a throttled
        # flow: it then stands in for `write` and `close` as instance attributes, so an unthrottled
        # connection's write path has no extra test in it.
        self.shaper: Any = None

    # the protocol interface's defaults (what asyncio.Protocol would provide)
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def attach(self, transport: asyncio.BaseTransport) -> tuple[str, int] | None:
        """connection_made's common part: keep the transport (and its socket, for quick ACKs);
        returns the peer's (host, port)."""
        self.transport = transport  # type: ignore[assignment]
        self.take_socket(transport)
        peer = transport.get_extra_info("peername")
        return (peer[0], peer[1]) if peer else None

    def take_socket(self, transport: asyncio.BaseTransport) -> None:
        if _QUICKACK is not None:
            s = transport.get_extra_info("socket")
            self.sock = s if s is not None and s.family in (socket.AF_INET, socket.AF_INET6) else None

    def quickack(self) -> None:
        """ACK what was received now. A peer that writes a message in two pieces (a head, then
        the body: Python's http.server, many HTTP clients) has its second write held by Nagle's
        algorithm until our ACK; Linux delays that ACK by 40 ms once a connection is reused.
        Called after a small read while a message is incomplete; the flag does not stick."""
        s = self.sock
        if s is not None:
            try:
                s.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[arg-type]
            except OSError:
                self.sock = None

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

    def reset(self) -> None:
        """Close with a TCP reset (RST), as a network failure looks to the peer (throttling's
        packet-loss emulation); a plain abort where the socket cannot be reached."""
        t = self.transport
        s = self.sock if self.sock is not None else (t.get_extra_info("socket") if t is not None else None)
        if s is not None:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except (OSError, AttributeError):
                pass
        self.abort()
