"""TLS over any byte stream.

`start_tls` upgrades a transport to TLS. On a socket transport of the running loop it is the
loop's own `start_tls` (uvloop's is written in C: the fast path for every MITM handshake). When
the transport is anything else (a WireGuard stream, an in-memory pipe, a transport wrapped by
another layer), or when bytes of the handshake were already read (a ClientHello sent in the same
packet as the CONNECT, before our 200), asyncio's pure-Python SSL protocol runs over it instead:
it needs nothing from the transport but `write`, `pause_reading`, `resume_reading`,
`set_protocol` and `close`.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from asyncio import sslproto
from collections.abc import Callable
from typing import Any


async def start_tls(transport: asyncio.BaseTransport, protocol: asyncio.BaseProtocol, ctx: ssl.SSLContext, *,
                    server_side: bool, server_hostname: str | None = None, initial: bytes = b"",
                    timeout: float = 30.0) -> asyncio.Transport:
    """The TLS transport `protocol` now talks through. `initial`: ciphertext already read from
    `transport` (it is fed to the handshake first). Raises ssl.SSLError / OSError / TimeoutError."""
    loop = asyncio.get_running_loop()
    native = getattr(transport, "_start_tls_compatible", False) or _is_uvloop_native(transport)
    if native and not initial:
        tls = await loop.start_tls(transport, protocol, ctx, server_side=server_side,  # type: ignore[arg-type]
                                   server_hostname=server_hostname, ssl_handshake_timeout=timeout)
        if tls is None:
            raise ConnectionError("TLS handshake aborted")
        return tls
    waiter = loop.create_future()
    tls_proto = sslproto.SSLProtocol(loop, protocol, ctx, waiter, server_side, server_hostname,
                                     call_connection_made=False, ssl_handshake_timeout=timeout)
    transport.pause_reading()  # type: ignore[attr-defined]
    transport.set_protocol(tls_proto)
    loop.call_soon(tls_proto.connection_made, transport)
    if initial:
        loop.call_soon(_feed, tls_proto, initial)
    loop.call_soon(transport.resume_reading)  # type: ignore[attr-defined]
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return tls_proto._get_app_transport()  # type: ignore[no-any-return]


def _is_uvloop_native(transport: asyncio.BaseTransport) -> bool:
    return type(transport).__module__.startswith("uvloop")


def _feed(proto: sslproto.SSLProtocol, data: bytes) -> None:
    """Hand bytes to a buffered protocol as if the transport had read them."""
    view = memoryview(data)
    while view:
        buf = proto.get_buffer(len(view))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        proto.buffer_updated(n)
        view = view[n:]


class StreamTransport(asyncio.Transport):
    """An asyncio transport over any object with async `read(n)` and sync-ish `write(data)`
    (+ optional async `drain()`, `close()`): a WireGuard TCP stream, or an in-memory pipe in tests.
    A task pumps reads into the protocol; `pause_reading` holds the pump. A stream with `drain()`
    gets flow control: past HIGH_WATER unsent bytes the protocol is paused until it drains."""

    HIGH_WATER = 256 * 1024

    def __init__(self, stream: object, protocol: asyncio.BaseProtocol, peername: tuple | None = None,
                 sockname: tuple | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._protocol = protocol
        self._extra = {"peername": peername, "sockname": sockname}
        self._closing = False
        self._unflushed = 0  # bytes written since the stream last drained
        self._drainer: asyncio.Task | None = None
        self._reading = asyncio.Event()
        self._reading.set()
        loop = asyncio.get_running_loop()
        loop.call_soon(protocol.connection_made, self)
        self._task = loop.create_task(self._pump())

    async def _pump(self) -> None:
        exc: BaseException | None = None
        try:
            while not self._closing:
                await self._reading.wait()
                data = await self._stream.read(65536)  # type: ignore[attr-defined]
                proto = self._protocol
                buffered = isinstance(proto, asyncio.BufferedProtocol)  # asyncio's SSL protocol
                if not data:
                    if buffered or not proto.eof_received():  # type: ignore[attr-defined]
                        break
                    continue
                if buffered:
                    _feed(proto, data)  # type: ignore[arg-type]
                else:
                    proto.data_received(data)  # type: ignore[attr-defined]
        except (OSError, ConnectionError) as e:
            exc = e
        finally:
            self._closing = True
            self._close_stream()
            self._protocol.connection_lost(exc)  # once: close() only cancels this task

    def _close_stream(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._stream.write(bytes(data))  # type: ignore[attr-defined]
            self._unflushed += len(data)
            if self._unflushed > self.HIGH_WATER and self._drainer is None:
                drain = getattr(self._stream, "drain", None)
                if drain is not None:
                    # the stream buffers whatever it is given: past the mark the protocol pauses
                    # (as on a full socket) until the stream has sent it
                    self._drainer = asyncio.get_running_loop().create_task(self._drain(drain))

    async def _drain(self, drain: Callable[[], Any]) -> None:
        proto = self._protocol
        pause = getattr(proto, "pause_writing", None)
        if pause is not None:
            pause()
        try:
            await drain()
        except (OSError, ConnectionError):
            pass
        finally:
            self._unflushed = 0
            self._drainer = None
            resume = getattr(proto, "resume_writing", None)
            if resume is not None and not self._closing:
                resume()

    def writelines(self, list_of_data) -> None:  # type: ignore[no-untyped-def,override]
        for d in list_of_data:
            self.write(d)

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._task.cancel()

    def abort(self) -> None:
        self.close()

    def _force_close(self, exc: BaseException | None) -> None:
        """What asyncio's SSL protocol calls on a fatal error (a refused handshake)."""
        self.close()


_reporters: list[Callable[[str], None]] = []
_previous_hook: Callable[[Any], None] | None = None


def quiet_bad_sni(report: Callable[[str], None]) -> Callable[[], None]:
    """Python's ssl module decodes a client's server name (SNI) as ASCII before our callback
    sees it; a raw UTF-8 name makes it print a traceback through sys.unraisablehook and refuse
    the handshake. Turn that into one line through `report` (the handshake still fails, and
    its flow says why). Returns a function that undoes it."""
    global _previous_hook
    if _previous_hook is None:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _unraisable
    _reporters.append(report)

    def undo() -> None:
        global _previous_hook
        if report in _reporters:
            _reporters.remove(report)
        if not _reporters and _previous_hook is not None:
            sys.unraisablehook = _previous_hook
            _previous_hook = None

    return undo


def _unraisable(unraisable: Any) -> None:
    if isinstance(unraisable.exc_value, UnicodeError) and isinstance(unraisable.object, bytes) and _reporters:
        _reporters[-1]("a client sent a server name (SNI) that is not ASCII: its TLS handshake was refused")
        return
    if _previous_hook is not None:
        _previous_hook(unraisable)
