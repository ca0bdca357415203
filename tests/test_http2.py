"""HTTP/2 through the proxy: real clients (curl --http2, httpx http2=True, a raw h2 client built on
the h2 library) to a real h2 origin (hypercorn over TLS), and to HTTP/1.1 origins."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import ssl
import subprocess

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from conftest import collect_done, proxy_url, run, wait_for
from h2origin import H2Origin
from origin import pattern_bytes

from proxycore.capture.har import record_to_har_entry
from proxycore.capture.record import RecordOptions, flow_to_record
from proxycore.flows.serialize import flow_from_dict, flow_to_dict

pytestmark = pytest.mark.skipif(shutil.which("curl") is None or b"HTTP2" not in subprocess.run(
    ["curl", "-V"], capture_output=True).stdout, reason="needs curl with HTTP/2")


@pytest.fixture
async def h2_origin(origin_ca):
    o = await H2Origin(origin_ca).start()
    yield o
    await o.stop()


def curl_h2(proxy, *args: str) -> tuple[str, ...]:
    return ("curl", "-sS", "--http2", "--cacert", str(proxy.ca.cert_path), "-x", proxy_url(proxy), *args)


def client(proxy, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(http2=True, proxy=proxy_url(proxy), verify=ssl.create_default_context(
        cafile=str(proxy.ca.cert_path)), timeout=30, **kw)


async def h2_raw(proxy, host: str, port: int, requests: list[tuple[list, bytes, list | None]],
                 timeout: float = 20) -> list[dict]:
    """Send `requests` (headers, body, request trailers) on one h2 connection through the proxy's
    CONNECT; returns per stream: headers, body, trailers, reset code."""
    r, w = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    w.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
    assert head.startswith(b"HTTP/1.1 200"), head
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    ctx.set_alpn_protocols(["h2"])
    await asyncio.wait_for(w.start_tls(ctx, server_hostname=host), timeout)
    assert w.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    out: dict[int, dict] = {}
    for headers, body, trailers in requests:
        sid = conn.get_next_available_stream_id()
        out[sid] = {"headers": None, "body": b"", "trailers": None, "reset": None, "ended": False}
        conn.send_headers(sid, headers, end_stream=not body and not trailers)
        if body:
            conn.send_data(sid, body, end_stream=not trailers)
        if trailers:
            conn.send_headers(sid, trailers, end_stream=True)
    w.write(conn.data_to_send())
    pushed = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(s["ended"] or s["reset"] is not None for s in out.values()):
        data = await asyncio.wait_for(r.read(65536), max(0.1, deadline - loop.time()))
        assert data, "proxy closed the connection"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                out[ev.stream_id]["headers"] = ev.headers
            elif isinstance(ev, h2.events.DataReceived):
                out[ev.stream_id]["body"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                out[ev.stream_id]["trailers"] = ev.headers
            elif isinstance(ev, h2.events.StreamEnded):
                out[ev.stream_id]["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                out[ev.stream_id]["reset"] = ev.error_code
            elif isinstance(ev, h2.events.PushedStreamReceived):
                pushed += 1
        w.write(conn.data_to_send())
    w.close()
    for s in out.values():
        s["pushed"] = pushed
    return [out[k] for k in sorted(out)]


def req(method: str, authority: str, path: str, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()),
            (b":path", path.encode()), *extra]


async def test_curl_http2_get_and_post_to_h2_origin(make_proxy, h2_origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    rc, out, err = await run(*curl_h2(proxy, h2_origin.url("/echo")))
    assert rc == 0, err
    assert b"< HTTP/2 200" in err and b"ALPN: server accepted h2" in err
    assert json.loads(out)["http_version"] == "2"
    body = bytes(range(256)) * 4096  # 1 MiB
    rc, out, err = await run(*curl_h2(proxy, "--data-binary", "@-", "-H", "content-type: application/octet-stream",
                                      h2_origin.url("/echo?post")), input=body)
    assert rc == 0, err
    echoed = json.loads(out)
    assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest() and echoed["method"] == "POST"
    await wait_for(lambda: len(done) == 2, what=f"two flows {[(f.request.url, f.error, f.state) for f in done]} {make_proxy.errors}")
    get, post = sorted(done, key=lambda f: f.id)
    for f in (get, post):
        assert f.error is None and f.response.status == 200
        assert f.request.http_version == "HTTP/2.0" and f.response.http_version == "HTTP/2.0"
        assert f.client_tls.alpn == "h2" and f.server_tls.alpn == "h2"
        assert f.stream is not None and f.request.url.startswith(f"https://localhost:{h2_origin.port}/echo")
        assert not any(k.startswith(b":") for k, _ in f.request.headers.fields)
    assert post.request.body_size == len(body)
    assert h2_origin.versions == ["2", "2"]


async def test_httpx_concurrent_streams_are_separate_flows_on_one_connection(make_proxy, h2_origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    async with client(proxy) as c:
        await c.get(h2_origin.url("/echo"))  # httpx opens one connection per request until it knows h2
        rs = await asyncio.gather(*(c.get(h2_origin.url(f"/slow?ms=150&i={i}")) for i in range(8)))
    assert all(r.status_code == 200 and r.http_version == "HTTP/2" for r in rs)
    await wait_for(lambda: len(done) == 9, what="nine flows")
    done = [f for f in done if f.request.path == "/slow"]
    assert len({f.stream[0] for f in done}) == 1  # one client connection ...
    assert len({f.stream[1] for f in done}) == 8  # ... eight streams
    assert proxy.stats["upstream_connections_opened"] == 1  # one h2 connection to the origin, shared
    # concurrent: eight 150 ms responses took far less than 8 x 150 ms
    assert max(f.timings.end for f in done) - min(f.timings.start for f in done) < 1.0


async def test_100mib_download_over_h2_checksummed(make_proxy, h2_origin, tmp_path):
    proxy = await make_proxy()
    n = 100 * 1024 * 1024
    dest = tmp_path / "big.bin"
    rc, out, err = await run(*curl_h2(proxy, "-o", str(dest), h2_origin.url(f"/bytes?n={n}")), timeout=120)
    assert rc == 0, err
    assert b"< HTTP/2 200" in err
    want = hashlib.sha256()
    block = pattern_bytes(1 << 20)
    for _ in range(100):
        want.update(block)
    got = hashlib.sha256()
    with open(dest, "rb") as f:
        while chunk := f.read(1 << 20):
            got.update(chunk)
    assert dest.stat().st_size == n and got.hexdigest() == want.hexdigest()


async def test_response_trailers_reach_an_h2_client(make_proxy, h2_origin):
    proxy = await make_proxy()
    rc, out, err = await run(*curl_h2(proxy, "-v", "-H", "te: trailers", h2_origin.url("/trailers")))
    assert rc == 0, err
    assert out == b"part-0;part-1;part-2;part-3;part-4;"
    digest = hashlib.sha256(out).hexdigest().encode()
    assert b"< grpc-status: 0" in err and b"< x-sum: " + digest in err
    [s] = await h2_raw(proxy, "localhost", h2_origin.port,
                       [(req("GET", f"localhost:{h2_origin.port}", "/trailers", (b"te", b"trailers")), b"", None)])
    assert s["ended"] and dict(s["trailers"]) == {b"grpc-status": b"0", b"x-sum": digest}


async def _h1_origin():
    """An HTTP/1.1-only TLS origin answering with the raw request it received (chunked body and
    trailers included), so a test sees exactly what went over HTTP/1.1."""
    seen: list[bytes] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            data = await r.readuntil(b"\r\n\r\n")
            if b"transfer-encoding: chunked" in data.lower():
                data += await r.readuntil(b"\r\n0\r\n")
                data += await r.readuntil(b"\r\n\r\n")
            seen.append(data)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                    b"Connection: close\r\n\r\n%x\r\n%b\r\n0\r\nX-Done: yes\r\n\r\n" % (len(data), data))
            await w.drain()
        finally:
            w.close()

    return handle, seen


async def test_h2_client_to_http1_origin_with_request_and_response_trailers(make_proxy, h2_origin, origin_ca):
    """h2 -> HTTP/1.1: the CONNECT host speaks h2 (so the client gets h2); a map-remote rule sends
    one stream to an HTTP/1.1-only origin."""
    handle, seen = await _h1_origin()
    ctx = origin_ca.server_context("localhost")  # offers http/1.1 only
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        proxy = await make_proxy(map_remote=[f"|~u /to-h1|^https://localhost:{h2_origin.port}/to-h1|"
                                             f"https://localhost:{port}/h1"])
        done = collect_done(proxy)
        auth = f"localhost:{h2_origin.port}"
        s1, s2 = await h2_raw(proxy, "localhost", h2_origin.port, [
            (req("POST", auth, "/to-h1", (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"te", b"trailers")),
             b"hello over h2", [(b"x-checksum", b"abc")]),
            (req("GET", auth, "/echo"), b"", None),
        ])
        raw = seen[0]
        assert raw.startswith(b"POST /h1 HTTP/1.1\r\n")
        assert b"cookie: a=1; b=2\r\n" in raw.lower()  # h2's split cookies joined for HTTP/1.1
        assert b"hello over h2" in raw and raw.endswith(b"0\r\nx-checksum: abc\r\n\r\n")  # request trailers
        assert dict(s1["headers"])[b":status"] == b"200" and s1["body"] == raw
        assert b"connection" not in dict(s1["headers"]) and b"transfer-encoding" not in dict(s1["headers"])
        assert dict(s1["trailers"]) == {b"x-done": b"yes"}  # response trailers
        assert json.loads(s2["body"])["http_version"] == "2"  # the other stream still went over h2
        await wait_for(lambda: len(done) == 2, what="two flows")
        to_h1 = next(f for f in done if f.request.path == "/h1")
        assert to_h1.request.http_version == "HTTP/2.0" and to_h1.response.http_version == "HTTP/1.1"
        assert to_h1.server_tls.alpn == "http/1.1"
    finally:
        server.close()


async def test_breakpoint_holds_one_stream_while_the_others_complete(make_proxy, h2_origin):
    proxy = await make_proxy()
    proxy.intercept.set_filter("~q & ~u hold")  # the request only
    done = collect_done(proxy)
    async with client(proxy) as c:
        await c.get(h2_origin.url("/echo?first"))  # one connection from now on
        held = asyncio.ensure_future(c.get(h2_origin.url("/echo?hold")))
        await wait_for(lambda: proxy.intercept.paused, what="the held stream")
        others = await asyncio.wait_for(asyncio.gather(*(c.get(h2_origin.url(f"/echo?n={i}")) for i in range(5))), 10)
        assert all(r.status_code == 200 for r in others) and not held.done()
        # a large response on the same connection is not stalled either
        big = await asyncio.wait_for(c.get(h2_origin.url(f"/bytes?n={20 << 20}")), 20)
        assert len(big.content) == 20 << 20
        flow = next(iter(proxy.intercept.paused.values())).flow
        assert flow.stream[0] == next(f for f in done if f.request.path == "/echo").stream[0]
        proxy.intercept.resume([flow])
        r = await asyncio.wait_for(held, 10)
    assert r.status_code == 200 and r.json()["path"] == "/echo"


async def test_rule_applies_per_stream(make_proxy, h2_origin):
    proxy = await make_proxy(modify_headers=["/~u tagged/X-Tag/yes"])
    async with client(proxy) as c:
        tagged, plain = await asyncio.gather(c.get(h2_origin.url("/echo?tagged")), c.get(h2_origin.url("/echo")))
    assert ["x-tag", "yes"] in tagged.json()["headers"]
    assert not any(k == "x-tag" for k, _ in plain.json()["headers"])


async def test_server_push_is_refused(make_proxy, h2_origin):
    proxy = await make_proxy()
    [s] = await h2_raw(proxy, "localhost", h2_origin.port, [(req("GET", f"localhost:{h2_origin.port}", "/push"), b"",
                                                           None)])
    assert s["ended"] and json.loads(s["body"])["path"] == "/push"
    assert h2_origin.push_attempts == 1  # the app tried; SETTINGS_ENABLE_PUSH=0 kept it from pushing
    assert s["pushed"] == 0
    assert h2_origin.versions == ["2"]  # nothing but the request itself reached the app


async def test_http1_client_still_works_to_an_h2_origin(make_proxy, h2_origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    rc, out, err = await run("curl", "-sS", "-v", "--http1.1", "--cacert", str(proxy.ca.cert_path),
                             "-x", proxy_url(proxy), h2_origin.url("/echo"))
    assert rc == 0, err
    assert b"< HTTP/1.1 200" in err
    await wait_for(lambda: done, what="flow")
    assert done[0].request.http_version == "HTTP/1.1" and done[0].stream is None


async def test_http2_off_keeps_everything_on_http1(make_proxy, h2_origin):
    proxy = await make_proxy(http2=False)
    done = collect_done(proxy)
    rc, out, err = await run(*curl_h2(proxy, "-v", h2_origin.url("/echo")))
    assert rc == 0, err
    assert b"< HTTP/1.1 200" in err
    await wait_for(lambda: done, what="flow")
    assert done[0].client_tls.alpn == "http/1.1" and done[0].server_tls.alpn == "http/1.1"
    assert h2_origin.versions == ["1.1"]


async def test_client_reset_of_one_stream_ends_only_its_flow(make_proxy, h2_origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    async with client(proxy) as c:
        slow = asyncio.ensure_future(c.get(h2_origin.url("/slow?ms=3000")))
        await wait_for(lambda: h2_origin.versions, what="the slow request at the origin")
        slow.cancel()  # httpx resets the stream
        r = await c.get(h2_origin.url("/echo"))
        assert r.status_code == 200
    await wait_for(lambda: len(done) == 2, what="two flows")
    cancelled = next(f for f in done if f.request.path == "/slow")
    assert cancelled.error is not None


async def test_flow_records_keep_the_version_and_stream(make_proxy, h2_origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    rc, out, err = await run(*curl_h2(proxy, h2_origin.url("/echo")))
    assert rc == 0, err
    await wait_for(lambda: done, what="flow")
    f = done[0]
    again = flow_from_dict(json.loads(json.dumps(flow_to_dict(f))))
    assert again.stream == f.stream and again.request.http_version == "HTTP/2.0"
    rec = flow_to_record(f, RecordOptions())
    assert rec["http2"] == {"connection": f.stream[0], "stream": f.stream[1]}
    entry = record_to_har_entry(rec)
    assert entry["request"]["httpVersion"] == "HTTP/2.0" and entry["response"]["httpVersion"] == "HTTP/2.0"


async def test_throttling_applies_per_stream_without_stalling_the_others(make_proxy, h2_origin):
    """One stream throttled to 1 mbit (a 256 KiB download takes ~2 s): the other streams on the
    same connection are not throttled and finish first; the throttled one arrives whole, and an
    upload on a throttled stream goes through the shaper too."""
    proxy = await make_proxy(throttle_down="1mbit", throttle_up="1mbit", throttle_latency="0",
                             throttle_filter="~u throttled")
    done = collect_done(proxy)
    n = 256 * 1024
    async with client(proxy) as c:
        await c.get(h2_origin.url("/echo?first"))
        slow = asyncio.ensure_future(c.get(h2_origin.url(f"/bytes?n={n}&throttled")))
        await wait_for(lambda: len(h2_origin.versions) >= 2, what="the throttled request at the origin")
        t0 = asyncio.get_running_loop().time()
        quick = await asyncio.wait_for(asyncio.gather(*(c.get(h2_origin.url(f"/echo?q={i}")) for i in range(4))), 10)
        quick_s = asyncio.get_running_loop().time() - t0
        assert all(r.status_code == 200 for r in quick) and not slow.done() and quick_s < 1.0
        r = await asyncio.wait_for(slow, 30)
        assert r.content == pattern_bytes(1 << 20)[:n]
        up = pattern_bytes(64 * 1024)
        r = await asyncio.wait_for(c.post(h2_origin.url("/echo?throttled-up"), content=up), 30)
        assert r.json()["body_sha256"] == hashlib.sha256(up).hexdigest()
    await wait_for(lambda: len(done) == 7, what="seven flows")
    throttled = [f for f in done if "throttled" in f.tags]
    assert {f.request.path for f in throttled} == {"/bytes", "/echo"} and len(throttled) == 2
    assert len({f.stream[0] for f in done}) == 1


def test_detail_names_the_stream_and_a_translated_origin_version():
    from omniproxy_tui.widgets.detail import timing_document
    from proxycore.flows.flow import Flow, Request, Response

    f = Flow(Request("GET", "https", "example.com", 443, "/", "HTTP/2.0"), ("127.0.0.1", 5000))
    f.response = Response(200, "OK", "HTTP/1.1")
    f.stream = (3, 7)
    text = "\n".join(timing_document(f).all_plain())
    assert "h2 stream 7 on client connection #3" in " ".join(text.split())
    assert "origin HTTP/1.1" in " ".join(text.split())
