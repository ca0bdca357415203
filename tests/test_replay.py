"""Replay through the real proxy pipeline: real origins (HTTP and HTTPS with the test origin CA),
real clients for the original flows, the engine's replay queue and the `replay.client` command."""

from __future__ import annotations

import json
import ssl

import httpx
from conftest import collect_done, proxy_url, wait_for

from proxycore.control.client import LocalEngine
from proxycore.control.commands import CommandContext, CommandError, registry
from proxycore.flows.flow import Flow, Headers, Request
from proxycore.flows.serialize import write_flows
from proxycore.flows.view import FlowView
from proxycore.options import Options
from proxycore.proxy.replay import Replayer, replay_problem, replay_request, request_bytes


async def _capture(proxy, url: str, **kw) -> Flow:
    done = collect_done(proxy)
    verify = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    async with httpx.AsyncClient(proxy=proxy_url(proxy), verify=verify, trust_env=False, timeout=10) as c:
        await c.request(kw.pop("method", "GET"), url, **kw)
    await wait_for(lambda: done, what="the original flow")
    return done[0]


async def test_replay_http_post_makes_a_new_flow_that_reaches_the_origin(make_proxy, origin):
    proxy = await make_proxy()
    original = await _capture(proxy, origin.url("/echo?x=1"), method="POST", content=b"hello body",
                              headers={"X-Test": "a"})
    done = collect_done(proxy)
    flow = await replay_request(proxy, original.request)
    assert flow is not original and flow.id != original.id
    assert flow.is_replay and not original.is_replay
    assert flow.error is None and flow.response.status == 200
    echo = json.loads(flow.response.body)
    assert echo["method"] == "POST" and echo["target"] == "/echo?x=1" and echo["body"] == "hello body"
    assert ("X-Test", "a") in [tuple(h) for h in echo["headers"]]
    assert len(origin.requests) == 2 and origin.requests[1]["body"] == b"hello body"
    await wait_for(lambda: flow in done, what="the replay published as done")
    assert flow.request.url == original.request.url


async def test_replay_https_goes_to_the_origin_over_verified_tls(make_proxy, tls_origin):
    proxy = await make_proxy()
    original = await _capture(proxy, tls_origin.url("/json", host="localhost"))
    flow = await replay_request(proxy, original.request)
    assert flow.error is None and flow.response.status == 200
    assert flow.request.scheme == "https" and flow.request.url == original.request.url
    assert flow.server_tls is not None and "Test Origin CA" in (flow.server_tls.cert_issuer or "")
    assert json.loads(flow.response.body)["hello"] == "world"
    assert len(tls_origin.requests) == 2


async def test_replay_of_untrusted_https_origin_is_a_flow_error(make_proxy, tls_origin):
    proxy = await make_proxy(upstream_ca=None)  # the origin's CA is not trusted now
    req = Request("GET", "https", "localhost", tls_origin.port, "/json", headers=Headers.from_pairs(
        [("Host", f"localhost:{tls_origin.port}")]))
    flow = await replay_request(proxy, req)
    assert flow.is_replay and flow.error and "certificate" in flow.error.lower()
    assert flow.response is not None and flow.response.status == 502


async def test_replay_goes_through_addon_hooks(make_proxy, origin):
    seen: list[tuple[str, bool]] = []

    class Tagger:
        def request(self, flow: Flow) -> None:
            seen.append(("request", flow.is_replay))
            flow.request.headers.set("X-Added-By-Addon", "yes")

        async def response(self, flow: Flow) -> None:
            seen.append(("response", flow.is_replay))

    proxy = await make_proxy()
    proxy.addons.add(Tagger())
    req = Request("GET", "http", "127.0.0.1", origin.port, "/echo",
                  headers=Headers.from_pairs([("Host", f"127.0.0.1:{origin.port}")]))
    flow = await replay_request(proxy, req)
    assert seen == [("request", True), ("response", True)]
    assert ("X-Added-By-Addon", "yes") in [tuple(h) for h in json.loads(flow.response.body)["headers"]]


async def test_edited_flow_replays_as_edited(make_proxy, origin):
    proxy = await make_proxy()
    original = await _capture(proxy, origin.url("/echo"), method="POST", content=b"before")
    # an edit as the breakpoint editor makes it: the original kept, the request changed
    original.original_request = Request(original.request.method, original.request.scheme, original.request.host,
                                        original.request.port, original.request.target,
                                        headers=original.request.headers.copy(), body=original.request.body)
    original.request.method = "PUT"
    original.request.target = "/echo?edited=1"
    original.request.headers.set("X-Edited", "1")
    original.request.body = b"after, and longer"  # Content-Length is fixed up on the way out
    replayer = Replayer(proxy)
    done = collect_done(proxy)
    assert replayer.submit([original]) == (1, [])
    await wait_for(lambda: [f for f in done if f.is_replay], what="the replay")
    echo = json.loads([f for f in done if f.is_replay][0].response.body)
    assert echo["method"] == "PUT" and echo["target"] == "/echo?edited=1"
    assert echo["body"] == "after, and longer" and echo["bodySize"] == len(b"after, and longer")
    assert ("X-Edited", "1") in [tuple(h) for h in echo["headers"]]


async def test_replay_queue_is_in_order_and_bounded_by_concurrency(make_proxy, origin):
    proxy = await make_proxy()
    flows = []
    for i in range(5):
        flows.append(await _capture(proxy, origin.url(f"/echo?n={i}")))
    del origin.requests[:]
    replayer = Replayer(proxy, concurrency=1)
    done = collect_done(proxy)
    assert replayer.submit(flows) == (5, [])
    assert replayer.count == 5 and len(replayer.workers) == 1
    await wait_for(lambda: len([f for f in done if f.is_replay]) == 5, what="five replays")
    assert [r["target"] for r in origin.requests] == [f"/echo?n={i}" for i in range(5)]
    await wait_for(lambda: replayer.count == 0 and not replayer.workers, what="the queue drained")


def test_replay_problems_are_one_line_reasons():
    req = Request("GET", "http", "example.com", 80, "/")
    f = Flow(req)
    assert "in flight" in replay_problem(f)
    f.state = "done"
    assert replay_problem(f) is None
    f.request.body_truncated = True
    assert "not captured whole" in replay_problem(f)
    t = Flow(Request("CONNECT", "http", "example.com", 443, "example.com:443"))
    t.state = "done"
    assert "tunnel" in replay_problem(t)


def test_request_bytes_frames_the_body_and_keeps_header_order():
    req = Request("POST", "http", "example.com", 8080, "/a?b=1", headers=Headers.from_pairs(
        [("Host", "example.com:8080"), ("Transfer-Encoding", "chunked"), ("X-A", "1")]), body=b"abc")
    assert request_bytes(req) == (b"POST http://example.com:8080/a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\n"
                                  b"Content-Length: 3\r\nX-A: 1\r\n\r\nabc")
    tls = Request("GET", "https", "example.com", 443, "/", headers=Headers())
    assert request_bytes(tls) == b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


async def test_replay_client_command_focused_and_marked(origin, tmp_path):
    engine = LocalEngine(Options(port=0, host="127.0.0.1"))
    await engine.start()
    try:
        view = FlowView()
        engine.subscribe(lambda kind, fid, flow: view.add(flow) if kind == "added" and flow else None)
        ctx = CommandContext(view)
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{engine.address[1]}", trust_env=False) as c:
            await c.get(origin.url("/json"))
            await c.get(origin.url("/status/404"))
        await wait_for(lambda: view.total == 2 and all(f.is_finished for f in view.all_flows()), what="two flows")
        view.set_focus(view.all_flows()[0])
        assert engine.run_command("replay.client", ctx) == "replaying 1 flow"
        await wait_for(lambda: view.total == 3, what="the replayed flow in the view")
        replayed = [f for f in view.all_flows() if f.is_replay]
        assert len(replayed) == 1 and replayed[0].request.path == "/json"
        await wait_for(lambda: replayed[0].is_finished, what="the replay finished")
        for f in view.all_flows()[:2]:
            f.marked = True
        assert engine.run_command("replay.client", ctx, "@marked") == "replaying 2 flows"
        await wait_for(lambda: view.total == 5 and all(f.is_finished for f in view.all_flows()), what="two more replays")
        assert "queued or in flight" in engine.run_command("replay.client.count", ctx)
        # mitmproxy's replay.client.file: the requests of a capture, as new flows
        capture = tmp_path / "c.flows"
        write_flows(capture, [view.all_flows()[1]])
        assert engine.run_command("replay.client.file", ctx, str(capture)) == "replaying 1 request from c.flows"
        await wait_for(lambda: view.total == 6, what="the file's request replayed")
        try:
            engine.run_command("replay.client.file", ctx, str(tmp_path / "nope.har"))
        except CommandError as exc:
            assert "no such file" in str(exc)
        else:
            raise AssertionError("a missing file must be refused")
        assert engine.run_command("replay.client.stop", ctx).startswith("dropped")
        # bad input: one line, never a traceback
        try:
            engine.run_command("replay.client", ctx, "nonsense")
        except CommandError as exc:
            assert "bad flow selector" in str(exc)
        else:
            raise AssertionError("a bad selector must be refused")
        view.set_focus(None)
        try:
            registry.call(ctx, "replay.client")
        except CommandError as exc:
            assert "no flow selected" in str(exc)
        else:
            raise AssertionError("no focus must be refused")
    finally:
        await engine.stop()


async def test_a_broken_edit_is_a_flow_error_not_a_traceback(make_proxy, origin):
    proxy = await make_proxy()
    done = collect_done(proxy)
    req = Request("GET", "http", "127.0.0.1", origin.port, "/json", headers=Headers(
        [(b"Host", f"127.0.0.1:{origin.port}".encode()), (b"Bad Header", b"x")]))
    flow = await replay_request(proxy, req)
    assert flow.is_replay and flow.error and flow.response.status == 400
    assert not origin.requests and not make_proxy.errors  # refused by the codec, no internal error
    await wait_for(lambda: flow in done, what="the failed replay published")


async def test_replay_to_a_closed_port_and_to_the_proxy_itself(make_proxy):
    proxy = await make_proxy()
    refused = await replay_request(proxy, Request("GET", "http", "127.0.0.1", 9, "/"))
    assert refused.is_replay and refused.response.status == 502 and "127.0.0.1:9" in refused.error
    loop = await replay_request(proxy, Request("GET", "http", "127.0.0.1", proxy.address[1], "/"))
    assert loop.response.status == 508


async def test_replays_need_no_proxy_credentials(make_proxy, origin):
    proxy = await make_proxy(proxy_auth="alice:secret")
    async with httpx.AsyncClient(proxy=proxy_url(proxy), trust_env=False) as c:
        assert (await c.get(origin.url("/json"))).status_code == 407  # a network client must log in
    flow = await replay_request(proxy, Request("GET", "http", "127.0.0.1", origin.port, "/json"))
    assert flow.response.status == 200 and flow.error is None
