"""HTTP/2 on both sides of the proxy, around the one HTTP/1.1 flow driver.

Client side: after a MITM'd CONNECT negotiates "h2", `H2ClientConnection` (an h2 server,
`h2.connection.H2Connection(client_side=False)`) owns the TLS connection. Every stream becomes one
in-memory `H2StreamConnection` (a `ClientConnection`, unchanged but for three small overrides) over
a `_StreamTransport`: the request is fed to it as HTTP/1.1 bytes (origin-form on a tunnel to the
CONNECT host, as a replay is), the existing flow driver runs every hook, rule, breakpoint, throttle
and capture, and the HTTP/1.1 response it writes back is parsed (`H1Client`) and sent as h2
HEADERS / DATA / trailers on the stream. Streams share nothing but the connection: a stream held at
a breakpoint stops its own flow only.

Origin side: for flows from an h2 client the pool offers ALPN ["h2", "http/1.1"]; when the origin
picks h2, `H2OriginConnection` (an h2 client) multiplexes the flows' requests, each on an
`H2OriginStream` that stands in for an `UpstreamConnection` in `_forward`: it takes the HTTP/1.1
request bytes `_forward` writes (parsed with `H1Server`) and reports the response to the exchange
as the HTTP/1.1 codec's events would. Server push is refused (SETTINGS_ENABLE_PUSH=0, pushed
streams reset). Connection-specific fields are stripped both ways (RFC 9113 8.2.2).

Flow control: the windows are large (16 MiB per stream and per connection) so a big download does
not wait on WINDOW_UPDATEs, and received data is acknowledged only when handed on: a flow that
pauses its reading (a breakpoint, a slow peer) stops acknowledging its own stream only. Outgoing
data beyond a stream's window is queued; past a high-water mark the producer is paused as a full
socket would pause it.
"""

from __future__ import annotations

import asyncio
import binascii
import itertools
import time
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.stream
import hyperframe.frame
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2.stream import StreamState
from hpack import HPACKError

from proxycore.addons.hooks import fire_hook
from proxycore.flows.flow import Flow, Peer, TLSInfo
from proxycore.layers import http1 as h1
from proxycore.proxy.endpoint import Endpoint
from proxycore.proxy.hpackfast import MemoDecoder, PlainEncoder
from proxycore.proxy.http1 import ClientConnection
from proxycore.proxy.upstream import UpstreamConnection

if TYPE_CHECKING:
    from proxycore.proxy.server import Proxy
    from proxycore.proxy.upstream import Pool, ResponseHandler

WINDOW = 16 * 1024 * 1024  # per stream and per connection, both directions we control
MAX_FRAME = 1 << 18  # what we accept per DATA frame: fewer frames (and Python calls) per MiB
MAX_STREAMS = 256  # concurrent streams a client may open
HIGH_WATER = 256 * 1024  # queued outgoing bytes of one stream before its producer is paused
LOW_WATER = 64 * 1024
# RFC 9113 8.2.2: never sent in HTTP/2; plus Host, which becomes :authority
_CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                                  b"upgrade", b"host", b"http2-settings"))
_conn_ids = itertools.count(1)
_SENDABLE = (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)  # states where DATA may be sent
_RECEIVING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)  # states where HEADERS may arrive


def _internals_known() -> bool:
    """Whether this h2 has the internals the DATA and HEADERS fast paths use (h2 4.x); else h2 does it all."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    try:
        st = h2.stream.H2Stream(1, config=c.config, inbound_window_size=65535, outbound_window_size=65535)
    except TypeError:
        return False
    return all(hasattr(o, a) for o, a in (
        (c, "_data_to_send"), (c, "outbound_flow_control_window"), (c, "_inbound_flow_control_window_manager"),
        (c, "incoming_buffer"), (c.incoming_buffer, "_data"), (c.incoming_buffer, "_headers_buffer"),
        (c, "max_inbound_frame_size"), (c, "_begin_new_stream"), (c, "_open_streams"),
        (c, "highest_outbound_stream_id"), (c, "state_machine"), (h2.connection, "ConnectionInputs"),
        (h2.connection, "AllowedStreamIDs"), (h2.stream, "StreamInputs"), (c, "_terminate_connection"),
        (c, "highest_inbound_stream_id"), (c.incoming_buffer, "_preamble_len"))) and all(
        hasattr(st, a) for a in ("_track_content_length", "request_method", "_authority", "state_machine"))


_FAST = _internals_known()
_SWEEP_EVERY = 64  # fast-opened origin streams between two passes of h2's closed-stream cleanup


def _send_head(conn: h2.connection.H2Connection, sid: int, fields: list[tuple[bytes, bytes]], end: bool,
               method: bytes | None = None, authority: bytes | None = None) -> bool:
    """A final response head (or, with `method`, a request head opening stream `sid`) written as
    one HEADERS frame straight into h2's output: h2's send_headers spends most of a small
    request's header cost in per-frame objects and checks our fields do not need. h2's own
    state machines take the same transitions, so h2 keeps handling the stream (DATA, resets,
    trailers). False (nothing done) when anything is unusual: then h2's send_headers does it."""
    if not _FAST:
        return False
    block = conn.encoder.encode(fields)
    if len(block) > conn.max_outbound_frame_size:
        return False  # needs CONTINUATION frames
    if method is not None:
        if sid in conn.streams or sid <= conn.highest_outbound_stream_id:
            return False
        conn.state_machine.process_input(h2.connection.ConnectionInputs.SEND_HEADERS)
        stream = conn._begin_new_stream(sid, h2.connection.AllowedStreamIDs.ODD)
        stream._authority = authority
        stream.request_method = method  # a HEAD's response has a Content-Length and no body
    else:
        stream = conn.streams.get(sid)
        if stream is None or stream.state_machine.state not in _SENDABLE:
            return False
        conn.state_machine.process_input(h2.connection.ConnectionInputs.SEND_HEADERS)
    sm = stream.state_machine
    sm.process_input(h2.stream.StreamInputs.SEND_HEADERS)
    if end:
        sm.process_input(h2.stream.StreamInputs.SEND_END_STREAM)
    conn._data_to_send += (len(block).to_bytes(3, "big") + (b"\x01\x05" if end else b"\x01\x04")
                           + sid.to_bytes(4, "big") + block)
    return True


def _h2_fields(fields: list[tuple[bytes, bytes]], request: bool) -> list[tuple[bytes, bytes]]:
    """HTTP/1.1 header fields as HTTP/2 ones: lower-case names, without the connection-specific
    fields and those the Connection field names; TE only as "trailers" (RFC 9113 8.2.2)."""
    named = h1.connection_tokens(fields)
    out = []
    for k, v in fields:
        k = k.lower()
        if k in _CONNECTION_SPECIFIC or k in named:
            continue
        if k == b"te":
            if request and b"trailers" in v.lower():
                out.append((b"te", b"trailers"))
            continue
        out.append((k, v))
    return out


def _config(client_side: bool) -> h2.config.H2Configuration:
    # A client's fields are validated: they become HTTP/1.1 bytes parsed by the flow driver, where a
    # CR/LF must never arrive. An origin's are not (per request, that check is a tenth of the
    # header cost): they only ever go back to the h2 client of that one flow, through the HTTP/1.1
    # response parser, which refuses what cannot be a field (on_headers checks :status itself).
    # Outbound fields are built here from those, and checking them again costs per request.
    return h2.config.H2Configuration(client_side=client_side, header_encoding=None,
                                     validate_inbound_headers=not client_side,
                                     validate_outbound_headers=False, normalize_outbound_headers=False)


def _repr_head(data: bytes | None) -> str:
    """hyperframe's _raw_data_repr, same text, but hexlifying 10 bytes rather than the whole frame:
    h2 formats every received frame for its trace log whether or not anyone logs it."""
    if not data:
        return "None"
    r = binascii.hexlify(data[:11]).decode("ascii")
    return "<hex:" + (r[:20] + "..." if len(r) > 20 else r) + ">"


def _frame_repr(self: hyperframe.frame.Frame) -> str:
    """A frame's repr without its body: h2 formats every received frame (repr() before the call
    to its trace logger), which was a few per cent of a small request."""
    return f"{type(self).__name__}(stream_id={self.stream_id}, flags={sorted(self.flags)!r})"


hyperframe.frame._raw_data_repr = _repr_head  # type: ignore[attr-defined]
hyperframe.frame.Frame.__repr__ = _frame_repr  # type: ignore[method-assign]


def _start(conn: h2.connection.H2Connection, client_side: bool) -> None:
    # hpack's coder is most of a small request's cost: a stateless memoised encoder (no indexing,
    # no Huffman) and a decoder that memoises blocks leaving its table alone (hpackfast)
    conn.encoder = PlainEncoder()  # type: ignore[assignment]
    conn.decoder = MemoDecoder(conn.decoder.max_header_list_size)
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: WINDOW, SettingCodes.MAX_FRAME_SIZE: MAX_FRAME}
    if client_side:
        settings[SettingCodes.ENABLE_PUSH] = 0  # server push refused (mitmproxy does the same)
    else:
        settings[SettingCodes.MAX_CONCURRENT_STREAMS] = MAX_STREAMS
    conn.initiate_connection()
    conn.update_settings(settings)  # in force once the peer acknowledges them, as RFC 9113 wants
    conn.increment_flow_control_window(WINDOW - 65535)


class _Outbox:
    """Data waiting for flow-control window on one stream, then its end (trailers or not)."""

    __slots__ = ("chunks", "size", "end", "trailers", "ended")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.end = False  # the message is complete: END_STREAM once the chunks are out
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.ended = False  # END_STREAM sent

    def add(self, d: bytes | memoryview) -> None:
        """Body data parsed from the HTTP/1.1 side (a view of the read buffer is copied)."""
        if d:
            self.chunks.append(d if type(d) is bytes else bytes(d))
            self.size += len(d)

    def push(self, conn: h2.connection.H2Connection, sid: int) -> None:
        """Send what the windows allow, small pieces joined up to a frame (fewer frames, fewer calls)."""
        try:
            self._push(conn, sid)
        except (h2.exceptions.H2Error, KeyError):  # the stream is gone (reset): nothing more to send
            self.chunks.clear()
            self.size = 0
            self.ended = True

    def _push(self, conn: h2.connection.H2Connection, sid: int) -> None:
        chunks = self.chunks
        if not chunks and not self.end:
            return
        stream = conn.streams[sid]
        # DATA frames written straight into h2's output, with h2's own flow-control accounting
        # (what its send_data does for an open stream, minus the per-frame objects and logging);
        # the last frame and anything unusual go through send_data
        fast = _FAST and stream.state_machine.state in _SENDABLE
        while chunks:
            n = min(conn.outbound_flow_control_window, stream.outbound_flow_control_window,
                    conn.max_outbound_frame_size)
            if n <= 0:
                return
            first = chunks[0]
            if len(first) >= n:
                data = first[:n]
                if len(first) > n:
                    chunks[0] = first[n:]
                else:
                    del chunks[0]
            else:
                k, total = 1, len(first)
                while k < len(chunks) and total + len(chunks[k]) <= n:
                    total += len(chunks[k])
                    k += 1
                data = first if k == 1 else b"".join(chunks[:k])
                del chunks[:k]
            size = len(data)
            self.size -= size
            last = self.end and not chunks and not self.trailers
            if fast:
                if last:  # END_STREAM: h2's state transitions for it, as its send_data makes them
                    conn.state_machine.process_input(h2.connection.ConnectionInputs.SEND_DATA)
                    stream.state_machine.process_input(h2.stream.StreamInputs.SEND_DATA)
                    stream.state_machine.process_input(h2.stream.StreamInputs.SEND_END_STREAM)
                out = conn._data_to_send
                out += size.to_bytes(3, "big") + (b"\x00\x01" if last else b"\x00\x00") + sid.to_bytes(4, "big")
                out += data
                conn.outbound_flow_control_window -= size
                stream.outbound_flow_control_window -= size
                if last:
                    self.ended = True
                    return
                continue
            conn.send_data(sid, data, end_stream=last)
            if last:
                self.ended = True
                return
        if self.end and not self.ended:
            self.ended = True
            if self.trailers:
                conn.send_headers(sid, self.trailers, end_stream=True)
            else:
                conn.end_stream(sid)


def _acknowledge(conn: h2.connection.H2Connection, acks: dict[int, int]) -> None:
    """Give back the flow-control window for data handed on (once per flush, not per frame)."""
    for sid, n in acks.items():
        try:
            conn.acknowledge_received_data(n, sid)
        except h2.exceptions.H2Error:  # the stream is gone: the connection window is given back anyway
            pass
    acks.clear()


# ------------------------------------------------------------------------------------ client side

class H2StreamConnection(ClientConnection):
    """The in-memory client connection of one h2 stream: an ordinary ClientConnection whose flows
    say HTTP/2.0 and name their h2 connection and stream, and which ends with its one request."""

    h2_upstream = True  # its flows may go to the origin over h2 (Pool.connect / ClientConnection._take)

    def __init__(self, proxy: Proxy, parent: H2ClientConnection, stream_id: int) -> None:
        super().__init__(proxy)
        self.tunnel = parent.tunnel
        self.dial = parent.origin.dial  # where the origin is when not at its name (WireGuard mode)
        self.client_tls = parent.client_tls
        self.peer = parent.peer
        self.h2_parent = parent
        self.stream_id = stream_id

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # no client_connected hook: the client connected once, for the whole h2 connection
        self.transport = transport  # type: ignore[assignment]
        self.client_addr = self.h2_parent.client_addr
        self.proxy.connections.add(self)
        self._arm("head", self.proxy.options.client_head_timeout)

    def _new_flow(self, ev: h1.RequestHead) -> tuple[Flow, tuple[int, str] | None]:
        flow, err = super()._new_flow(ev)
        flow.request.http_version = "HTTP/2.0"
        flow.stream = (self.h2_parent.conn_id, self.stream_id)
        return flow, err

    def _take(self, key: tuple) -> Any:
        pool = self.proxy.pool
        return pool.take_h2(key) or pool.take(key)

    def _finish(self, ex: Any) -> None:
        super()._finish(ex)
        self.closing = True  # one request per stream
        if self.transport is not None:
            self.transport.close()


class _StreamTransport(asyncio.Transport):
    """The transport of an H2StreamConnection: its writes (HTTP/1.1 response bytes) become h2
    frames on the stream; its pause_reading holds back (and leaves unacknowledged) the request
    data of the stream."""

    ws = False  # an RFC 8441 WebSocket stream (h2ws._WsStreamTransport)

    def __init__(self, parent: H2ClientConnection, sid: int, protocol: H2StreamConnection, method: str) -> None:
        super().__init__()
        self.parent = parent
        self.sid = sid
        self.protocol = protocol
        self.parser = h1.H1Client(parent.proxy.options.max_head_size)
        self.parser.expect_response(method)
        self.head: list[tuple[bytes, bytes]] | None = None  # final response head not yet sent
        self.out = _Outbox()
        self.closing = False
        self.lost = False
        self.reading = True
        self.held: list[tuple[bytes, int]] = []  # request data received while reading is paused
        self.held_end: bytes | None = None  # the request's end while paused
        self.write_paused = False
        self.reset_done = False

    # --- asyncio.Transport ----------------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.parent.client_addr
        return default

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.out.size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing or self.reset_done:
            return
        parser = self.parser
        if not parser.in_message and data[:6] == b"HTTP/2":
            # a response from an h2 origin serialised by the HTTP/1.1 codec: its version is ours to drop
            data = b"HTTP/1.1" + bytes(data[data.find(b" "):])
        conn = self.parent.h2
        sid = self.sid
        for ev in parser.receive_data(bytes(data)):
            t = type(ev)
            if t is h1.Data:
                if self.head is not None:
                    self._send_head(False)
                self.out.add(ev.data)  # type: ignore[attr-defined]
            elif t is h1.ResponseHead:
                status = ev.status  # type: ignore[attr-defined]
                fields = [(b":status", str(status).encode())] + _h2_fields(ev.headers, False)  # type: ignore[attr-defined]
                if status < 200:
                    if status != 101:  # 101 cannot happen in h2 (no Upgrade in h2 requests)
                        conn.send_headers(sid, fields)
                    continue
                self.head = fields
            elif t is h1.EndOfMessage:
                out = self.out
                trailers = ev.trailers  # type: ignore[attr-defined]
                out.trailers = [(k.lower(), v) for k, v in trailers] if trailers else None
                out.end = True
                if self.head is not None:
                    self._send_head(not out.chunks and not out.trailers)
                    if out.ended:
                        break
            elif t is h1.ProtocolError:
                self._reset(ErrorCodes.INTERNAL_ERROR)
                return
        if self.out.chunks or self.out.end or self.head is not None:
            # sent by flush(): writes of one loop turn share frames, and a head whose end follows
            # in the same turn goes out as one HEADERS frame with END_STREAM (gRPC's trailers-only)
            self.parent.dirty.add(self)
        self._check_pause()
        self.parent.flush_soon()

    def _send_head(self, end: bool) -> None:
        head, self.head = self.head, None
        try:
            if not _send_head(self.parent.h2, self.sid, head, end):
                self.parent.h2.send_headers(self.sid, head, end_stream=end)
        except h2.exceptions.StreamClosedError:
            self.reset_done = True
            return
        if end:
            self.out.ended = True

    def writelines(self, list_of_data: Any) -> None:
        for d in list_of_data:
            self.write(d)

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        if self.reading:
            return
        self.reading = True
        held, self.held = self.held, []
        for i, (data, n) in enumerate(held):
            if self.lost:
                break
            self.protocol.data_received(data)
            self.parent.ack(self.sid, n)
            if not self.reading:  # paused again: keep the rest
                self.held = held[i + 1:] + self.held
                return
        if self.held_end is not None and not self.lost:
            end, self.held_end = self.held_end, None
            self.protocol.data_received(end)
        self.parent.flush_soon()

    def is_reading(self) -> bool:
        return self.reading

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if not self.out.end and not self.reset_done:
            # the connection ends without a complete response (an error, a kill): cancel the stream
            self._reset(ErrorCodes.CANCEL)
        self._lose()

    def abort(self) -> None:
        if not self.out.ended:
            self._reset(ErrorCodes.CANCEL)
        self.closing = True
        self._lose()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    # --- from the h2 connection -----------------------------------------------------------------
    def request_data(self, data: bytes, flow_len: int) -> None:
        if self.lost:
            self.parent.ack(self.sid, flow_len)
            return
        if not self.reading:
            self.held.append((data, flow_len))
            return
        self.protocol.data_received(data)
        self.parent.ack(self.sid, flow_len)

    def request_end(self, data: bytes) -> None:
        if self.lost or not data:
            return
        if not self.reading:
            self.held_end = data
            return
        self.protocol.data_received(data)

    def window_opened(self) -> None:
        if self.out.chunks or (self.out.end and not self.out.ended):
            self.out.push(self.parent.h2, self.sid)
            self._check_pause()

    def peer_reset(self) -> None:
        """The client cancelled the stream: for the flow that is the client going away."""
        self.reset_done = True
        self.closing = True
        self._lose()

    def _check_pause(self) -> None:
        want = self.out.size > HIGH_WATER or self.parent.write_paused
        if want == self.write_paused or self.lost:
            return
        if want:
            self.write_paused = True
            self.protocol.pause_writing()
        elif self.out.size < LOW_WATER or not self.out.chunks:
            self.write_paused = False
            self.protocol.resume_writing()

    def _reset(self, code: ErrorCodes) -> None:
        if self.reset_done or self.out.ended:
            return
        self.reset_done = True
        self.out.chunks.clear()
        self.out.size = 0
        try:
            self.parent.h2.reset_stream(self.sid, code)
        except h2.exceptions.H2Error:
            pass
        self.parent.flush_soon()

    def _lose(self) -> None:
        if self.lost:
            return
        self.lost = True
        for _, n in self.held:  # never handed on: the window is still owed to the client
            self.parent.ack(self.sid, n)
        self.held.clear()
        if self.out.ended or self.reset_done:
            self.parent.forget(self.sid)
        else:
            self.parent.lingering.add(self.sid)  # forgotten by flush() once its response is out
        asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)


class _H2Pump(Endpoint):
    """What both ends of an h2 connection do alike: a full transport pauses every stream."""

    streams: dict
    write_paused: bool
    _flush_pending: bool
    loop: asyncio.AbstractEventLoop  # the proxy's (get_running_loop() costs a getpid() call)

    def flush(self) -> None:
        raise NotImplementedError

    def flush_soon(self) -> None:
        """Write what h2 has queued once per loop turn: many streams' frames in one write."""
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self.flush)

    def eof_received(self) -> bool | None:
        return False

    def pause_writing(self) -> None:
        self.write_paused = True
        for s in list(self.streams.values()):
            s._check_pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        for s in list(self.streams.values()):
            s._check_pause()


class H2ClientConnection(_H2Pump):
    """The client's TLS connection once it negotiated h2: an h2 server whose streams are flows."""

    def __init__(self, proxy: Proxy, origin: ClientConnection) -> None:
        super().__init__()
        self.proxy = proxy
        self.loop = proxy.pool.loop
        self.origin = origin  # the ClientConnection that handled the CONNECT
        self.conn_id = next(_conn_ids)
        self.tunnel = origin.tunnel
        self.client_tls: TLSInfo | None = origin.client_tls
        self.client_addr = origin.client_addr
        self.peer: Peer | None = origin.peer
        self.h2 = h2.connection.H2Connection(_config(False))
        self.streams: dict[int, _StreamTransport] = {}
        self.framing: dict[int, bool] = {}  # stream id -> request body sent chunked
        self.trailers: dict[int, list[tuple[bytes, bytes]]] = {}
        self.write_paused = False
        self._flush_pending = False
        self.goaway = False
        self.dirty: set[_StreamTransport] = set()  # streams with data to send at the next flush
        self.acks: dict[int, int] = {}  # stream id -> bytes handed on, acknowledged at the next flush
        self.ws_enabled = False  # SETTINGS_ENABLE_CONNECT_PROTOCOL=1 sent (h2ws.py)
        self.lingering: set[int] = set()  # streams whose connection is gone, their response not yet out

    def start(self, transport: asyncio.Transport, initial: bytes) -> None:
        self.transport = transport
        self.take_socket(transport)
        _start(self.h2, False)
        from proxycore.proxy.h2ws import advertise

        advertise(self)  # extended CONNECT (WebSocket) only if the origin allows it too
        self._arm_idle()
        self.flush()
        if initial:
            self.data_received(initial)

    def _arm_idle(self) -> None:
        """No stream open: --keepalive-timeout runs, on the sweep's deadline of the CONNECT's connection."""
        o = self.origin
        o.deadline_kind = "h2-idle"
        o.deadline = self.proxy.pool.loop.time() + self.proxy.options.keepalive_timeout

    def idle_timeout(self) -> None:
        """Called (through the CONNECT's connection) when the connection stayed idle too long."""
        if not self.streams and not self.closed:
            self.close()  # GOAWAY, then the TLS connection closes

    # --- asyncio.Protocol ------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        try:
            first, data = self._fast_requests(data) if _FAST else ([], data)
            events = self.h2.receive_data(data) if data else []
        except h2.exceptions.ProtocolError as exc:
            self.proxy.report_error(f"HTTP/2 protocol error from client {self.client_addr}: {exc}")
            self.flush()
            self.abort()
            return
        if first:
            events = first + events
        for ev in events:
            t = type(ev)
            if t is h2.events.DataReceived:
                s = self.streams.get(ev.stream_id)
                data = ev.data
                if s is None:
                    self.ack(ev.stream_id, ev.flow_controlled_length)
                    continue
                if self.framing.get(ev.stream_id) and data:
                    data = b"%x\r\n%b\r\n" % (len(data), data)
                s.request_data(data, ev.flow_controlled_length)
            elif t is h2.events.RequestReceived:
                self._request(ev.stream_id, ev.headers, ev.stream_ended is not None)
            elif t is h2.events.StreamEnded:
                s = self.streams.get(ev.stream_id)
                if s is not None and self.framing.pop(ev.stream_id, False):
                    tr = self.trailers.pop(ev.stream_id, None)
                    s.request_end(b"0\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in tr or ()) + b"\r\n")
                elif s is not None and s.ws:
                    s.client_ended()  # a WebSocket's END_STREAM: its TCP FIN (h2ws.py)
            elif t is h2.events.TrailersReceived:
                self.trailers[ev.stream_id] = list(ev.headers)
            elif t is h2.events.StreamReset:
                s = self.streams.pop(ev.stream_id, None)
                if s is not None:
                    s.peer_reset()
                    if not self.streams:
                        self._arm_idle()
            elif t is h2.events.WindowUpdated:
                self._window_opened(ev.stream_id)
            elif t is h2.events.RemoteSettingsChanged:
                if SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                    self._window_opened(0)
            elif t is h2.events.ConnectionTerminated:
                self.goaway = True
                self.flush()
                self.close()
                return
        self.flush()

    def _fast_requests(self, data: bytes) -> tuple[list[h2.events.Event], bytes]:
        """The leading HEADERS frames that open new streams (all in one frame, no padding) taken
        without h2's frame objects and its walk over every stream per new one: h2's own
        connection and stream logic (stream ids, state machines, header validation) runs on
        each, as in its receive path. Their events, and what is left for h2."""
        conn = self.h2
        buf = conn.incoming_buffer
        if buf._data or buf._headers_buffer or buf._preamble_len:  # h2 is in the middle of something
            return [], data
        events: list[h2.events.Event] = []
        pos, end = 0, len(data)
        limit = conn.max_inbound_frame_size
        while end - pos >= 9:
            length = int.from_bytes(data[pos:pos + 3], "big")
            flags = data[pos + 4]
            if data[pos + 3] != 1 or flags not in (4, 5, 0x24, 0x25) or length > limit or end - pos - 9 < length:
                break
            sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            # fewer streams than our limit known to h2 at all: fewer open (h2 forgets closed ones
            # when it counts, which the frames it handles itself still do)
            if sid in conn.streams or not sid & 1 or sid <= conn.highest_inbound_stream_id \
                    or len(conn.streams) >= MAX_STREAMS:
                break
            block = data[pos + 9:pos + 9 + length]
            if flags & 0x20:  # PRIORITY: 5 bytes before the block (h2 refuses self-dependency)
                if length < 5 or int.from_bytes(block[:4], "big") & 0x7FFFFFFF == sid:
                    break
                block = block[5:]
            pos += 9 + length
            try:
                headers = conn.decoder.decode(block, raw=True)
                conn.state_machine.process_input(h2.connection.ConnectionInputs.RECV_HEADERS)
                stream = conn._begin_new_stream(sid, h2.connection.AllowedStreamIDs.ODD)
                _, evs = stream.receive_headers(headers, flags & 1 == 1, None)
            except h2.exceptions.ProtocolError as exc:
                conn._terminate_connection(exc.error_code)  # GOAWAY, as h2's receive_data does
                raise
            except (HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
                conn._terminate_connection(ErrorCodes.COMPRESSION_ERROR)
                raise h2.exceptions.ProtocolError(f"cannot decode a header block: {exc}") from exc
            events += evs
        return events, (data[pos:] if pos else data)

    def _window_opened(self, sid: int) -> None:
        if sid:
            s = self.streams.get(sid)
            if s is not None:
                s.window_opened()
            return
        for s in list(self.streams.values()):
            s.window_opened()

    def _request(self, sid: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        method = path = authority = b""
        fields: list[tuple[bytes, bytes]] = []
        cookies: list[bytes] = []
        has_length = has_host = False
        for k, v in headers:
            if k[:1] == b":":
                if k == b":method":
                    method = v
                elif k == b":path":
                    path = v
                elif k == b":authority":
                    authority = v
                continue
            if k == b"cookie":
                cookies.append(v)  # h2 may split cookies; HTTP/1.1 wants one field (RFC 9113 8.2.3)
                continue
            if k == b"content-length":
                has_length = True
            elif k == b"host":
                has_host = True
            fields.append((k, v))
        if cookies:
            fields.append((b"cookie", b"; ".join(cookies)))
        if authority and not has_host:
            fields.insert(0, (b"host", authority))
        if method == b"CONNECT" or not path:
            if method == b"CONNECT" and self.ws_enabled:
                from proxycore.proxy.h2ws import extended_connect  # WebSocket over h2 (RFC 8441)

                if extended_connect(self, sid, headers, ended):
                    return
            # any other CONNECT is not spoken here: refused on this stream only
            self.h2.send_headers(sid, [(b":status", b"501"), (b"content-length", b"0")], end_stream=True)
            self.flush_soon()
            return
        chunked = False
        if ended:
            if not has_length and method in (b"POST", b"PUT", b"PATCH"):
                fields.append((b"content-length", b"0"))
        elif not has_length:
            fields.append((b"transfer-encoding", b"chunked"))
            chunked = True
        head = b"%s %s HTTP/1.1\r\n%b\r\n" % (method, path, b"".join(k + b": " + v + b"\r\n" for k, v in fields))
        conn = H2StreamConnection(self.proxy, self, sid)
        transport = _StreamTransport(self, sid, conn, method.decode("latin-1"))
        self.streams[sid] = transport
        self.origin.deadline = 0.0  # busy: no idle timeout
        if chunked:
            self.framing[sid] = True
        conn.connection_made(transport)
        conn.data_received(head)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.connections.discard(self.origin)  # type: ignore[arg-type]
        self.origin.closed = True
        for s in list(self.streams.values()):
            s.peer_reset()
        self.streams.clear()
        peer = self.peer
        if peer is not None:
            peer.closed = time.time()
            fire_hook(self.proxy.addons.client_disconnected, peer)

    # --- for the streams ---------------------------------------------------------------------------
    def ack(self, sid: int, n: int) -> None:
        if n:
            self.acks[sid] = self.acks.get(sid, 0) + n

    def forget(self, sid: int) -> None:
        s = self.streams.get(sid)
        if s is not None and s.lost:
            del self.streams[sid]
            self.framing.pop(sid, None)
            self.trailers.pop(sid, None)
            if not self.streams:
                self._arm_idle()

    def flush(self) -> None:
        self._flush_pending = False
        if self.closed:
            return
        conn = self.h2
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for s in dirty:
                if s.head is not None and not s.reset_done:
                    out = s.out
                    s._send_head(out.end and not out.chunks and not out.trailers)
                if not s.reset_done and not s.out.ended:
                    s.out.push(conn, s.sid)
                    s._check_pause()
        if self.acks:
            _acknowledge(conn, self.acks)
        data = conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)
        if self.lingering:  # streams whose connection is gone: forgotten once their response went out
            streams = self.streams
            for sid in [sid for sid in self.lingering if (s := streams.get(sid)) is None or s.out.ended or s.reset_done]:
                self.lingering.discard(sid)
                self.forget(sid)

    def close(self) -> None:
        if not self.closed and not self.goaway:
            try:
                self.h2.close_connection()
                self.flush()
            except h2.exceptions.H2Error:
                pass
        super().close()


# ------------------------------------------------------------------------------------ origin side

class _StreamSink:
    """`H2OriginStream.transport`: where the flow driver's (or a throttling shaper's) writes of
    HTTP/1.1 request bytes go."""

    __slots__ = ("stream",)

    def __init__(self, stream: H2OriginStream) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.feed(data)

    def get_write_buffer_size(self) -> int:
        return self.stream.out.size

    def is_closing(self) -> bool:
        return self.stream.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class H2OriginStream:
    """One request on an h2 origin connection, in the role of an UpstreamConnection for
    `ClientConnection._forward` (the same methods, the same ResponseHandler calls)."""

    request_head = UpstreamConnection.request_head  # HTTP/1.1 bytes, decoded again by feed()

    def __init__(self, origin: H2OriginConnection) -> None:
        self.origin = origin
        self.pool = origin.pool
        self.key = origin.key
        self.codec = h1.H1Client(origin.pool.max_head_size)  # serialises the request for feed()
        self.decoder = h1.H1Server(origin.pool.max_head_size)
        self.transport = _StreamSink(self)
        self.handler: ResponseHandler | None = None
        self.tls = origin.tls
        self.server_addr = origin.server_addr
        self.sid = 0  # allocated when the request head goes out
        self.got_bytes = False
        self.closed = False
        self.finished = False
        self.out = _Outbox()
        self.head: list[tuple[bytes, bytes]] | None = None
        self.reading = True
        self.unacked = 0
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.method = "GET"
        self.deadline = 0.0
        self.deadline_kind = ""
        self.shaper: Any = None
        self.sock = None
        self.write_paused = False
        self.responded = False

    # --- what _forward calls --------------------------------------------------------------------
    def start_exchange(self, handler: ResponseHandler, method: str) -> None:
        self.handler = handler
        self.method = method
        self.pool.active.add(self)  # type: ignore[arg-type]

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def send_data(self, data: bytes) -> None:
        self.write(self.codec.data(data))

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        self.write(self.codec.end(trailers))

    def arm_response_timeout(self) -> None:
        if not self.responded and self.handler is not None:
            self.deadline_kind = "response"
            self.deadline = self.pool.loop.time() + self.pool.response_timeout

    def on_timeout(self) -> None:
        kind, self.deadline = self.deadline_kind, 0.0
        if self.handler is None or self.closed:
            return
        if kind == "response":
            self._fail(f"the origin sent no response within {self.pool.response_timeout:g} s", 504)
        else:
            self._fail(f"the origin sent no body bytes for {self.pool.body_idle_timeout:g} s", 504)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        if not self.reading:
            self.reading = True
            n, self.unacked = self.unacked, 0
            self.origin.ack(self.sid, n)

    def pause_writing(self) -> None:  # a throttling shaper's back-pressure (as UpstreamConnection's)
        if self.handler is not None:
            self.handler.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.upstream_resume_writing()

    def release(self) -> None:
        self.handler = None
        self.deadline = 0.0
        self.pool.active.discard(self)  # type: ignore[arg-type]
        self._done()

    def close(self) -> None:
        if not self.finished:
            self.origin.reset(self.sid, ErrorCodes.CANCEL)
        self.closed = True
        self.handler = None
        self.pool.active.discard(self)  # type: ignore[arg-type]
        self._done()

    abort = close

    def reset(self) -> None:
        self.close()

    # --- request bytes from the driver -------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        origin = self.origin
        for ev in self.decoder.receive_data(bytes(data)):
            t = type(ev)
            if t is h1.RequestHead:
                self.head = self._request_fields(ev)  # type: ignore[arg-type]
            elif t is h1.Data:
                if self.head is not None:
                    self._send_head(False)
                self.out.add(ev.data)  # type: ignore[attr-defined]
            elif t is h1.EndOfMessage:
                tr = ev.trailers  # type: ignore[attr-defined]
                self.out.trailers = [(k.lower(), v) for k, v in tr] if tr else None
                self.out.end = True
                if self.head is not None:
                    self._send_head(not self.out.chunks and not self.out.trailers)
            elif t is h1.ProtocolError:
                self._fail(f"cannot send the request over HTTP/2: {ev.message}")  # type: ignore[attr-defined]
                return
        if self.head is not None:
            self._send_head(False)
        if self.sid and not self.closed and (self.out.chunks or self.out.end):
            origin.dirty.add(self)
            self._check_pause()
        origin.flush_soon()

    def _request_fields(self, ev: h1.RequestHead) -> list[tuple[bytes, bytes]]:
        authority = b""
        for k, v in ev.headers:
            if len(k) == 4 and k.lower() == b"host":
                authority = v
                break
        if not authority:
            host, port = self.key[1], self.key[2]
            authority = (f"[{host}]" if ":" in host else host).encode() + (b"" if port == 443 else b":%d" % port)
        return [(b":method", ev.method.encode("ascii")), (b":scheme", b"https"), (b":authority", authority),
                (b":path", ev.target.encode("latin-1"))] + _h2_fields(ev.headers, True)

    def _send_head(self, end: bool) -> None:
        head, self.head = self.head, None
        try:
            self.sid = self.origin.open(self, head, end)  # type: ignore[arg-type]
        except h2.exceptions.H2Error as exc:
            self._fail(f"cannot open an HTTP/2 stream to the origin: {exc}")
            return
        if end:
            self.out.ended = True

    def _check_pause(self) -> None:
        want = self.out.size > HIGH_WATER or self.origin.write_paused
        h = self.handler
        if want == self.write_paused or h is None:
            return
        if want:
            self.write_paused = True
            h.upstream_pause_writing()
        elif self.out.size < LOW_WATER:
            self.write_paused = False
            h.upstream_resume_writing()

    def window_opened(self) -> None:
        if self.sid and (self.out.chunks or (self.out.end and not self.out.ended)):
            self.out.push(self.origin.h2, self.sid)
            self._check_pause()

    # --- response events from the origin -----------------------------------------------------------
    def on_headers(self, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        self.got_bytes = True
        status = 0
        fields: list[tuple[bytes, bytes]] = []
        length = None
        for k, v in headers:
            if k == b":status":
                status = int(v) if v.isdigit() and len(v) == 3 else 0
            elif k[:1] != b":":
                if k == b"content-length":
                    length = int(v) if v.isdigit() else None
                fields.append((k, v))
        h = self.handler
        if h is None:
            return
        if status < 100:
            self._fail("malformed HTTP/2 response from the origin: no valid :status")
            return
        if status < 200:
            h.response_head(h1.ResponseHead(status, b"", "2.0", fields, h1.NONE, None, True))
            return
        self.responded = True
        self.deadline = 0.0
        no_body = self.method == "HEAD" or status in (204, 304)
        if no_body:
            framing = h1.NONE
        elif length is not None:
            framing = h1.LENGTH
        else:
            # an HTTP/1.1 client needs framing h2 does not have: chunked (trailers fit there too)
            framing = h1.CHUNKED
            fields.append((b"transfer-encoding", b"chunked"))
        h.response_head(h1.ResponseHead(status, _reason(status), "2.0", fields, framing, length, True))
        if ended:
            self.on_end()

    def on_data(self, data: bytes, flow_len: int) -> None:
        self.got_bytes = True
        if self.reading:
            self.origin.ack(self.sid, flow_len)
        else:
            self.unacked += flow_len
        h = self.handler
        if h is not None and data:
            self._body_progress()
            h.response_body(data)

    def _body_progress(self) -> None:
        """Body bytes came: the body idle timeout starts again."""
        if self.pool.body_idle_timeout:
            self.deadline_kind = "body"
            self.deadline = self.pool.loop.time() + self.pool.body_idle_timeout

    def on_end(self) -> None:
        self.finished = True
        self.deadline = 0.0
        h, self.handler = self.handler, None
        if h is not None:
            h.response_complete(True, self.trailers)

    def on_reset(self, message: str) -> None:
        self.finished = True
        self._fail(message)

    def _fail(self, message: str, status: int = 502) -> None:
        self.deadline = 0.0
        h, self.handler = self.handler, None
        if not self.finished and self.sid:
            self.origin.reset(self.sid, ErrorCodes.CANCEL)
        self.finished = True
        self.closed = True
        self.pool.active.discard(self)  # type: ignore[arg-type]
        self._done()
        if h is not None:
            h.response_failed(message, status)

    def _done(self) -> None:
        if self.unacked:
            n, self.unacked = self.unacked, 0
            self.origin.ack(self.sid, n)
        self.origin.stream_done(self)


def _reason(status: int) -> bytes:
    from http import HTTPStatus
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class H2OriginConnection(_H2Pump):
    """An h2 connection to an origin, shared by the flows (one stream each) of any client."""

    def __init__(self, pool: Pool, key: tuple, tls: TLSInfo | None, server_addr: tuple[str, int] | None) -> None:
        super().__init__()
        self.pool = pool
        self.key = key
        self.tls = tls
        self.server_addr = server_addr
        self.h2 = h2.connection.H2Connection(_config(True))
        self.loop = pool.loop
        self.streams: dict[int, H2OriginStream] = {}
        self.pending = 0  # streams handed out whose head is not sent yet
        self.usable = True
        self.write_paused = False
        self._flush_pending = False
        self.dirty: set[H2OriginStream] = set()  # streams with request data to send at the next flush
        self._fast = _FAST  # DATA frames parsed by _fast_data
        self._rest = b""  # the start of a DATA frame _fast_data waits to complete
        self.acks: dict[int, int] = {}  # stream id -> response bytes handed on, not yet acknowledged
        self.opened = 0  # streams opened by _send_head

    def start(self, transport: asyncio.Transport, initial: bytes) -> None:
        self.transport = transport
        _start(self.h2, True)
        self.flush()
        if initial:
            self.data_received(initial)

    def new_stream(self) -> H2OriginStream | None:
        """A stream for one more request, or None when the connection is full or closing."""
        if not self.usable or self.closed:
            return None
        # our own count: h2's open_outbound_streams walks every stream it still remembers
        if len(self.streams) + self.pending >= min(self.h2.remote_settings.max_concurrent_streams, 1000):
            return None
        self.pending += 1
        return H2OriginStream(self)

    def open(self, stream: H2OriginStream, headers: list[tuple[bytes, bytes]], end: bool) -> int:
        conn = self.h2
        sid = conn.get_next_available_stream_id()
        # new_stream() kept us within the peer's concurrent-stream limit, which is the check
        # (a walk over every stream) h2's send_headers would make
        if _send_head(conn, sid, headers, end, headers[0][1], headers[2][1]):
            self.opened += 1
            if self.opened % _SWEEP_EVERY == 0:
                conn._open_streams(1)  # h2 forgets its closed streams there
        else:
            conn.send_headers(sid, headers, end_stream=end)
        self.pending -= 1
        self.streams[sid] = stream
        self.flush_soon()
        return sid

    def stream_done(self, stream: H2OriginStream) -> None:
        if stream.sid:
            if self.streams.get(stream.sid) is stream:
                del self.streams[stream.sid]
        elif self.pending > 0 and not getattr(stream, "_counted", False):
            stream._counted = True  # type: ignore[attr-defined]
            self.pending -= 1

    def reset(self, sid: int, code: ErrorCodes) -> None:
        if sid and not self.closed:
            try:
                self.h2.reset_stream(sid, code)
            except h2.exceptions.H2Error:
                pass
            self.flush_soon()

    def ack(self, sid: int, n: int) -> None:
        if n:
            self.acks[sid] = self.acks.get(sid, 0) + n
            self.flush_soon()

    def data_received(self, data: bytes) -> None:
        if self._fast:
            data = self._fast_data(data)
            if not data:
                self.flush()
                return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(exc)
            return
        self._events(events)
        self.flush()

    def _protocol_error(self, exc: Exception) -> None:
        self._lost(f"HTTP/2 protocol error from the origin: {exc}")
        self.flush()
        self.abort()

    def _events(self, events: list[h2.events.Event]) -> None:
        for ev in events:
            t = type(ev)
            if t is h2.events.DataReceived:
                s = self.streams.get(ev.stream_id)
                if s is None:
                    self.ack(ev.stream_id, ev.flow_controlled_length)
                else:
                    s.on_data(ev.data, ev.flow_controlled_length)
            elif t is h2.events.ResponseReceived or t is h2.events.InformationalResponseReceived:
                s = self.streams.get(ev.stream_id)
                if s is not None:
                    s.on_headers(ev.headers, ev.stream_ended is not None)
            elif t is h2.events.TrailersReceived:
                s = self.streams.get(ev.stream_id)
                if s is not None:
                    s.trailers = list(ev.headers)
            elif t is h2.events.StreamEnded:
                s = self.streams.pop(ev.stream_id, None)
                if s is not None and not s.finished:
                    s.on_end()
            elif t is h2.events.StreamReset:
                s = self.streams.pop(ev.stream_id, None)
                if s is not None and not s.finished:
                    s.on_reset(f"the origin reset the HTTP/2 stream ({_code(ev.error_code)})")
            elif t is h2.events.PushedStreamReceived:
                # we said ENABLE_PUSH=0; a server that pushes anyway gets its stream refused
                self.h2.reset_stream(ev.pushed_stream_id, ErrorCodes.REFUSED_STREAM)
            elif t is h2.events.WindowUpdated:
                if ev.stream_id:
                    s = self.streams.get(ev.stream_id)
                    if s is not None:
                        s.window_opened()
                else:
                    for s in list(self.streams.values()):
                        s.window_opened()
            elif t is h2.events.RemoteSettingsChanged:
                if SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                    for s in list(self.streams.values()):
                        s.window_opened()
                if SettingCodes.ENABLE_CONNECT_PROTOCOL in ev.changed_settings:
                    from proxycore.proxy.h2ws import origin_settings

                    origin_settings(self, ev.changed_settings)  # clients waiting to hear of it
            elif t is h2.events.ConnectionTerminated:
                self.usable = False
                self._drop_from_pool()
                last = ev.last_stream_id or 0
                for sid, s in list(self.streams.items()):
                    if sid > last:  # never processed: the origin says so
                        self.streams.pop(sid, None)
                        s.on_reset("the origin closed the HTTP/2 connection (GOAWAY) before this request")

    def _fast_data(self, data: bytes) -> bytes:
        """A response body's DATA frames (no padding, no END_STREAM, on a stream of ours) are
        taken here instead of by h2, which spends most of a download's time per frame; the flow
        control and content-length accounting h2 does for them is done on its own objects. The
        first other frame, and all that follows it, goes to h2 (returned); so does everything
        while h2 holds part of a frame. A partial DATA frame at the end waits in `_rest`."""
        conn = self.h2
        buf = conn.incoming_buffer
        if buf._data or buf._headers_buffer:  # h2 is in the middle of a frame: it goes on
            return data
        if self._rest:
            data = self._rest + data
            self._rest = b""
        pos, end = 0, len(data)
        streams = self.streams
        limit = conn.max_inbound_frame_size
        try:
            while end - pos >= 9:
                length = int.from_bytes(data[pos:pos + 3], "big")
                kind, flags = data[pos + 3], data[pos + 4]
                if length > limit or kind > 1 or flags not in ((0, 1) if kind == 0 else (4, 5)):
                    break  # not DATA or HEADERS, or flags (padding, priority, CONTINUATION to come): h2's
                sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
                s = streams.get(sid)
                if s is None or s.finished:
                    break
                if end - pos - 9 < length:
                    self._rest = data[pos:]  # the rest of this frame is still to come
                    return b""
                if kind == 1 or flags:  # HEADERS, or the body's last DATA frame (END_STREAM)
                    stream = conn.streams.get(sid)
                    if stream is None or stream.state_machine.state not in _RECEIVING:
                        break
                    payload = data[pos + 9:pos + 9 + length]
                    pos += 9 + length
                    if not self._fast_frame(stream, kind, payload, flags & 1 == 1):
                        return b""  # the connection failed
                    continue
                payload = data[pos + 9:pos + 9 + length]
                conn._inbound_flow_control_window_manager.window_consumed(length)
                stream = conn.streams[sid]
                stream._inbound_window_manager.window_consumed(length)
                stream._track_content_length(length, False)
                pos += 9 + length
                s.on_data(payload, length)
        except (h2.exceptions.H2Error, KeyError, AttributeError):
            self._fast = False  # a violation (or an h2 without these internals): h2 decides
        return data[pos:] if pos else data

    def _fast_frame(self, stream: h2.stream.H2Stream, kind: int, payload: bytes, end: bool) -> bool:
        """A response's HEADERS frame (all in one frame, no padding or priority) or a DATA frame
        ending the stream, taken without h2's frame objects: h2's own connection and stream logic
        (state machines, informational heads, trailers, flow control, Content-Length) runs on it
        as in h2's receive path, and its events are handled as h2's are. False when that failed
        the connection."""
        conn = self.h2
        try:
            if kind == 1:
                headers = conn.decoder.decode(payload, raw=True)
                conn.state_machine.process_input(h2.connection.ConnectionInputs.RECV_HEADERS)
                _, events = stream.receive_headers(headers, end, None)
            else:
                conn.state_machine.process_input(h2.connection.ConnectionInputs.RECV_DATA)
                conn._inbound_flow_control_window_manager.window_consumed(len(payload))
                _, events = stream.receive_data(payload, end, len(payload))
        except (h2.exceptions.H2Error, HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            # h2 would end the connection too: the header table can no longer be trusted
            self._protocol_error(exc)
            return False
        self._events(events)
        return not self.closed

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._drop_from_pool()
        self._lost("upstream closed the connection mid-response")

    def _lost(self, message: str) -> None:
        self.usable = False
        for s in list(self.streams.values()):
            if not s.finished:
                s.on_reset(message if s.got_bytes else "upstream closed the connection before responding")
        self.streams.clear()

    def _drop_from_pool(self) -> None:
        lst = self.pool.h2.get(self.key)
        if lst and self in lst:
            lst.remove(self)

    def flush(self) -> None:
        self._flush_pending = False
        if self.closed:
            return
        conn = self.h2
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for s in dirty:
                if not s.closed and s.sid:
                    s.out.push(conn, s.sid)
                    s._check_pause()
        if self.acks:
            _acknowledge(conn, self.acks)
        data = conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        self.usable = False
        self._drop_from_pool()
        if not self.closed:
            try:
                self.h2.close_connection()
                self.flush()
            except h2.exceptions.H2Error:
                pass
        super().close()


def _code(code: Any) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return str(code)


class Buffering(asyncio.Protocol):
    """Holds what arrives during a TLS handshake until the protocol that speaks the negotiated
    ALPN takes over (an h2 peer sends its SETTINGS at once)."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def write(self, data: bytes) -> None:  # as a ClientConnection.relay_to during the handshake
        self.data.append(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.data = b"".join(self.data), []
        return data
