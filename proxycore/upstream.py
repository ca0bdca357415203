"""Connections to origin servers (or to an upstream proxy): dialing, TLS, pooling, response parsing.

An `UpstreamConnection` is an asyncio Protocol fed by httptools. Response bytes are handed to the
exchange that owns the connection as they arrive, so bodies stream through without being
buffered whole.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

import httptools

from .endpoint import Endpoint
from .flow import TLSInfo

if TYPE_CHECKING:
    from .flow import Flow

CONNECT_TIMEOUT = 15.0
MAX_IDLE_PER_HOST = 32
MAX_HEAD_SIZE = 64 * 1024


class UpstreamError(Exception):
    """A failure talking to the origin; the message is shown to the user (502 body, flow error)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class ResponseHandler(Protocol):
    """What an UpstreamConnection reports to (implemented by the client-side exchange)."""

    def response_head(self, status: int, reason: bytes, version: str, headers: list[tuple[bytes, bytes]],
                      framing: str) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_complete(self, keep_alive: bool, interim: bool = False) -> None: ...
    def response_failed(self, message: str) -> None: ...
    def upstream_pause_writing(self) -> None: ...
    def upstream_resume_writing(self) -> None: ...


class UpstreamProxy:
    """--upstream http://[user:pass@]host:port"""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "") or not parts.hostname:
            raise ValueError(f"upstream proxy must look like http://[user:pass@]host:port, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 8080
        self.auth_header: bytes | None = None
        if parts.username is not None:
            cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.auth_header = b"Basic " + base64.b64encode(cred)


def _tls_info(sslobj: ssl.SSLObject | None, sni: str | None) -> TLSInfo:
    info = TLSInfo()
    info.sni = sni
    if sslobj is None:
        return info
    info.version = sslobj.version()
    info.alpn = sslobj.selected_alpn_protocol()
    c = sslobj.cipher()
    info.cipher = c[0] if c else None
    try:
        cert = sslobj.getpeercert()
    except ValueError:
        cert = None
    if cert:
        info.cert_subject = ", ".join("=".join(x) for rdn in cert.get("subject", ()) for x in rdn)
        info.cert_issuer = ", ".join("=".join(x) for rdn in cert.get("issuer", ()) for x in rdn)
        info.cert_not_after = cert.get("notAfter")
        info.cert_sans = [v for _, v in cert.get("subjectAltName", ())]
    return info


def describe_connect_error(exc: BaseException, host: str, port: int) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"upstream certificate verification failed for {host}: {exc.verify_message} (use --ssl-insecure or --upstream-ca to allow it)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {host}:{port} failed: {exc.reason or exc}"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"connecting to {host}:{port} timed out"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {host}:{port} refused"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect to {host}:{port}: {exc.strerror}"
    return f"cannot connect to {host}:{port}: {exc}"


class UpstreamConnection(Endpoint):
    """One connection to an origin (or to the upstream proxy for plain HTTP)."""

    def __init__(self, pool: Pool | None, key: tuple) -> None:
        super().__init__()
        self.pool = pool
        self.key = key
        self.handler: ResponseHandler | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.tls: TLSInfo | None = None
        self.server_addr: tuple[str, int] | None = None
        self.head_request = False  # HEAD responses carry no body: the parser cannot know
        self.got_bytes = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._framing = ""
        self._in_message = False
        self._relay = False  # after 101 / CONNECT tunnels: raw bytes to the handler
        # Content-Length body bytes still to come. Once the head is parsed, such bodies bypass the
        # parser: each received buffer goes to the client as is, without httptools' per-chunk copy.
        self._remaining = 0
        self._keep_alive = False

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.server_addr = (peer[0], peer[1])

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self._remaining > 0 and self.handler is not None:
            n = len(data)
            if n < self._remaining:
                self._remaining -= n
                self.handler.response_body(data)
                return
            body, extra = data[:self._remaining], data[self._remaining:]
            self._remaining = 0
            self.handler.response_body(body)
            self.parser = httptools.HttpResponseParser(self)  # the old one is mid-message
            self._finish(keep_alive=self._keep_alive and not extra)
            if extra:
                self.close()  # bytes nobody asked for: the connection can't be trusted
            return
        if self._relay:
            if self.handler is not None:
                self.handler.response_body(data)
            return
        if self.handler is None:
            # bytes on an idle pooled connection: the server is misbehaving, drop the connection
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # 101 Switching Protocols: relay whatever follows untouched
            off = exc.args[0]
            self._relay = True
            h = self.handler
            self._finish(keep_alive=False, relay=True)
            rest = data[off:]
            if rest and h is not None:
                h.response_body(rest)
        except httptools.HttpParserError as exc:
            self._fail(f"malformed response from upstream: {exc}")
        if not self._in_message and self._head_size_exceeded():
            self._fail("upstream response head too large")

    def _head_size_exceeded(self) -> bool:
        return sum(len(k) + len(v) for k, v in self._headers) > MAX_HEAD_SIZE

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.pool is not None:
            self.pool.discard(self)
        if self.handler is not None:
            if self._relay:
                h, self.handler = self.handler, None
                h.response_complete(keep_alive=False)
            elif self._in_message and self._framing == "close":
                self._finish(keep_alive=False)
            elif self._in_message:
                self._fail("upstream closed the connection mid-response")
            else:
                self._fail("upstream closed the connection before responding"
                           if not self.got_bytes else "upstream closed the connection")

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.upstream_resume_writing()

    # --- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_message = True
        self._headers = []
        self._reason = b""

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        p = self.parser
        status = p.get_status_code()
        framing = "none"
        if not (self.head_request or status < 200 or status in (204, 304)):
            framing = "close"
            for k, v in self._headers:
                lk = k.lower()
                if lk == b"transfer-encoding" and b"chunked" in v.lower():
                    framing = "chunked"
                    break
                if lk == b"content-length":
                    framing = "length"
                    try:
                        self._remaining = int(v)
                    except ValueError:
                        self._remaining = 0  # malformed: llhttp will reject it
        self._framing = framing
        self._keep_alive = p.should_keep_alive()
        if self.handler is not None:
            self.handler.response_head(status, self._reason, p.get_http_version(), self._headers, framing)
        if framing == "none" and self.head_request:
            # llhttp would wait for a body the server never sends after HEAD
            self._finish(keep_alive=p.should_keep_alive())
            self.parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        if self._remaining:
            self._remaining -= len(body)
        if self.handler is not None:
            self.handler.response_body(body)

    def on_message_complete(self) -> None:
        self._remaining = 0
        if not self._in_message:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # interim response (100 Continue): forwarded, the final one follows
            self._in_message = False
            if self.handler is not None:
                self.handler.response_complete(keep_alive=True, interim=True)
            return
        self._finish(keep_alive=self.parser.should_keep_alive())

    # --- helpers ----------------------------------------------------------------------------
    def _finish(self, keep_alive: bool, relay: bool = False) -> None:
        self._in_message = False
        h = self.handler
        if not relay:
            self.handler = None
        if h is not None:
            h.response_complete(keep_alive=keep_alive)

    def _fail(self, message: str) -> None:
        self._in_message = False
        h, self.handler = self.handler, None
        self.close()
        if h is not None:
            h.response_failed(message)

    def start_exchange(self, handler: ResponseHandler, head_request: bool) -> None:
        self.handler = handler
        self.head_request = head_request
        self.got_bytes = False
        if self._paused:
            self.resume_reading()

    def close(self) -> None:
        self.closed = True  # at once: the pool must never hand out a connection being closed
        super().close()

    def abort(self) -> None:
        self.closed = True
        super().abort()

    def release(self) -> None:
        """Hand the connection back to the pool for reuse."""
        self.handler = None
        if self.pool is not None and not self.closed:
            self.pool.put(self)
        else:
            self.close()


class RelayProtocol(asyncio.Protocol):
    """The server side of a blind tunnel: every byte goes to `sink` untouched."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseHandler | None = None
        self.buffer: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.response_body(data)
        else:
            self.buffer.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.sink is not None:
            s, self.sink = self.sink, None
            s.response_complete(keep_alive=False)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_resume_writing()


class _ConnectReply(asyncio.Protocol):
    """Reads an upstream proxy's answer to our CONNECT."""

    def __init__(self) -> None:
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.parser = httptools.HttpResponseParser(self)
        self.extra = b""

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.done.done():
                self.done.set_exception(UpstreamError(f"bad reply from upstream proxy: {exc}"))

    def on_headers_complete(self) -> None:
        if not self.done.done():
            self.done.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(UpstreamError("upstream proxy closed the connection during CONNECT"))


class Pool:
    """Idle upstream connections, keyed by (scheme, host, port)."""

    def __init__(self, client_ssl: ssl.SSLContext | None, upstream: UpstreamProxy | None) -> None:
        self.idle: dict[tuple, list[UpstreamConnection]] = defaultdict(list)
        self.client_ssl = client_ssl
        self.upstream = upstream
        self.connections_opened = 0

    def put(self, conn: UpstreamConnection) -> None:
        lst = self.idle[conn.key]
        if len(lst) >= MAX_IDLE_PER_HOST:
            conn.close()
            return
        conn.pause_reading()  # nothing is expected while idle; a close still arrives
        lst.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        lst = self.idle.get(conn.key)
        if lst and conn in lst:
            lst.remove(conn)

    def take(self, key: tuple) -> UpstreamConnection | None:
        lst = self.idle.get(key)
        while lst:
            conn = lst.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    def close(self) -> None:
        for lst in self.idle.values():
            for c in lst:
                c.close()
        self.idle.clear()

    async def connect(self, flow: Flow, scheme: str, host: str, port: int) -> UpstreamConnection:
        """A fresh connection for `flow`, TLS set up for https; timings and TLS facts on the flow."""
        loop = asyncio.get_running_loop()
        key = (scheme, host, port)
        t = flow.timings
        t.connect_start = time.time()
        via = self.upstream
        dial_host, dial_port = (via.host, via.port) if via else (host, port)
        try:
            if scheme == "https":
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(asyncio.Protocol, dial_host, dial_port), CONNECT_TIMEOUT)
                if via:
                    transport = await self._connect_via_proxy(transport, host, port)
                t.connect_end = time.time()
                conn = UpstreamConnection(self, key)
                transport.set_protocol(conn)
                conn.connection_made(transport)
                assert self.client_ssl is not None
                tls_transport = await asyncio.wait_for(
                    loop.start_tls(transport, conn, self.client_ssl, server_hostname=host), CONNECT_TIMEOUT)
                if tls_transport is None:
                    raise UpstreamError(f"TLS handshake with {host}:{port} failed")
                conn.transport = tls_transport
                t.tls_end = time.time()
                conn.tls = _tls_info(tls_transport.get_extra_info("ssl_object"), host)
                flow.server_tls = conn.tls
            else:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(lambda: UpstreamConnection(self, key), dial_host, dial_port),
                    CONNECT_TIMEOUT)
                t.connect_end = time.time()
        except UpstreamError:
            raise
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            where = (dial_host, dial_port) if via and scheme == "http" else (host, port)
            status = 504 if isinstance(exc, asyncio.TimeoutError | TimeoutError) else 502
            raise UpstreamError(describe_connect_error(exc, *where), status) from None
        self.connections_opened += 1
        flow.server_addr = conn.server_addr
        return conn

    async def open_tunnel(self, host: str, port: int) -> tuple[asyncio.Transport, RelayProtocol]:
        """A raw TCP stream to host:port (through the upstream proxy when configured)."""
        loop = asyncio.get_running_loop()
        via = self.upstream
        try:
            if via:
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(asyncio.Protocol, via.host, via.port), CONNECT_TIMEOUT)
                transport = await self._connect_via_proxy(transport, host, port)
                relay = RelayProtocol()
                transport.set_protocol(relay)
                relay.connection_made(transport)
                return transport, relay
            transport, relay = await asyncio.wait_for(
                loop.create_connection(RelayProtocol, host, port), CONNECT_TIMEOUT)
            return transport, relay
        except UpstreamError:
            raise
        except (TimeoutError, OSError) as exc:
            status = 504 if isinstance(exc, asyncio.TimeoutError | TimeoutError) else 502
            raise UpstreamError(describe_connect_error(exc, host, port), status) from None

    async def _connect_via_proxy(self, transport: asyncio.Transport, host: str, port: int) -> asyncio.Transport:
        via = self.upstream
        assert via is not None
        reply = _ConnectReply()
        transport.set_protocol(reply)
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode()
        if via.auth_header:
            head += b"Proxy-Authorization: " + via.auth_header + b"\r\n"
        transport.write(head + b"\r\n")
        try:
            status = await asyncio.wait_for(reply.done, CONNECT_TIMEOUT)
        except BaseException:
            transport.close()
            raise
        if status != 200:
            transport.close()
            raise UpstreamError(f"upstream proxy {via.host}:{via.port} refused CONNECT {authority}: status {status}")
        return transport
