"""Bad input: the proxy answers or closes cleanly, records an error flow, and keeps serving others."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest
from conftest import collect_done, proxy_url, wait_for


async def raw_exchange(proxy, data: bytes, timeout: float = 10) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()


async def still_serves(proxy, origin) -> None:
    async with httpx.AsyncClient(proxy=proxy_url(proxy)) as client:
        r = await client.get(origin.url("/json"))
    assert r.status_code == 200


@pytest.mark.parametrize("payload,status", [
    (b"\x00\x01\x02garbage\xff\xfe\r\n\r\n", b"400"),
    (b"GET /no-version\r\n\r\n", b"400"),
    (b"GET http://127.0.0.1:1/ HTTP/9.9\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),  # origin-form: not a proxy request
])
async def test_malformed_requests_get_400(make_proxy, origin, payload, status):
    proxy = await make_proxy()
    done = collect_done(proxy)
    reply = await raw_exchange(proxy, payload)
    assert reply.startswith(b"HTTP/1.1 " + status), reply
    await wait_for(lambda: done, what="error flow")
    assert done[0].error
    await still_serves(proxy, origin)


async def test_oversized_header_block_gets_431(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(b"GET http://127.0.0.1:1/ HTTP/1.1\r\n")
    for i in range(4000):  # ~200 KiB of headers, never finished
        writer.write(b"X-Filler-%d: %s\r\n" % (i, b"a" * 40))
    try:
        await writer.drain()
    except ConnectionError:
        pass
    reply = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    await wait_for(lambda: done, what="error flow")
    assert "too large" in done[0].error
    await still_serves(proxy, origin)


async def test_tls_client_aborting_mid_handshake(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    # a ClientHello cut in the middle, then the client disappears
    writer.write(bytes.fromhex("160301020001000200030312"))
    await writer.drain()
    writer.transport.abort()
    await wait_for(lambda: done, what="handshake failure flow")
    assert "handshake" in done[0].error
    await still_serves(proxy, origin)


async def test_client_disconnecting_mid_body(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(f"POST {origin.url('/echo')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Content-Length: 100000\r\n\r\n".encode() + b"x" * 1000)
    await writer.drain()
    await wait_for(lambda: origin.connections >= 1 or proxy.stats["upstream_connections_opened"], what="upstream")
    writer.transport.abort()
    await wait_for(lambda: done, what="aborted flow")
    assert "client disconnected" in done[0].error
    await still_serves(proxy, origin)


async def test_client_leaving_with_pipelined_requests_ends_them_all(make_proxy, origin):
    """Two pipelined requests, the first to a slow origin; the client leaves before it answers. The
    proxy notices when it relays that answer; the second request, never served, ends as an error
    instead of staying pending for ever."""
    slow_conns: list[asyncio.StreamWriter] = []

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        slow_conns.append(writer)

    slow_server = await asyncio.start_server(slow, "127.0.0.1", 0)
    port = slow_server.sockets[0].getsockname()[1]
    try:
        proxy = await make_proxy()
        done = collect_done(proxy)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
        writer.write(f"GET http://127.0.0.1:{port}/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     f"GET {origin.url('/json')} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        await wait_for(lambda: slow_conns, what="the first request at the slow origin")
        writer.transport.abort()
        slow_conns[0].write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000)
        await wait_for(lambda: len(done) == 2, what="both flows ended")
        errors = {f.request.path: f.error for f in done}
        assert errors["/json"] == "client disconnected before the request was served"
        await still_serves(proxy, origin)
    finally:
        for w in slow_conns:
            w.close()
        slow_server.close()
        await slow_server.wait_closed()


async def test_upstream_dying_mid_response(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(f"GET {origin.url('/die')} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    got = await asyncio.wait_for(reader.read(), 10)  # the proxy must close: the body can't be completed
    writer.close()
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"partial")
    await wait_for(lambda: done, what="flow")
    assert "mid-response" in done[0].error
    await still_serves(proxy, origin)


async def test_plain_http_to_tls_port_and_tls_to_plain_port(make_proxy, origin, tls_origin):
    proxy = await make_proxy()
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    async with httpx.AsyncClient(proxy=proxy_url(proxy), verify=ctx) as client:
        # https:// to a plain-HTTP port: the upstream TLS handshake fails, the client gets a 502
        r = await client.get(f"https://localhost:{origin.port}/json")
        assert r.status_code == 502
        r = await client.get(origin.url("/json"))
        assert r.status_code == 200
