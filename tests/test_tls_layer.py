"""The TLS layer over a byte stream that is not a socket (how WireGuard streams will arrive): a
client connection served through an in-memory pipe, with a real TLS handshake inside CONNECT."""

from __future__ import annotations

import asyncio
import json
import ssl

from proxycore.layers.tls import StreamTransport, start_tls
from proxycore.proxy.http1 import ClientConnection


class PipeEnd:
    """One end of an in-memory, bounded-by-nothing byte pipe with the stream interface
    StreamTransport expects (async read, write, close)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.peer: PipeEnd | None = None
        self.closed = False

    async def read(self, n: int) -> bytes:
        return await self.inbox.get()

    def write(self, data: bytes) -> None:
        assert self.peer is not None
        if not self.peer.closed:
            self.peer.inbox.put_nowait(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.peer is not None:
                self.peer.inbox.put_nowait(b"")  # EOF for the other side


def pipe() -> tuple[PipeEnd, PipeEnd]:
    a, b = PipeEnd(), PipeEnd()
    a.peer, b.peer = b, a
    return a, b


class Collector(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.changed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.changed.set()

    def eof_received(self) -> bool:
        self.changed.set()
        return False

    async def until(self, marker: bytes, timeout: float = 10) -> bytes:
        async with asyncio.timeout(timeout):
            while marker not in self.data:
                self.changed.clear()
                await self.changed.wait()
        return bytes(self.data)


async def test_mitm_over_an_in_memory_stream(make_proxy, tls_origin):
    proxy = await make_proxy()
    done: list = []
    proxy.subscribe(lambda kind, flow: done.append(flow) if kind == "done" else None)
    server_end, client_end = pipe()
    StreamTransport(server_end, ClientConnection(proxy), peername=("10.0.0.2", 40000))
    collector = Collector()
    client = StreamTransport(client_end, collector)
    await asyncio.sleep(0)  # connection_made runs on the next loop turn
    client.write(f"CONNECT localhost:{tls_origin.port} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert (await collector.until(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    collector.data.clear()
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    tls = await start_tls(client, collector, ctx, server_side=False, server_hostname="localhost")
    tls.write(b"GET /json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = await collector.until(b"}}")
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["hello"] == "world"
    tls.close()
    async with asyncio.timeout(10):
        while not done:
            await asyncio.sleep(0.01)
    f = done[0]
    assert f.request.url == tls_origin.url("/json", host="localhost")
    assert f.client_addr == ("10.0.0.2", 40000)
    assert f.client_tls is not None and f.client_tls.sni == "localhost"
