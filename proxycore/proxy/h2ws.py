"""WebSocket over HTTP/2 (RFC 8441): an extended CONNECT stream captured like an HTTP/1.1 upgrade.

An h2 client may open a WebSocket on a stream (`:method CONNECT`, `:protocol websocket`) once the
server said SETTINGS_ENABLE_CONNECT_PROTOCOL=1. The proxy says so to a client only when the h2
origin connection of that tunnel said so to the proxy (`advertise`, `origin_settings`): then the
stream can go on to the origin the same way.

The stream is handed to the one flow driver as the equivalent HTTP/1.1 upgrade request (`GET`,
`Connection: Upgrade`, `Upgrade: websocket`, a `Sec-WebSocket-Key` of the proxy's), like every h2
stream is fed as HTTP/1.1 bytes (http2.py). So the hooks, the 101 detection, `WebSocketRelay`
(flow.websocket, per-message hooks and breakpoints, inject) run unchanged; the flow says HTTP/2.0.

- Origin side: `WsStreamConnection._take` picks a stream on a pooled h2 origin connection that
  allows extended CONNECT (`WsOriginStream`: the upgrade request goes out as an extended CONNECT,
  a 2xx answer is reported to the driver as `101 Switching Protocols`, with the
  `Sec-WebSocket-Accept` the key calls for, then the stream's DATA are the WebSocket bytes). With
  no such connection (it went away, or an addon sent the request elsewhere) the request goes as
  a real HTTP/1.1 upgrade on an HTTP/1.1 connection (the flows of this stream never dial h2).
- Client side: `_WsStreamTransport` turns the driver's `101` into `:status 200` (RFC 8441 5) and
  then carries the relay's bytes as DATA; a clean end of the relay is END_STREAM, an abort a
  RST_STREAM (CANCEL).

WebSocket frames are the same bytes on an h2 stream as on a TCP connection (RFC 8441 5), so the
relay's wsproto connections (frame level, no handshake) parse them as they are.
"""

from __future__ import annotations

import base64
import os
import weakref
from typing import TYPE_CHECKING, Any

import h2.exceptions
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from wsproto import ConnectionState
from wsproto.utilities import generate_accept_token

from proxycore.layers import http1 as h1
from proxycore.proxy.http2 import H2OriginStream, H2StreamConnection, _h2_fields, _StreamTransport

if TYPE_CHECKING:
    from proxycore.proxy.http2 import H2ClientConnection, H2OriginConnection

_WS_HEAD_LIMIT = 64 * 1024  # a 101 head split over writes (a throttled client side) is joined up to this


def _connect_ok(origin: H2OriginConnection) -> bool:
    return bool(origin.h2.remote_settings.enable_connect_protocol) and origin.usable and not origin.closed


# ------------------------------------------------------------------------------ the setting

def advertise(conn: H2ClientConnection) -> None:
    """Called as an h2 client connection starts: say ENABLE_CONNECT_PROTOCOL=1 if the tunnel's
    h2 origin connection said it; else watch that connection's SETTINGS (they may still come)."""
    if conn.tunnel is None:
        return
    origins = conn.proxy.pool.h2.get(("https", *conn.tunnel)) or ()
    for origin in origins:
        if _connect_ok(origin):
            _enable(conn)
            return
    for origin in origins:
        watchers = getattr(origin, "ws_watchers", None)
        if watchers is None:
            watchers = origin.ws_watchers = weakref.WeakSet()  # type: ignore[attr-defined]
        watchers.add(conn)


def origin_settings(origin: H2OriginConnection, changed: Any) -> None:
    """The origin's SETTINGS changed: once it allows extended CONNECT, tell the waiting clients."""
    if SettingCodes.ENABLE_CONNECT_PROTOCOL not in changed or not _connect_ok(origin):
        return
    watchers = getattr(origin, "ws_watchers", None)
    if watchers:
        for conn in list(watchers):
            _enable(conn)
        watchers.clear()


def _enable(conn: H2ClientConnection) -> None:
    if conn.ws_enabled or conn.closed:
        return
    conn.ws_enabled = True
    try:
        # a later SETTINGS frame may turn it on (RFC 8441 3: only 1 -> 0 is forbidden)
        conn.h2.update_settings({SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
    except h2.exceptions.H2Error:
        return
    conn.flush_soon()


# ------------------------------------------------------------------------------ client side

def extended_connect(conn: H2ClientConnection, sid: int, headers: list[tuple[bytes, bytes]], ended: bool) -> bool:
    """A CONNECT on a client stream: True when it is a WebSocket this proxy takes (the stream
    now has its flow), False to refuse it as before (501)."""
    if not conn.ws_enabled or ended:
        return False
    pseudo: dict[bytes, bytes] = {}
    fields: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    for k, v in headers:
        if k[:1] == b":":
            pseudo[k] = v
        elif k == b"cookie":
            cookies.append(v)
        elif k not in (b"host", b"sec-websocket-key", b"connection", b"upgrade"):
            fields.append((k, v))
    if pseudo.get(b":protocol", b"").lower() != b"websocket" or not pseudo.get(b":path"):
        return False
    if cookies:
        fields.append((b"cookie", b"; ".join(cookies)))
    authority = pseudo.get(b":authority") or b""
    if not authority and conn.tunnel is not None:
        host, port = conn.tunnel
        authority = f"{host}:{port}".encode()
    key = base64.b64encode(os.urandom(16))  # the HTTP/1.1 handshake's; an h2 origin never sees it
    head = (b"GET %s HTTP/1.1\r\nhost: %s\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
            b"sec-websocket-key: %s\r\n%b\r\n") % (
        pseudo[b":path"], authority, key, b"".join(k + b": " + v + b"\r\n" for k, v in fields))
    stream = WsStreamConnection(conn.proxy, conn, sid)
    transport = _WsStreamTransport(conn, sid, stream, "GET")
    conn.streams[sid] = transport
    stream.connection_made(transport)
    stream.data_received(head)
    return True


class WsStreamConnection(H2StreamConnection):
    """The in-memory client connection of an extended CONNECT stream."""

    h2_upstream = False  # a new dial is HTTP/1.1: an h2 origin may not allow extended CONNECT

    def _take(self, key: tuple) -> Any:
        pool = self.proxy.pool
        for origin in pool.h2.get(key) or ():
            if _connect_ok(origin) and origin.new_stream() is not None:  # counts the stream as pending
                return WsOriginStream(origin)
        return pool.take(key)


class _WsStreamTransport(_StreamTransport):
    """The stream's transport: the driver's 101 becomes `:status 200`, then bytes go as DATA."""

    ws = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ws_open = False
        self.head_buf = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing or self.reset_done:
            return
        if self.ws_open:
            if data:
                out = self.out
                out.chunks.append(bytes(data))
                out.size += len(data)
                self.parent.dirty.add(self)
                self._check_pause()
                self.parent.flush_soon()
            return
        buf = self.head_buf + bytes(data)
        if len(buf) < 12 and b"HTTP/".startswith(buf[:5]) and not self.parser.in_message:
            self.head_buf = buf  # too little to tell whether it is the 101 (a throttled write)
            return
        if buf[:5] != b"HTTP/" or buf[9:12] != b"101" or self.parser.in_message:
            self.head_buf = b""
            super().write(buf)  # not switching (an error answer): an ordinary h2 response
            return
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _WS_HEAD_LIMIT:
                self._reset(ErrorCodes.INTERNAL_ERROR)
            else:
                self.head_buf = buf
            return
        self.head_buf = b""
        fields = []
        for line in buf[:end].split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            fields.append((k.strip().lower(), v.strip()))
        fields = [f for f in _h2_fields(fields, False) if f[0] != b"sec-websocket-accept"]
        try:
            self.parent.h2.send_headers(self.sid, [(b":status", b"200")] + fields)
        except h2.exceptions.H2Error:
            self.reset_done = True
            return
        self.ws_open = True
        self.parent.flush_soon()
        if end + 4 < len(buf):
            self.write(buf[end + 4:])

    def client_ended(self) -> None:
        """The client's END_STREAM: for the relay, the client connection is gone (as a FIN is)."""
        if self.ws_open and not self.closing and self.protocol.relay_to is not None:
            self.close()  # our END_STREAM after what is queued; the relay hears the client is gone

    def close(self) -> None:
        if not self.ws_open or self.closing:
            super().close()
            return
        # the relay ended cleanly: what is queued, then END_STREAM (RFC 8441 5: TCP FIN's place)
        self.closing = True
        if not self.out.end and not self.reset_done:
            self.out.end = True
            self.parent.dirty.add(self)
            self.parent.flush_soon()
        self._lose()


# ------------------------------------------------------------------------------ origin side

class WsOriginStream(H2OriginStream):
    """An extended CONNECT on an h2 origin connection, in the role of the upgraded connection."""

    def __init__(self, origin: H2OriginConnection) -> None:
        super().__init__(origin)
        self.ws_key = b""
        self.ws_sent = False  # the CONNECT went out: what follows is WebSocket bytes
        self.ws_open = False  # the origin accepted (2xx)
        self.head_buf = b""

    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        origin = self.origin
        if self.ws_sent:
            if data and self.sid:
                self.out.chunks.append(bytes(data))
                self.out.size += len(data)
                origin.dirty.add(self)
                self._check_pause()
                origin.flush_soon()
            return
        buf = self.head_buf + bytes(data)
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.head_buf = buf
            return
        self.head_buf = b""
        head = None
        for ev in self.decoder.receive_data(buf[:end + 4]):
            if type(ev) is h1.RequestHead:
                head = ev
            elif type(ev) is h1.ProtocolError:
                self._fail(f"cannot send the request over HTTP/2: {ev.message}")  # type: ignore[attr-defined]
                return
        if head is None:
            self._fail("cannot send the request over HTTP/2: no request head")
            return
        fields = self._request_fields(head)  # type: ignore[arg-type]
        for k, v in head.headers:  # type: ignore[attr-defined]
            if k.lower() == b"sec-websocket-key":
                self.ws_key = v.strip()
        out = [(b":method", b"CONNECT"), (b":protocol", b"websocket")]
        out += [f for f in fields[1:] if f[0] != b"sec-websocket-key"]
        try:
            self.sid = origin.open(self, out, False)
        except h2.exceptions.H2Error as exc:
            self._fail(f"cannot open an HTTP/2 stream to the origin: {exc}")
            return
        self.ws_sent = True
        if end + 4 < len(buf):
            self.feed(buf[end + 4:])

    def on_headers(self, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        status = next((v for k, v in headers if k == b":status"), b"")
        if not (status[:1] == b"2" and len(status) == 3) or self.ws_open:
            super().on_headers(headers, ended)  # refused (or interim): an ordinary response
            return
        self.got_bytes = self.responded = True
        self.deadline = 0.0
        self.ws_open = True
        fields = [(k, v) for k, v in headers if k[:1] != b":" and k != b"content-length"]
        fields += [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")]
        if self.ws_key:
            fields.append((b"sec-websocket-accept", generate_accept_token(self.ws_key)))
        h = self.handler
        if h is None:
            return
        h.response_head(h1.ResponseHead(101, b"Switching Protocols", "2.0", fields, h1.NONE, None, False))
        # as UpstreamConnection does after a 101: the exchange is complete, the handler stays (the
        # relay takes it over). A turn later: async responseheaders hooks may be starting.
        self.pool.loop.call_soon(self._switched, h, ended)

    def _switched(self, h: Any, ended: bool) -> None:
        if self.handler is h and not self.closed:
            h.response_complete(False, None)
        if ended and not self.finished:
            self.on_end()

    def _body_progress(self) -> None:
        if not self.ws_open:  # no body idle timeout once open: a WebSocket may be quiet for long
            super()._body_progress()

    def close(self) -> None:
        if self.ws_sent and self.sid and not self.finished and not self.closed and self._close_sent():
            # a clean end of the relay: END_STREAM after what is queued, not a reset
            self.out.end = True
            self.out.push(self.origin.h2, self.sid)
            self.origin.flush_soon()
            self.finished = self.out.ended  # else (no window left) the reset below ends it
        super().close()

    def abort(self) -> None:
        H2OriginStream.close(self)

    def _close_sent(self) -> bool:
        """Whether the relay sent the origin a close frame. If not (the client vanished: 1006),
        the stream is reset, as closing a TCP connection ends it for both directions; an
        END_STREAM alone would leave the origin's socket open (hypercorn waits on)."""
        relay = getattr(self.handler, "relay", None)
        if relay is None:
            return False
        return relay.lanes[1].ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING)


__all__ = ["WsOriginStream", "WsStreamConnection", "advertise", "extended_connect", "origin_settings"]
