"""Raw TCP flows like the other protocols: the tcp_* hooks (mitmproxy's semantics), breakpoints on
single messages (edit, drop, resume, kill) while other connections flow, inject.tcp, and
throttling within its scope. Real sockets: a TCP echo server and plain socket clients on
127.0.0.1 through the WireGuard server's stream handler (tests/tcputil.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import collect_done, free_port, wait_for
from tcputil import exchange, port_of, start_echo, tunnel_entry

from proxycore.control.commands import CommandError, registry
from proxycore.flows.flow import INTERCEPTED


class _Recorder:
    """mitmproxy's tcp-simple example, plus a drop: foo -> bar in what the client sends."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def tcp_start(self, flow) -> None:
        self.calls.append("start")

    def tcp_message(self, flow) -> None:
        msg = flow.messages[-1]
        assert msg is flow.tcp_messages[-1]
        self.calls.append(f"message {'->' if msg.from_client else '<-'} {msg.content.decode()}")
        if msg.from_client and b"secret" in msg.content:
            msg.drop()
        elif msg.from_client:
            msg.content = msg.content.replace(b"foo", b"bar")

    def tcp_end(self, flow) -> None:
        self.calls.append("end")

    def tcp_error(self, flow) -> None:
        self.calls.append(f"error {flow.error}")


async def _client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)


async def _live_flow(proxy, n: int = 1):
    await wait_for(lambda: len(proxy.tcp_relays) >= n, what="a live TCP flow")
    return list(proxy.tcp_relays.values())[-1].flow


async def test_no_addon_no_tcp_hook(make_proxy) -> None:
    proxy = await make_proxy()
    assert proxy.addons.tcp_message is None and proxy.addons.tcp_start is None


async def test_hooks_change_and_drop_messages(make_proxy) -> None:
    echo = await start_echo()
    proxy = await make_proxy()
    rec = _Recorder()
    proxy.addons.add(rec)
    done = collect_done(proxy)
    try:
        async with tunnel_entry(proxy, ("127.0.0.1", port_of(echo))) as port:
            r, w = await _client(port)
            assert await exchange(r, w, b"foo", b"echo:bar") == b"echo:bar"
            flow = await _live_flow(proxy)
            w.write(b"secret")
            await wait_for(lambda: any(m.dropped for m in flow.tcp_messages), what="the dropped message")
            assert await exchange(r, w, b"ping", b"echo:ping") == b"echo:ping"  # secret never arrived
            w.close()
            await wait_for(lambda: flow in done, what="the flow's end")
    finally:
        echo.close()
    assert rec.calls == ["start", "message -> foo", "message <- echo:bar", "message -> secret",
                         "message -> ping", "message <- echo:ping", "end"]
    assert [(m.from_client, m.content, m.dropped) for m in flow.tcp_messages] == [
        (True, b"bar", False), (False, b"echo:bar", False), (True, b"secret", True),
        (True, b"ping", False), (False, b"echo:ping", False)]
    assert flow.error is None and flow.is_finished


async def test_unreachable_server_is_a_tcp_error(make_proxy) -> None:
    proxy = await make_proxy(connect_timeout=5)
    rec = _Recorder()
    proxy.addons.add(rec)
    done = collect_done(proxy)
    async with tunnel_entry(proxy, ("127.0.0.1", free_port())) as port:
        r, w = await _client(port)
        w.write(b"hello")
        assert await asyncio.wait_for(r.read(100), 10) == b""  # the client's connection is closed
        await wait_for(lambda: done, what="the flow's end")
        w.close()
    flow = done[0]
    assert flow.tcp_messages == [] and flow.error
    assert rec.calls == ["start", f"error {flow.error}"]


async def _paused(proxy):
    await wait_for(lambda: proxy.intercept.paused, what="a paused message")
    p = next(iter(proxy.intercept.paused.values()))
    assert p.phase == "message"
    return p


class _Engine:
    """What the commands need of an engine: the intercept controller and the inject path."""

    def __init__(self, proxy) -> None:
        self.proxy = proxy
        self.intercept = proxy.intercept

    def tcp_inject(self, flow_id, to_client, content):
        from proxycore.control.client import LocalEngine

        LocalEngine.tcp_inject(self, flow_id, to_client, content)  # type: ignore[arg-type]


def _ctx(proxy, flow):
    from proxycore.control.commands import CommandContext
    from proxycore.flows.view import FlowView

    view = FlowView()
    view.add_many([flow])
    view.set_focus(flow)
    return CommandContext(view=view, engine=_Engine(proxy))  # type: ignore[arg-type]


async def test_breakpoint_pauses_single_messages_edit_drop_resume_kill(make_proxy) -> None:
    echo = await start_echo()
    proxy = await make_proxy()
    rec = _Recorder()
    proxy.addons.add(rec)  # a sync hook before the breakpoint's: both see each message
    proxy.intercept.set_filter("~tcp & ~bq stop")
    done = collect_done(proxy)
    try:
        async with tunnel_entry(proxy, ("127.0.0.1", port_of(echo))) as port:
            r, w = await _client(port)
            assert await exchange(r, w, b"pass", b"echo:pass") == b"echo:pass"  # no "stop": not paused
            w.write(b"stop-1")
            p = await _paused(proxy)
            flow = p.flow
            assert flow.state == INTERCEPTED and p.message.content == b"stop-1"
            # another connection keeps flowing meanwhile
            r2, w2 = await _client(port)
            assert await exchange(r2, w2, b"other", b"echo:other") == b"echo:other"
            w2.close()
            ctx = _ctx(proxy, flow)
            registry.call(ctx, "websocket.message.edit", "edited", "@focus")
            registry.call(ctx, "flow.resume", "@focus")
            assert await exchange(r, w, b"", b"echo:edited") == b"echo:edited"
            w.write(b"stop-2")
            await _paused(proxy)
            registry.call(ctx, "websocket.message.drop", "@focus")
            assert await exchange(r, w, b"after", b"echo:after") == b"echo:after"  # stop-2 never arrived
            w.write(b"stop-3")
            await _paused(proxy)
            registry.call(ctx, "flow.kill", "@focus")
            assert await asyncio.wait_for(r.read(100), 10) == b""  # both connections end
            await wait_for(lambda: flow in done, what="the killed flow's end")
            w.close()
    finally:
        echo.close()
    msgs = {m.content: m for m in flow.tcp_messages}
    assert msgs[b"edited"].from_client and not msgs[b"edited"].dropped
    assert msgs[b"stop-2"].dropped
    assert flow.modified and flow.error == "killed"
    assert rec.calls[-1] == "error killed"


async def test_inject_to_client_and_to_server(make_proxy) -> None:
    echo = await start_echo()
    proxy = await make_proxy()
    try:
        async with tunnel_entry(proxy, ("127.0.0.1", port_of(echo))) as port:
            r, w = await _client(port)
            assert await exchange(r, w, b"x", b"echo:x") == b"echo:x"
            flow = await _live_flow(proxy)
            ctx = _ctx(proxy, flow)
            registry.call(ctx, "inject.tcp", "@focus", True, "from the proxy")
            assert await exchange(r, w, b"", b"from the proxy") == b"from the proxy"
            registry.call(ctx, "inject.tcp", "@focus", False, "to server")
            assert await exchange(r, w, b"", b"echo:to server") == b"echo:to server"
            w.close()
            await wait_for(lambda: flow.is_finished, what="the flow's end")
    finally:
        echo.close()
    injected = [(m.from_client, m.content) for m in flow.tcp_messages if m.injected]
    assert injected == [(False, b"from the proxy"), (True, b"to server")]
    with pytest.raises(CommandError, match="not a live TCP"):
        registry.call(ctx, "inject.tcp", "@focus", True, "late")


@pytest.mark.parametrize("scope, shaped", [("", True), ("~tcp & ~d 127.0.0.1", True), ("~http", False)])
async def test_throttling_applies_within_its_scope(make_proxy, scope: str, shaped: bool) -> None:
    """The relay's writes are booked on the shared links when the flow matches the throttle
    filter (accounting), and take the upload rate's time (100 kB at 100 kB/s)."""
    from proxycore.throttle import DOWN, UP

    echo = await start_echo()
    proxy = await make_proxy(throttle_up="800kbit", throttle_down="64mbit", throttle_filter=scope or None)
    links = proxy.throttle.links
    payload = b"z" * 100_000
    try:
        async with tunnel_entry(proxy, ("127.0.0.1", port_of(echo))) as port:
            r, w = await _client(port)
            t0 = time.monotonic()
            w.write(payload)
            got = b""
            while len(got.replace(b"echo:", b"")) < len(payload):  # each read of the echo is prefixed
                more = await asyncio.wait_for(r.read(65536), 10)
                assert more
                got += more
            elapsed = time.monotonic() - t0
            assert got.replace(b"echo:", b"") == payload
            w.close()
    finally:
        echo.close()
    if shaped:
        assert links[UP].bytes >= len(payload) and links[DOWN].bytes >= len(payload)
        assert elapsed >= 0.8
    else:
        assert links[UP].bytes == 0 and links[DOWN].bytes == 0 and elapsed < 0.8


def test_dropped_and_injected_survive_serialisation_and_records() -> None:
    from proxycore.capture.load import record_to_flow
    from proxycore.capture.record import RecordOptions, flow_to_record
    from proxycore.flows.serialize import dumps_flow, loads_flow
    from proxycore.flows.tcp import TCPMessage, new_tcp_flow

    f = new_tcp_flow("example.com", 7, ("10.0.0.1", 4000))
    f.tcp_messages += [TCPMessage(True, b"a", 1.0), TCPMessage(True, b"b", 2.0, dropped=True),
                       TCPMessage(False, b"c", 3.0, injected=True)]
    back = loads_flow(dumps_flow(f))
    assert back.tcp_messages == f.tcp_messages
    rec = flow_to_record(f, RecordOptions())
    loaded = record_to_flow(rec)
    assert [(m.content, m.dropped, m.injected) for m in loaded.tcp_messages] == [
        (b"a", False, False), (b"b", True, False), (b"c", False, True)]


async def test_throttling_loss_resets_the_connection(make_proxy) -> None:
    echo = await start_echo()
    proxy = await make_proxy(throttle_down="64mbit", throttle_loss="100")
    done = collect_done(proxy)
    try:
        async with tunnel_entry(proxy, ("127.0.0.1", port_of(echo))) as port:
            r, w = await _client(port)
            w.write(b"hello")
            assert await asyncio.wait_for(r.read(100), 10) == b""
            await wait_for(lambda: done, what="the flow's end")
            w.close()
    finally:
        echo.close()
    assert "packet-loss" in (done[0].error or "") and proxy.throttle.flows_reset == 1


async def test_throttling_latency_is_added_per_turn(make_proxy) -> None:
    """Half the latency before the client's bytes reach the server, half before the answer
    reaches the client: a round trip gains the latency, as an HTTP request's does."""
    echo = await start_echo()
    proxy = await make_proxy(throttle_latency="400ms", throttle_down="64mbit")
    try:
        async with tunnel_entry(proxy, ("127.0.0.1", port_of(echo))) as port:
            r, w = await _client(port)
            t0 = time.monotonic()
            assert await exchange(r, w, b"one", b"echo:one") == b"echo:one"
            assert time.monotonic() - t0 >= 0.4
            w.close()
    finally:
        echo.close()


def test_q_is_for_http_flows_only_as_mitmproxys() -> None:
    """mitmproxy's ~q matches HTTP flows only: a breakpoint on ~q pauses requests, never the
    messages of a TCP flow (which has no response either)."""
    from proxycore.flows.filter import parse
    from proxycore.flows.flow import Flow, Request
    from proxycore.flows.tcp import TCPMessage, new_tcp_flow

    f = new_tcp_flow("example.com", 7, None)
    f.tcp_messages.append(TCPMessage(True, b"hi"))
    assert not parse("~q")(f) and parse("~tcp")(f)
    assert parse("~q")(Flow(Request("GET", "http", "example.com", 80, "/")))
