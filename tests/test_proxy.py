"""End-to-end proxying: real clients (curl, httpx) through the real proxy to real local origins."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import ssl
import weakref

import httpx
from conftest import collect_done, proxy_url, run, wait_for
from origin import pattern_bytes


async def test_http_get_with_curl_and_flow_fields(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    rc, out, err = await run("curl", "-sS", "-x", proxy_url(proxy), origin.url("/json?limit=10"))
    assert rc == 0, err
    assert json.loads(out)["hello"] == "world"
    await wait_for(lambda: done, what="flow")
    f = done[0]
    assert f.request.method == "GET"
    assert f.request.url == origin.url("/json?limit=10")
    assert f.request.path == "/json" and f.request.query_string == "limit=10"
    assert f.response.status == 200
    assert json.loads(f.response.body)["items"] == [1, 2, 3]
    assert f.timings.duration_ms is not None and f.timings.duration_ms >= 0
    assert f.client_addr[0] == "127.0.0.1"


async def test_https_mitm_with_curl_trusting_only_generated_ca(make_proxy, tls_origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    rc, out, err = await run("curl", "-sS", "--cacert", str(proxy.ca.cert_path), "-x", proxy_url(proxy),
                             tls_origin.url("/json", host="localhost"))
    assert rc == 0, err
    assert json.loads(out)["nested"] == {"a": True}
    await wait_for(lambda: done, what="flow")
    f = done[0]
    assert f.request.url == tls_origin.url("/json", host="localhost")
    assert f.request.scheme == "https"
    assert f.client_tls is not None and f.client_tls.sni == "localhost"
    assert f.server_tls is not None and f.server_tls.version.startswith("TLS")
    assert "Test Origin CA" in (f.server_tls.cert_issuer or "")


async def test_https_client_without_ca_fails_and_is_recorded(make_proxy, tls_origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    # system trust only: the proxy's CA is not trusted, so the handshake must fail
    rc, _, _ = await run("curl", "-sS", "-x", proxy_url(proxy), tls_origin.url("/json", host="localhost"))
    assert rc != 0
    await wait_for(lambda: done, what="handshake failure flow")
    assert "handshake" in done[0].error


async def test_httpx_http_and_https_keepalive_reuse(make_proxy, origin, tls_origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    async with httpx.AsyncClient(proxy=proxy_url(proxy), verify=ctx) as client:
        for _ in range(5):
            r = await client.get(origin.url("/json"))
            assert r.status_code == 200
        for _ in range(5):
            r = await client.get(tls_origin.url("/json", host="localhost"))
            assert r.json()["hello"] == "world"
    await wait_for(lambda: len(done) == 10, what="10 flows")
    # one client connection and one upstream connection per origin, reused for every request
    assert origin.connections == 1
    assert tls_origin.connections == 1
    assert proxy.stats["upstream_connections_opened"] == 2


async def test_post_body_and_headers_forwarded_unchanged(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    body = json.dumps({"q": "x" * 5000}).encode()
    async with httpx.AsyncClient(proxy=proxy_url(proxy)) as client:
        r = await client.post(origin.url("/echo"), content=body,
                              headers={"Content-Type": "application/json", "X-Twice": "1"})
    echo = r.json()
    assert echo["bodySha256"] == hashlib.sha256(body).hexdigest()
    assert ["X-Twice", "1"] in echo["headers"]
    assert not any(k.lower() == "proxy-connection" for k, _ in echo["headers"])
    await wait_for(lambda: done, what="flow")
    assert done[0].request.body == body


async def test_chunked_request_and_response(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)

    async def gen():
        for i in range(5):
            yield b"part%d-" % i * 1000

    async with httpx.AsyncClient(proxy=proxy_url(proxy)) as client:
        r = await client.post(origin.url("/echo"), content=gen())
        assert r.json()["bodySize"] == sum(len(b"part%d-" % i * 1000) for i in range(5))
        r = await client.get(origin.url("/chunked?n=100000&parts=7"))
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.content == pattern_bytes(100000)
    await wait_for(lambda: len(done) == 2, what="2 flows")
    assert done[1].response.body_size == 100000


async def test_20mib_body_intact_while_capture_capped(make_proxy, origin):
    proxy = await make_proxy(max_body_size=1 << 20)
    done = collect_done(proxy)
    n = 20 << 20
    rc, out, err = await run("curl", "-sS", "-x", proxy_url(proxy), origin.url(f"/bytes?n={n}"))
    assert rc == 0, err
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(pattern_bytes(n)).hexdigest()
    upload = pattern_bytes(n)
    rc, out, err = await run("curl", "-sS", "-x", proxy_url(proxy), "--data-binary", "@-",
                             "-H", "Content-Type: application/octet-stream", origin.url("/echo"), input=upload)
    assert rc == 0, err
    assert json.loads(out)["bodySha256"] == hashlib.sha256(upload).hexdigest()
    await wait_for(lambda: len(done) == 2, what="2 flows")
    down, up = done
    assert down.response.body_size == n and len(down.response.body) == 1 << 20 and down.response.body_truncated
    assert up.request.body_size == n and len(up.request.body) == 1 << 20 and up.request.body_truncated


async def test_head_204_304_and_close_delimited(make_proxy, origin):
    proxy = await make_proxy()
    async with httpx.AsyncClient(proxy=proxy_url(proxy)) as client:
        r = await client.head(origin.url("/bytes?n=5000"))
        assert r.status_code == 200 and r.headers["content-length"] == "5000"
        r = await client.get(origin.url("/status/204"))
        assert r.status_code == 204
        r = await client.get(origin.url("/status/304"))
        assert r.status_code == 304
        r = await client.get(origin.url("/close"))
        assert r.text == "until close"
        r = await client.get(origin.url("/json"))  # the connection still works after all of that
        assert r.status_code == 200


async def test_skip_host_is_tunnelled_untouched_and_recorded(make_proxy, tls_origin, origin_ca):
    proxy = await make_proxy(skip_hosts=["localhost"])
    done = collect_done(proxy)
    # the client trusts only the ORIGIN's CA: this works only if the proxy does not intercept
    rc, out, err = await run("curl", "-sS", "--cacert", str(origin_ca.cert_path), "-x", proxy_url(proxy),
                             tls_origin.url("/json", host="localhost"))
    assert rc == 0, err
    assert json.loads(out)["hello"] == "world"
    await wait_for(lambda: done, what="tunnel flow")
    f = done[0]
    assert f.passthrough and f.request.method == "CONNECT"
    assert f.request.host == "localhost" and f.request.port == tls_origin.port
    assert f.request.body_size > 0 and f.response.body_size > 0


async def test_upstream_chaining_through_second_instance(make_proxy, origin, tls_origin):
    upstream = await make_proxy(mitm=False)
    up_done = collect_done(upstream)
    front = await make_proxy(upstream=proxy_url(upstream))
    done = collect_done(front)
    ctx = ssl.create_default_context(cafile=str(front.ca.cert_path))
    async with httpx.AsyncClient(proxy=proxy_url(front), verify=ctx) as client:
        assert (await client.get(origin.url("/json"))).status_code == 200
        assert (await client.get(tls_origin.url("/json", host="localhost"))).status_code == 200
    await wait_for(lambda: len(done) == 2, what="front flows")
    await wait_for(lambda: len(up_done) == 1, what="upstream flows")
    # the upstream saw the plain request (the HTTPS one went through it as a CONNECT tunnel)
    assert up_done[0].request.url == origin.url("/json")
    assert done[1].request.scheme == "https" and done[1].response.status == 200


async def test_unreachable_upstream_is_502_naming_cause(make_proxy):
    proxy = await make_proxy()
    done = collect_done(proxy)
    async with httpx.AsyncClient(proxy=proxy_url(proxy)) as client:
        r = await client.get("http://127.0.0.1:1/nothing")
    assert r.status_code == 502
    assert "refused" in r.text
    await wait_for(lambda: done, what="error flow")
    assert "refused" in done[0].error and done[0].state == "error"


async def test_upstream_cert_failure_is_502_naming_reason(make_proxy, tls_origin):
    proxy = await make_proxy(upstream_ca=None)  # origin CA not trusted by the proxy
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    async with httpx.AsyncClient(proxy=proxy_url(proxy), verify=ctx) as client:
        r = await client.get(tls_origin.url("/json", host="localhost"))
    assert r.status_code == 502
    assert "certificate verif" in r.text
    insecure = await make_proxy(upstream_ca=None, ssl_insecure=True)
    ctx = ssl.create_default_context(cafile=str(insecure.ca.cert_path))
    async with httpx.AsyncClient(proxy=proxy_url(insecure), verify=ctx) as client:
        r = await client.get(tls_origin.url("/json", host="localhost"))
    assert r.status_code == 200


async def test_concurrent_clients(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    async with httpx.AsyncClient(proxy=proxy_url(proxy), limits=httpx.Limits(max_connections=20)) as client:
        rs = await asyncio.gather(*(client.get(origin.url(f"/echo?i={i}")) for i in range(100)))
    assert sorted(r.json()["target"] for r in rs) == sorted(f"/echo?i={i}" for i in range(100))
    await wait_for(lambda: len(done) == 100, what="100 flows")
    assert len({f.id for f in done}) == 100


async def test_tunnel_flow_finishes_when_the_client_closes(make_proxy, tls_origin, origin_ca):
    proxy = await make_proxy(skip_hosts=["localhost"])
    done = collect_done(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(f"CONNECT localhost:{tls_origin.port} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=str(origin_ca.cert_path))
    await writer.start_tls(ctx, server_hostname="localhost")
    writer.write(b"GET /json HTTP/1.1\r\nHost: localhost\r\n\r\n")  # keep-alive: the origin stays open
    assert b"hello" in await reader.read(4096)
    writer.close()
    await wait_for(lambda: done, what="tunnel flow")
    assert done[0].passthrough and done[0].error is None


async def test_flow_ids_have_no_gaps_for_intercepted_connects(make_proxy, origin, tls_origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    async with httpx.AsyncClient(proxy=proxy_url(proxy), verify=ctx) as client:
        await client.get(origin.url("/json"))
        await client.get(tls_origin.url("/json", host="localhost"))
        await client.get(origin.url("/json"))
    await wait_for(lambda: len(done) == 3, what="3 flows")
    ids = [f.id for f in done]
    assert ids == list(range(ids[0], ids[0] + 3))


async def test_closed_client_connections_free_their_flows_without_the_cyclic_collector(make_proxy, origin):
    """The UI freezes long-lived objects, so a flow kept by a reference cycle would outlive
    --max-flows until a full collection: a closed connection must let its flows go at once."""
    proxy = await make_proxy()
    refs: list[weakref.ref] = []
    proxy.subscribe(lambda kind, flow: refs.append(weakref.ref(flow)) if kind == "done" else None)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
            writer.write(f"GET {origin.url('/json')} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            writer.close()
            await writer.wait_closed()
        await wait_for(lambda: len(refs) == 3 and proxy.stats["active_connections"] == 0,
                       what="three flows done, connections closed")
        await wait_for(lambda: all(r() is None for r in refs), what="flows freed by reference counting")
    finally:
        gc.enable()


async def test_a_client_that_stops_reading_pauses_the_origin(make_proxy, origin):
    """Backpressure: a 64 MiB download to a client that reads nothing. The proxy stops reading from
    the origin once the client's socket is full, so it never buffers the body in memory."""
    proxy = await make_proxy()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.transport.pause_reading()  # a slow client: nothing is read
    writer.write(f"GET {origin.url('/bytes?n=67108864')} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()

    def upstream_paused():
        for conn in proxy.connections:
            ex = conn.active
            if ex is not None and ex.upstream is not None and ex.upstream._paused:
                return conn
        return None

    conn = await wait_for(upstream_paused, what="the proxy to stop reading from the origin")
    assert conn.transport.get_write_buffer_size() < 8 * 1024 * 1024
    writer.transport.abort()
