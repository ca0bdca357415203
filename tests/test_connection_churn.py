"""Clients that open more connections than they use, on real sockets on 127.0.0.1.

Go's HTTP transport (curl-like tools, hey, most Go services) dials a new proxy connection whenever
no idle one is at hand and abandons the dial (FIN right after its CONNECT) when another connection
frees up first. Under load that is one abandoned CONNECT per request; each must cost the proxy next
to nothing, or the queue of them grows until every new tunnel waits seconds. And many clients
using one origin at once must share pooled origin connections instead of re-dialing it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl

from conftest import HeadlessProxy


async def _abandoned_connect(port: int, target: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    writer.write_eof()  # gone before any answer: the dial is no longer wanted
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def _get_in_tunnel(port: int, target: str, ca_path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200"), head
        ctx = ssl.create_default_context(cafile=ca_path)
        await asyncio.wait_for(writer.start_tls(ctx, server_hostname="localhost"), 10)
        writer.write(b"GET /json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.transport.abort()


async def test_abandoned_connects_queued_behind_a_busy_proxy_cost_no_handshake_and_no_flow(tmp_path, origin_ca,
                                                                                        tls_origin):
    """Run as users do (`omniproxy-tui --no-ui`, uvloop). The proxy is stopped (SIGSTOP) while 100
    clients send a CONNECT and leave, as dials queued behind a busy proxy do; once it runs again
    each is closed without a 200, a handshake or a flow, and a client that stays is served."""
    capture = tmp_path / "cap.ndjson"
    target = f"localhost:{tls_origin.port}"
    async with HeadlessProxy(tmp_path, "-o", str(capture), "--upstream-ca", str(origin_ca.cert_path)) as proxy:
        proxy.proc.send_signal(signal.SIGSTOP)
        try:
            conns = []
            for _ in range(100):  # the kernel accepts them into the listen backlog meanwhile
                reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
                writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
                writer.write_eof()  # gone before any answer: the dial is no longer wanted
                conns.append((reader, writer))
        finally:
            proxy.proc.send_signal(signal.SIGCONT)
        replies = await asyncio.gather(*[asyncio.wait_for(r.read(), 10) for r, _ in conns])
        for _, w in conns:
            w.close()
        assert all(r == b"" for r in replies), [r[:60] for r in replies if r][:3]
        reply = await _get_in_tunnel(proxy.port, target, str(proxy.home / "ca" / "omniproxy-ca.crt"))
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert "handshake" not in proxy.stderr and "Traceback" not in proxy.stderr, proxy.stderr
    records = [json.loads(line) for line in capture.read_text().splitlines()]
    assert [(r["request"]["method"], r.get("error")) for r in records] == [("GET", None)], records


async def test_many_clients_of_one_origin_reuse_pooled_connections(make_proxy, origin):
    """64 keep-alive clients at once, 5 requests each: the origin sees about 64 connections, not a
    new one for every request past a small idle bound."""
    proxy = await make_proxy()
    clients = 64

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
        try:
            for _ in range(5):
                writer.write(f"GET {origin.url('/json')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n".encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                assert head.startswith(b"HTTP/1.1 200"), head
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await asyncio.wait_for(reader.readexactly(length), 10)
        finally:
            writer.close()

    await asyncio.gather(*[client() for _ in range(clients)])
    assert origin.connections <= clients, origin.connections
