"""Engine defects seen from outside: one black-box test per defect, on real sockets on 127.0.0.1.

Each test states what a user observes (bytes on the wire, the captured flow, socket states). They
are written against the engine's intended behaviour and fail until the engine work lands; none
is marked xfail on purpose. No fixed sleeps: every wait is on a condition, bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from pathlib import Path

import pytest
from conftest import HeadlessProxy, collect_done, free_port, wait_for
from origin import Origin

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- helpers


class RawOrigin:
    """An origin whose every connection runs `handler(reader, writer, origin)`; it records the
    connections, the raw bytes each sent, and when each reached EOF."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.connections = 0
        self.received: list[bytearray] = []
        self.eof: list[bool] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> RawOrigin:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    async def read_head(self, reader: asyncio.StreamReader) -> bytes:
        """The request head (recorded), or b'' at EOF."""
        i = len(self.received)
        self.received.append(bytearray())
        self.eof.append(False)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            self.received[i] += exc.partial
            self.eof[i] = True
            return b""
        self.received[i] += head
        return head

    async def read_until_eof(self, reader: asyncio.StreamReader) -> None:
        i = len(self.received) - 1
        while True:
            data = await reader.read(65536)
            if not data:
                self.eof[i] = True
                return
            self.received[i] += data

    async def stop(self) -> None:
        for w in self.writers:
            w.transport.abort()
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2)
            except TimeoutError:
                pass


@pytest.fixture
async def raw_origins():
    made: list[RawOrigin] = []

    async def make(handler) -> RawOrigin:
        o = await RawOrigin(handler).start()
        made.append(o)
        return o

    yield make
    for o in made:
        await o.stop()


async def respond_with(reader, writer, origin: RawOrigin, response: bytes) -> None:
    """Read one request head, answer `response`, then keep the connection until EOF."""
    if await origin.read_head(reader):
        writer.write(response)
        await writer.drain()
        await origin.read_until_eof(reader)


async def exchange(proxy, data: bytes, timeout: float = 10) -> bytes:
    """Send `data` in one write; everything the proxy answers until it closes (or `timeout`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(data)
    await writer.drain()
    got = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                got += chunk
    except TimeoutError:
        pass
    finally:
        writer.transport.abort()
    return got


async def read_head(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)


def header_names(head_lines: list) -> set[str]:
    return {k.lower() for k, _ in head_lines}


@pytest.fixture
async def timed_proxy(origin_ca):
    """Factory: a started Proxy with the engine's timeout options (seconds) set as attributes:
    the options object does not declare them yet, so they are set with setattr."""
    from proxycore.options import Options
    from proxycore.proxy.server import Proxy

    proxies = []

    async def make(**timeouts):
        opts = Options(port=0, upstream_ca=str(origin_ca.cert_path))
        for name, value in timeouts.items():
            setattr(opts, name, value)
        p = Proxy(opts, on_error=lambda m: None)
        await p.start()
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        await p.stop()


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """Everything read until the proxy closes the connection, or None if it is still open after
    `timeout` seconds."""
    got = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                got += chunk
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return got


def tcp_states(port_pairs: set[tuple[int, int]]) -> list[str]:
    """States ('CLOSE_WAIT', ...) of the IPv4 loopback sockets whose (local, remote) ports are in
    `port_pairs`, from /proc/net/tcp."""
    names = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
             "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
             "0B": "CLOSING"}
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        lport, rport = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16)
        if (lport, rport) in port_pairs:
            out.append(names.get(f[3], f[3]))
    return out


# --------------------------------------------------------------------------- 1. Transfer-Encoding


@pytest.mark.parametrize("version,te", [
    ("1.1", "xchunked"),
    ("1.1", "chunked, gzip"),
    ("1.0", "chunked"),
])
async def test_request_with_unusable_transfer_encoding_is_400_not_rechunked(make_proxy, raw_origins, version, te):
    """Only a final `chunked` coding on HTTP/1.1 frames a request body; anything else is a smuggling
    vector and must be refused, never re-chunked towards the origin."""
    origin = await raw_origins(lambda r, w, o: respond_with(r, w, o, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    proxy = await make_proxy()
    reply = await exchange(proxy, (
        f"POST http://127.0.0.1:{origin.port}/upload HTTP/{version}\r\nHost: 127.0.0.1:{origin.port}\r\n"
        f"Transfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n").encode(), timeout=5)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert origin.connections == 0, f"the origin got: {bytes(origin.received[0])[:300]!r}"


async def test_response_with_transfer_encoding_chunked_gzip_is_502(make_proxy, raw_origins):
    """`Transfer-Encoding: chunked, gzip` on a response: the body is not chunk-framed, the proxy must
    not re-chunk it as if it were; it answers 502."""
    body = b"not really gzip, delimited by close"
    origin = await raw_origins(lambda r, w, o: respond_with(
        r, w, o, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nConnection: close\r\n\r\n" + body))
    proxy = await make_proxy()
    reply = await exchange(proxy, f"GET http://127.0.0.1:{origin.port}/x HTTP/1.1\r\n"
                                  f"Host: 127.0.0.1:{origin.port}\r\n\r\n".encode(), timeout=5)
    assert reply.startswith(b"HTTP/1.1 502"), reply[:300]


# --------------------------------------------------------------------------- 2. Connection headers


async def test_headers_named_in_connection_are_not_forwarded(make_proxy, origin):
    proxy = await make_proxy()
    reply = await exchange(proxy, (
        f"GET {origin.url('/echo')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n"
        "Connection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
        "Proxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n").encode())
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    sent = header_names(origin.requests[0]["headers"])
    assert "x-kept" in sent
    assert not sent & {"x-secret", "keep-alive", "proxy-connection"}, sorted(sent)


# --------------------------------------------------------------------------- 3. Host vs authority


async def test_absolute_form_authority_wins_over_host_header(make_proxy, origin):
    """RFC 9112 3.2.2: a proxy replaces Host with the absolute-form URL's authority. The origin and
    the captured flow must agree on the host the request went to."""
    proxy = await make_proxy()
    done = collect_done(proxy)
    reply = await exchange(proxy, (
        f"GET {origin.url('/echo')} HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n").encode())
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    hosts = [v for k, v in origin.requests[0]["headers"] if k.lower() == "host"]
    assert hosts == [f"127.0.0.1:{origin.port}"], hosts
    await wait_for(lambda: done, what="flow")
    req = done[0].request
    assert req.host == "127.0.0.1" and req.port == origin.port
    assert req.headers.get("host") == f"127.0.0.1:{origin.port}"
    assert req.authority in ("127.0.0.1", f"127.0.0.1:{origin.port}"), req.authority


# --------------------------------------------------------------------------- 4. head size limits


async def test_request_head_over_64k_in_one_write_gets_431(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    filler = "".join(f"X-Filler-{i}: {'a' * 40}\r\n" for i in range(1700))  # ~90 KiB, complete head
    data = f"GET {origin.url('/json')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n{filler}\r\n".encode()
    assert 64 * 1024 < len(data) < 128 * 1024
    reply = await exchange(proxy, data, timeout=5)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert origin.requests == []
    await wait_for(lambda: done, what="error flow")
    assert done[0].error


async def test_response_head_over_64k_gets_502(make_proxy, raw_origins):
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"b" * 40) for i in range(1700))
    origin = await raw_origins(lambda r, w, o: respond_with(
        r, w, o, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + filler + b"\r\n"))
    proxy = await make_proxy()
    done = collect_done(proxy)
    reply = await exchange(proxy, f"GET http://127.0.0.1:{origin.port}/big-head HTTP/1.1\r\n"
                                  f"Host: 127.0.0.1:{origin.port}\r\n\r\n".encode(), timeout=5)
    assert reply.startswith(b"HTTP/1.1 502"), reply[:200]
    await wait_for(lambda: done, what="flow")
    assert done[0].error


# --------------------------------------------------------------------------- 5. trailers


async def test_request_trailers_reach_the_origin(make_proxy, raw_origins):
    async def handler(reader, writer, o):
        if not await o.read_head(reader):
            return
        i = len(o.received) - 1
        o.received[i] += await reader.readuntil(b"\r\n0\r\n")  # up to the last chunk
        while True:  # then the trailer fields, up to the empty line
            line = await reader.readuntil(b"\r\n")
            o.received[i] += line
            if line == b"\r\n":
                break
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()

    origin = await raw_origins(handler)
    proxy = await make_proxy()
    done = collect_done(proxy)
    reply = await exchange(proxy, (
        f"POST http://127.0.0.1:{origin.port}/t HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n"
        "Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
        "5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n").encode(), timeout=5)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b"X-Checksum: abc123\r\n" in bytes(origin.received[0]).split(b"\r\n\r\n", 1)[1], origin.received[0]
    await wait_for(lambda: done, what="flow")
    assert done[0].request.trailers.get("x-checksum") == "abc123"  # the flow keeps them too


async def test_response_trailers_reach_the_client(make_proxy, raw_origins):
    origin = await raw_origins(lambda r, w, o: respond_with(
        r, w, o, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                 b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n"))
    proxy = await make_proxy()
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        writer.write(f"GET http://127.0.0.1:{origin.port}/t HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n"
                     .encode())
        head = await read_head(reader)
        assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower(), head
        body = await asyncio.wait_for(reader.readuntil(b"0\r\n"), 10)
        assert body.endswith(b"\r\n0\r\n") and b"hello" in body
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
        assert line != b"\r\n", "the trailer was dropped: an empty line right after the last chunk"
        assert line == b"X-Checksum: abc123\r\n", line
        assert await asyncio.wait_for(reader.readuntil(b"\r\n"), 10) == b"\r\n"
    finally:
        writer.transport.abort()
    await wait_for(lambda: done, what="flow")
    assert done[0].response.trailers.get("x-checksum") == "abc123"  # the flow keeps them (gRPC's status)


# --------------------------------------------------------------------------- 6. client gone, silent origin


async def test_client_leaving_while_origin_is_silent_closes_the_origin_connection(make_proxy, raw_origins):
    async def silent(reader, writer, o):
        if await o.read_head(reader):
            await o.read_until_eof(reader)  # never answers; records when the proxy lets go

    origin = await raw_origins(silent)
    proxy = await make_proxy()
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    client_port = writer.get_extra_info("sockname")[1]
    writer.write(f"GET http://127.0.0.1:{origin.port}/slow HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n"
                 .encode())
    await writer.drain()
    await wait_for(lambda: origin.received and origin.received[0].endswith(b"\r\n\r\n"),
                   what="the origin to receive the request")
    writer.close()  # the client gives up (FIN)
    await wait_for(lambda: origin.eof and origin.eof[0], timeout=5,
                   what="the proxy to close its connection to the origin after the client left")
    await wait_for(lambda: done, timeout=5, what="the flow to end")
    assert done[0].error
    # no socket of this exchange is left half-closed in the proxy
    proxy_port = proxy.address[1]
    upstream_ports = {(w.get_extra_info("peername")[1], origin.port) for w in origin.writers}
    pairs = {(proxy_port, client_port)} | upstream_ports
    await wait_for(lambda: "CLOSE_WAIT" not in tcp_states(pairs), timeout=5,
                   what=f"no CLOSE_WAIT socket on the proxy's side ({tcp_states(pairs)})")


# --------------------------------------------------------------------------- 7. pipelining bound


async def test_pipelined_requests_to_a_client_that_does_not_read_are_bounded(make_proxy, origin):
    """A client pipelines 2 000 requests for 16 KiB each and reads nothing: the proxy serves until
    the socket buffers are full (a couple of MiB), reads at most --max-pipelined requests ahead of
    that, then stops reading; once the client reads, everything completes in order."""
    n, size = 2000, 16384
    proxy = await make_proxy()
    added: list = []
    proxy.subscribe(lambda kind, flow: added.append(flow) if kind == "add" else None)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.transport.pause_reading()  # the client reads no response for now
    one = f"GET {origin.url(f'/bytes?n={size}')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n".encode()
    writer.write(one * n)  # all at once; not drained: the proxy decides how much it takes

    # wait until the proxy has taken in everything, or has stopped taking more (bounded)
    last, last_change = -1, time.monotonic()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(added) < n:
        if len(added) != last:
            last, last_change = len(added), time.monotonic()
        elif len(added) and time.monotonic() - last_change > 1.0:
            break
        await asyncio.sleep(0.02)
    parsed, sent = len(added), len(origin.requests)
    try:
        # the socket buffers hold a few hundred responses; the read-ahead bound adds 16 requests
        assert parsed < 600 and sent < 600, (
            f"while the client read nothing the proxy parsed {parsed} of {n} pipelined requests and sent "
            f"{sent} to the origin")
        # once the client reads, everything completes, in order
        writer.transport.resume_reading()
        async with asyncio.timeout(90):
            for _ in range(n):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                await reader.readexactly(size)
        await wait_for(lambda: len(origin.requests) == n, timeout=30, what=f"{n} requests at the origin")
    finally:
        writer.transport.abort()


# --------------------------------------------------------------------------- 8. proxy loops


async def test_upstream_pointing_back_at_the_proxy_is_508_not_a_loop(make_proxy, origin):
    port = free_port()
    proxy = await make_proxy(port=port, upstream=f"http://127.0.0.1:{port}")
    peak = 0
    tripped = asyncio.Event()

    async def watchdog():  # a looping proxy would open connections to itself without end
        nonlocal peak
        while True:
            peak = max(peak, len(proxy.connections))
            if peak > 20:
                tripped.set()
                await proxy.stop()
                return
            await asyncio.sleep(0.005)

    dog = asyncio.create_task(watchdog())
    try:
        reply = await exchange(proxy, f"GET {origin.url('/json')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n"
                                      "\r\n".encode(), timeout=5)
    finally:
        dog.cancel()
    assert not tripped.is_set(), f"the request looped through the proxy ({peak} connections open at once)"
    assert reply.startswith(b"HTTP/1.1 508"), reply[:200]
    assert peak <= 3, peak
    assert origin.requests == []


# --------------------------------------------------------------------------- 9. absolute-form inside a tunnel


async def test_absolute_form_request_inside_a_mitm_tunnel_goes_to_the_tunnel_host(make_proxy, origin_ca):
    a = await Origin(origin_ca.server_context("localhost")).start()
    b = await Origin(origin_ca.server_context("localhost")).start()
    try:
        proxy = await make_proxy()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
        writer.write(f"CONNECT localhost:{a.port} HTTP/1.1\r\nHost: localhost:{a.port}\r\n\r\n".encode())
        assert (await read_head(reader)).startswith(b"HTTP/1.1 200")
        ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
        await asyncio.wait_for(writer.start_tls(ctx, server_hostname="localhost"), 10)
        writer.write(f"GET https://localhost:{b.port}/echo HTTP/1.1\r\nHost: localhost:{b.port}\r\n"
                     "Connection: close\r\n\r\n".encode())
        reply = await asyncio.wait_for(reader.read(65536), 10)
        writer.transport.abort()
        assert reply.startswith(b"HTTP/1.1"), reply[:200]
        assert b.requests == [], "the request left the tunnel for another host"
        assert len(a.requests) == 1
    finally:
        await a.stop()
        await b.stop()


# --------------------------------------------------------------------------- 10. ClientHello with CONNECT


async def test_client_hello_in_the_same_write_as_connect_is_not_dropped(make_proxy, tls_origin):
    proxy = await make_proxy()
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = out.read()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        writer.write(f"CONNECT localhost:{tls_origin.port} HTTP/1.1\r\nHost: localhost:{tls_origin.port}\r\n\r\n"
                     .encode() + hello)  # no waiting for the 200 (TCP Fast Open / eager clients)
        assert (await read_head(reader)).startswith(b"HTTP/1.1 200")

        async def pump() -> None:
            if out.pending:
                writer.write(out.read())
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "the proxy closed the connection during the TLS handshake"
            inc.write(data)

        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        await pump()
        except TimeoutError:
            pytest.fail("no TLS handshake in 10 s: the ClientHello sent with the CONNECT was dropped")
        async with asyncio.timeout(10):
            tls.write(b"GET /json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            plain = b""
            while b"hello" not in plain:
                try:
                    plain += tls.read(65536)  # a record at a time: read all there is first
                except ssl.SSLWantReadError:
                    await pump()
        assert plain.startswith(b"HTTP/1.1 200")
    finally:
        writer.transport.abort()


# --------------------------------------------------------------------------- 11. non-ASCII host names


async def test_non_ascii_connect_host_and_sni_give_clean_errors_without_traceback(tmp_path):
    """Run as users do (`omniproxy-tui --no-ui`): a CONNECT to a non-ASCII name, and a ClientHello
    whose SNI carries raw UTF-8 bytes, each end as an error flow; nothing is dumped on stderr."""
    # --upstream to a closed local port: whatever happens, nothing is ever resolved or dialled outside
    async with HeadlessProxy(tmp_path, "-o", str(tmp_path / "cap.ndjson"), "--upstream", "http://127.0.0.1:1") as proxy:
        port = proxy.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write("CONNECT bücher.example:443 HTTP/1.1\r\nHost: bücher.example:443\r\n\r\n".encode())
        reply = await asyncio.wait_for(reader.read(65536), 10)
        writer.transport.abort()
        assert re.match(rb"HTTP/1\.1 [45]\d\d", reply), reply[:200]

        ctx = ssl.create_default_context(cafile=str(proxy.home / "ca" / "omniproxy-ca.crt"))
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_hostname="xn--bcher-kva.example")
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = out.read().replace(b"xn--bcher-kva.example", "bücher-kvaaa.example".encode())  # same length
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n")
        assert (await read_head(reader)).startswith(b"HTTP/1.1 200")
        writer.write(hello)
        await asyncio.wait_for(reader.read(65536), 10)  # an alert or a close, not a hang
        writer.transport.abort()
    stderr = proxy.stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    flow_lines = [ln for ln in stderr.splitlines() if " ERR " in ln]
    assert len(flow_lines) >= 2, stderr  # the raw UTF-8 request line is a malformed request
    assert any(" CONNECT " in ln and "refused" in ln for ln in flow_lines), stderr


# --------------------------------------------------------------------------- 12. timeouts


async def test_client_stalling_mid_head_is_closed_after_client_head_timeout(timed_proxy, origin):
    proxy = await timed_proxy(client_head_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        writer.write(f"GET {origin.url('/json')} HTTP/1.1\r\nHost: 127.0".encode())  # ... and nothing more
        got = await closed_by_peer(reader, 5)
        assert got is not None, "the proxy kept a half-sent request head open for 5 s"
        assert got == b"" or got.startswith(b"HTTP/1.1 408"), got[:200]
    finally:
        writer.transport.abort()


async def test_idle_keepalive_client_is_closed_after_keepalive_timeout(timed_proxy, origin):
    proxy = await timed_proxy(keepalive_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        writer.write(f"GET {origin.url('/json')} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n".encode())
        head = await read_head(reader)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        await asyncio.wait_for(reader.readexactly(length), 10)
        got = await closed_by_peer(reader, 5)
        assert got == b"", "an idle keep-alive connection was still open after 5 s" if got is None else got
    finally:
        writer.transport.abort()


async def test_origin_that_never_answers_gives_504_after_response_timeout(timed_proxy, raw_origins):
    async def silent(reader, writer, o):
        if await o.read_head(reader):
            await o.read_until_eof(reader)

    origin = await raw_origins(silent)
    proxy = await timed_proxy(response_timeout=0.5)
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        writer.write(f"GET http://127.0.0.1:{origin.port}/x HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n"
                     .encode())
        try:
            head = await read_head(reader, timeout=5)
        except TimeoutError:
            pytest.fail("no answer 5 s after the request to an origin that never answers")
        assert head.startswith(b"HTTP/1.1 504"), head[:200]
        await wait_for(lambda: done, timeout=5, what="the flow")
        assert done[0].error
    finally:
        writer.transport.abort()


async def test_origin_stalling_mid_body_ends_the_flow_after_body_idle_timeout(timed_proxy, raw_origins):
    async def stall(reader, writer, o):
        if await o.read_head(reader):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
            await writer.drain()
            await o.read_until_eof(reader)  # the other 900 bytes never come

    origin = await raw_origins(stall)
    proxy = await timed_proxy(body_idle_timeout=0.5)
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        writer.write(f"GET http://127.0.0.1:{origin.port}/x HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n"
                     .encode())
        head = await read_head(reader)
        assert head.startswith(b"HTTP/1.1 200")
        await wait_for(lambda: done, timeout=5, what="the flow to end after the origin stalled mid-body")
        assert done[0].error
        got = await closed_by_peer(reader, 5)  # the client cannot get a complete body: it is closed
        assert got is not None and len(got) < 1000
        assert origin.eof and origin.eof[0] or await wait_for(lambda: origin.eof[0], timeout=5,
                                                              what="the origin connection closed")
    finally:
        writer.transport.abort()
