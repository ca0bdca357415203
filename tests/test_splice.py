"""Large plain-HTTP response bodies relayed in the kernel (proxycore/proxy/splice.py), on real
sockets on 127.0.0.1: the bytes arrive intact, the flow is recorded as for any response, and a
client or origin that goes away mid-body ends the exchange without leaking a descriptor."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

import pytest
from conftest import collect_done, wait_for
from origin import pattern_bytes

pytestmark = pytest.mark.skipif(sys.platform != "linux" or not hasattr(os, "splice"), reason="splice(2) is Linux-only")

MIB = 1 << 20


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = await asyncio.wait_for(reader.readexactly(length), 30)
    return head, body


async def test_large_bodies_are_spliced_intact_on_a_keepalive_connection(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    sizes = [8 * MIB, 3 * MIB + 1, 100]
    try:
        for n in sizes:
            writer.write(f"GET {origin.url(f'/bytes?n={n}')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n"
                         .encode())
            head, body = await _read_response(reader)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert hashlib.sha256(body).digest() == hashlib.sha256(pattern_bytes(n)).digest()
        # the connection is still in step: a small request after the spliced bodies
        writer.write(f"GET {origin.url('/json')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n".encode())
        head, body = await _read_response(reader)
        assert b'"hello"' in body
    finally:
        writer.close()
    assert proxy.stats["bodies_spliced"] == 2  # the two bodies past the threshold
    await wait_for(lambda: len(done) == 4, what="four flows")
    assert [f.response.body_size for f in done[:3]] == sizes
    assert all(f.error is None for f in done)
    assert origin.connections == 1  # the origin connection went back to the pool after each


async def test_client_that_stops_reading_is_waited_for(make_proxy, origin):
    """The client reads nothing until the origin has sent everything: the splice waits on the
    client's socket, then finishes."""
    proxy = await make_proxy()
    n = 48 * MIB
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        writer.write(f"GET {origin.url(f'/bytes?n={n}')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n"
                     .encode())
        await wait_for(lambda: proxy.stats["bodies_spliced"] == 1, what="the splice to start")
        head, body = await _read_response(reader)
        assert hashlib.sha256(body).digest() == hashlib.sha256(pattern_bytes(n)).digest()
    finally:
        writer.close()


async def test_client_leaving_mid_body_ends_the_flow_and_frees_every_descriptor(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    before = _fds()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(f"GET {origin.url(f'/bytes?n={256 * MIB}')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n"
                 .encode())
    await asyncio.wait_for(reader.readexactly(4 * MIB), 10)
    assert proxy.stats["bodies_spliced"] == 1
    writer.transport.abort()
    await wait_for(lambda: done, what="the flow to end")
    assert done[0].error and "client disconnected" in done[0].error, done[0].error
    await wait_for(lambda: _fds() <= before, what="the proxy's descriptors closed")
    # and the proxy serves the next client
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        writer.write(f"GET {origin.url('/json')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n".encode())
        head, _ = await _read_response(reader)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def test_origin_closing_mid_body_fails_the_flow_and_closes_the_client(make_proxy):
    sent = 2 * MIB

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % (8 * MIB))
        w.write(pattern_bytes(sent))
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        proxy = await make_proxy()
        done = collect_done(proxy)
        before = _fds()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
        writer.write(f"GET http://127.0.0.1:{port}/big HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
        rest = await asyncio.wait_for(reader.read(), 10)  # ends: the proxy closed the client
        writer.close()
        assert len(rest) == sent
        await wait_for(lambda: done, what="the flow to end")
        assert done[0].error, "a body cut short is an error"
        assert proxy.stats["bodies_spliced"] == 1
        await wait_for(lambda: _fds() <= before + 1, what="the proxy's descriptors closed")  # + the server's
    finally:
        server.close()
        await server.wait_closed()


async def test_a_head_changed_by_a_hook_still_has_its_body_spliced_intact(make_proxy, origin):
    class Tag:
        def responseheaders(self, flow) -> None:
            flow.response.headers.set("X-Seen", "1")

    proxy = await make_proxy()
    proxy.addons.add(Tag())
    n = 8 * MIB
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        writer.write(f"GET {origin.url(f'/bytes?n={n}')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n"
                     .encode())
        head, body = await _read_response(reader)
    finally:
        writer.close()
    assert b"\r\nX-Seen: 1\r\n" in head, head
    assert hashlib.sha256(body).digest() == hashlib.sha256(pattern_bytes(n)).digest()
    assert proxy.stats["bodies_spliced"] == 1
