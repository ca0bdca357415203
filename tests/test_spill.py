"""Whole bodies in the UI's proxy: big ones spill to files under <home>/spill, removed with their
flow; the capture record is still cut at --max-body-size. Real proxy, real origin, real client."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from conftest import wait_for

from proxycore.capture.record import RecordOptions, flow_to_record
from proxycore.flows.flow import Flow
from proxycore.options import Options
from proxycore.proxy.server import Proxy

BIG_JSON = json.dumps({"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"], "value": i * 1.5}
                                 for i in range(300_000)]}).encode()


class BigOrigin:
    """Serves /big (a 22 MB JSON body, in 64 KiB writes) and /small."""

    def __init__(self, body: bytes = BIG_JSON) -> None:
        self.body = body
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> BigOrigin:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                body = self.body if head.split(b" ", 2)[1] == b"/big" else b'{"small": true}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body))
                for i in range(0, len(body), 65536):
                    writer.write(body[i:i + 65536])
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def big_origin():
    o = await BigOrigin().start()
    yield o
    await o.stop()


@pytest.fixture
async def ui_proxy(tmp_path: Path):
    """Factory for a proxy that keeps flows as the UI's does (so it spills)."""
    made: list[Proxy] = []
    errors: list[str] = []

    async def make(keep: int = 100, **overrides) -> Proxy:
        overrides.setdefault("port", 0)
        p = Proxy(Options(**overrides), on_error=errors.append, keep_flows=keep)
        await p.start()
        made.append(p)
        return p

    make.errors = errors  # type: ignore[attr-defined]
    yield make
    for p in made:
        await p.stop()


def _client(proxy: Proxy) -> httpx.AsyncClient:
    return httpx.AsyncClient(proxy=f"http://127.0.0.1:{proxy.address[1]}", trust_env=False, timeout=60)


async def _get(proxy: Proxy, url: str, method: str = "GET", content: bytes | None = None) -> httpx.Response:
    async with _client(proxy) as c:
        return await c.request(method, url, content=content)


def _flows(proxy: Proxy) -> list[Flow]:
    return list(proxy.flows)


def _spill_files(home: Path) -> list[Path]:
    root = home / "spill"
    return sorted(root.rglob("*.body")) if root.exists() else []


async def test_big_json_is_kept_whole_and_the_capture_is_still_capped(big_origin, ui_proxy, omniproxy_home,
                                                                      tmp_path) -> None:
    out = tmp_path / "cap.ndjson"
    proxy = await ui_proxy(output=str(out))
    r = await _get(proxy, big_origin.url("/big"))
    assert r.content == BIG_JSON and len(BIG_JSON) > 20_000_000
    flow = await wait_for(lambda: next((f for f in _flows(proxy) if f.is_finished), None), what="flow")
    resp = flow.response
    assert resp.spilled is not None and not resp.body_truncated
    assert resp.body_size == len(BIG_JSON) and resp.captured_size == len(BIG_JSON)
    assert resp.body == BIG_JSON  # read back whole
    assert json.loads(resp.body)["items"][-1]["id"] == 299_999
    files = _spill_files(omniproxy_home)
    assert len(files) == 1 and files[0].stat().st_size == len(BIG_JSON)
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    # the capture record keeps --max-body-size of it
    rec = flow_to_record(flow, RecordOptions.from_options(proxy.options))
    assert rec["response"]["bodyTruncated"] is True and len(rec["response"]["body"]) == 1048576
    await proxy.stop()
    line = json.loads(out.read_text().splitlines()[0])
    assert line["response"]["bodyTruncated"] is True and len(line["response"]["body"]) == 1048576
    assert not (omniproxy_home / "spill").exists()  # stop removes every spill file


async def test_small_bodies_stay_in_memory(big_origin, ui_proxy, omniproxy_home) -> None:
    proxy = await ui_proxy()
    await _get(proxy, big_origin.url("/small"), "POST", b"x" * 1000)
    flow = await wait_for(lambda: next((f for f in _flows(proxy) if f.is_finished), None), what="flow")
    assert flow.response.spilled is None and flow.request.spilled is None
    assert flow.request.body == b"x" * 1000 and flow.response.body == b'{"small": true}'
    assert not _spill_files(omniproxy_home)


async def test_request_bodies_spill_too(big_origin, ui_proxy, omniproxy_home) -> None:
    proxy = await ui_proxy(spill_threshold=100_000)
    payload = os.urandom(3_000_000)
    await _get(proxy, big_origin.url("/small"), "POST", payload)
    flow = await wait_for(lambda: next((f for f in _flows(proxy) if f.is_finished), None), what="flow")
    assert flow.request.spilled is not None and flow.request.body == payload
    assert flow.request.body_head(10) == payload[:10]


async def test_spill_files_go_with_delete_eviction_and_clear(big_origin, ui_proxy, omniproxy_home) -> None:
    proxy = await ui_proxy(keep=2, spill_threshold=1000)
    for _ in range(2):
        await _get(proxy, big_origin.url("/big"))
    await wait_for(lambda: len([f for f in _flows(proxy) if f.is_finished]) == 2, what="two flows")
    assert len(_spill_files(omniproxy_home)) == 2
    first, second = _flows(proxy)
    # delete
    proxy.flows.remove([first.id])
    assert len(_spill_files(omniproxy_home)) == 1 and first.response.spilled.path is None
    # eviction by max_flows (2 kept): two more flows drop `second`
    for _ in range(2):
        await _get(proxy, big_origin.url("/big"))
    await wait_for(lambda: second.id not in proxy.flows and len(proxy.flows) == 2
                   and all(f.is_finished for f in proxy.flows), what="eviction")
    assert len(_spill_files(omniproxy_home)) == 2
    assert proxy.spill.total == 2 * len(BIG_JSON)
    # clear
    proxy.flows.clear()
    assert _spill_files(omniproxy_home) == [] and proxy.spill.total == 0


async def test_unwritable_spill_dir_warns_once_and_keeps_the_body_cut(big_origin, ui_proxy,
                                                                      omniproxy_home) -> None:
    omniproxy_home.mkdir(parents=True, exist_ok=True)
    (omniproxy_home / "spill").write_text("not a directory")  # unwritable even for root
    proxy = await ui_proxy(max_body_size=2000, spill_threshold=1000)
    for _ in range(2):
        r = await _get(proxy, big_origin.url("/big"))
        assert r.content == BIG_JSON  # forwarding is untouched
    await wait_for(lambda: len([f for f in _flows(proxy) if f.is_finished]) == 2, what="flows")
    for f in _flows(proxy):
        assert f.response.spilled is None and f.response.body_truncated
        assert f.response.body == BIG_JSON[:2000]
    warnings = [e for e in ui_proxy.errors if "spill" in e]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "--max-body-size" in warnings[0]


async def test_spill_max_total_caps_the_disk_used(big_origin, ui_proxy, omniproxy_home) -> None:
    proxy = await ui_proxy(spill_threshold=1000, spill_max_total=len(BIG_JSON))
    for _ in range(3):
        await _get(proxy, big_origin.url("/big"))
    await wait_for(lambda: len([f for f in _flows(proxy) if f.is_finished]) == 3, what="flows")
    spilled = [f for f in _flows(proxy) if f.response.spilled is not None]
    assert len(spilled) == 1 and len(_spill_files(omniproxy_home)) == 1
    cut = [f for f in _flows(proxy) if f.response.spilled is None]
    assert all(f.response.body_truncated and len(f.response.body) == 1048576 for f in cut)
    assert [e for e in ui_proxy.errors if "--spill-max-total" in e]


async def test_headless_proxy_never_spills(big_origin, make_proxy, omniproxy_home) -> None:
    proxy = await make_proxy()
    flows: list[Flow] = []
    proxy.subscribe(lambda kind, f: flows.append(f) if kind == "done" else None)
    await _get(proxy, big_origin.url("/big"))
    await wait_for(lambda: flows, what="flow")
    assert proxy.spill is None and flows[0].response.spilled is None
    assert flows[0].response.body_truncated and len(flows[0].response.body) == 1048576
    assert not (omniproxy_home / "spill").exists()


def test_stale_spill_dirs_of_dead_processes_are_removed(tmp_path: Path) -> None:
    from proxycore.flows.spill import SpillStore

    root = tmp_path / "spill"
    dead = root / "999999999-abcd"
    dead.mkdir(parents=True)
    (dead / "1.body").write_bytes(b"x")
    live = root / f"{os.getppid()}-abcd"
    live.mkdir()
    store = SpillStore(tmp_path, 10, 1 << 30, 10)
    w = store.open()
    assert w is not None
    w.write(b"hello world")
    body = w.finish()
    assert body.read() == b"hello world" and body.read(5) == b"hello"
    assert not dead.exists() and live.exists()
    store.close()
    assert body.read() == b"hello world"  # the read-back cache: the one body being looked at
    del body


# --------------------------------------------------------------------------- compact flows


def _headers_flow() -> Flow:
    from proxycore.flows.flow import Headers, Request, Response

    req = Request("GET", "http", "example.com", 80, "/a?b=1",
                  headers=Headers([(b"Host", b"example.com"), (b"Accept", b"*/*"), (b"X-Empty", b""),
                                   (b"accept", b"text/html")]))
    req.set_body_chunks([b"ab", b"cd"])
    flow = Flow(req)
    flow.response = Response(200, "OK", headers=Headers([(b"Content-Type", b"application/json"),
                                                        (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")]),
                             body=b"{}")
    flow.state = "done"
    return flow


def test_compact_flow_changes_nothing_a_reader_sees() -> None:
    import copy

    from proxycore.flows.flow import CompactHeaders, Headers, compact_flow
    from proxycore.flows.serialize import flow_from_dict, flow_to_dict

    flow, plain = _headers_flow(), _headers_flow()
    plain.id = flow.id
    before = flow_to_dict(flow)
    compact_flow(flow)
    h = flow.request.headers
    assert isinstance(h, CompactHeaders) and isinstance(h, Headers)
    assert flow_to_dict(flow) == before  # the lossless serialisation is unchanged
    assert flow_from_dict(flow_to_dict(flow)).request.headers == plain.request.headers
    assert h == plain.request.headers and plain.request.headers == h
    assert len(h) == 4 and h.get("ACCEPT") == "*/*" and h.get_all("accept") == ["*/*", "text/html"]
    assert h.get("x-empty") == "" and "host" in h and "nope" not in h
    assert list(h.items()) == list(plain.request.headers.items())
    assert flow.response.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert flow.request.body == b"abcd" and flow.request.captured_size == 4
    # fields is read-only; set/remove/assignment make the headers plain and work
    assert isinstance(h.fields, tuple)
    h.set("Accept", "x/y")
    assert h.get_all("accept") == ["x/y"] and len(h) == 3
    h.remove("x-empty")
    assert [k for k, _ in h.items()] == ["Host", "Accept"]
    h.fields = [(b"A", b"1")]
    assert h.get("a") == "1"
    c = copy.deepcopy(flow.response.headers)
    c.fields.append((b"X", b"y"))  # a copy is plain again
    assert c.get("x") == "y" and flow.response.headers.get("x") is None
    # a NUL (never from a valid peer) keeps the headers plain
    odd = Headers([(b"A", b"x\0y")])
    assert CompactHeaders.pack(odd) is odd


async def test_kept_flows_are_compact_headless_ones_untouched(big_origin, ui_proxy, make_proxy) -> None:
    from proxycore.flows.flow import CompactHeaders

    proxy = await ui_proxy()
    await _get(proxy, big_origin.url("/small"))
    flow = await wait_for(lambda: next((f for f in _flows(proxy) if f.is_finished), None), what="flow")
    assert isinstance(flow.request.headers, CompactHeaders) and isinstance(flow.response.headers, CompactHeaders)
    assert flow.response.headers.get("content-type") == "application/json"
    headless = await make_proxy()
    done: list[Flow] = []
    headless.subscribe(lambda kind, f: done.append(f) if kind == "done" else None)
    await _get(headless, big_origin.url("/small"))
    await wait_for(lambda: done, what="flow")
    assert not isinstance(done[0].response.headers, CompactHeaders)


async def test_one_body_bigger_than_the_cap_is_cut_not_spilled_past_it(big_origin, ui_proxy,
                                                                       omniproxy_home) -> None:
    proxy = await ui_proxy(spill_threshold=1000, spill_max_total=5_000_000, max_body_size=4000)
    r = await _get(proxy, big_origin.url("/big"))
    assert r.content == BIG_JSON
    flow = await wait_for(lambda: next((f for f in _flows(proxy) if f.is_finished), None), what="flow")
    assert flow.response.spilled is None and flow.response.body_truncated
    assert flow.response.body == BIG_JSON[:4000]
    assert _spill_files(omniproxy_home) == [] and proxy.spill.total == 0
    assert [e for e in ui_proxy.errors if "--spill-max-total" in e]


async def test_a_duplicate_keeps_its_body_when_the_original_is_deleted(big_origin, ui_proxy,
                                                                       omniproxy_home) -> None:
    from proxycore.flows.view import copy_flow

    proxy = await ui_proxy(spill_threshold=1000)
    await _get(proxy, big_origin.url("/big"))
    flow = await wait_for(lambda: next((f for f in _flows(proxy) if f.is_finished), None), what="flow")
    dup = copy_flow(flow)
    assert dup.response.spilled is not None and dup.response.spilled is not flow.response.spilled
    proxy.flows.remove([flow.id])
    assert flow.response.body == b"" and dup.response.body == BIG_JSON
    assert len(_spill_files(omniproxy_home)) == 1
    await proxy.stop()
    assert not (omniproxy_home / "spill").exists()
