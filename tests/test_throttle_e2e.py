"""Throttling through the real proxy with real clients: bodies arrive intact, the filter scopes it,
loss resets connections, back-pressure holds the origin, turning it off releases what is queued, and
the commands drive it. Assertions are on the shaper's accounting, never on wall-clock time."""

from __future__ import annotations

import hashlib
import ssl

import httpx
import pytest
from conftest import collect_done, proxy_url, wait_for
from origin import pattern_bytes

from proxycore.control.commands import CommandContext, CommandError
from proxycore.flows.view import FlowView
from proxycore.throttle import DOWN, HIGH_WATER, UP


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


async def test_throttled_download_is_intact_and_an_unmatched_host_is_not_shaped(make_proxy, origin):
    proxy = await make_proxy(throttle_down="16mbit", throttle_filter="~d localhost")
    done = collect_done(proxy)
    links = proxy.throttle.links
    n = 512 * 1024
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as client:
        r = await client.get(origin.url(f"/bytes?n={n}", host="localhost"))
        assert r.status_code == 200 and sha(r.content) == sha(pattern_bytes(n))
        shaped = links[DOWN].bytes
        assert shaped >= n  # the body (and the head) went through the download link
        # same client connection, another host: not throttled, not counted
        r = await client.get(origin.url(f"/bytes?n={n}"))
        assert r.status_code == 200 and sha(r.content) == sha(pattern_bytes(n))
        assert links[DOWN].bytes == shaped
    await wait_for(lambda: len(done) == 2, what="two flows")
    tags = {f.request.host: f.tags for f in done}
    assert tags == {"localhost": ["throttled"], "127.0.0.1": []}
    assert links[UP].bytes > 0  # the matching request head went through the upload link
    assert proxy.throttle.flows_matched == 1


async def test_throttled_upload_is_intact(make_proxy, origin):
    proxy = await make_proxy(throttle_up="16mbit", throttle_latency="20ms")
    body = pattern_bytes(300_000)
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as client:
        r = await client.post(origin.url("/echo"), content=body)
    assert r.json()["bodySha256"] == sha(body)
    assert proxy.throttle.links[UP].bytes >= len(body)


async def test_https_mitm_download_and_upload_throttled(make_proxy, tls_origin):
    proxy = await make_proxy(throttle="wifi", throttle_latency="0")
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    n = 400_000
    body = pattern_bytes(200_000)
    async with httpx.AsyncClient(proxy=proxy_url(proxy), verify=ctx, timeout=30) as client:
        r = await client.get(tls_origin.url(f"/bytes?n={n}", host="localhost"))
        assert sha(r.content) == sha(pattern_bytes(n))
        r = await client.post(tls_origin.url("/echo", host="localhost"), content=body)
        assert r.json()["bodySha256"] == sha(body)
    assert proxy.throttle.links[DOWN].bytes >= n and proxy.throttle.links[UP].bytes >= len(body)


async def test_chunked_and_close_delimited_responses_survive_throttling(make_proxy, origin):
    proxy = await make_proxy(throttle_down="32mbit")
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as client:
        r = await client.get(origin.url("/chunked?n=200000&parts=7"))
        assert len(r.content) == 200000
        r = await client.get(origin.url("/close"))  # ends with the connection: close must wait
        assert r.status_code == 200 and r.content


async def test_loss_resets_the_connection_and_records_why(make_proxy, origin):
    proxy = await make_proxy(throttle_loss=100, throttle_filter="~d localhost")
    done = collect_done(proxy)
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(origin.url("/json", host="localhost"))
        r = await client.get(origin.url("/json"))  # not matched: never lost
        assert r.status_code == 200
    await wait_for(lambda: len(done) == 2, what="two flows")
    lost = next(f for f in done if f.request.host == "localhost")
    assert lost.error == "connection reset by throttling (packet-loss emulation)"
    assert proxy.throttle.flows_reset == 1


async def test_backpressure_pauses_the_origin_and_off_releases_the_rest(make_proxy, origin):
    """At 64 kbit/s a 2 MiB body would take minutes: the shaper must hold only a bounded amount
    (the origin is paused), and turning throttling off lets the rest through at once."""
    proxy = await make_proxy(throttle_down="64kbit")
    done = collect_done(proxy)
    th = proxy.throttle
    n = 2 * 1024 * 1024
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=60) as client:
        async with client.stream("GET", origin.url(f"/bytes?n={n}")) as r:
            it = r.aiter_raw()
            got = [await it.__anext__()]  # the first bytes arrived throttled

            def paused_shaper():
                return next((s for s in th.shapers if s.direction == DOWN and s.paused_producer), None)

            s = await wait_for(paused_shaper, what="the shaper to pause the origin")
            assert s.backlog <= HIGH_WATER + 256 * 1024  # bounded: one read past the mark at most
            assert not done  # the flow ends when the client has the response, not before
            th.set(None)  # throttle.off: queued bytes go out, the plain write path is back
            async for chunk in it:
                got.append(chunk)
    assert sha(b"".join(got)) == sha(pattern_bytes(n))
    assert not list(th.shapers)
    await wait_for(lambda: done, what="the flow done once the body was sent")


async def test_commands_drive_the_running_engine(origin):
    from proxycore.control.client import LocalEngine
    from proxycore.options import Options

    engine = LocalEngine(Options(port=0, mitm=False))
    await engine.start()
    try:
        ctx = CommandContext(view=FlowView())
        assert engine.run_command("throttle.status", ctx) == "throttle: off"
        msg = engine.run_command("throttle.set", ctx, "3g")
        assert msg.startswith("throttle: 3g ↓780 kbit/s ↑330 kbit/s 100 ms")
        msg = engine.run_command("throttle.custom", ctx, "1mbit", "512kbit", "100ms")
        assert msg.startswith("throttle: custom ↓1 Mbit/s ↑512 kbit/s 100 ms")
        assert engine.run_command("throttle.filter", ctx, "~d api.example.com") == \
            "throttle scope: '~d api.example.com'"
        assert "for '~d api.example.com'" in engine.run_command("throttle.status", ctx)
        with pytest.raises(CommandError, match="^preset: '5g' is not one of gprs, 2g, edge, 3g"):
            engine.run_command("throttle.set", ctx, "5g")
        with pytest.raises(CommandError, match="^throttle.custom: bad rate 'fast'"):
            engine.run_command("throttle.custom", ctx, "fast", "1mbit", "0")
        with pytest.raises(CommandError, match="^throttle.filter: throttle filter"):
            engine.run_command("throttle.filter", ctx, "~d (")
        assert engine.run_command("throttle.off", ctx) == "throttle: off"
        assert engine.throttle.profile is None
    finally:
        await engine.stop()


async def test_bad_throttle_filter_fails_start_in_one_line(make_proxy):
    from proxycore.errors import StartupError

    with pytest.raises(StartupError, match="^throttle filter '~d \\(':"):
        await make_proxy(throttle="3g", throttle_filter="~d (")


async def test_connect_after_a_throttled_request_on_the_same_connection(make_proxy, origin, tls_origin):
    """The throttled response's queued tail reaches the client before the tunnel's 200 and the TLS
    handshake that follows it on the same connection."""
    import asyncio

    proxy = await make_proxy(throttle_down="256kbit")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    n = 100_000  # about 3 s at 256 kbit/s: the CONNECT is served while most of it is still queued
    writer.write(f"GET http://127.0.0.1:{origin.port}/bytes?n={n} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
                 + f"CONNECT localhost:{tls_origin.port} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert head.startswith(b"HTTP/1.1 200")
    body = await asyncio.wait_for(reader.readexactly(n), 30)
    assert sha(body) == sha(pattern_bytes(n))
    connected = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert connected.startswith(b"HTTP/1.1 200 Connection Established")
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    await asyncio.wait_for(writer.start_tls(ctx, server_hostname="localhost"), 30)
    writer.write(b"GET /json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), 30)
    assert reply.startswith(b"HTTP/1.1 200") and b"hello" in reply
    writer.close()


async def test_the_headless_start_line_names_the_profile(make_proxy):
    from proxycore.headless import listening_line
    from proxycore.options import Options

    proxy = await make_proxy(throttle="edge", throttle_filter="~d api.example.com")
    line = listening_line(proxy, Options())
    assert line.endswith(" — throttle: edge ↓250 kbit/s ↑150 kbit/s 300 ms for '~d api.example.com'")
    plain = await make_proxy()
    assert "throttle" not in listening_line(plain, Options())


async def test_loss_is_a_tcp_reset_on_the_wire(make_proxy, origin):
    import asyncio

    proxy = await make_proxy(throttle_loss=100)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(f"GET http://127.0.0.1:{origin.port}/json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 30)
    writer.close()


async def test_a_replay_is_throttled_like_live_traffic(make_proxy, origin):
    """A replay goes through the live pipeline over an in-memory stream: matched, shaped, intact."""
    from proxycore.proxy.replay import replay_request

    proxy = await make_proxy(throttle_down="16mbit", throttle_latency="10ms")
    done = collect_done(proxy)
    n = 200_000
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as client:
        r = await client.get(origin.url(f"/bytes?n={n}"))
    assert len(r.content) == n
    await wait_for(lambda: done, what="the original flow")
    before = proxy.throttle.links[DOWN].bytes
    flow = await replay_request(proxy, done[0].request)
    assert flow.is_replay and flow.error is None and flow.response.status == 200
    assert flow.response.body_size == n and "throttled" in flow.tags
    assert proxy.throttle.links[DOWN].bytes - before >= n
