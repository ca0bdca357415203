"""The client side of the proxy for HTTP/1.1: a byte pump around the sans-io codec, and the flow driver.

One `ClientConnection` per accepted connection (a socket, or any transport: a TLS layer or a
WireGuard stream). Bytes go into `layers.http1.H1Server`; each request it parses becomes an
`Exchange` (a Flow plus streaming state) and is driven by one coroutine, `_serve_request`, that
awaits the addons' hooks in order (see `proxycore.addons.hooks`). Pipelined requests are served in
order by the connection's task. Bodies stream chunk by chunk unless a hook asks for them whole;
only a capped copy is kept for capture. Every byte to the client goes through
`ClientConnection.write`, every byte to the origin through `UpstreamConnection.write`.

The hot path stays callback-driven where nothing waits: with no async `responseheaders` hook and
a streamed response, the upstream's callbacks write the head and body straight to the client.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import TYPE_CHECKING

import httptools

from proxycore.addons.hooks import fire_hook, run_hook
from proxycore.contentdetect import CHECK_BYTES, binary_by_content_type
from proxycore.flows import flow as flowmod
from proxycore.flows.flow import Flow, Headers, Peer, Request, Response, TLSInfo
from proxycore.flows.websocket import WebSocketData, is_websocket_upgrade
from proxycore.layers import http1 as h1
from proxycore.proxy.endpoint import _SMALL_READ, Endpoint
from proxycore.proxy.splice import AVAILABLE as SPLICE
from proxycore.proxy.splice import MIN_BYTES as SPLICE_MIN
from proxycore.proxy.splice import BodySplice
from proxycore.proxy.tunnel import TunnelMixin
from proxycore.proxy.upstream import UpstreamConnection, UpstreamError

if TYPE_CHECKING:
    from proxycore.flows.spill import SpilledBody, SpillStore, SpillWriter
    from proxycore.proxy.server import Proxy

_BAD_HOST_CHARS = re.compile(r"[\s/\\@?#]")
_LOCAL_HOSTS = frozenset(("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"))
_BUFFER_LIMIT = 1 << 20  # request body bytes buffered before the upstream is ready
_REASONS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 431: "Request Header Fields Too Large",
            501: "Not Implemented", 502: "Bad Gateway", 504: "Gateway Timeout", 508: "Loop Detected"}
_NO_BODY_STATUS = frozenset((204, 304))
_VERSIONS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
# "host:port" as it appears in plain absolute-form URLs -> (host, port, Host header value):
# parsed and checked once per distinct authority (bounded: odd clients cannot grow it forever)
_AUTHORITIES: dict[str, tuple[str, int, str]] = {}


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
    return valid_host(host), port


def valid_host(host: str) -> str:
    """The host name lower-cased; ValueError for what no DNS name or IP literal can be."""
    if not host or not host.isascii() or _BAD_HOST_CHARS.search(host):
        raise ValueError(f"malformed host name {host!r} (non-ASCII names must be sent IDNA-encoded)")
    return host.lower()


class _Capture:
    """A capped copy of a body: chunks kept by reference, joined once at the end. With a spill
    store (the UI's proxy, `_SpillCapture`), a body growing past `limit` goes on into a spill file
    instead of being cut, and is kept whole; if spilling is refused it is cut at the store's
    `fallback_cap`."""

    __slots__ = ("chunks", "size", "limit", "truncated", "head_only")
    # Class defaults, so that a capture without spilling (headless, the common case) is built
    # exactly as before spilling existed; _SpillCapture has them as slots.
    spill: SpillStore | None = None  # the store while spilling may still start
    writer: SpillWriter | None = None  # the spill file being written
    store: SpillStore | None = None

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
        self.chunks.append(data if type(data) is bytes else bytes(data))  # a codec view: keep a copy
        self.size += len(data)

    # --- spilling (only past the threshold: the common small body never gets here) ------------
    def _start_spill(self, data: bytes) -> None:
        spill = self.spill
        assert spill is not None
        self.spill = None
        writer = spill.open()
        if writer is not None:
            if all(writer.write(c) for c in self.chunks) and writer.write(data):
                self.writer = writer
                self.chunks = []
                self.limit = 0  # from now on every chunk goes to the file
                return
            writer.abandon()
        self.limit = spill.fallback_cap  # refused: cut as without spilling
        self.add(data)

    def _write(self, data: bytes) -> None:
        writer = self.writer
        assert writer is not None
        if writer.write(data):
            return
        # the disk filled up midway: keep the head, cut, as without spilling
        spill = writer.store
        head = writer.read_head(spill.fallback_cap)
        writer.abandon()
        self.writer = None
        self.chunks = [head] if head else []
        self.size = len(head)
        self.limit = spill.fallback_cap
        self.truncated = True

    def seal(self) -> list[bytes] | SpilledBody:
        """What the flow keeps: the chunks, or the finished spill file."""
        writer = self.writer
        if writer is None:
            return self.chunks
        self.writer = None
        return writer.finish()

    def fresh(self) -> _Capture:
        """An empty capture like this one (a hook replaced the body); any spill file is dropped."""
        if self.writer is not None:
            self.writer.abandon()
            self.writer = None
        store = self.store
        if store is None:
            return _Capture(self.limit)  # as before spilling existed
        fresh = _SpillCapture(self.limit if self.head_only else store.threshold, store)
        fresh.head_only = self.head_only
        return fresh


class _SpillCapture(_Capture):
    """A capture that spills past its limit (see _Capture)."""

    __slots__ = ("spill", "writer", "store")

    def __init__(self, limit: int, spill: SpillStore) -> None:
        _Capture.__init__(self, limit)
        self.spill = spill
        self.writer = None
        self.store = spill

    def add(self, data: bytes) -> None:
        """_Capture.add, but past the limit the body goes on into a spill file."""
        room = self.limit - self.size
        if room <= 0:
            if self.writer is not None:
                self._write(data)
                return
            self.truncated = not self.head_only
            return
        if len(data) > room:
            if self.spill is not None and not self.head_only:
                self._start_spill(data)
                return
            data = data[:room]
            self.truncated = not self.head_only
        self.chunks.append(data if type(data) is bytes else bytes(data))  # a codec view: keep a copy
        self.size += len(data)


def _trim_binary_capture(cap: _Capture, headers: Headers) -> None:
    """Keep only the first bytes of a body its Content-Type calls binary (headless capture
    replaces such bodies with a placeholder anyway: holding megabytes for it is waste)."""
    ctype = None
    for k, v in headers.fields:  # one pass for both fields (this runs for every response)
        n = len(k)
        if n == 12 and ctype is None and k.lower() == b"content-type":
            ctype = v
        elif n == 16 and k.lower() == b"content-encoding":
            return
    if ctype is not None and binary_by_content_type(ctype.decode("latin-1")):
        cap.limit = min(cap.limit, CHECK_BYTES + 8)
        cap.head_only = True


def _set_length(headers: Headers, length: int) -> None:
    """Frame a whole body by Content-Length (a buffered body a hook may have changed)."""
    headers.remove("transfer-encoding")
    headers.set("Content-Length", str(length))


class Exchange:
    """One request/response on a client connection; also the upstream's ResponseHandler."""

    __slots__ = (
        "conn", "flow", "chunked", "has_body", "body_complete", "buffered", "buffered_size",
        "upstream", "done", "head_sent", "resp_chunked", "resp_keep_alive", "req_cap", "resp_cap",
        "req_size", "resp_size", "client_keep_alive", "error_status", "upgrade", "is_connect",
        "response_complete_ok", "req_upgrade", "req_trailers", "resp_trailers", "whole_request",
        "body_waiter", "whole_response", "resp_chunks", "resp_buffered", "head_pending", "discard",
        "resp_framing", "whole_body", "raw_head", "ws_early", "may_splice", "splice",
    )

    def __init__(self, conn: ClientConnection, flow: Flow, capture_limit: int | None,
                 has_body: bool = True) -> None:
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
        self.resp_framing = h1.NONE
        self.resp_keep_alive = False
        if conn.proxy.spill is None:
            self.req_cap = _Capture(capture_limit) if capture_limit is not None else None
            self.resp_cap = _Capture(capture_limit) if capture_limit is not None else None
        else:  # the UI's proxy: bodies kept whole, big ones in spill files
            self.req_cap = _SpillCapture(capture_limit, conn.proxy.spill) if capture_limit is not None else None
            self.resp_cap = _SpillCapture(capture_limit, conn.proxy.spill) if capture_limit is not None else None
        if has_body and self.req_cap is not None and not conn.proxy.retain_binary_bodies:
            _trim_binary_capture(self.req_cap, flow.request.headers)
        self.req_size = 0
        self.resp_size = 0
        self.client_keep_alive = True
        self.error_status: tuple[int, str] | None = None
        self.upgrade = False
        self.is_connect = False
        self.response_complete_ok = False
        self.req_upgrade = False  # the request asked to switch protocols: the codec pauses after it
        self.req_trailers: list[tuple[bytes, bytes]] | None = None
        self.resp_trailers: list[tuple[bytes, bytes]] | None = None
        self.whole_request = False  # a hook asked for the request body whole
        self.body_waiter: asyncio.Future[None] | None = None
        self.whole_response = False  # a hook asked for the response body whole
        self.resp_chunks: list[bytes] = []
        self.resp_buffered = 0
        self.may_splice = False  # the response body may be relayed in the kernel (splice.py)
        self.splice: BodySplice | None = None
        self.head_pending = False  # response head waits for async responseheaders hooks
        self.discard = False  # the request body is read and dropped (answered locally)
        self.whole_body = False  # flow.request.body holds the whole body a hook asked for
        self.raw_head = b""  # the response head as received, while no hook could have changed it
        # after a 101 to WebSocket: origin bytes that came before the relay took over (None: no such 101)
        self.ws_early: list[bytes] | None = None

    # --- request body from the client -------------------------------------------------------
    def request_body(self, data: bytes) -> None:
        self.req_size += len(data)
        if self.discard:
            return
        if self.req_cap is not None:
            self.req_cap.add(data)
        up = self.upstream
        if up is not None and not self.whole_request:
            up.send_data(data)
            return
        self.buffered.append(data)
        self.buffered_size += len(data)
        if self.whole_request:
            if self.buffered_size > self.conn.proxy.options.body_buffer_limit:
                self.whole_request = False  # too big to hold: it streams (stream_large_bodies)
                self._wake_body()
                self.conn.pause_reading()
        elif self.buffered_size > _BUFFER_LIMIT:
            self.conn.pause_reading()

    def request_complete(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        self.body_complete = True
        self.req_trailers = trailers
        if trailers:
            self.flow.request.trailers = Headers(trailers)
        up = self.upstream
        if up is not None and not self.whole_request:
            if self.chunked:
                up.send_end(trailers)
            self.flow.timings.request_sent = time.time()
            up.arm_response_timeout()
        self._wake_body()

    def _wake_body(self) -> None:
        w = self.body_waiter
        if w is not None and not w.done():
            w.set_result(None)

    # --- ResponseHandler (called by the UpstreamConnection) ---------------------------------
    def response_head(self, ev: h1.ResponseHead) -> None:
        flow = self.flow
        if flow.timings.first_byte is None:
            flow.timings.first_byte = time.time()
        if 100 <= ev.status < 200 and ev.status != 101:
            # interim (100 Continue): forwarded as is, the final response follows
            self.conn.write(self.conn.codec.response_head(ev.status, ev.reason, ev.version, ev.headers, h1.NONE))
            return
        resp_headers = Headers.adopt(ev.headers)  # the codec's list, ours alone
        flow.response = Response(ev.status, ev.reason.decode("latin-1"), _VERSIONS.get(ev.version) or
                                 f"HTTP/{ev.version}", resp_headers)
        self.raw_head = ev.raw
        if self.resp_cap is not None and not self.conn.proxy.retain_binary_bodies:
            _trim_binary_capture(self.resp_cap, resp_headers)
        self.resp_framing = ev.framing
        if ev.framing == h1.CLOSE:
            self.client_keep_alive = False
        if ev.status == 101:
            self.upgrade = True
            if is_websocket_upgrade(flow.request.headers, resp_headers):
                # set before the response hooks, so addons can tell a WebSocket follows (mitmproxy)
                flow.websocket = WebSocketData()
                self.ws_early = []
        chain = self.conn.proxy.addons.responseheaders
        if chain is not None and chain.is_async:
            # the flow's task runs the hooks; the origin waits meanwhile
            self.head_pending = True
            if self.upstream is not None:
                self.upstream.pause_reading()
            self._resolve("head")
            return
        if chain is not None:
            chain.call(flow)
            if not chain.trusted:
                self.raw_head = b""  # a hook may have changed the head: serialise the flow's
        self.start_response()

    def start_response(self) -> None:
        """The response head passed the hooks: send it, or start buffering the body."""
        self.head_pending = False
        flow = self.flow
        resp = flow.response
        assert resp is not None
        if flow.killed:
            self._resolve("killed")
            return
        if not resp.stream and not self.upgrade and self.resp_framing != h1.NONE:
            self.whole_response = True
            return
        self._send_head()
        if self.resp_chunks and self.ws_early is None:  # body that arrived while async hooks ran
            chunks, self.resp_chunks = self.resp_chunks, []
            codec = self.conn.codec
            for c in chunks:
                self.conn.write(codec.data(c))
        if self.upstream is not None:
            self.upstream.resume_reading()

    def _send_head(self) -> None:
        resp = self.flow.response
        assert resp is not None
        framing = self.resp_framing
        self.resp_chunked = framing == h1.CHUNKED
        raw = self.raw_head
        if raw and not self.upgrade:  # nobody could have changed it: forward it as received
            self.conn.codec.use_framing(framing)
            self.conn.write(raw)
        else:
            headers = resp.headers.fields
            if self.upgrade:
                headers = h1.strip_hop_by_hop(headers, keep_upgrade=True)
            self.conn.write(self.conn.codec.response_head(
                resp.status, resp.reason.encode("latin-1"), resp.http_version.removeprefix("HTTP/"), headers,
                framing))
        self.head_sent = True
        # the body goes out as received, whatever hooks did to the head: the kernel may relay it
        self.may_splice = SPLICE and framing == h1.LENGTH and not self.upgrade

    def response_body(self, data: bytes) -> None:
        self.resp_size += len(data)
        if self.upgrade:
            if self.ws_early is not None:  # WebSocket frames: the relay parses them (websocket.py)
                self.ws_early.append(bytes(data))
                return
        elif self.resp_cap is not None:
            self.resp_cap.add(data)
        if self.head_sent:
            self.conn.write(self.conn.codec.data(data) if self.resp_chunked else data)
            if self.may_splice:
                self._try_splice()
            return
        self.resp_chunks.append(data)
        self.resp_buffered += len(data)
        if self.whole_response and self.resp_buffered > self.conn.proxy.options.body_buffer_limit:
            # too big to hold whole: stream what we have and the rest (stream_large_bodies)
            self.whole_response = False
            self.flow.response.stream = True  # else start_response() goes back to buffering
            self.start_response()

    def _splice_ok(self) -> bool:
        """Whether nothing but the client needs this response's body bytes from here on, and both
        ends are plain TCP sockets: then its rest may be relayed in the kernel (splice.py)."""
        conn, up, cap = self.conn, self.upstream, self.resp_cap
        return (up is not None and up.sock is not None and up.shaper is None and self.flow.request.scheme == "http"
                and conn.sock is not None and conn.client_tls is None and conn.shaper is None
                and conn.relay_to is None and (cap is None or type(cap) is _Capture))

    def _try_splice(self) -> None:
        """Hand the rest of the body to a BodySplice once the capture has all it keeps and the
        client's transport has nothing buffered (the splice writes past it)."""
        up = self.upstream
        if type(up) is not UpstreamConnection or up.codec.body_left() <= SPLICE_MIN or not self._splice_ok():
            self.may_splice = False
            return
        left = up.codec.body_left() - 1  # the last byte ends the message the usual way
        cap = self.resp_cap
        if cap is not None and cap.size < cap.limit:
            return  # the capture still wants bytes: try on the next chunk
        t = self.conn.transport
        if t is None or t.get_write_buffer_size() or self.conn.drained is not None or up.closed:
            return
        self.may_splice = False
        try:
            src, dst = up.sock.fileno(), self.conn.sock.fileno()  # type: ignore[union-attr]
            splice = BodySplice(self, up, src, dst, left)
        except (OSError, ValueError):  # no descriptors left, or a socket already closed
            return
        if cap is not None:
            cap.truncated = not cap.head_only  # the bytes past the capture's cap are not kept
        self.splice = splice
        self.conn.proxy.bodies_spliced += 1
        splice.start()

    def response_complete(self, keep_alive: bool, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.resp_keep_alive = keep_alive
        self.resp_trailers = trailers
        if trailers and self.flow.response is not None:
            self.flow.response.trailers = Headers(trailers)  # gRPC's grpc-status lives here
        self.response_complete_ok = True
        if self.head_sent and self.resp_chunked:
            self.conn.write(self.conn.codec.end(trailers))
        self._resolve("ok")

    def response_failed(self, message: str, status: int = 502) -> None:
        if self.flow.error is None:
            self.flow.error = message
        if status != 502 and self.error_status is None:
            self.error_status = (status, message)
        self._resolve("failed")

    def upstream_pause_writing(self) -> None:
        self.conn.pause_reading()

    def upstream_resume_writing(self) -> None:
        self.conn.resume_reading()

    def _resolve(self, how: str) -> None:
        if self.splice is not None:  # ended while the body was being spliced
            self.splice.cancel()
        if self.done is not None and not self.done.done():
            self.done.set_result(how)


class ClientConnection(TunnelMixin, Endpoint):
    h2_upstream = False  # flows may reach the origin over HTTP/2 (the streams of an h2 client: http2.py)
    # (origin key, error, loop time) of the CONNECT's eager dial that failed (tunnel.py), for the first request
    eager_failed: tuple[tuple, UpstreamError, float] | None = None

    def __init__(self, proxy: Proxy) -> None:
        super().__init__()
        self.proxy = proxy
        self.codec = h1.H1Server(proxy.options.max_head_size)
        self.client_addr: tuple[str, int] | None = None
        self.peer: Peer | None = None
        self.tunnel: tuple[str, int] | None = None  # origin of a MITMed CONNECT
        self.tunnel_scheme = "https"  # "http": a plain stream to `tunnel` (WireGuard mode)
        # Where the tunnel's origin is dialled when that is not its name (WireGuard mode: the name
        # is the client's SNI, the address the one its packets went to)
        self.dial: tuple[str, int] | None = None
        self.client_tls: TLSInfo | None = None
        self.queue: deque[Exchange] = deque()
        self.current: Exchange | None = None  # being parsed
        self.active: Exchange | None = None  # being served
        self.task: asyncio.Task | None = None
        self.wakeup: asyncio.Future | None = None
        self.closing = False
        self.bad_request: tuple[int, str] | None = None
        self.relay_to: Endpoint | None = None  # raw relay after CONNECT / 101
        self.drained: asyncio.Future[None] | None = None  # set while the client is not reading
        # The sweep in Proxy closes connections past their deadline (loop.time(); 0: none).
        self.deadline = 0.0
        self.deadline_kind = ""

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client_addr = self.attach(transport)
        proxy = self.proxy
        proxy.connections.add(self)
        self._arm("head", proxy.options.client_head_timeout)
        chain = proxy.addons.client_connected
        if chain:
            self.peer = Peer(self.client_addr)
            fire_hook(chain, self.peer)

    def _arm(self, kind: str, seconds: float) -> None:
        self.deadline_kind = kind
        self.deadline = self.proxy.pool.loop.time() + seconds

    def data_received(self, data: bytes) -> None:
        if self.relay_to is not None:
            self.relay_to.write(data)
            if self.active is not None:
                self.active.req_size += len(data)
            return
        if self.closing:
            return
        if self.deadline_kind == "idle":
            self._arm("head", self.proxy.options.client_head_timeout)
        codec = self.codec
        if codec.take_body(data) and self.current is not None:  # the middle of a Content-Length body
            self.current.request_body(data)
            self.deadline = self.proxy.pool.loop.time() + self.proxy.options.body_idle_timeout
            return
        codec.budget = max(1, self.proxy.options.max_pipelined - len(self.queue))
        self._dispatch(codec.receive_data(data))
        if codec.held:
            self.pause_reading()  # read no further ahead until the queue drains
        elif codec.in_message and len(data) < _SMALL_READ:
            self.quickack()  # the rest of the request is still to come

    def _dispatch(self, events: list[h1.Event]) -> None:
        for ev in events:
            t = type(ev)
            if t is h1.Data:
                ex = self.current
                if ex is not None:
                    ex.request_body(ev.data)  # type: ignore[attr-defined]
                    if self.deadline_kind == "body":
                        self.deadline = self.proxy.pool.loop.time() + self.proxy.options.body_idle_timeout
            elif t is h1.RequestHead:
                self._request_head(ev)  # type: ignore[arg-type]
            elif t is h1.EndOfMessage:
                ex = self.current
                if self.deadline_kind == "body":
                    self.deadline = 0.0
                if ex is not None:
                    ex.request_complete(ev.trailers)  # type: ignore[attr-defined]
            elif t is h1.ProtocolError:
                self._malformed(ev.message, ev.status)  # type: ignore[attr-defined]
                return

    def _unhold(self) -> None:
        """The read-ahead queue drained: parse what was kept and read on."""
        codec = self.codec
        codec.budget = max(1, self.proxy.options.max_pipelined - len(self.queue))
        self._dispatch(codec.resume())
        if not codec.held and not self.closing:
            self.resume_reading()

    def eof_received(self) -> bool | None:
        if self.relay_to is not None:
            return False  # a tunnel ends when either side ends; connection_lost finishes the flow
        ex = self.current
        if ex is not None and not ex.body_complete:
            return False  # gone mid-request: close, connection_lost fails the exchange
        act = self.active
        if act is not None and not act.head_sent:
            # Gone while its request waits on the origin: end the exchange now (connection_lost
            # closes the origin connection) instead of holding both sockets half-open.
            self.closing = True  # a CONNECT not answered yet is abandoned (tunnel.py)
            return False
        # a half-close after complete requests: answer them, then close
        if act is None and not self.queue:
            return False
        self.closing = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadline = 0.0
        self.proxy.connections.discard(self)
        ex = self.active
        if ex is not None and self.relay_to is not None:
            ex._resolve("ok")  # the client ended a tunnel / upgraded connection: a normal end
        elif ex is not None and ex.is_connect and self.tunnel is None and not ex.head_sent:
            pass  # a CONNECT abandoned before its answer: no flow (tunnel.py)
        elif ex is not None and not ex.response_complete_ok:
            if ex.flow.error is None:
                ex.flow.error = ("client disconnected before the request was complete" if not ex.body_complete
                                 else "client disconnected before the response was complete")
            if ex.upstream is not None:
                ex.upstream.abort()
            ex._wake_body()
            ex._resolve("client-gone")
        if self.relay_to is not None:
            self.relay_to.close()
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.current = None  # frees the last flow at once (no cycle through the connection)
        peer = self.peer
        if peer is not None:
            peer.closed = time.time()
            fire_hook(self.proxy.addons.client_disconnected, peer)

    def pause_writing(self) -> None:
        # The client reads slower than we write: hold the origin, and serve no further
        # pipelined request until it catches up (the read-ahead bound then pauses reading).
        if self.drained is None:
            self.drained = asyncio.get_running_loop().create_future()
        ex = self.active
        if ex is not None and ex.upstream is not None:
            ex.upstream.pause_reading()
        elif self.relay_to is not None:
            self.relay_to.pause_reading()

    def resume_writing(self) -> None:
        d, self.drained = self.drained, None
        if d is not None and not d.done():
            d.set_result(None)
        ex = self.active
        if ex is not None and ex.upstream is not None:
            ex.upstream.resume_reading()
        elif self.relay_to is not None:
            self.relay_to.resume_reading()

    def on_timeout(self) -> None:
        """Called by the Proxy's sweep when `deadline` has passed."""
        kind, self.deadline = self.deadline_kind, 0.0
        if self.closed:
            return
        if kind == "h2-idle":  # armed by the HTTP/2 layer that took this connection over
            self.relay_to.idle_timeout()  # type: ignore[union-attr]
            return
        if kind == "head" and self.codec.in_message:
            # a request head that never completed: answer 408 (no flow: nothing was parsed)
            self.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.close()
        elif kind == "body" and self.current is not None:
            ex = self.current
            if ex.flow.error is None:
                ex.flow.error = (f"client sent no request body bytes for "
                                 f"{self.proxy.options.body_idle_timeout:g} s")
            self.abort()
        elif self.active is None and not self.queue:
            self.close()  # idle keep-alive (or a head never started)

    # --- parsing ------------------------------------------------------------------------------
    def _request_head(self, ev: h1.RequestHead) -> None:
        proxy = self.proxy
        flow, err = self._new_flow(ev)
        ex = Exchange(self, flow, proxy.capture_limit, ev.framing != h1.NONE)
        ex.error_status = err
        ex.client_keep_alive = ev.keep_alive
        ex.is_connect = ev.method == "CONNECT"
        ex.req_upgrade = ev.upgrade and not ex.is_connect
        ex.chunked = ev.framing == h1.CHUNKED
        ex.has_body = ev.framing != h1.NONE
        if ex.has_body:
            self._arm("body", proxy.options.body_idle_timeout)
        else:
            self.deadline = 0.0
        self.current = ex
        self.queue.append(ex)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._serve_loop())
        elif self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    # --- building flows -----------------------------------------------------------------------
    def _new_flow(self, ev: h1.RequestHead) -> tuple[Flow, tuple[int, str] | None]:
        proxy = self.proxy
        method, url, version = ev.method, ev.target, ev.version
        headers = Headers.adopt(ev.headers)  # the codec's list, ours alone
        err = None
        scheme, host, port, target, authority = "http", "", 0, url, ""
        try:
            if method == "CONNECT":
                host, port = split_authority(url, 443)
                target = url
                authority = headers.get("host") or ""
            elif self.tunnel is None and url.startswith("http://") and \
                    (slash := url.find("/", 7)) > 0 and (known := _AUTHORITIES.get(url[7:slash])) is not None \
                    and "#" not in url:
                # the common proxy request: an authority seen before (parsed below the first time)
                host, port, authority = known
                target = url[slash:]
                if headers.get("host") != authority:
                    headers.set("Host", authority)
            elif url[:8].lower().startswith(("http://", "https://")):
                u = httptools.parse_url(url.encode("latin-1"))
                if self.tunnel is not None:
                    # inside a MITM tunnel only the tunnel's origin is reachable, whatever the URL says
                    scheme = self.tunnel_scheme
                    host, port = self.tunnel
                    authority = headers.get("host") or ""
                else:
                    scheme = u.schema.decode().lower()
                    host = valid_host(u.host.decode("latin-1"))
                    port = u.port or (443 if scheme == "https" else 80)
                target = (u.path or b"/").decode("latin-1")
                if u.query:
                    target += "?" + u.query.decode("latin-1")
                if self.tunnel is None:
                    # RFC 9112 3.2.2: the absolute-form's authority replaces the Host header
                    authority = host if u.port is None else f"{host}:{port}"
                    if ":" in host:
                        authority = f"[{host}]" if u.port is None else f"[{host}]:{port}"
                    if headers.get("host") != authority:
                        headers.set("Host", authority)
                    if scheme == "http" and len(_AUTHORITIES) < 1024 and "@" not in url:
                        i = url.find("/", 7)
                        if i > 0 and url[:7].lower() == "http://":
                            _AUTHORITIES[url[7:i]] = (host, port, authority)
            elif self.tunnel is not None:
                scheme = self.tunnel_scheme
                host, port = self.tunnel
                authority = headers.get("host") or ""
                if not target.startswith("/") and target != "*":
                    raise ValueError(f"malformed request target {url!r}")
            else:
                err = (400, "not a proxy request: configure this address as your HTTP(S) proxy "
                            "(requests must use absolute URLs or CONNECT)")
        except (ValueError, httptools.HttpParserInvalidURLError) as exc:
            err = (400, f"malformed request target: {exc}")
        req = Request(method, scheme, host, port, target, _VERSIONS.get(version) or f"HTTP/{version}", headers,
                      authority=authority)
        flow = Flow(req, self.client_addr, assign_id=method != "CONNECT")
        if self.client_tls is not None:
            flow.client_tls = self.client_tls
        if self.peer is not None:
            self.peer.flows += 1
        if err is None and self.tunnel is None:
            if method != "CONNECT" and port == proxy.address[1] and host in _LOCAL_HOSTS | {proxy.address[0]}:
                err = (508, "loop detected: the request is addressed to this proxy itself")
            elif proxy.pool.upstream is not None and proxy.via_token in (headers.get("via") or ""):
                # only a proxy that forwards to an upstream adds its token, so only one can see it again
                err = (508, "loop detected: the request came back through the upstream proxy chain")
        return flow, err

    # --- serving ------------------------------------------------------------------------------
    async def _serve_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.closed:
                if not self.queue:
                    if self.closing or self.bad_request is not None:
                        break
                    if not self.codec.in_message and not self.deadline:
                        self._arm("idle", self.proxy.options.keepalive_timeout)
                    self.wakeup = loop.create_future()
                    await self.wakeup
                    self.wakeup = None
                    continue
                if self.drained is not None:
                    await self.drained
                    continue
                ex = self.queue.popleft()
                if self.codec.held and len(self.queue) <= self.proxy.options.max_pipelined // 2:
                    self._unhold()
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
        addons = proxy.addons
        flow = ex.flow
        req = flow.request
        chain = addons.requestheaders
        if chain:
            if chain.is_async:
                await chain.run(flow)
            else:
                chain.call(flow)
        if not flow.in_scope:
            ex.req_cap = ex.resp_cap = None
        if not req.stream and ex.has_body:
            if not await self._read_whole_request(ex):
                return
        elif not req.stream and not ex.has_body:
            # a bodiless request held whole for a hook (a breakpoint's edit may give it a body)
            ex.whole_request = ex.whole_body = True
        chain = addons.request
        if chain:
            if chain.is_async:
                await chain.run(flow)
            else:
                chain.call(flow)
        if self.closed:
            self._finish(ex)
            return
        if flow.killed:
            self._kill(ex)
            return
        if flow.response is not None:
            await self._send_local(ex)
            return
        if ex.whole_request:
            self._frame_whole_request(ex)
        await self._forward(ex)

    async def _read_whole_request(self, ex: Exchange) -> bool:
        """Wait for the whole request body (a hook asked for it). False when the client left."""
        if ex.buffered_size <= self.proxy.options.body_buffer_limit:
            ex.whole_request = True
            if not ex.body_complete:
                ex.body_waiter = asyncio.get_running_loop().create_future()
                self.resume_reading()
                await ex.body_waiter
                ex.body_waiter = None
        if self.closed:
            self._finish(ex)
            return False
        if ex.whole_request:
            ex.flow.request.body = b"".join(ex.buffered)
            ex.whole_body = True
        return True

    def _frame_whole_request(self, ex: Exchange) -> None:
        """A whole request body (maybe changed by a hook) goes out with a Content-Length."""
        req = ex.flow.request
        body = req.body
        ex.buffered = [body] if body else []
        ex.buffered_size = len(body)
        ex.chunked = False
        ex.has_body = bool(body) or req.headers.get("content-length") is not None
        if ex.has_body:
            _set_length(req.headers, len(body))
        ex.whole_request = False

    async def _forward(self, ex: Exchange) -> None:
        proxy = self.proxy
        flow = ex.flow
        req = flow.request
        via_http = proxy.pool.upstream is not None and req.scheme == "http"
        key = ("via", proxy.pool.upstream.host, proxy.pool.upstream.port) if via_http else (
            req.scheme, req.host, req.port)
        # the proxy's loop: asyncio.get_running_loop() makes a getpid() system call each time
        loop = proxy.pool.loop
        how = "failed"
        th = proxy.throttle
        throttled = th.profile is not None and th.matches(flow)  # one test per request when off
        if throttled:
            flow.tags.append("throttled")
            if th.lose():  # packet-loss emulation: this request's connection is reset
                flow.error = "connection reset by throttling (packet-loss emulation)"
                self.reset()
                self._kill(ex)
                return
        for attempt in (0, 1):
            conn = self._take(key)
            reused = conn is not None
            if conn is None:
                if self.eager_failed is not None and self._eager_failure(ex, key):
                    return
                try:
                    if via_http:
                        up = proxy.pool.upstream
                        conn = await proxy.pool.connect(flow, "http", up.host, up.port)
                        conn.key = key
                    else:
                        dial = self.dial
                        if dial is not None and (req.host, req.port) != self.tunnel:
                            dial = None  # an addon sent the request elsewhere
                        conn = await proxy.pool.connect(flow, req.scheme, req.host, req.port, dial,
                                                      self.h2_upstream)
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
            conn.start_exchange(ex, req.method)
            if th.profile is not None:
                if throttled:
                    th.attach(self, conn)  # both sides' writes go through the shared links now
                else:
                    th.release(self, conn)
            framing = h1.CHUNKED if ex.chunked else (h1.LENGTH if ex.has_body else h1.NONE)
            head = conn.request_head(req, framing, absolute=via_http, via=proxy.via_token if via_http else None)
            if ex.buffered:
                body = b"".join(ex.buffered)
                head += conn.codec.data(body)
                if attempt == 1 or not ex.body_complete:
                    ex.buffered = []
                    ex.buffered_size = 0
                    self.resume_reading()
            if ex.body_complete:
                if ex.chunked:
                    head += conn.codec.end(ex.req_trailers)
                flow.timings.request_sent = time.time()
            conn.write(head)
            if ex.body_complete:
                conn.arm_response_timeout()
            how = await ex.done
            while how == "head":  # async responseheaders hooks
                ex.done = loop.create_future()
                if ex.upgrade and ex.response_complete_ok:
                    # the 101 was complete in the same read as its head (before this future)
                    ex.done.set_result("ok")
                await proxy.addons.responseheaders.run(flow)  # type: ignore[union-attr]
                if self.closed:
                    how = "client-gone"
                    break
                ex.start_response()
                how = ex.done.result() if ex.done.done() else await ex.done
            if how == "failed" and reused and attempt == 0 and not ex.head_sent and not conn.got_bytes \
                    and ex.body_complete and self._replayable(ex) and flow.response is None:
                # the pooled connection was closed by the server as we reused it: try a fresh one
                flow.error = None
                ex.upstream = None
                continue
            break
        if how == "killed" or flow.killed:
            conn.abort()
            self._kill(ex)
            return
        if how == "failed" and not ex.head_sent and not self.closed:
            status = ex.error_status[0] if ex.error_status else 502
            ex.error_status = None
            conn.abort()
            if ex.whole_response or ex.head_pending:
                flow.response = None
            self.send_error(ex, status, flow.error or "upstream failed")
            return
        if ex.upgrade and how == "ok" and not self.closed:
            await self._relay_upgrade(ex, conn)
            return
        if how == "ok" and ex.whole_response:
            await self._send_whole_response(ex)
        else:
            chain = proxy.addons.response
            if chain and how == "ok":
                if chain.is_async:
                    await chain.run(flow)
                else:
                    chain.call(flow)
        if how == "ok" and ex.resp_keep_alive and ex.body_complete:
            conn.release()
        else:
            conn.close()
        if how != "ok" or not ex.client_keep_alive or not ex.body_complete:
            self.closing = True
        if ex.req_upgrade and not self.closing:
            self._unhold()  # the origin did not switch protocols: go on parsing
        if self.shaper is not None and not self.closed:
            await self.shaper.wait_drained()  # a throttled response ends when the client has it
        self._finish(ex)

    def _eager_failure(self, ex: Exchange, key: tuple) -> bool:
        """The tunnel's first request to the origin the CONNECT's eager dial just failed to reach
        gets that error rather than a second dial (a blackholed origin would cost two connect
        timeouts); True when it was answered so."""
        (failed_key, exc, when), self.eager_failed = self.eager_failed, None  # type: ignore[misc]
        if failed_key != key or self.proxy.pool.loop.time() - when > self.proxy.pool.connect_timeout:
            return False  # sent elsewhere by an addon, or long ago: dial
        self.send_error(ex, exc.status, str(exc))
        return True

    def _take(self, key: tuple) -> UpstreamConnection | None:
        """A pooled connection for the request (H2StreamConnection also looks for an h2 one)."""
        return self.proxy.pool.take(key)

    async def _send_whole_response(self, ex: Exchange) -> None:
        """The response was buffered whole for the hooks: run them, then send what they left."""
        flow = ex.flow
        resp = flow.response
        assert resp is not None
        resp.body = b"".join(ex.resp_chunks)
        ex.resp_chunks = []
        await run_hook(self.proxy.addons.response, flow)
        if self.closed:
            return
        if flow.killed:
            self.abort()
            return
        resp = flow.response
        if resp is None:
            return
        if flow.request.method != "HEAD" and resp.status not in _NO_BODY_STATUS:
            _set_length(resp.headers, len(resp.body))
            ex.resp_framing = h1.LENGTH
        ex.whole_response = False
        self._write_whole(ex, resp)
        ex.resp_size = len(resp.body)
        if ex.resp_cap is not None:
            ex.resp_cap = ex.resp_cap.fresh()
            ex.resp_cap.add(resp.body)

    def _write_whole(self, ex: Exchange, resp: Response) -> None:
        ex.resp_chunked = False
        self.write(self.codec.response_head(
            resp.status, resp.reason.encode("latin-1"), resp.http_version.removeprefix("HTTP/"),
            resp.headers.fields, ex.resp_framing) + (resp.body if ex.resp_framing == h1.LENGTH else b""))
        ex.head_sent = True

    async def _send_local(self, ex: Exchange) -> None:
        """A hook answered the request: send its response, keep the connection alive."""
        flow = ex.flow
        resp = flow.response
        assert resp is not None
        if flow.timings.first_byte is None:
            flow.timings.first_byte = time.time()
        if not ex.body_complete:  # read the rest of the request body and drop it
            ex.discard = True
            ex.buffered = []
            ex.body_waiter = asyncio.get_running_loop().create_future()
            self.resume_reading()
            await ex.body_waiter
            if self.closed:
                self._finish(ex)
                return
        no_body = flow.request.method == "HEAD" or resp.status in _NO_BODY_STATUS or resp.status < 200
        if not no_body:
            _set_length(resp.headers, len(resp.body))
        ex.resp_framing = h1.NONE if no_body else h1.LENGTH
        self._write_whole(ex, resp)
        ex.resp_size = len(resp.body)
        if ex.resp_cap is not None:
            ex.resp_cap.add(resp.body)
        if not ex.client_keep_alive or ex.req_upgrade:
            self.closing = True
        self._finish(ex)

    def _kill(self, ex: Exchange) -> None:
        ex.flow.kill()
        if ex.upstream is not None:
            ex.upstream.abort()
        self.closing = True
        self.abort()
        self._finish(ex)

    @staticmethod
    def _replayable(ex: Exchange) -> bool:
        return not ex.has_body or bool(ex.buffered)

    # --- responses made by the proxy ------------------------------------------------------------
    def send_error(self, ex: Exchange, status: int, message: str) -> None:
        flow = ex.flow
        flow.error = message
        reason = _REASONS.get(status, "Error")
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
                ex._wake_body()
                ex._resolve("failed")
            return
        self.bad_request = (status, message)
        if self.task is None:
            self._send_malformed()

    def _send_malformed(self) -> None:
        """Answer a request that could not be parsed with 400/431/501 and close."""
        status, message = self.bad_request or (400, "malformed request")
        self.bad_request = None
        req = Request("?", "http", "", 0, "")
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
        cap = ex.req_cap
        if ex.whole_body:  # a hook had the body whole (and may have changed it): that is what went out
            req.body_size = len(req.body)
        else:
            if cap is not None:
                req.set_body_chunks(cap.chunks if cap.writer is None else cap.seal())
                req.body_truncated = cap.truncated
            req.body_size = ex.req_size
        resp = flow.response
        if resp is not None:
            rcap = ex.resp_cap
            if rcap is not None and (rcap.chunks or rcap.writer is not None):
                resp.set_body_chunks(rcap.chunks if rcap.writer is None else rcap.seal())
                resp.body_truncated = ex.resp_cap.truncated
            resp.body_size = ex.resp_size
        flow.state = flowmod.ERROR if flow.error else flowmod.DONE
        chain = self.proxy.addons.error if flow.error else self.proxy.addons.done
        if chain is not None:
            if chain.is_async:
                asyncio.ensure_future(chain.run(flow))
            else:
                chain.call(flow)
