"""Addons on the engine's hooks, end to end: real clients through the real proxy to a real origin."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
from conftest import collect_done, proxy_url, run, wait_for
from origin import pattern_bytes

from proxycore.flows.flow import Headers, Response


class Recorder:
    """Every hook, recorded in order per flow path."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def _rec(self, hook: str, flow) -> None:
        self.calls.append((hook, flow.request.path))

    def requestheaders(self, flow) -> None:
        self._rec("requestheaders", flow)

    def request(self, flow) -> None:
        self._rec("request", flow)

    def responseheaders(self, flow) -> None:
        self._rec("responseheaders", flow)

    def response(self, flow) -> None:
        self._rec("response", flow)

    def done(self, flow) -> None:
        self._rec("done", flow)

    def error(self, flow) -> None:
        self._rec("error", flow)


async def test_hooks_run_in_order(make_proxy, origin):
    proxy = await make_proxy()
    rec = Recorder()
    proxy.addons.add(rec)
    rc, out, err = await run("curl", "-sS", "-x", proxy_url(proxy), origin.url("/json"))
    assert rc == 0, err
    await wait_for(lambda: ("done", "/json") in rec.calls, what="done hook")
    assert [h for h, _ in rec.calls] == ["requestheaders", "request", "responseheaders", "response", "done"]


class Pauser:
    """Async hooks that hold one flow at `request` and another at `response` until released."""

    def __init__(self) -> None:
        self.release_request = asyncio.Event()
        self.release_response = asyncio.Event()
        self.paused: set[str] = set()

    async def request(self, flow) -> None:
        if flow.request.query_string == "pause=request":
            self.paused.add("request")
            await self.release_request.wait()

    async def response(self, flow) -> None:
        if flow.request.query_string == "pause=response":
            self.paused.add("response")
            await self.release_response.wait()

    def responseheaders(self, flow) -> None:
        if flow.request.query_string == "pause=response":
            flow.response.stream = False  # the client gets nothing until the hook lets it go


async def test_paused_flows_hold_up_no_other_client(make_proxy, origin):
    proxy = await make_proxy()
    pauser = Pauser()
    proxy.addons.add(pauser)
    done = collect_done(proxy)
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as slow1, \
            httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as slow2:
        held_req = asyncio.create_task(slow1.get(origin.url("/json?pause=request")))
        held_resp = asyncio.create_task(slow2.get(origin.url("/json?pause=response")))
        await wait_for(lambda: pauser.paused == {"request", "response"}, what="both flows paused")

        async def one(i: int) -> int:
            async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as c:
                r = await c.get(origin.url(f"/json?client={i}"))
                return r.status_code

        statuses = await asyncio.gather(*(one(i) for i in range(50)))
        assert statuses == [200] * 50
        assert not held_req.done() and not held_resp.done()
        # the request paused before going upstream: the origin has not seen it
        assert not any(r["target"].endswith("pause=request") for r in origin.requests)
        pauser.release_request.set()
        pauser.release_response.set()
        r1, r2 = await asyncio.wait_for(asyncio.gather(held_req, held_resp), 10)
    assert r1.status_code == 200 and r1.json()["hello"] == "world"
    assert r2.status_code == 200 and r2.json()["hello"] == "world"
    await wait_for(lambda: len(done) == 52, what="52 flows")


class Rewriter:
    def requestheaders(self, flow) -> None:
        if flow.request.path == "/echo":
            flow.request.stream = False

    def request(self, flow) -> None:
        if flow.request.path == "/echo":
            assert flow.request.body == b"x" * 5000  # whole, however it arrived
            flow.request.body = b"rewritten request body"

    def responseheaders(self, flow) -> None:
        if flow.request.path in ("/json", "/chunked"):
            flow.response.stream = False

    def response(self, flow) -> None:
        if flow.request.path == "/json":
            flow.response.body = flow.response.body.replace(b"world", b"planet, rewritten")
        elif flow.request.path == "/chunked":
            flow.response.body = b"[" + flow.response.body[:10] + b"]"


async def test_hook_buffers_and_rewrites_bodies(make_proxy, origin):
    proxy = await make_proxy()
    proxy.addons.add(Rewriter())
    done = collect_done(proxy)
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as c:
        r = await c.get(origin.url("/json"))
        assert r.json()["hello"] == "planet, rewritten"
        assert int(r.headers["content-length"]) == len(r.content)
        r = await c.get(origin.url("/chunked?n=100000&parts=7"))
        assert r.content == b"[" + pattern_bytes(100000)[:10] + b"]"
        assert "transfer-encoding" not in r.headers
        # a chunked upload, buffered whole and replaced
        async def upload():
            for _ in range(5):
                yield b"x" * 1000

        r = await c.post(origin.url("/echo"), content=upload())
        echo = r.json()
        assert echo["bodySize"] == len(b"rewritten request body")
        assert echo["bodySha256"] == hashlib.sha256(b"rewritten request body").hexdigest()
    await wait_for(lambda: len(done) == 3, what="3 flows")
    assert json.loads(done[0].response.body)["hello"] == "planet, rewritten"


async def test_body_over_the_buffer_limit_streams(make_proxy, origin):
    proxy = await make_proxy(body_buffer_limit=10_000)
    seen: list[bool] = []

    class Asker:
        def responseheaders(self, flow) -> None:
            flow.response.stream = False

        def response(self, flow) -> None:
            seen.append(True)

    proxy.addons.add(Asker())
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as c:
        r = await c.get(origin.url("/bytes?n=300000"))
    assert r.content == pattern_bytes(300000)
    assert seen == [True]


class LocalAnswer:
    def request(self, flow) -> None:
        if flow.request.path == "/local":
            flow.response = Response(
                200, "OK", headers=Headers.from_pairs([("Content-Type", "text/plain")]), body=b"made by the proxy")


async def test_local_response_keeps_the_connection_alive(make_proxy, origin):
    proxy = await make_proxy()
    proxy.addons.add(LocalAnswer())
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    try:
        body = b"ignored upload"
        writer.write(f"POST {origin.url('/local')} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Content-Length: 17\r\n" in head
        assert await asyncio.wait_for(reader.readexactly(17), 10) == b"made by the proxy"
        # same connection: the next request goes to the origin
        writer.write(f"GET {origin.url('/json')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    await wait_for(lambda: len(done) == 2, what="2 flows")
    assert done[0].response.body == b"made by the proxy" and done[0].error is None
    assert not any("/local" in r["target"] for r in origin.requests)


async def test_kill_closes_the_client_connection(make_proxy, origin):
    proxy = await make_proxy()

    class Killer:
        def request(self, flow) -> None:
            if flow.request.path == "/json":
                flow.kill()

    proxy.addons.add(Killer())
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(f"GET {origin.url('/json')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        data = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        data = b""
    writer.close()
    assert data == b""
    await wait_for(lambda: done, what="killed flow")
    assert done[0].error == "killed" and done[0].killed


async def test_hook_exception_is_reported_and_the_flow_goes_on(make_proxy, origin):
    proxy = await make_proxy()

    class Broken:
        def request(self, flow) -> None:
            raise RuntimeError("boom")

    proxy.addons.add(Broken())
    rc, out, err = await run("curl", "-sS", "-x", proxy_url(proxy), origin.url("/json"))
    assert rc == 0 and json.loads(out)["hello"] == "world"
    assert any("Broken.request" in e and "boom" in e for e in make_proxy.errors)


async def test_script_file_loads_addons(make_proxy, origin, tmp_path):
    script = tmp_path / "addon.py"
    script.write_text(
        "class Tag:\n"
        "    def requestheaders(self, flow):\n"
        "        flow.request.headers.set('X-Added-By', 'script')\n"
        "addons = [Tag()]\n")
    proxy = await make_proxy(scripts=[str(script)])
    async with httpx.AsyncClient(proxy=proxy_url(proxy), timeout=30) as c:
        r = await c.get(origin.url("/echo"))
    assert ["X-Added-By", "script"] in r.json()["headers"]


async def test_bad_script_is_a_startup_error(make_proxy, tmp_path):
    import pytest

    from proxycore.proxy.server import StartupError

    script = tmp_path / "bad.py"
    script.write_text("raise ValueError('nope')\n")
    with pytest.raises(StartupError, match="bad.py failed to load"):
        await make_proxy(scripts=[str(script)])
    with pytest.raises(StartupError, match="no such file"):
        await make_proxy(scripts=[str(tmp_path / "missing.py")])
