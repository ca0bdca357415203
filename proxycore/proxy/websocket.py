"""WebSocket relaying: after a 101 to WebSocket, both sides are spoken to through wsproto.

Like mitmproxy, the proxy is the server to the client and the client to the origin
(`wsproto.Connection` in each role), so every message is a unit: it is recorded in
`flow.websocket`, handed to the `websocket_message` hooks (which may change or drop it, or pause
it: a breakpoint), then sent on, re-framed as it came (mitmproxy's Fragmentizer rule: the original
frame sizes when the length did not change, else ~4 kB frames). Pings and pongs are relayed as
they come; a close frame is recorded (who closed, code, reason) and answered on both sides.

Extensions: only permessage-deflate exists in wsproto; as mitmproxy does, it is set up on both
sides with the parameters of the origin's 101 answer (the client and the origin agreed on them),
and any other extension is ignored (reported once). Messages are recorded decompressed.

Order: each direction is a lane; a message whose hooks must be awaited holds its lane (the
messages behind it wait, in order; reading from that side pauses past `_LANE_LIMIT`). Async hooks
see one message at a time (a lock shared by both lanes), so a message paused at a breakpoint holds
this socket's messages both ways (pings and the close still pass), as mitmproxy pauses the flow. Writes go through the connections' `write`, so throttling applies.

The flow store hears of new messages through one coalesced "update" per `_PUBLISH_DELAY`, so a
chatty socket costs the UI a few refreshes a second, not one per message.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import wsproto
import wsproto.events as wse
import wsproto.extensions
import wsproto.utilities
from wsproto import ConnectionState, ConnectionType

from proxycore.addons.hooks import fire_hook
from proxycore.flows.websocket import BINARY, TEXT, WebSocketData, WebSocketMessage
from proxycore.proxy.tcprelay import CoalescedUpdates

if TYPE_CHECKING:
    from proxycore.flows.flow import Flow
    from proxycore.proxy.http1 import ClientConnection, Exchange
    from proxycore.proxy.upstream import UpstreamConnection

_FRAGMENT_SIZE = 4000  # frames of a changed message (a bit under 4 kB: some servers refuse bigger)
_PUBLISH_DELAY = 0.1  # seconds: at most ~10 store updates a second per socket
_LANE_LIMIT = 256  # queued events in one lane before reading from that side pauses


def fragments(sizes: list[int], content: bytes, is_text: bool) -> Iterator[wse.Message]:
    """The frames to send `content` in: the original frame sizes when its length did not change,
    else ~4 kB pieces (mitmproxy's Fragmentizer)."""
    def msg(data: bytes, last: bool) -> wse.Message:
        if is_text:
            return wse.TextMessage(data.decode("utf-8", "replace"), message_finished=last)
        return wse.BytesMessage(data, message_finished=last)

    if not content:
        yield msg(content, True)
        return
    if len(content) == sum(sizes):
        offset = 0
        for n in sizes[:-1]:
            yield msg(content[offset:offset + n], False)
            offset += n
        yield msg(content[offset:], True)
        return
    offset = 0
    while len(content) - offset > _FRAGMENT_SIZE:
        end = offset + _FRAGMENT_SIZE
        if is_text:  # never cut a UTF-8 sequence: each text frame is decoded on its own
            while end > offset + 1 and content[end] & 0xC0 == 0x80:
                end -= 1
        yield msg(content[offset:end], False)
        offset = end
    yield msg(content[offset:], True)


def _extensions(ext_header: str, warn: Any) -> tuple[list, list]:
    """permessage-deflate for each side, as the origin's 101 accepted it (mitmproxy's rule)."""
    client, server = [], []
    for ext in wsproto.utilities.split_comma_header(ext_header.encode("ascii", "replace")):
        name = ext.split(";", 1)[0].strip()
        if name == wsproto.extensions.PerMessageDeflate.name:
            for side in (client, server):
                d = wsproto.extensions.PerMessageDeflate()
                d.finalize(ext)
                side.append(d)
        else:
            warn(f"WebSocket extension {name!r} is not supported and was ignored")
    return client, server


class _Lane:
    """One direction: the wsproto connection that parses it, what waits to be relayed, the frame
    sizes of the message being received."""

    __slots__ = ("from_client", "ws", "queue", "task", "frames", "paused_src")

    def __init__(self, from_client: bool, ws: wsproto.Connection) -> None:
        self.from_client = from_client
        self.ws = ws  # parses what this side sends
        self.queue: deque[Any] = deque()
        self.task: asyncio.Task | None = None
        self.frames: list[bytes] = []
        self.paused_src = False


class _ClientSide:
    """Stands in as the client connection's `relay_to`: its bytes come here."""

    __slots__ = ("relay",)

    def __init__(self, relay: WebSocketRelay) -> None:
        self.relay = relay

    def write(self, data: bytes) -> None:
        self.relay.received(True, data)

    def close(self) -> None:  # the client connection is gone
        self.relay.received(True, None)

    def pause_reading(self) -> None:  # the client reads slowly: hold the origin
        self.relay.upstream.pause_reading()

    def resume_reading(self) -> None:
        self.relay.upstream.resume_reading()


class _OriginSide:
    """Stands in as the upstream connection's handler: its bytes come here."""

    __slots__ = ("relay",)

    def __init__(self, relay: WebSocketRelay) -> None:
        self.relay = relay

    def response_body(self, data: bytes) -> None:
        self.relay.ex.resp_size += len(data)
        self.relay.received(False, data)

    def response_complete(self, keep_alive: bool, trailers: Any = None) -> None:  # the origin is gone
        self.relay.received(False, None)

    def response_failed(self, message: str, status: int = 502) -> None:
        self.relay.received(False, None)

    def response_head(self, ev: Any) -> None:  # never after a 101
        pass

    def upstream_pause_writing(self) -> None:
        self.relay.client.pause_reading()

    def upstream_resume_writing(self) -> None:
        self.relay.client.resume_reading()


class WebSocketRelay:
    """One upgraded connection pair; `run()` relays until both are closed."""

    def __init__(self, client: ClientConnection, ex: Exchange, upstream: UpstreamConnection) -> None:
        self.client = client
        self.ex = ex
        self.upstream = upstream
        self.proxy = client.proxy
        self.flow: Flow = ex.flow
        if self.flow.websocket is None:
            self.flow.websocket = WebSocketData()
        self.data: WebSocketData = self.flow.websocket
        resp = self.flow.response
        ext = (resp.headers.get("sec-websocket-extensions") or "") if resp is not None else ""
        c_ext, s_ext = _extensions(ext, self.proxy.report_error) if ext else ([], [])
        self.lanes = (_Lane(True, wsproto.Connection(ConnectionType.SERVER, c_ext)),
                      _Lane(False, wsproto.Connection(ConnectionType.CLIENT, s_ext)))
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ended = False
        self._updates = CoalescedUpdates(self.proxy, self.flow, _PUBLISH_DELAY)
        self._hook_lock = asyncio.Lock()

    # --- the two connections ------------------------------------------------------------------
    def _send(self, to_client: bool, data: bytes) -> None:
        if not data:
            return
        if to_client:
            if not self.client.closed:
                self.client.write(data)  # looked up each time: the throttling shaper may stand in
        elif not self.upstream.closed:
            self.upstream.write(data)

    def _dst(self, lane: _Lane) -> wsproto.Connection:
        return self.lanes[1].ws if lane.from_client else self.lanes[0].ws

    async def run(self, client_early: bytes, origin_early: list[bytes]) -> None:
        """Relay until the socket is closed (by a close frame or either connection going)."""
        client = self.client
        client.relay_to = _ClientSide(self)  # type: ignore[assignment]
        self.upstream.handler = _OriginSide(self)
        self.proxy.websockets[self.flow.id] = self
        chain = self.proxy.addons.websocket_start
        if chain is not None:
            from proxycore.addons.hooks import run_hook

            await run_hook(chain, self.flow)
        if client_early:
            self.received(True, client_early)
        for chunk in origin_early:
            self.received(False, chunk)
        if self.upstream.closed and not self.ended:
            self.received(False, None)
        if client.closed and not self.ended:
            self.received(True, None)
        try:
            await self.done
        finally:
            self.proxy.websockets.pop(self.flow.id, None)
            self._updates.cancel()
            for lane in self.lanes:
                if lane.task is not None and not lane.task.done():
                    lane.task.cancel()

    # --- receiving ------------------------------------------------------------------------------
    def received(self, from_client: bool, data: bytes | None) -> None:
        """Bytes from one side (None: that connection is gone)."""
        if self.ended:
            return
        lane = self.lanes[0] if from_client else self.lanes[1]
        try:
            lane.ws.receive_data(data)
        except Exception as exc:  # wsproto refuses what it cannot parse: end the socket
            self._fail(f"WebSocket protocol error from the {'client' if from_client else 'origin'}: {exc}")
            return
        q = lane.queue
        try:
            for ev in lane.ws.events():
                q.append(ev)
            if lane.task is None:
                self._pump(lane)
        except Exception as exc:  # never into the transport's callback: end this socket, say why
            self._fail(f"WebSocket relay failed: {exc!r}")
            return
        if len(q) > _LANE_LIMIT and not lane.paused_src:
            lane.paused_src = True
            (self.client if from_client else self.upstream).pause_reading()

    def inject(self, to_client: bool, content: bytes, is_text: bool) -> None:
        """A message made by the user (mitmproxy's inject.websocket): it goes through the lane of
        the side it pretends to come from, hooks included, and is marked injected."""
        if self.ended:
            raise ValueError("the WebSocket connection has ended")
        lane = self.lanes[1] if to_client else self.lanes[0]
        msg = WebSocketMessage(TEXT if is_text else BINARY, not to_client, content, injected=True)
        lane.queue.append(msg)
        if lane.task is None:
            try:
                self._pump(lane)
            except Exception as exc:
                self._fail(f"WebSocket relay failed: {exc!r}")

    def _pump(self, lane: _Lane) -> None:
        """Relay what the lane holds, in order, until a message must wait for async hooks."""
        q = lane.queue
        chain = self.proxy.addons.websocket_message
        while q and lane.task is None and not self.ended:
            ev = q.popleft()
            if isinstance(ev, wse.Message):
                msg = self._collect(lane, ev)
                if msg is None:
                    continue
                sizes, lane.frames = [len(f) for f in lane.frames], []
            elif isinstance(ev, WebSocketMessage):
                msg, sizes = ev, []
            else:
                self._control(lane, ev)
                continue
            if chain is not None and chain.is_async:
                lane.task = asyncio.get_running_loop().create_task(self._hooked(lane, msg, sizes))
                return
            self.data.add(msg)
            if chain is not None:
                chain.call(self.flow)
            self._forward(lane, msg, sizes)
        if lane.paused_src and len(q) <= _LANE_LIMIT // 2:
            lane.paused_src = False
            (self.client if lane.from_client else self.upstream).resume_reading()

    def _collect(self, lane: _Lane, ev: wse.Message) -> WebSocketMessage | None:
        """Frames pile up until the message is whole; then the message."""
        data = ev.data
        lane.frames.append(data.encode("utf-8") if isinstance(data, str) else bytes(data))
        if not ev.message_finished:
            return None
        typ = TEXT if isinstance(ev, wse.TextMessage) else BINARY
        return WebSocketMessage(typ, lane.from_client, b"".join(lane.frames))

    async def _hooked(self, lane: _Lane, msg: WebSocketMessage, sizes: list[int]) -> None:
        chain = self.proxy.addons.websocket_message
        try:
            # one message in the hooks at a time, both lanes together: during its hooks a message
            # is flow.websocket.messages[-1] (mitmproxy's promise), and a breakpoint holds one
            async with self._hook_lock:
                self.data.add(msg)
                if chain is not None and not self.ended:
                    await chain.run(self.flow)
        finally:
            lane.task = None
        if self.ended:
            return
        if self.flow.killed:
            self._fail(None)
            return
        try:
            self._forward(lane, msg, sizes)
            self._pump(lane)
        except Exception as exc:
            self._fail(f"WebSocket relay failed: {exc!r}")

    def _forward(self, lane: _Lane, msg: WebSocketMessage, sizes: list[int]) -> None:
        if not msg.dropped:
            dst = self._dst(lane)
            if dst.state is ConnectionState.OPEN or dst.state is ConnectionState.REMOTE_CLOSING:
                out = b"".join(dst.send(m) for m in fragments(sizes, msg.content, msg.type == TEXT))
                self._send(not lane.from_client, out)
        limit = self.proxy.capture_limit
        msg.cap(limit if limit is not None else 0)  # what the flow keeps (the message went whole)
        self._updates.changed()

    def _control(self, lane: _Lane, ev: wse.Event) -> None:
        if isinstance(ev, (wse.Ping, wse.Pong)):
            dst = self._dst(lane)
            if dst.state is ConnectionState.OPEN:
                self._send(not lane.from_client, dst.send(ev))
        elif isinstance(ev, wse.CloseConnection):
            self._close(lane.from_client, ev)

    # --- the end --------------------------------------------------------------------------------
    def _close(self, from_client: bool, ev: wse.CloseConnection) -> None:
        d = self.data
        d.timestamp_end = time.time()
        d.closed_by_client = from_client
        d.close_code = int(ev.code)
        d.close_reason = ev.reason or ""
        # a close frame goes to each side still open (to the sender: the close reply);
        # 1005/1006 are never sent on the wire (RFC 6455 7.4.1): those sides just go
        wire_ok = d.close_code not in (1005, 1006, 1015)
        for to_client, ws in ((False, self.lanes[1].ws), (True, self.lanes[0].ws)):
            if wire_ok and ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                try:
                    self._send(to_client, ws.send(wse.CloseConnection(ev.code, ev.reason)))
                except Exception:  # a code wsproto will not send: the TCP close says enough
                    pass
        self._end()

    def _fail(self, message: str | None) -> None:
        if message is not None and self.flow.error is None:
            self.flow.error = message
        if self.data.timestamp_end is None:
            self.data.timestamp_end = time.time()
        self._end(abort=True)

    def _end(self, abort: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        for ep in (self.upstream, self.client):
            if abort:
                ep.abort()
            else:
                ep.close()
        fire_hook(self.proxy.addons.websocket_end, self.flow)
        if not self.done.done():
            self.done.set_result(None)


__all__ = ["WebSocketRelay", "fragments"]
