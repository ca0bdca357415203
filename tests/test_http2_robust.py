"""HTTP/2 client connections end cleanly: an idle one is closed by --keepalive-timeout with a
GOAWAY, and a CONNECT whose eager origin dial failed does not make its first request dial again."""

from __future__ import annotations

import asyncio
import ssl
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest
from conftest import proxy_url
from h2origin import H2Origin


@pytest.fixture
async def h2_origin(origin_ca):
    o = await H2Origin(origin_ca).start()
    yield o
    await o.stop()


async def open_h2(proxy, host: str, port: int, timeout: float = 10):
    r, w = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    w.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
    assert head.startswith(b"HTTP/1.1 200"), head
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    ctx.set_alpn_protocols(["h2"])
    await asyncio.wait_for(w.start_tls(ctx, server_hostname=host), timeout)
    assert w.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    w.write(conn.data_to_send())
    return r, w, conn


async def get(r, w, conn, authority: str, path: str, timeout: float = 10) -> int:
    """One GET on the open connection; its status."""
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority.encode()),
                            (b":path", path.encode())], end_stream=True)
    w.write(conn.data_to_send())
    status = 0
    while True:
        data = await asyncio.wait_for(r.read(65536), timeout)
        assert data, "proxy closed the connection"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                status = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                w.write(conn.data_to_send())
                return status
        w.write(conn.data_to_send())


async def test_idle_h2_client_connection_gets_goaway_after_keepalive_timeout(make_proxy, h2_origin):
    proxy = await make_proxy(keepalive_timeout=0.5)
    r, w, conn = await open_h2(proxy, "localhost", h2_origin.port)
    authority = f"localhost:{h2_origin.port}"
    # a stream longer than the timeout is not cut: only an idle connection is
    assert await get(r, w, conn, authority, "/slow?ms=1200") == 200
    assert await get(r, w, conn, authority, "/echo") == 200
    t0 = time.monotonic()
    goaway = None
    while True:  # then nothing: the proxy says GOAWAY and closes
        data = await asyncio.wait_for(r.read(65536), 10)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ConnectionTerminated):
                goaway = ev
    assert goaway is not None and goaway.error_code == 0 and goaway.last_stream_id == 3
    assert time.monotonic() - t0 < 5
    w.close()


async def test_idle_h2_connection_without_any_request_is_closed_too(make_proxy, h2_origin):
    proxy = await make_proxy(keepalive_timeout=0.5)
    r, w, conn = await open_h2(proxy, "localhost", h2_origin.port)
    terminated = False
    while True:
        data = await asyncio.wait_for(r.read(65536), 10)
        if not data:
            break
        terminated = terminated or any(isinstance(ev, h2.events.ConnectionTerminated)
                                       for ev in conn.receive_data(data))
    assert terminated
    w.close()


class Blackhole:
    """Accepts TCP connections and never answers (a TLS handshake to it stalls); counts them."""

    def __init__(self) -> None:
        self.accepted = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> Blackhole:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(w)

    async def stop(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()


async def test_failed_eager_dial_is_the_first_requests_error_without_a_second_dial(make_proxy):
    hole = await Blackhole().start()
    try:
        proxy = await make_proxy(connect_timeout=1.0)
        ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
        async with httpx.AsyncClient(http2=True, proxy=proxy_url(proxy), verify=ctx, timeout=20) as c:
            t0 = time.monotonic()
            r = await c.get(f"https://localhost:{hole.port}/")
            took = time.monotonic() - t0
        assert r.status_code == 504 and "localhost" in r.text
        assert hole.accepted == 1  # the CONNECT's dial only: the request did not wait a second time
        assert took < 1.9
    finally:
        await hole.stop()


async def test_head_and_get_share_an_h2_connection_both_ways(make_proxy, h2_origin):
    """HEAD's response has a Content-Length and no body: the origin stream must know its method."""
    proxy = await make_proxy()
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    async with httpx.AsyncClient(http2=True, proxy=proxy_url(proxy), verify=ctx, timeout=20) as c:
        for _ in range(2):
            r = await c.head(h2_origin.url("/bytes?n=1000"))
            assert r.status_code == 200 and r.http_version == "HTTP/2"
            assert r.headers["content-length"] == "1000" and r.content == b""
            r = await c.get(h2_origin.url("/bytes?n=1000"))
            assert r.status_code == 200 and len(r.content) == 1000
    assert h2_origin.versions == ["2"] * 4


@pytest.mark.parametrize("bad", [(b"connection", b"keep-alive"), (b"X-Upper", b"1"), (b"x-nul", b"a\x00b")])
async def test_a_malformed_request_head_ends_the_connection_with_goaway(make_proxy, h2_origin, bad):
    """The request heads the proxy decodes itself are validated as h2 validates them."""
    proxy = await make_proxy()
    r, w, first = await open_h2(proxy, "localhost", h2_origin.port)
    acked = False
    while not acked:  # the proxy took the preface and SETTINGS: the HEADERS frame arrives alone
        data = await asyncio.wait_for(r.read(65536), 10)
        assert data
        acked = any(isinstance(ev, h2.events.SettingsAcknowledged) for ev in first.receive_data(data))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False))
    conn.initiate_connection()
    conn.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"),
                          (b":path", b"/echo"), bad], end_stream=True)
    out = conn.data_to_send()
    settings_end = 24 + 9 + int.from_bytes(out[24:27], "big")
    w.write(out[settings_end:])  # the HEADERS frame alone: open_h2 sent the preface and SETTINGS
    codes = []
    while True:
        data = await asyncio.wait_for(r.read(65536), 10)
        if not data:
            break
        codes += [ev.error_code for ev in conn.receive_data(data) if isinstance(ev, h2.events.ConnectionTerminated)]
    assert codes == [h2.errors.ErrorCodes.PROTOCOL_ERROR]
    w.close()
