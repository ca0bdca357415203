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
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from proxycore.flows.flow import TLSInfo
from proxycore.layers import http1 as h1
from proxycore.options import Options
from proxycore.proxy.endpoint import _SMALL_READ, Endpoint

if TYPE_CHECKING:
    from proxycore.flows.flow import Flow, Request

# Idle pooled connections kept per origin and in all: at least as many as the clients that use one
# origin at once, or every request past the bound opens (and for https, handshakes) a new connection.
MAX_IDLE_PER_HOST = 256
MAX_IDLE = 1024
_READ_VIEW = memoryview(bytearray(256 << 10))  # UpstreamConnection.get_buffer


class UpstreamError(Exception):
    """A failure talking to the origin; the message is shown to the user (502 body, flow error)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class ResponseHandler(Protocol):
    """What an UpstreamConnection reports to (implemented by the client-side exchange)."""

    def response_head(self, ev: h1.ResponseHead) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_complete(self, keep_alive: bool, trailers: list[tuple[bytes, bytes]] | None = None) -> None: ...
    def response_failed(self, message: str, status: int = 502) -> None: ...
    def upstream_pause_writing(self) -> None: ...
    def upstream_resume_writing(self) -> None: ...


class UpstreamProxy:
    """--upstream http://[user:pass@]host:port"""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "") or not parts.hostname:
            from proxycore.config import mask_password  # only on this error path: no yaml import otherwise

            raise ValueError(f"upstream proxy must look like http://[user:pass@]host:port, got "
                             f"{mask_password(url)!r}")
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
    info.cert_chain = _peer_chain_pem(sslobj)
    return info


def _peer_chain_pem(sslobj: ssl.SSLObject) -> str:
    """The certificates the server sent (leaf first), as PEM: once per upstream connection, a few
    microseconds. get_unverified_chain is public from Python 3.13 and private (on _sslobj) from
    3.10; without it only the leaf is known (also under --ssl-insecure, unlike getpeercert())."""
    get = getattr(sslobj, "get_unverified_chain", None) or \
        getattr(getattr(sslobj, "_sslobj", None), "get_unverified_chain", None)
    try:
        certs = get() if get is not None else None
        if certs:
            # 3.13+: DER bytes; before: _ssl.Certificate objects (public_bytes(1): PEM)
            return "".join(ssl.DER_cert_to_PEM_cert(c) if isinstance(c, bytes) else c.public_bytes(1)
                           for c in certs)
        der = sslobj.getpeercert(binary_form=True)
    except (ssl.SSLError, ValueError, AttributeError, TypeError):
        return ""
    return ssl.DER_cert_to_PEM_cert(der) if der else ""


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
    """One connection to an origin (or to the upstream proxy for plain HTTP): a byte pump around
    the sans-io `H1Client` codec."""

    def __init__(self, pool: Pool | None, key: tuple) -> None:
        super().__init__()
        self.pool = pool
        self.key = key
        self.handler: ResponseHandler | None = None
        self.codec = h1.H1Client(pool.max_head_size if pool is not None else 65536)
        self.tls: TLSInfo | None = None
        self.server_addr: tuple[str, int] | None = None
        self.got_bytes = False
        self._relay = False  # after 101 / CONNECT tunnels: raw bytes to the handler
        self._keep_alive = False
        # The Proxy's sweep fails the exchange once `deadline` (loop.time(), 0: none) has passed.
        self.deadline = 0.0
        self.deadline_kind = ""

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.server_addr = self.attach(transport)

    # uvloop reads into this buffer (see Endpoint): one per process is enough, since each read is
    # handed on (copied out, as uvloop would copy it into a bytes object) before the next
    def get_buffer(self, sizehint: int) -> memoryview:
        return _READ_VIEW

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_READ_VIEW[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        h = self.handler
        if self._relay:
            if h is not None:
                h.response_body(data)
            return
        if h is None:
            # bytes on an idle pooled connection: the server is misbehaving, drop the connection
            self.close()
            return
        if self.codec.take_body(data):  # the middle of a Content-Length body: no events to build
            h.response_body(data)
            self.deadline = self.pool.loop.time() + self.pool.body_idle_timeout  # type: ignore[union-attr]
            return
        events = self.codec.receive_data(data)
        for ev in events:
            t = type(ev)
            if t is h1.Data:
                h.response_body(ev.data)  # type: ignore[attr-defined]
            elif t is h1.EndOfMessage:
                # Bytes after the response nobody asked for (the codec refused them): the
                # connection can't be trusted with another request.
                self._finish(self._keep_alive and ev is events[-1], ev.trailers)  # type: ignore[attr-defined]
                return
            else:
                self._event(ev)
                if self.handler is None or self._relay:
                    return
        # The response is still incomplete: its head or its next body bytes are due.
        if self.codec.in_message and self.pool is not None:
            self.deadline_kind = "body"
            self.deadline = self.pool.loop.time() + self.pool.body_idle_timeout
        if len(data) < _SMALL_READ:
            self.quickack()

    def _event(self, ev: h1.Event) -> None:
        h = self.handler
        if h is None:
            return
        t = type(ev)
        if t is h1.Data:
            h.response_body(ev.data)  # type: ignore[attr-defined]
        elif t is h1.ResponseHead:
            status = ev.status  # type: ignore[attr-defined]
            if status >= 200 or status == 101:
                self._keep_alive = ev.keep_alive  # type: ignore[attr-defined]
            h.response_head(ev)  # type: ignore[arg-type]
        elif t is h1.EndOfMessage:
            self._finish(self._keep_alive, ev.trailers)  # type: ignore[attr-defined]
        elif t is h1.Switched:
            # 101 Switching Protocols: relay whatever follows untouched
            self._relay = True
            self.deadline = 0.0
            self._finish(keep_alive=False, relay=True)
            if ev.rest:  # type: ignore[attr-defined]
                h.response_body(ev.rest)  # type: ignore[attr-defined]
        elif t is h1.ProtocolError:
            self._fail(f"malformed response from upstream: {ev.message}"  # type: ignore[attr-defined]
                       if not ev.message.startswith("upstream") else ev.message)  # type: ignore[attr-defined]

    def _arm(self, kind: str, seconds: float) -> None:
        self.deadline_kind = kind
        self.deadline = self.pool.loop.time() + seconds  # type: ignore[union-attr]

    def arm_response_timeout(self) -> None:
        """The request is sent: the origin has `response_timeout` to start answering."""
        if self.pool is not None and not self.codec.in_message and self.handler is not None:
            self._arm("response", self.pool.response_timeout)

    def on_timeout(self) -> None:
        kind, self.deadline = self.deadline_kind, 0.0
        if self.handler is None or self.closed or self.pool is None:
            return
        if kind == "response":
            self._fail(f"the origin sent no response within {self.pool.response_timeout:g} s", status=504)
        else:
            self._fail(f"the origin sent no body bytes for {self.pool.body_idle_timeout:g} s", status=504)

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadline = 0.0
        if self.pool is not None:
            self.pool.discard(self)
        if self.handler is not None:
            if self._relay:
                h, self.handler = self.handler, None
                h.response_complete(keep_alive=False)
                return
            in_message = self.codec.in_message
            for ev in self.codec.receive_eof():
                self._event(ev)
            if self.handler is None:
                return
            if in_message:
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

    # --- requests -----------------------------------------------------------------------------
    def request_head(self, req: Request, framing: str, absolute: bool = False, via: str | None = None) -> bytes:
        """The request head for the origin (or, `absolute`, for the upstream proxy)."""
        target = req.url if absolute else req.target
        fields = h1.strip_hop_by_hop(req.headers.fields, keep_upgrade=True)
        extra = []
        if not req.authority and req.headers.get("host") is None:
            extra.append((b"Host", req.netloc.encode("latin-1")))
        if absolute and self.pool is not None and self.pool.upstream is not None:
            if self.pool.upstream.auth_header:
                extra.append((b"Proxy-Authorization", self.pool.upstream.auth_header))
        if via:
            extra.append((b"Via", b"1.1 " + via.encode()))
        if extra:
            fields = fields + extra
        version = req.http_version
        if version[5:6] == "2":  # a flow from an h2 client ("HTTP/2.0", or "HTTP/2" after an edit)
            version = "HTTP/1.1"
        return self.codec.request_head(req.method, target, version[5:] if version.startswith("HTTP/") else version,
                                       fields, framing)

    def send_data(self, data: bytes) -> None:
        self.write(self.codec.data(data))

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        self.write(self.codec.end(trailers))

    # --- helpers ----------------------------------------------------------------------------
    def _finish(self, keep_alive: bool, trailers: list[tuple[bytes, bytes]] | None = None,
                relay: bool = False) -> None:
        self.deadline = 0.0
        h = self.handler
        if not relay:
            self.handler = None
        if h is not None:
            h.response_complete(keep_alive, trailers)

    def _fail(self, message: str, status: int = 502) -> None:
        self.deadline = 0.0
        h, self.handler = self.handler, None
        self.close()
        if h is not None:
            h.response_failed(message, status)

    def start_exchange(self, handler: ResponseHandler, method: str) -> None:
        self.handler = handler
        self.got_bytes = False
        self.codec.expect_response(method)
        self.deadline = 0.0
        if self.pool is not None:
            self.pool.active.add(self)
        if self._paused:
            self.resume_reading()

    def close(self) -> None:
        self.closed = True  # at once: the pool must never hand out a connection being closed
        if self.pool is not None:
            self.pool.active.discard(self)
        super().close()

    def abort(self) -> None:
        self.closed = True
        if self.pool is not None:
            self.pool.active.discard(self)
        super().abort()

    def release(self) -> None:
        """Hand the connection back to the pool for reuse."""
        self.handler = None
        self.deadline = 0.0
        if self.pool is not None:
            self.pool.active.discard(self)
        if self.pool is not None and not self.closed:
            self.pool.put(self)
        else:
            self.close()


class RelayProtocol(Endpoint):
    """The server side of a blind tunnel: every byte goes to `sink` untouched."""

    def __init__(self) -> None:
        super().__init__()
        self.sink: ResponseHandler | None = None
        self.buffer: list[bytes] = []

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
    """Reads an upstream proxy's answer to our CONNECT (with the same codec as any response)."""

    def __init__(self, max_head_size: int) -> None:
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.codec = h1.H1Client(max_head_size)
        self.codec.expect_response("CONNECT")
        self.status = 0
        self.extra = b""  # bytes the far end sent right after the 200: the tunnel's first bytes

    def data_received(self, data: bytes) -> None:
        for ev in self.codec.receive_data(data):
            if isinstance(ev, h1.ResponseHead) and ev.status >= 200:
                self.status = ev.status
                if ev.status >= 300 and not self.done.done():
                    self.done.set_result(ev.status)
            elif isinstance(ev, h1.Switched):
                self.extra = ev.rest
                if not self.done.done():
                    self.done.set_result(self.status)
            elif isinstance(ev, h1.ProtocolError) and not self.done.done():
                self.done.set_exception(UpstreamError(f"bad reply from upstream proxy: {ev.message}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(UpstreamError("upstream proxy closed the connection during CONNECT"))


class Pool:
    """Idle upstream connections, keyed by (scheme, host, port)."""

    def __init__(self, client_ssl: ssl.SSLContext | None, upstream: UpstreamProxy | None,
                 options: Options | None = None, via_token: str | None = None) -> None:
        self.idle: dict[tuple, list[UpstreamConnection]] = {}
        self.idle_count = 0  # connections in `idle`, bounded by MAX_IDLE
        self.active: set[UpstreamConnection] = set()  # serving an exchange: the timeout sweep looks here
        self.client_ssl = client_ssl
        self.upstream = upstream
        self.via_token = via_token
        self.connections_opened = 0
        o = options if options is not None else Options()
        self.connect_timeout = o.connect_timeout
        self.response_timeout = o.response_timeout
        self.body_idle_timeout = o.body_idle_timeout
        self.max_head_size = o.max_head_size
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by Proxy.start: its clock
        # HTTP/2 (proxycore.proxy.http2): the context offering h2 (None: --no-http2), the shared
        # h2 connections by key, and the h2 dials under way (concurrent streams wait for one)
        self.h2_ssl: ssl.SSLContext | None = None
        self.h2: dict[tuple, list] = {}
        self.h2_dialing: dict[tuple, asyncio.Future] = {}
        self.alpn_known: dict[tuple, bool] = {}  # origin key -> it picked h2 (bounded by _eager_connect)

    def put(self, conn: UpstreamConnection) -> None:
        lst = self.idle.get(conn.key)
        if lst is None:
            lst = self.idle[conn.key] = []
        if len(lst) >= MAX_IDLE_PER_HOST or self.idle_count >= MAX_IDLE:
            conn.close()
            return
        conn.pause_reading()  # nothing is expected while idle; a close still arrives
        lst.append(conn)
        self.idle_count += 1

    def discard(self, conn: UpstreamConnection) -> None:
        lst = self.idle.get(conn.key)
        if lst and conn in lst:
            lst.remove(conn)
            self.idle_count -= 1
            if not lst:
                del self.idle[conn.key]

    def take(self, key: tuple) -> UpstreamConnection | None:
        lst = self.idle.get(key)
        if lst is None:
            return None
        conn = None
        while lst:
            c = lst.pop()
            self.idle_count -= 1
            if not c.closed and c.transport is not None and not c.transport.is_closing():
                conn = c
                break
        if not lst:
            del self.idle[key]
        return conn

    def close(self) -> None:
        for lst in self.idle.values():
            for c in lst:
                c.close()
        self.idle.clear()
        self.idle_count = 0
        for h2s in list(self.h2.values()):
            for c in list(h2s):
                c.close()
        self.h2.clear()

    def take_h2(self, key: tuple) -> UpstreamConnection | None:
        """A new stream on a pooled h2 connection to `key` with room for it, or None."""
        for c in self.h2.get(key) or ():
            stream = c.new_stream()
            if stream is not None:
                return stream
        return None

    async def connect(self, flow: Flow, scheme: str, host: str, port: int,
                      dial: tuple[str, int] | None = None, h2: bool = False) -> UpstreamConnection:
        """A fresh connection for `flow`, TLS set up for https; timings and TLS facts on the flow.
        `dial`: the address to connect to when it is not `host` (TLS still names `host`).
        `h2`: the flow may go over HTTP/2 (it came from an h2 client): ALPN offers h2 too, and when
        the origin picks it the connection is pooled for every such flow and a stream on it is
        returned (it stands in for an UpstreamConnection)."""
        if h2 and scheme == "https" and self.h2_ssl is not None:
            key = (scheme, host, port)
            dialing = self.h2_dialing.get(key)
            if dialing is not None:  # another stream is dialing this origin: share its connection
                await asyncio.wait({dialing}, timeout=self.connect_timeout)
                stream = self.take_h2(key)
                if stream is not None:
                    flow.server_addr, flow.server_tls = stream.server_addr, stream.tls
                    return stream
            fut = asyncio.get_running_loop().create_future()
            self.h2_dialing[key] = fut
            try:
                conn = await self._connect(flow, scheme, host, port, dial, self.h2_ssl)
            finally:
                if self.h2_dialing.get(key) is fut:
                    del self.h2_dialing[key]
                fut.set_result(None)
            return conn
        return await self._connect(flow, scheme, host, port, dial, None)

    async def _connect(self, flow: Flow, scheme: str, host: str, port: int, dial: tuple[str, int] | None,
                       h2_ssl: ssl.SSLContext | None) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        key = (scheme, host, port)
        t = flow.timings
        t.connect_start = time.time()
        via = self.upstream
        dial_host, dial_port = (via.host, via.port) if via else (dial or (host, port))
        try:
            if scheme == "https":
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(asyncio.Protocol, dial_host, dial_port), self.connect_timeout)
                if via:
                    transport, _ = await self._connect_via_proxy(transport, host, port)
                t.connect_end = time.time()
                conn = UpstreamConnection(self, key)
                transport.set_protocol(conn)
                conn.connection_made(transport)
                assert self.client_ssl is not None
                if h2_ssl is not None:
                    return await self._connect_h2(flow, conn, transport, host, port, h2_ssl)
                tls_transport = await asyncio.wait_for(
                    loop.start_tls(transport, conn, self.client_ssl, server_hostname=host), self.connect_timeout)
                if tls_transport is None:
                    raise UpstreamError(f"TLS handshake with {host}:{port} failed")
                conn.transport = tls_transport
                t.tls_end = time.time()
                conn.tls = _tls_info(tls_transport.get_extra_info("ssl_object"), host)
                flow.server_tls = conn.tls
            else:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(lambda: UpstreamConnection(self, key), dial_host, dial_port),
                    self.connect_timeout)
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

    async def _connect_h2(self, flow: Flow, conn: UpstreamConnection, transport: asyncio.Transport,
                          host: str, port: int, h2_ssl: ssl.SSLContext) -> UpstreamConnection:
        """The TLS handshake offering h2: an h2 connection (and a stream on it) when the origin
        picks h2, else `conn` as an HTTP/1.1 connection. Called inside _connect's error handling."""
        from proxycore.proxy.http2 import Buffering, H2OriginConnection  # only once h2 is in use

        loop = asyncio.get_running_loop()
        hold = Buffering()  # an h2 server sends its SETTINGS right after the handshake
        tls_transport = await asyncio.wait_for(
            loop.start_tls(transport, hold, h2_ssl, server_hostname=host), self.connect_timeout)
        if tls_transport is None:
            raise UpstreamError(f"TLS handshake with {host}:{port} failed")
        flow.timings.tls_end = time.time()
        sslobj = tls_transport.get_extra_info("ssl_object")
        tls = _tls_info(sslobj, host)
        flow.server_tls = tls
        self.connections_opened += 1
        flow.server_addr = conn.server_addr
        if tls.alpn == "h2":
            origin = H2OriginConnection(self, conn.key, tls, conn.server_addr)
            tls_transport.set_protocol(origin)
            origin.start(tls_transport, hold.take())
            if hold.lost:
                origin.connection_lost(None)
            self.h2.setdefault(conn.key, []).append(origin)
            stream = origin.new_stream()
            if stream is None:
                raise UpstreamError(f"the HTTP/2 connection to {host}:{port} refused any stream")
            return stream  # type: ignore[return-value]
        conn.transport = tls_transport
        conn.tls = tls
        tls_transport.set_protocol(conn)
        early = hold.take()
        if early:  # an HTTP/1.1 server speaking first: as on an idle pooled connection
            conn.data_received(early)
        if hold.lost:
            conn.connection_lost(None)
        return conn

    async def open_tunnel(self, host: str, port: int) -> tuple[asyncio.Transport, RelayProtocol]:
        """A raw TCP stream to host:port (through the upstream proxy when configured)."""
        loop = asyncio.get_running_loop()
        via = self.upstream
        try:
            if via:
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(asyncio.Protocol, via.host, via.port), self.connect_timeout)
                transport, extra = await self._connect_via_proxy(transport, host, port)
                relay = RelayProtocol()
                if extra:
                    relay.buffer.append(extra)
                transport.set_protocol(relay)
                relay.connection_made(transport)
                return transport, relay
            transport, relay = await asyncio.wait_for(
                loop.create_connection(RelayProtocol, host, port), self.connect_timeout)
            return transport, relay
        except UpstreamError:
            raise
        except (TimeoutError, OSError) as exc:
            status = 504 if isinstance(exc, asyncio.TimeoutError | TimeoutError) else 502
            raise UpstreamError(describe_connect_error(exc, host, port), status) from None

    async def _connect_via_proxy(self, transport: asyncio.Transport, host: str,
                                 port: int) -> tuple[asyncio.Transport, bytes]:
        """CONNECT through the upstream proxy: the transport and any bytes that followed its 200."""
        via = self.upstream
        assert via is not None
        reply = _ConnectReply(self.max_head_size)
        transport.set_protocol(reply)
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode()
        if via.auth_header:
            head += b"Proxy-Authorization: " + via.auth_header + b"\r\n"
        if self.via_token:
            head += b"Via: 1.1 " + self.via_token.encode() + b"\r\n"
        transport.write(head + b"\r\n")
        try:
            status = await asyncio.wait_for(reply.done, self.connect_timeout)
        except BaseException:
            transport.close()
            raise
        if not 200 <= status < 300:
            transport.close()
            if status == 508:
                raise UpstreamError(f"upstream proxy {via.host}:{via.port} detected a proxy loop", 508)
            raise UpstreamError(f"upstream proxy {via.host}:{via.port} refused CONNECT {authority}: status {status}")
        return transport, reply.extra
