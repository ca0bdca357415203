"""WebSocket over HTTP/2 (RFC 8441) through the proxy: a real h2 WebSocket origin (hypercorn,
which allows extended CONNECT, with an ASGI websocket app over TLS) and an h2 client written here
with the h2 library (extended CONNECT, then wsproto frames on the stream), trusting only the
proxy's CA. Messages are captured both ways, close codes recorded, hooks and breakpoints act."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
import wsproto
import wsproto.events as wse
from conftest import collect_done, run, wait_for
from h2origin import H2Origin
from wsproto import ConnectionType
from wsproto.extensions import PerMessageDeflate

from proxycore.flows.websocket import BINARY, TEXT

TIMEOUT = 10


class WsOrigin(H2Origin):
    """H2Origin plus /ws: sends "welcome", echoes text as "echo:..." and bytes reversed,
    "close-me" makes it close with 4001 "bye"; records how each socket ended."""

    def __init__(self, ca) -> None:
        super().__init__(ca)
        self.ws_versions: list[str] = []
        self.disconnects: list[int] = []

    async def app(self, scope, receive, send) -> None:
        if scope["type"] != "websocket":
            await super().app(scope, receive, send)
            return
        self.ws_versions.append(scope["http_version"])
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "welcome"})
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                self.disconnects.append(msg.get("code", 0))
                return
            if msg.get("text") == "close-me":
                await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
                return
            if msg.get("text") is not None:
                await send({"type": "websocket.send", "text": "echo:" + msg["text"]})
            else:
                await send({"type": "websocket.send", "bytes": msg["bytes"][::-1]})


@pytest.fixture
async def ws_origin(origin_ca):
    o = await WsOrigin(origin_ca).start()
    yield o
    await o.stop()


class H2WsClient:
    """An RFC 8441 client: h2 through the proxy's CONNECT, then a WebSocket on one stream."""

    def __init__(self) -> None:
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.ws = wsproto.Connection(ConnectionType.CLIENT)
        self.sid = 0
        self.status = b""
        self.headers: dict[bytes, bytes] = {}
        self.statuses: dict[int, bytes] = {}
        self.connect_protocol = False
        self.events: list = []
        self.ended = False
        self.reset: int | None = None

    async def open(self, proxy, port: int, **kw) -> None:
        await self.connect(proxy, port)
        await self.open_ws(port, **kw)

    async def connect(self, proxy, port: int, wait_setting: bool = True) -> None:
        self.r, self.w = await asyncio.open_connection("127.0.0.1", proxy.address[1])
        self.w.write(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        assert (await asyncio.wait_for(self.r.readuntil(b"\r\n\r\n"), TIMEOUT)).startswith(b"HTTP/1.1 200")
        ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
        ctx.set_alpn_protocols(["h2"])
        await asyncio.wait_for(self.w.start_tls(ctx, server_hostname="localhost"), TIMEOUT)
        assert self.w.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        self.h2.initiate_connection()
        self.w.write(self.h2.data_to_send())
        if wait_setting:
            # the proxy must say SETTINGS_ENABLE_CONNECT_PROTOCOL=1 before a client may use it
            await self._until(lambda: self.connect_protocol, "ENABLE_CONNECT_PROTOCOL from the proxy")

    async def open_ws(self, port: int, extensions: bytes = b"") -> None:
        self.sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(self.sid, [
            (b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"),
            (b":path", b"/ws"), (b":authority", f"localhost:{port}".encode()),
            (b"sec-websocket-version", b"13"), (b"origin", b"https://localhost")]
            + ([(b"sec-websocket-extensions", extensions)] if extensions else []))
        self.w.write(self.h2.data_to_send())
        await self._until(lambda: self.status or self.reset is not None, "the CONNECT's answer")
        ext = self.headers.get(b"sec-websocket-extensions")
        if ext:  # permessage-deflate as the server accepted it
            d = PerMessageDeflate()
            d.finalize(ext.decode())
            self.ws = wsproto.Connection(ConnectionType.CLIENT, [d])

    async def get(self, path: str, port: int) -> bytes:
        """A plain GET on a stream of its own; its status."""
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":path", path.encode()),
                                   (b":authority", f"localhost:{port}".encode())], end_stream=True)
        self.w.write(self.h2.data_to_send())
        await self._until(lambda: sid in self.statuses, f"the answer to GET {path}")
        return self.statuses[sid]

    async def _until(self, cond, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while not cond():
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            data = await asyncio.wait_for(self.r.read(65536), left)
            if not data:
                self.ws.receive_data(None)
                self.events.extend(self.ws.events())
                self.ended = True
                return
            for ev in self.h2.receive_data(data):
                if isinstance(ev, h2.events.RemoteSettingsChanged):
                    s = ev.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                    if s is not None and s.new_value == 1:
                        self.connect_protocol = True
                elif isinstance(ev, h2.events.ResponseReceived):
                    self.statuses[ev.stream_id] = dict(ev.headers)[b":status"]
                    if ev.stream_id == self.sid:
                        self.headers = dict(ev.headers)
                        self.status = self.headers[b":status"]
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id != self.sid:
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == self.sid:
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    self.ws.receive_data(ev.data)
                    self.events.extend(self.ws.events())
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == self.sid:
                    self.ended = True
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == self.sid:
                    self.reset = ev.error_code
            self.w.write(self.h2.data_to_send())

    def send(self, event: wse.Event) -> None:
        self.h2.send_data(self.sid, self.ws.send(event))
        self.w.write(self.h2.data_to_send())

    async def recv(self) -> wse.Event:
        """The next WebSocket event (a whole message: these are small, one frame each)."""
        await self._until(lambda: self.events, "a WebSocket message")
        return self.events.pop(0)

    async def recv_message(self) -> str | bytes:
        """The next whole message (wsproto hands a large one over in pieces as it arrives)."""
        parts = []
        while True:
            ev = await self.recv()
            assert isinstance(ev, wse.Message), ev
            parts.append(ev.data)
            if ev.message_finished:
                return parts[0][:0].join(parts)

    def close(self) -> None:
        self.w.close()


@pytest.mark.parametrize("compression", [False, True])
async def test_text_and_binary_both_ways_client_closes(ws_origin, make_proxy, compression):
    proxy = await make_proxy()
    done = collect_done(proxy)
    c = H2WsClient()
    await c.open(proxy, ws_origin.port, extensions=b"permessage-deflate" if compression else b"")
    try:
        assert c.status == b"200"
        assert (b"sec-websocket-extensions" in c.headers) == compression
        assert await c.recv_message() == "welcome"
        c.send(wse.TextMessage("hello"))
        assert await c.recv_message() == "echo:hello"
        c.send(wse.BytesMessage(b"\x00\x01\xff"))
        assert await c.recv_message() == b"\xff\x01\x00"
        c.send(wse.CloseConnection(4000, "done"))
        ev = await c.recv()
        assert isinstance(ev, wse.CloseConnection) and ev.code == 4000  # the close reply
        await c._until(lambda: c.ended, "END_STREAM from the proxy")
        assert c.reset is None  # a clean end, not a reset
        flow = (await wait_for(lambda: done, what="flow"))[0]
    finally:
        c.close()
    assert ws_origin.ws_versions == ["2"]  # the origin was spoken to over h2 (an extended CONNECT)
    # the origin's app hears of the end (hypercorn's ws_stream reports 1006 to the app for any
    # peer close while the app has not closed itself, whatever the close frame said)
    await wait_for(lambda: ws_origin.disconnects, what="the origin's end")
    assert flow.request.http_version == "HTTP/2.0" and flow.stream is not None
    assert flow.response.status == 101 and flow.response.http_version == "HTTP/2.0"
    ws = flow.websocket
    assert [(m.from_client, m.type, m.content) for m in ws.messages] == [
        (False, TEXT, b"welcome"), (True, TEXT, b"hello"), (False, TEXT, b"echo:hello"),
        (True, BINARY, b"\x00\x01\xff"), (False, BINARY, b"\xff\x01\x00")]
    assert ws.close_code == 4000 and ws.close_reason == "done" and ws.closed_by_client is True
    assert flow.error is None


async def test_origin_closes_with_a_code_and_hooks_see_every_message(ws_origin, make_proxy):
    proxy = await make_proxy()
    seen: list[str] = []

    class Addon:
        async def responseheaders(self, flow):  # async: the driver awaits it before the relay
            seen.append(f"{flow.response.status} {flow.websocket is not None}")

        def websocket_start(self, flow):
            seen.append("start")

        def websocket_message(self, flow):
            msg = flow.websocket.messages[-1]
            seen.append(f"{'>' if msg.from_client else '<'}{msg.text}")
            if msg.content == b"hello":
                msg.content = b"HELLO"

        def websocket_end(self, flow):
            seen.append(f"end {flow.websocket.close_code}")

    proxy.addons.add(Addon())
    done = collect_done(proxy)
    c = H2WsClient()
    await c.open(proxy, ws_origin.port)
    try:
        assert await c.recv_message() == "welcome"
        c.send(wse.TextMessage("hello"))
        assert await c.recv_message() == "echo:HELLO"  # changed by the hook on its way
        c.send(wse.TextMessage("close-me"))
        ev = await c.recv()
        assert isinstance(ev, wse.CloseConnection) and ev.code == 4001 and ev.reason == "bye"
        flow = (await wait_for(lambda: done, what="flow"))[0]
    finally:
        c.close()
    assert seen == ["101 True", "start", "<welcome", ">hello", "<echo:HELLO", ">close-me", "end 4001"]
    assert flow.websocket.closed_by_client is False and flow.websocket.close_reason == "bye"


async def test_breakpoint_pauses_a_message_then_resumes(ws_origin, make_proxy):
    from proxycore.flows.flow import INTERCEPTED

    proxy = await make_proxy()
    proxy.intercept.set_filter("~websocket & ~bq stop")
    c = H2WsClient()
    await c.open(proxy, ws_origin.port)
    try:
        assert await c.recv_message() == "welcome"
        c.send(wse.TextMessage("stop-1"))
        await wait_for(lambda: proxy.intercept.paused, what="a paused message")
        p = next(iter(proxy.intercept.paused.values()))
        assert p.phase == "message" and p.message.content == b"stop-1" and p.flow.state == INTERCEPTED
        p.message.content = b"edited"
        proxy.intercept.resume([p.flow])
        assert await c.recv_message() == "echo:edited"
        c.send(wse.CloseConnection(1000))
        ev = await c.recv()
        assert isinstance(ev, wse.CloseConnection) and ev.code == 1000
    finally:
        c.close()
    assert not proxy.intercept.paused


async def test_inject_both_ways(ws_origin, make_proxy):
    proxy = await make_proxy()
    c = H2WsClient()
    await c.open(proxy, ws_origin.port)
    try:
        assert await c.recv_message() == "welcome"
        flow_id, relay = next(iter(proxy.websockets.items()))
        relay.inject(True, b"from the proxy", True)
        assert await c.recv_message() == "from the proxy"
        relay.inject(False, b"\x01\x02", False)  # to the origin, which echoes it reversed
        assert await c.recv_message() == b"\x02\x01"
        assert [m.injected for m in relay.flow.websocket.messages] == [False, True, True, False]
    finally:
        c.close()


async def test_http1_origin_when_no_h2_connection_allows_it(ws_origin, make_proxy):
    """The tunnel's h2 origin connection is gone when the WebSocket opens: the stream goes to the
    origin as an HTTP/1.1 upgrade; the client still speaks RFC 8441 to the proxy. An async
    responseheaders hook runs on the 101 (it used to hold an HTTP/1.1 upgrade forever)."""
    proxy = await make_proxy()
    heads: list[int] = []

    class Addon:
        async def responseheaders(self, flow):
            heads.append(flow.response.status)

    proxy.addons.add(Addon())
    done = collect_done(proxy)
    c = H2WsClient()
    await c.connect(proxy, ws_origin.port)
    for conn in list(proxy.pool.h2.get(("https", "localhost", ws_origin.port)) or ()):
        conn.close()
    try:
        await c.open_ws(ws_origin.port)
        assert c.status == b"200"
        assert await c.recv_message() == "welcome"
        c.send(wse.BytesMessage(b"abc"))
        assert await c.recv_message() == b"cba"
        c.send(wse.TextMessage("close-me"))
        ev = await c.recv()
        assert isinstance(ev, wse.CloseConnection) and ev.code == 4001
        flow = (await wait_for(lambda: done, what="flow"))[0]
    finally:
        c.close()
    assert ws_origin.ws_versions == ["1.1"] and heads == [101]
    assert flow.request.http_version == "HTTP/2.0" and flow.response.http_version == "HTTP/1.1"
    assert [m.content for m in flow.websocket.messages] == [b"welcome", b"abc", b"cba", b"close-me"]
    assert flow.websocket.close_code == 4001


class PlainH2Origin:
    """An h2 origin (the h2 library over TLS) that does not allow extended CONNECT until a
    GET /enable, whose answer comes after SETTINGS_ENABLE_CONNECT_PROTOCOL=1; any other GET: 200."""

    def __init__(self, ca) -> None:
        ca.alpn = ["h2"]
        self.ctx = ca.server_context("localhost", h2=True)
        self.port = 0
        self.connects = 0
        self.writers: list = []

    async def start(self) -> PlainH2Origin:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def handle(self, r, w) -> None:
        self.writers.append(w)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        conn.initiate_connection()
        w.write(conn.data_to_send())
        while data := await r.read(65536):
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    h = dict(ev.headers)
                    if h[b":method"] == b"CONNECT":
                        self.connects += 1
                    if h.get(b":path") == b"/enable":
                        conn.update_settings({h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
                    conn.send_headers(ev.stream_id, [(b":status", b"200"), (b"content-length", b"2")])
                    conn.send_data(ev.stream_id, b"ok", end_stream=True)
            w.write(conn.data_to_send())

    async def stop(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()


async def test_setting_follows_the_origin_and_extended_connect_is_refused_before(make_proxy, origin_ca):
    origin = await PlainH2Origin(origin_ca).start()
    proxy = await make_proxy()
    c = H2WsClient()
    try:
        await c.connect(proxy, origin.port, wait_setting=False)
        assert await c.get("/plain", origin.port) == b"200"  # the proxy's SETTINGS came before this
        assert not c.connect_protocol
        await c.open_ws(origin.port)  # a client that does not wait for the setting: refused here
        assert c.status == b"501" and origin.connects == 0
        # the origin allows it later (a second SETTINGS frame): the proxy says so to its client
        assert await c.get("/enable", origin.port) == b"200"
        await c._until(lambda: c.connect_protocol, "ENABLE_CONNECT_PROTOCOL passed on")
    finally:
        c.close()
        await origin.stop()


async def test_client_end_stream_without_a_close_frame_is_1006_by_the_client(ws_origin, make_proxy):
    proxy = await make_proxy()
    done = collect_done(proxy)
    c = H2WsClient()
    await c.open(proxy, ws_origin.port)
    try:
        assert await c.recv_message() == "welcome"
        c.h2.end_stream(c.sid)  # RFC 8441: END_STREAM is the TCP FIN
        c.w.write(c.h2.data_to_send())
        await c._until(lambda: c.ended, "END_STREAM from the proxy")
        flow = (await wait_for(lambda: done, what="flow"))[0]
    finally:
        c.close()
    assert flow.websocket.close_code == 1006 and flow.websocket.closed_by_client is True
    await wait_for(lambda: ws_origin.disconnects, what="the origin's end")


async def test_throttling_shapes_messages_both_ways(ws_origin, make_proxy):
    """The relay's writes go through the stream connections' write path: a throttled flow's
    messages are booked on the shared links, and a 101 head the shaper splits still switches."""
    import os

    from proxycore.throttle import DOWN, UP

    proxy = await make_proxy(throttle_down="64mbit", throttle_up="64mbit")
    links = proxy.throttle.links
    payload = os.urandom(64 * 1024)
    c = H2WsClient()
    await c.open(proxy, ws_origin.port)
    try:
        assert c.status == b"200"
        assert await c.recv_message() == "welcome"
        up0, down0 = links[UP].bytes, links[DOWN].bytes
        c.send(wse.BytesMessage(payload))
        assert await c.recv_message() == payload[::-1]
        assert links[UP].bytes - up0 >= len(payload)
        assert links[DOWN].bytes - down0 >= len(payload)
    finally:
        c.close()


async def test_throttled_upload_to_an_h2_origin_is_paced_not_failed(ws_origin, make_proxy):
    """A throttled request body past the shaper's high-water mark pauses its producer through the
    h2 origin stream (which had no pause_writing, so the flow failed)."""
    import hashlib

    import httpx

    proxy = await make_proxy(throttle_up="64mbit")
    body = bytes(range(256)) * 1024  # 256 KiB
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    async with httpx.AsyncClient(http2=True, proxy=f"http://127.0.0.1:{proxy.address[1]}", verify=ctx,
                                 timeout=TIMEOUT) as client:
        r = await client.post(ws_origin.url("/echo"), content=body)
    assert r.status_code == 200 and r.http_version == "HTTP/2"
    got = json.loads(r.content)
    assert got["http_version"] == "2" and got["body_sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (its http2 module: nghttp2)")
async def test_node_http2_client_speaks_rfc8441_through_the_proxy(ws_origin, make_proxy):
    """Another h2 stack than the h2 library on the client side: Node's (nghttp2)."""
    proxy = await make_proxy()
    done = collect_done(proxy)
    rc, out, err = await run("node", str(Path(__file__).parent / "h2ws_node_client.js"),
                             str(proxy.address[1]), str(ws_origin.port), str(proxy.ca.cert_path), timeout=30)
    assert rc == 0, err.decode(errors="replace")
    got = json.loads(out)
    assert got == {"status": 200, "close": 4000, "messages": [
        [1, "welcome"], [1, "echo:hello from node"], [2, "ff030201"]]}
    flow = (await wait_for(lambda: done, what="flow"))[0]
    assert flow.request.http_version == "HTTP/2.0" and ws_origin.ws_versions == ["2"]
    msgs = flow.websocket.messages
    assert [m.content for m in msgs if m.from_client] == [b"hello from node", b"\x01\x02\x03\xff"]
    assert [m.content for m in msgs if not m.from_client] == [b"welcome", b"echo:hello from node", b"\xff\x03\x02\x01"]
    assert flow.websocket.close_code == 4000 and flow.websocket.closed_by_client is True
