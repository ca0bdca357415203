"""WebSocket through the proxy: a real `websockets` client and server, over http and https
(CONNECT, the client trusting only the proxy's CA); messages captured both ways, close codes,
hooks, permessage-deflate, and non-WebSocket upgrades still relayed raw."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import httpx
import jsonschema
import pytest
from conftest import collect_done, wait_for
from websockets.exceptions import ConnectionClosed
from wsutil import server_port, start_server, ws_through_proxy, wss_through_proxy

from proxycore.flows.websocket import BINARY, TEXT

HAR_SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())


async def _exchange(ws) -> None:
    assert await asyncio.wait_for(ws.recv(), 10) == "welcome"
    await ws.send("hello")
    assert await asyncio.wait_for(ws.recv(), 10) == "echo:hello"
    await ws.send(b"\x00\x01\xff")
    assert await asyncio.wait_for(ws.recv(), 10) == b"\xff\x01\x00"


def _check_messages(flow) -> None:
    ws = flow.websocket
    assert ws is not None
    got = [(m.from_client, m.type, m.content) for m in ws.messages]
    assert got == [
        (False, TEXT, b"welcome"),
        (True, TEXT, b"hello"),
        (False, TEXT, b"echo:hello"),
        (True, BINARY, b"\x00\x01\xff"),
        (False, BINARY, b"\xff\x01\x00"),
    ]
    assert all(m.timestamp > 0 for m in ws.messages)
    assert flow.response is not None and flow.response.status == 101


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_ws_text_and_binary_both_ways_client_closes(make_proxy, compression):
    server = await start_server(compression=compression)
    proxy = await make_proxy()
    done = collect_done(proxy)
    try:
        async with ws_through_proxy(proxy.address[1], server_port(server), compression=compression) as ws:
            await _exchange(ws)
            await ws.close(4000, "client done")
        flow = (await wait_for(lambda: done, what="flow"))[0]
    finally:
        server.close()
    _check_messages(flow)
    assert flow.request.url.startswith("http://127.0.0.1:")
    assert flow.websocket.closed_by_client is True
    assert flow.websocket.close_code == 4000
    assert flow.websocket.close_reason == "client done"
    assert flow.websocket.timestamp_end is not None
    assert flow.error is None
    if compression:
        assert "permessage-deflate" in (flow.response.headers.get("sec-websocket-extensions") or "")


async def test_wss_through_connect_server_closes(make_proxy, origin_ca):
    server = await start_server(origin_ca.server_context("localhost"))
    proxy = await make_proxy()
    done = collect_done(proxy)
    try:
        async with wss_through_proxy(proxy.address[1], server_port(server), str(proxy.ca.cert_path)) as ws:
            await _exchange(ws)
            await ws.send("close-me")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 4001 and ws.close_reason == "bye"
        flow = (await wait_for(lambda: done, what="flow"))[0]
    finally:
        server.close()
    assert flow.request.scheme == "https"
    ws_data = flow.websocket
    assert [m.content for m in ws_data.messages][-1] == b"close-me"
    assert ws_data.closed_by_client is False
    assert ws_data.close_code == 4001 and ws_data.close_reason == "bye"


async def test_hooks_change_and_drop_messages(make_proxy):
    server = await start_server()
    proxy = await make_proxy()
    seen: list[str] = []

    class Addon:
        def websocket_start(self, flow):
            seen.append("start")

        def websocket_message(self, flow):
            msg = flow.websocket.messages[-1]
            if msg.content == b"secret":
                msg.drop()
            elif msg.content == b"hello":
                msg.content = b"HELLO, a longer message than before"

        async def websocket_end(self, flow):
            seen.append(f"end {flow.websocket.close_code}")

    proxy.addons.add(Addon())
    done = collect_done(proxy)
    try:
        async with ws_through_proxy(proxy.address[1], server_port(server)) as ws:
            assert await asyncio.wait_for(ws.recv(), 10) == "welcome"
            await ws.send("secret")
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 10) == "echo:HELLO, a longer message than before"
        flow = (await wait_for(lambda: done, what="flow"))[0]
    finally:
        server.close()
    msgs = list(flow.websocket.messages)
    assert msgs[1].content == b"secret" and msgs[1].dropped
    await wait_for(lambda: len(seen) == 2, what="end hook")
    assert seen == ["start", "end 1000"]


async def test_big_message_is_forwarded_whole_but_kept_capped(make_proxy):
    server = await start_server(max_size=None)
    proxy = await make_proxy(max_body_size=1024)
    done = collect_done(proxy)
    big = bytes(range(256)) * 1000  # 256 kB
    try:
        async with ws_through_proxy(proxy.address[1], server_port(server), max_size=None) as ws:
            await asyncio.wait_for(ws.recv(), 10)
            await ws.send(big)
            assert await asyncio.wait_for(ws.recv(), 10) == bytes(reversed(big))
        flow = (await wait_for(lambda: done, what="flow"))[0]
    finally:
        server.close()
    m = flow.websocket.messages[1]
    assert m.size == len(big) and m.truncated and len(m.content) == 1024


async def test_chatty_socket_publishes_coalesced_updates(make_proxy):
    server = await start_server()
    proxy = await make_proxy()
    updates: list[int] = []
    proxy.subscribe(lambda kind, flow: updates.append(flow.id) if kind == "update" else None)
    try:
        async with ws_through_proxy(proxy.address[1], server_port(server)) as ws:
            await asyncio.wait_for(ws.recv(), 10)
            for i in range(200):
                await ws.send(f"m{i}")
            for _ in range(200):
                await asyncio.wait_for(ws.recv(), 10)
    finally:
        server.close()
    assert len(updates) < 100  # 401 messages, far fewer store updates


async def test_non_websocket_upgrade_is_still_relayed_raw(make_proxy):
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        while data := await reader.read(100):
            writer.write(data.upper())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = await make_proxy()
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 "Connection: Upgrade\r\nUpgrade: echo\r\n\r\n".encode())
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.write(b"raw bytes")
    assert await asyncio.wait_for(reader.readexactly(9), 10) == b"RAW BYTES"
    writer.close()
    flow = (await wait_for(lambda: done, what="flow"))[0]
    server.close()
    assert flow.websocket is None


# --------------------------------------------------------------------------- captures


async def _session(proxy) -> None:
    server = await start_server()
    try:
        async with ws_through_proxy(proxy.address[1], server_port(server)) as ws:
            await _exchange(ws)
            await ws.close(4000, "client done")
    finally:
        server.close()


def _check_loaded(flow) -> None:
    ws = flow.websocket
    assert ws is not None
    assert [(m.from_client, m.type, m.content) for m in ws.messages] == [
        (False, TEXT, b"welcome"), (True, TEXT, b"hello"), (False, TEXT, b"echo:hello"),
        (True, BINARY, b"\x00\x01\xff"), (False, BINARY, b"\xff\x01\x00")]
    assert all(m.timestamp > 1e9 for m in ws.messages)
    assert ws.close_code == 4000 and ws.closed_by_client is True


@pytest.mark.parametrize("fmt", ["ndjson", "har", "db"])
async def test_captures_carry_the_messages_and_load_back(make_proxy, tmp_path, fmt):
    from proxycore.capture.load import read_capture

    out = tmp_path / ("cap.db" if fmt == "db" else f"cap.{fmt}")
    proxy = await make_proxy(**({"db": f"sqlite:///{out}"} if fmt == "db" else {"output": str(out)}))
    await _session(proxy)
    await wait_for(lambda: proxy.flows_captured == 1, what="capture")
    await proxy.stop()
    if fmt == "har":
        har = json.loads(out.read_text())
        jsonschema.validate(har, HAR_SCHEMA)
        entry = har["log"]["entries"][0]
        assert entry["_resourceType"] == "websocket"
        msgs = entry["_webSocketMessages"]
        assert [(m["type"], m["opcode"], m["data"]) for m in msgs] == [
            ("receive", 1, "welcome"), ("send", 1, "hello"), ("receive", 1, "echo:hello"),
            ("send", 2, base64.b64encode(b"\x00\x01\xff").decode()),
            ("receive", 2, base64.b64encode(b"\xff\x01\x00").decode())]
        assert all(isinstance(m["time"], float) and m["time"] > 1e9 for m in msgs)
    (flow,) = read_capture(out)
    _check_loaded(flow)


def test_chrome_devtools_har_websocket_loads() -> None:
    """A HAR as Chrome DevTools writes a WebSocket entry reads back as a WebSocket flow."""
    from proxycore.capture.har import har_to_records
    from proxycore.capture.load import record_to_flow

    har = {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"}, "pages": [],
                   "entries": [{
                       "startedDateTime": "2026-11-30T10:00:00.000Z", "time": 12.5, "_resourceType": "websocket",
                       "request": {"method": "GET", "url": "wss://echo.example/ws", "httpVersion": "HTTP/1.1",
                                   "headers": [{"name": "Upgrade", "value": "websocket"}], "queryString": [],
                                   "cookies": [], "headersSize": -1, "bodySize": 0},
                       "response": {"status": 101, "statusText": "Switching Protocols", "httpVersion": "HTTP/1.1",
                                    "headers": [], "cookies": [], "content": {"size": 0, "mimeType": "x-unknown"},
                                    "redirectURL": "", "headersSize": -1, "bodySize": 0},
                       "cache": {}, "timings": {"blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": 0,
                                                "receive": 0, "ssl": -1},
                       "_webSocketMessages": [
                           {"type": "send", "time": 1764496800.1, "opcode": 1, "data": "hi"},
                           {"type": "receive", "time": 1764496800.2, "opcode": 2, "data": "AAH/"}]}]}}
    (rec,) = har_to_records(har)
    flow = record_to_flow(rec)
    assert [(m.from_client, m.type, m.content) for m in flow.websocket.messages] == [
        (True, TEXT, b"hi"), (False, BINARY, b"\x00\x01\xff")]


# --------------------------------------------------------------------------- filters


def _ws_flow():
    from proxycore.flows.flow import Flow, Headers, Request, Response
    from proxycore.flows.websocket import WebSocketData, WebSocketMessage

    f = Flow(Request("GET", "http", "example.com", 80, "/ws", headers=Headers.from_pairs([("Upgrade", "websocket")])))
    f.response = Response(101, "Switching Protocols")
    f.websocket = WebSocketData()
    f.websocket.add(WebSocketMessage(TEXT, True, b"subscribe:prices"))
    f.websocket.add(WebSocketMessage(BINARY, False, b"\x00tick 42\xff"))
    return f


def test_filters_match_websocket_messages_as_mitmproxy() -> None:
    """mitmproxy's flowfilter: ~websocket is `flow.websocket is not None`; ~b searches every
    message, ~bq those from the client, ~bs those from the server."""
    from proxycore.flows.filter import parse
    from proxycore.flows.flow import Flow, Request

    ws = _ws_flow()
    plain = Flow(Request("GET", "http", "example.com", 80, "/"))
    assert parse("~websocket")(ws) and not parse("~websocket")(plain)
    assert parse("~b subscribe")(ws) and parse("~b 'tick \\d+'")(ws)
    assert parse("~bq subscribe")(ws) and not parse("~bs subscribe")(ws)
    assert parse("~bs tick")(ws) and not parse("~bq tick")(ws)
    assert not parse("~b nothing")(ws)
    assert parse("~websocket & ~bq prices")(ws) and not parse("!~websocket")(ws)
    ws.websocket.messages.clear()
    assert parse("~websocket")(ws)  # still a WebSocket flow, with no message yet
    assert not parse("~b subscribe")(ws)


# --------------------------------------------------------------------------- breakpoints, inject


class _Engine:
    """What the commands need of an engine: the intercept controller and the inject path."""

    def __init__(self, proxy) -> None:
        self.proxy = proxy
        self.intercept = proxy.intercept

    def websocket_inject(self, flow_id, to_client, content, is_text):
        from proxycore.control.client import LocalEngine

        LocalEngine.websocket_inject(self, flow_id, to_client, content, is_text)  # type: ignore[arg-type]


def _ctx(proxy, flow):
    from proxycore.control.commands import CommandContext
    from proxycore.flows.view import FlowView

    view = FlowView()
    view.add_many([flow])
    view.set_focus(flow)
    return CommandContext(view=view, engine=_Engine(proxy))  # type: ignore[arg-type]


async def _paused(proxy):
    await wait_for(lambda: proxy.intercept.paused, what="a paused message")
    p = next(iter(proxy.intercept.paused.values()))
    assert p.phase == "message"
    return p


async def test_breakpoint_pauses_single_messages_edit_drop_resume(make_proxy, origin):
    from proxycore.control.commands import registry
    from proxycore.flows.flow import INTERCEPTED

    server = await start_server()
    proxy = await make_proxy()
    proxy.intercept.set_filter("~websocket & ~bq stop")
    try:
        async with ws_through_proxy(proxy.address[1], server_port(server)) as ws:
            assert await asyncio.wait_for(ws.recv(), 10) == "welcome"  # from the server: not paused
            await ws.send("pass")  # no "stop" in it: not paused
            assert await asyncio.wait_for(ws.recv(), 10) == "echo:pass"
            await ws.send("stop-1")
            p = await _paused(proxy)
            flow = p.flow
            assert flow.state == INTERCEPTED and p.message.content == b"stop-1"
            # other traffic keeps flowing meanwhile
            async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{proxy.address[1]}", trust_env=False) as c:
                assert (await c.get(origin.url("/json"))).status_code == 200
            ctx = _ctx(proxy, flow)
            registry.call(ctx, "websocket.message.edit", "edited", "@focus")
            registry.call(ctx, "flow.resume", "@focus")
            assert await asyncio.wait_for(ws.recv(), 10) == "echo:edited"
            await ws.send("stop-2")
            p = await _paused(proxy)
            registry.call(ctx, "websocket.message.drop", "@focus")
            await ws.send("after")
            assert await asyncio.wait_for(ws.recv(), 10) == "echo:after"  # stop-2 never arrived
            await wait_for(lambda: not proxy.intercept.paused, what="nothing paused")
    finally:
        server.close()
    msgs = {m.content: m for m in flow.websocket.messages}
    assert msgs[b"edited"].from_client and not msgs[b"edited"].dropped
    assert msgs[b"stop-2"].dropped
    assert flow.modified


async def test_inject_to_client_and_to_server(make_proxy):
    from proxycore.control.commands import CommandError, registry

    server = await start_server()
    proxy = await make_proxy()
    try:
        async with ws_through_proxy(proxy.address[1], server_port(server)) as ws:
            assert await asyncio.wait_for(ws.recv(), 10) == "welcome"
            flow = next(iter(proxy.websockets.values())).flow
            ctx = _ctx(proxy, flow)
            registry.call(ctx, "inject.websocket", "@focus", True, "from the proxy", True)
            assert await asyncio.wait_for(ws.recv(), 10) == "from the proxy"
            registry.call(ctx, "inject.websocket", "@focus", False, "to server", True)
            assert await asyncio.wait_for(ws.recv(), 10) == "echo:to server"
            registry.call(ctx, "inject.websocket", "@focus", False, "bin", False)
            assert await asyncio.wait_for(ws.recv(), 10) == b"nib"
        await wait_for(lambda: flow.is_finished, what="flow end")
    finally:
        server.close()
    injected = [(m.from_client, m.type, m.content) for m in flow.websocket.messages if m.injected]
    assert injected == [(False, TEXT, b"from the proxy"), (True, TEXT, b"to server"), (True, BINARY, b"bin")]
    with pytest.raises(CommandError, match="not a live WebSocket"):
        registry.call(ctx, "inject.websocket", "@focus", True, "late", True)


async def test_throttling_shapes_websocket_messages_both_ways(make_proxy):
    """The relay writes through the connections' write path: a throttled flow's messages are
    booked on the shared links (accounting, not wall-clock time)."""
    from proxycore.throttle import DOWN, UP

    server = await start_server(max_size=None)
    proxy = await make_proxy(throttle_down="64mbit", throttle_up="64mbit")
    links = proxy.throttle.links
    payload = os.urandom(64 * 1024)  # incompressible, and no deflate: wire bytes = payload bytes
    try:
        async with ws_through_proxy(proxy.address[1], server_port(server), max_size=None, compression=None) as ws:
            assert await asyncio.wait_for(ws.recv(), 10) == "welcome"
            up0, down0 = links[UP].bytes, links[DOWN].bytes
            await ws.send(payload)
            assert await asyncio.wait_for(ws.recv(), 10) == bytes(reversed(payload))
            assert links[UP].bytes - up0 >= len(payload)
            assert links[DOWN].bytes - down0 >= len(payload)
    finally:
        server.close()


def test_changed_text_is_reframed_on_character_boundaries() -> None:
    from proxycore.proxy.websocket import fragments

    text = ("é" * 3000).encode()  # 6000 bytes of two-byte characters
    frames = list(fragments([10], text, True))
    assert "".join(f.data for f in frames) == "é" * 3000  # nothing replaced
    assert [f.message_finished for f in frames] == [False, True]
    same = list(fragments([4, 6], b"abcdefghij", False))  # unchanged length: the original frames
    assert [bytes(f.data) for f in same] == [b"abcd", b"efghij"]


async def test_client_gone_without_a_close_frame_is_1006_by_the_client(make_proxy):
    closed: list = []

    async def handler(ws):
        await ws.send("welcome")
        try:
            async for _ in ws:
                pass
        finally:
            closed.append(ws.close_code)

    server = await start_server(handler=handler)
    proxy = await make_proxy()
    done = collect_done(proxy)
    try:
        async with ws_through_proxy(proxy.address[1], server_port(server)) as ws:
            assert await asyncio.wait_for(ws.recv(), 10) == "welcome"
            ws.transport.abort()
        flow = (await wait_for(lambda: done, what="flow"))[0]
        await wait_for(lambda: closed, what="the server to see the end")
    finally:
        server.close()
    assert flow.websocket.close_code == 1006 and flow.websocket.closed_by_client is True
    assert closed == [1006]  # no close frame made up toward the server either
