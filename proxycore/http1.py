"""The client side of the proxy: HTTP/1.1 over asyncio Protocols, parsed with httptools.

One `ClientConnection` per accepted socket. Requests are parsed as bytes arrive; each becomes an
`Exchange` (a Flow plus streaming state) served in order by one task per connection, so
pipelined requests are answered in order. Bodies are forwarded chunk by chunk as they arrive and
only a capped copy is kept for capture.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

import httptools

from . import flow as flowmod
from .contentdetect import CHECK_BYTES, binary_by_content_type
from .endpoint import Endpoint
from .flow import Flow, Headers, Request, Response, TLSInfo
from .tunnel import TunnelMixin
from .upstream import MAX_HEAD_SIZE, UpstreamConnection, UpstreamError

if TYPE_CHECKING:
    from .server import Proxy

# Hop-by-hop headers meant for this proxy, never forwarded to the origin.
_DROP_REQUEST = frozenset((b"proxy-connection", b"proxy-authorization"))
_LOCAL_HOSTS = frozenset(("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"))
_BUFFER_LIMIT = 1 << 20  # request body bytes buffered before the upstream is ready


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """'host:port' / '[v6]:port' / 'host' -> (lower-case host, port). ValueError when malformed."""
    a = authority.strip()
    if a.startswith("["):
        end = a.find("]")
        if end < 0:
            raise ValueError(f"malformed authority {authority!r}")
        host, rest = a[1:end], a[end + 1:]
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif a.count(":") == 1:
        host, p = a.split(":")
        port = int(p)
    else:
        host, port = a, default_port
    if not host or not 0 < port < 65536:
        raise ValueError(f"malformed authority {authority!r}")
    return host.lower(), port


class _Capture:
    """A capped copy of a body: chunks kept by reference, joined once at the end."""

    __slots__ = ("chunks", "size", "limit", "truncated", "head_only")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.truncated = False
        self.head_only = False

    def add(self, data: bytes) -> None:
        room = self.limit - self.size
        if room <= 0:
            self.truncated = not self.head_only
            return
        if len(data) > room:
            data = data[:room]
            self.truncated = not self.head_only  # a head kept for detection is not "truncated"
        self.chunks.append(data)
        self.size += len(data)


def _trim_binary_capture(cap: _Capture, headers: Headers) -> None:
    """Keep only the first bytes of a body its Content-Type calls binary (headless capture
    replaces such bodies with a placeholder anyway: holding megabytes for it is waste)."""
    if headers.get("content-encoding") is None and binary_by_content_type(headers.get("content-type")):
        cap.limit = min(cap.limit, CHECK_BYTES + 8)
        cap.head_only = True


class Exchange:
    """One request/response on a client connection; also the upstream's ResponseHandler."""

    __slots__ = (
        "conn", "flow", "chunked", "has_body", "body_complete", "buffered", "buffered_size",
        "upstream", "done", "head_sent", "resp_chunked", "resp_keep_alive", "req_cap", "resp_cap",
        "req_size", "resp_size", "client_keep_alive", "error_status", "upgrade", "is_connect",
        "response_complete_ok", "req_upgrade",
    )

    def __init__(self, conn: ClientConnection, flow: Flow, capture_limit: int | None) -> None:
        self.conn = conn
        self.flow = flow
        self.chunked = False
        self.has_body = False
        self.body_complete = False
        self.buffered: list[bytes] = []
        self.buffered_size = 0
        self.upstream: UpstreamConnection | None = None
        self.done: asyncio.Future[str] | None = None
        self.head_sent = False
        self.resp_chunked = False
        self.resp_keep_alive = False
        self.req_cap = _Capture(capture_limit) if capture_limit is not None else None
        if self.req_cap is not None and not conn.proxy.retain_binary_bodies:
            _trim_binary_capture(self.req_cap, flow.request.headers)
        self.resp_cap = _Capture(capture_limit) if capture_limit is not None else None
        self.req_size = 0
        self.resp_size = 0
        self.client_keep_alive = True
        self.error_status: tuple[int, str] | None = None
        self.upgrade = False
        self.is_connect = False
        self.response_complete_ok = False
        self.req_upgrade = False  # the request asked to switch protocols: the parser stops after it

    # --- request body from the client -------------------------------------------------------
    def request_body(self, data: bytes) -> None:
        self.req_size += len(data)
        if self.req_cap is not None:
            self.req_cap.add(data)
        up = self.upstream
        if up is not None:
            up.write(b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data)
        else:
            self.buffered.append(data)
            self.buffered_size += len(data)
            if self.buffered_size > _BUFFER_LIMIT:
                self.conn.pause_reading()

    def request_complete(self) -> None:
        self.body_complete = True
        up = self.upstream
        if up is not None:
            if self.chunked:
                up.write(b"0\r\n\r\n")
            self.flow.timings.request_sent = time.time()

    # --- ResponseHandler (called by the UpstreamConnection) ---------------------------------
    def response_head(self, status: int, reason: bytes, version: str, headers: list[tuple[bytes, bytes]],
                      framing: str) -> None:
        flow = self.flow
        if flow.timings.first_byte is None:
            flow.timings.first_byte = time.time()
        head = [b"HTTP/%s %d %s\r\n" % (version.encode(), status, reason)]
        for k, v in headers:
            head.append(k + b": " + v + b"\r\n")
        head.append(b"\r\n")
        self.conn.write(b"".join(head))
        if 100 <= status < 200 and status != 101:
            return  # interim: the final response follows
        self.head_sent = True
        resp_headers = Headers(headers)
        flow.response = Response(status, reason.decode("latin-1"), f"HTTP/{version}", resp_headers)
        if self.resp_cap is not None and not self.conn.proxy.retain_binary_bodies:
            _trim_binary_capture(self.resp_cap, resp_headers)
        self.resp_chunked = framing == "chunked"
        if framing == "close":
            self.client_keep_alive = False
        if status == 101:
            self.upgrade = True
        self.conn.proxy.publish("update", flow)

    def response_body(self, data: bytes) -> None:
        self.resp_size += len(data)
        if self.resp_cap is not None and not self.upgrade:
            self.resp_cap.add(data)
        if self.resp_chunked:
            self.conn.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self.conn.write(data)

    def response_complete(self, keep_alive: bool, interim: bool = False) -> None:
        if interim:
            return
        if self.resp_chunked:
            self.conn.write(b"0\r\n\r\n")
        self.resp_keep_alive = keep_alive
        self.response_complete_ok = True
        self._resolve("ok")

    def response_failed(self, message: str) -> None:
        if self.flow.error is None:
            self.flow.error = message
        self._resolve("failed")

    def upstream_pause_writing(self) -> None:
        self.conn.pause_reading()

    def upstream_resume_writing(self) -> None:
        self.conn.resume_reading()

    def _resolve(self, how: str) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(how)


class ClientConnection(TunnelMixin, Endpoint):
    def __init__(self, proxy: Proxy) -> None:
        super().__init__()
        self.proxy = proxy
        self.parser = httptools.HttpRequestParser(self)
        self.client_addr: tuple[str, int] | None = None
        self.tunnel: tuple[str, int] | None = None  # origin of a MITMed CONNECT
        self.client_tls: TLSInfo | None = None
        self.queue: deque[Exchange] = deque()
        self.current: Exchange | None = None  # being parsed
        self.active: Exchange | None = None  # being served
        self.task: asyncio.Task | None = None
        self.wakeup: asyncio.Future | None = None
        self.closing = False
        self.bad_request: tuple[int, str] | None = None
        self.in_head = False
        self.head_bytes = 0
        self.relay_to: asyncio.Transport | None = None  # raw relay after CONNECT / 101
        self.pending_raw: list[bytes] = []  # bytes after an Upgrade head, before the relay starts
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_addr = (peer[0], peer[1])
        self.proxy.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.relay_to is not None:
            self.relay_to.write(data)
            if self.active is not None:
                self.active.req_size += len(data)
            return
        if self.closing:
            return
        if self.current is not None and self.current.req_upgrade:
            self.pending_raw.append(data)
            return
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            ex = self.current
            if ex is not None:
                rest = data[exc.args[0]:]
                ex.req_upgrade = True
                if rest:
                    self.pending_raw.append(rest)
        except httptools.HttpParserError as exc:
            reason = str(exc) or type(exc).__name__
            self._malformed(f"malformed request: {reason}")
            return
        if self.in_head and self.head_bytes > MAX_HEAD_SIZE:
            self._malformed("request header block too large", status=431)

    def eof_received(self) -> bool | None:
        if self.relay_to is not None:
            return False  # a tunnel ends when either side ends; connection_lost finishes the flow
        ex = self.current
        if ex is not None and not ex.body_complete:
            return False  # gone mid-request: close, connection_lost fails the exchange
        # a half-close after complete requests: answer them, then close
        if self.active is None and not self.queue:
            return False
        self.closing = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.connections.discard(self)
        ex = self.active
        if ex is not None and self.relay_to is not None:
            ex._resolve("ok")  # the client ended a tunnel / upgraded connection: a normal end
        elif ex is not None and not ex.response_complete_ok:
            if ex.flow.error is None:
                ex.flow.error = ("client disconnected before the request was complete" if not ex.body_complete
                                 else "client disconnected before the response was complete")
            if ex.upstream is not None:
                ex.upstream.abort()
            ex._resolve("client-gone")
        if self.relay_to is not None:
            self.relay_to.close()
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)
        # Nothing is parsed any more: break the cycles through the parser (it holds this protocol)
        # and the exchange being parsed (it holds this connection), so the connection and its last
        # flow are freed at once instead of by the cyclic collector (the UI freezes old objects,
        # which would keep such flows past max_flows until its next full collection).
        self.parser = None  # type: ignore[assignment]
        self.current = None

    def pause_writing(self) -> None:
        ex = self.active
        if ex is not None and ex.upstream is not None:
            ex.upstream.pause_reading()
        elif self.relay_to is not None:
            self.relay_to.pause_reading()

    def resume_writing(self) -> None:
        ex = self.active
        if ex is not None and ex.upstream is not None:
            ex.upstream.resume_reading()
        elif self.relay_to is not None:
            self.relay_to.resume_reading()

    # --- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.in_head = True
        self.head_bytes = 0
        self._url = []
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        p = self.parser
        version = p.get_http_version()
        method = p.get_method().decode("ascii", "replace")
        url = b"".join(self._url).decode("latin-1")
        headers = Headers(self._headers)
        flow, err = self._new_flow(method, url, version, headers)
        proxy = self.proxy
        ex = Exchange(self, flow, proxy.capture_limit if flow.in_scope else None)
        ex.error_status = err
        ex.client_keep_alive = p.should_keep_alive()
        ex.is_connect = method == "CONNECT"
        if version not in ("1.0", "1.1") and ex.error_status is None:
            ex.error_status = (400, f"malformed request: unsupported HTTP version {version!r} (expected HTTP/1.1)")
        for k, v in self._headers:
            lk = k.lower()
            if lk == b"transfer-encoding" and b"chunked" in v.lower():
                ex.chunked = ex.has_body = True
            elif lk == b"content-length" and v.strip() != b"0":
                ex.has_body = True
        self.current = ex
        self.queue.append(ex)
        if flow.in_scope and not ex.is_connect:  # a CONNECT is published once we know what it became
            proxy.publish("add", flow)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._serve_loop())
        elif self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.current is not None:
            self.current.request_body(body)

    def on_message_complete(self) -> None:
        ex = self.current
        if ex is not None:
            ex.request_complete()

    # --- building flows -----------------------------------------------------------------------
    def _new_flow(self, method: str, url: str, version: str,
                  headers: Headers) -> tuple[Flow, tuple[int, str] | None]:
        proxy = self.proxy
        authority = headers.get("host") or ""
        err = None
        scheme, host, port, target = "http", "", 0, url
        try:
            if method == "CONNECT":
                host, port = split_authority(url, 443)
                target = url
            elif url.startswith(("http://", "https://")) or url.startswith(("HTTP://", "HTTPS://")):
                u = httptools.parse_url(url.encode("latin-1"))
                scheme = u.schema.decode().lower()
                host = u.host.decode("latin-1").lower()
                port = u.port or (443 if scheme == "https" else 80)
                target = (u.path or b"/").decode("latin-1")
                if u.query:
                    target += "?" + u.query.decode("latin-1")
                if not authority:
                    authority = host if u.port is None else f"{host}:{port}"
            elif self.tunnel is not None:
                scheme = "https"
                host, port = self.tunnel
                if not target.startswith("/") and target != "*":
                    raise ValueError(f"malformed request target {url!r}")
            else:
                err = (400, "not a proxy request: configure this address as your HTTP(S) proxy "
                            "(requests must use absolute URLs or CONNECT)")
        except (ValueError, httptools.HttpParserInvalidURLError) as exc:
            err = (400, f"malformed request target: {exc}")
        req = Request(method, scheme, host, port, target, f"HTTP/{version}", headers, authority=authority)
        flow = Flow(req, self.client_addr, assign_id=method != "CONNECT")
        if self.client_tls is not None:
            flow.client_tls = self.client_tls
        if err is None and method != "CONNECT" and self.tunnel is None and port == proxy.address[1] \
                and host in _LOCAL_HOSTS | {proxy.address[0]}:
            err = (508, "loop detected: the request is addressed to this proxy itself")
        if proxy.scope is not None and host:
            flow.in_scope = proxy.scope.matches(host, req.path, method)
        return flow, err

    # --- serving ------------------------------------------------------------------------------
    async def _serve_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.closed:
                if not self.queue:
                    if self.closing or self.bad_request is not None:
                        break
                    self.wakeup = loop.create_future()
                    await self.wakeup
                    self.wakeup = None
                    continue
                ex = self.queue.popleft()
                self.active = ex
                try:
                    if ex.error_status is not None:
                        self.send_error(ex, *ex.error_status)
                    elif ex.is_connect:
                        await self._serve_connect(ex)
                    else:
                        await self._serve_request(ex)
                finally:
                    self.active = None
                if self.relay_to is not None:
                    return
                if self.bad_request is not None:
                    break
            if self.bad_request is not None and not self.closed:
                self._send_malformed()
        except Exception as exc:  # one broken connection never takes the loop down
            self.proxy.report_error(f"internal error on a client connection: {exc!r}")
            self.abort()
        finally:
            self.task = None
            if self.closed:  # requests pipelined behind the last one served: they never will be
                for queued in self.queue:
                    if queued.flow.error is None:
                        queued.flow.error = "client disconnected before the request was served"
                    self._finish(queued)
                self.queue.clear()
            if (self.closing or self.bad_request is not None) and not self.closed and self.relay_to is None:
                self.close()

    async def _serve_request(self, ex: Exchange) -> None:
        proxy = self.proxy
        flow = ex.flow
        req = flow.request
        via_http = proxy.pool.upstream is not None and req.scheme == "http"
        key = ("via", proxy.pool.upstream.host, proxy.pool.upstream.port) if via_http else (
            req.scheme, req.host, req.port)
        loop = asyncio.get_running_loop()
        for attempt in (0, 1):
            conn = proxy.pool.take(key)
            reused = conn is not None
            if conn is None:
                try:
                    if via_http:
                        up = proxy.pool.upstream
                        conn = await proxy.pool.connect(flow, "http", up.host, up.port)
                        conn.key = key
                    else:
                        conn = await proxy.pool.connect(flow, req.scheme, req.host, req.port)
                except UpstreamError as exc:
                    self.send_error(ex, exc.status, str(exc))
                    return
                if self.closed:
                    conn.close()
                    self._finish(ex)
                    return
            else:
                flow.server_addr = conn.server_addr
                flow.server_tls = conn.tls
            ex.done = loop.create_future()
            ex.upstream = conn
            conn.start_exchange(ex, req.method == "HEAD")
            head = self._upstream_head(req, absolute=via_http)
            if ex.buffered:
                body = b"".join(ex.buffered)
                if ex.chunked:
                    body = b"%x\r\n%b\r\n" % (len(body), body)
                head += body
                if attempt == 1 or not ex.body_complete:
                    ex.buffered = []
                    ex.buffered_size = 0
                    self.resume_reading()
            if ex.body_complete:
                if ex.chunked and ex.has_body:
                    head += b"0\r\n\r\n"
                flow.timings.request_sent = time.time()
            conn.write(head)
            how = await ex.done
            if how == "failed" and reused and attempt == 0 and not ex.head_sent and not conn.got_bytes \
                    and ex.body_complete and self._replayable(ex):
                # the pooled connection was closed by the server as we reused it: try a fresh one
                flow.error = None
                ex.upstream = None
                continue
            break
        if how == "malformed":
            conn.abort()
            if not ex.head_sent and not self.closed:
                self.send_error(ex, *(ex.error_status or (400, "malformed request")))
            else:
                self._finish(ex)
                self.abort()
            return
        if how == "failed" and not ex.head_sent and not self.closed:
            self.send_error(ex, 502, flow.error or "upstream failed")
            conn.close()
            return
        if ex.upgrade and how == "ok" and not self.closed:
            await self._relay_upgrade(ex, conn)
            return
        if how == "ok" and ex.resp_keep_alive and ex.body_complete:
            conn.release()
        else:
            conn.close()
        if how != "ok" or not ex.client_keep_alive or not ex.body_complete or ex.req_upgrade:
            self.closing = True
        self._finish(ex)

    @staticmethod
    def _replayable(ex: Exchange) -> bool:
        return not ex.has_body or bool(ex.buffered)

    def _upstream_head(self, req: Request, absolute: bool) -> bytes:
        up = self.proxy.pool.upstream
        target = req.url if absolute else req.target
        out = [b"%s %s %s\r\n" % (req.method.encode(), target.encode("latin-1"), req.http_version.encode())]
        has_host = False
        for k, v in req.headers.fields:
            lk = k.lower()
            if lk in _DROP_REQUEST:
                continue
            if lk == b"host":
                has_host = True
            out.append(k + b": " + v + b"\r\n")
        if not has_host:
            out.append(b"Host: " + req.netloc.encode("latin-1") + b"\r\n")
        if absolute and up is not None and up.auth_header:
            out.append(b"Proxy-Authorization: " + up.auth_header + b"\r\n")
        out.append(b"\r\n")
        return b"".join(out)

    # --- responses made by the proxy ------------------------------------------------------------
    def send_error(self, ex: Exchange, status: int, message: str) -> None:
        flow = ex.flow
        flow.error = message
        reason = {400: "Bad Request", 431: "Request Header Fields Too Large", 502: "Bad Gateway",
                  504: "Gateway Timeout", 508: "Loop Detected"}.get(status, "Error")
        body = (message + "\n").encode("utf-8", "replace")
        headers = Headers.from_pairs([
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ])
        flow.response = Response(status, reason, headers=headers, body=body)
        if not self.closed:
            self.write(b"HTTP/1.1 %d %s\r\n" % (status, reason.encode()) + b"".join(
                k + b": " + v + b"\r\n" for k, v in headers.fields) + b"\r\n" + body)
        ex.resp_size = len(body)
        if ex.resp_cap is not None:
            ex.resp_cap.add(body)
        self.closing = True
        self._finish(ex)

    def _malformed(self, message: str, status: int = 400) -> None:
        self.closing = True
        ex = self.current
        if ex is not None and not ex.body_complete and (ex is self.active or ex in self.queue):
            # the body of a request already under way is broken: fail that request
            ex.error_status = (status, message)
            ex.flow.error = message
            if ex is self.active:
                if ex.upstream is not None:
                    ex.upstream.abort()
                ex._resolve("malformed")
            return
        self.bad_request = (status, message)
        if self.task is None:
            self._send_malformed()

    def _send_malformed(self) -> None:
        """Answer a request that could not be parsed with 400/431 and close."""
        status, message = self.bad_request or (400, "malformed request")
        self.bad_request = None
        try:
            method = self.parser.get_method().decode("ascii", "replace")
        except Exception:
            method = "?"
        req = Request(method, "http", "", 0, "", headers=Headers(self._headers))
        ex = Exchange(self, Flow(req, self.client_addr), None)
        self.proxy.publish("add", ex.flow)
        self.send_error(ex, status, message)
        self.close()

    # --- finishing --------------------------------------------------------------------------------
    def _finish(self, ex: Exchange) -> None:
        flow = ex.flow
        t = flow.timings
        t.end = time.time()
        req = flow.request
        req.body_size = ex.req_size
        if ex.req_cap is not None:
            req.set_body_chunks(ex.req_cap.chunks)
            req.body_truncated = ex.req_cap.truncated
        resp = flow.response
        if resp is not None:
            resp.body_size = ex.resp_size
            if ex.resp_cap is not None and ex.resp_cap.chunks:
                resp.set_body_chunks(ex.resp_cap.chunks)
                resp.body_truncated = ex.resp_cap.truncated
        flow.state = flowmod.ERROR if flow.error else flowmod.DONE
        self.proxy.flow_done(flow)
