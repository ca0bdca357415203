"""Breakpoints in the engine: real proxy, real origin, real clients (httpx, curl).

The UI's keys are tested in tests/ui/test_intercept_ui.py; here the controller and the
commands are driven directly, as the keys do.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import pytest
from conftest import proxy_url, run, wait_for

from proxycore.control.commands import CommandContext, CommandError, registry
from proxycore.flows.flow import INTERCEPTED
from proxycore.flows.rawedit import EditError, apply_text, flow_to_text
from proxycore.flows.view import FlowView


def client(proxy) -> httpx.AsyncClient:
    return httpx.AsyncClient(proxy=proxy_url(proxy), trust_env=False, timeout=30)


class _Engine:
    """What the commands need of an engine: its intercept controller."""

    def __init__(self, proxy) -> None:
        self.intercept = proxy.intercept


def ctx_for(proxy, *flows) -> CommandContext:
    view = FlowView()
    view.add_many(list(flows))
    if flows:
        view.set_focus(flows[0])
    return CommandContext(view=view, engine=_Engine(proxy))  # type: ignore[arg-type]


async def paused_flow(proxy, phase: str = "request"):
    await wait_for(lambda: proxy.intercept.paused, what="a paused flow")
    p = next(iter(proxy.intercept.paused.values()))
    assert p.phase == phase
    assert p.flow.state == INTERCEPTED
    return p.flow


async def test_off_registers_no_hook(make_proxy) -> None:
    proxy = await make_proxy()
    assert proxy.addons.request is None and proxy.addons.response is None
    proxy.intercept.set_filter("~d example.com")
    assert proxy.addons.request is not None
    proxy.intercept.toggle()
    assert proxy.addons.request is None and proxy.intercept.expr == "~d example.com"
    proxy.intercept.toggle()
    assert proxy.addons.request is not None
    proxy.intercept.set_filter("")
    assert proxy.addons.request is None


async def test_bad_filter_is_a_startup_error(make_proxy) -> None:
    from proxycore.errors import StartupError

    with pytest.raises(StartupError, match="--intercept"):
        await make_proxy(intercept="~c")


async def test_request_paused_edited_reaches_origin_edited(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~q & ~u /echo")
    async with client(proxy) as c:
        task = asyncio.create_task(c.post(origin.url("/echo?a=1"), content=b"hello"))
        flow = await paused_flow(proxy)
        text = flow_to_text(flow)
        assert text.startswith(f"POST {origin.url('/echo?a=1')} HTTP/1.1\n") and text.endswith("\n\nhello")
        edited = text.replace("POST ", "PUT ").replace("?a=1", "?a=2").replace("hello", "goodbye world")
        edited = edited.replace("\n\n", "\nX-Edited: yes\n\n", 1)
        apply_text(flow, edited)
        assert flow.modified and flow.original_request.method == "POST"
        assert proxy.intercept.resume([flow]) == 1
        resp = await asyncio.wait_for(task, 30)
    echo = resp.json()
    assert echo["method"] == "PUT" and echo["target"] == "/echo?a=2" and echo["body"] == "goodbye world"
    headers = {k.lower(): v for k, v in echo["headers"]}
    assert headers["x-edited"] == "yes" and headers["content-length"] == str(len("goodbye world"))
    assert flow.request.body == b"goodbye world" and flow.state != INTERCEPTED


async def test_bodiless_request_can_be_given_a_body(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~q")
    async with client(proxy) as c:
        task = asyncio.create_task(c.get(origin.url("/echo")))
        flow = await paused_flow(proxy)
        apply_text(flow, flow_to_text(flow).replace("GET ", "POST ") + "added")
        proxy.intercept.resume([flow])
        echo = (await asyncio.wait_for(task, 30)).json()
    assert echo["method"] == "POST" and echo["body"] == "added"


async def test_response_edited_reaches_client_edited_and_reencoded(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~s")
    async with client(proxy) as c:
        task = asyncio.create_task(c.get(origin.url("/gzip")))
        flow = await paused_flow(proxy, "response")
        text = flow_to_text(flow)
        assert '{"compressed": true, "n": 42}' in text  # shown decoded
        apply_text(flow, text.replace("200 OK", "201 Made").replace('"n": 42', '"n": 43'))
        proxy.intercept.resume([flow])
        resp = await asyncio.wait_for(task, 30)
    assert resp.status_code == 201 and resp.json() == {"compressed": True, "n": 43}
    assert resp.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(flow.response.body)) == {"compressed": True, "n": 43}
    assert flow.original_response.status == 200


async def test_fifty_clients_complete_while_one_flow_is_paused(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~u /echo")
    async with client(proxy) as c:
        held = asyncio.create_task(c.get(origin.url("/echo")))
        flow = await paused_flow(proxy)
        others = await asyncio.wait_for(asyncio.gather(*(c.get(origin.url(f"/json?i={i}")) for i in range(50))), 60)
        assert [r.status_code for r in others] == [200] * 50
        assert not held.done() and flow.state == INTERCEPTED
        assert proxy.intercept.resume_all() == 1
        # no ~q / ~s: the response pauses too, as in mitmproxy
        await wait_for(lambda: flow.id in proxy.intercept.paused and flow.response is not None,
                       what="the response to pause")
        assert proxy.intercept.paused[flow.id].phase == "response"
        assert proxy.intercept.resume_all() == 1
        assert (await asyncio.wait_for(held, 30)).status_code == 200


async def test_kill_closes_the_client_connection(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~q")
    task = asyncio.create_task(run("curl", "-s", "-x", proxy_url(proxy), origin.url("/json")))
    flow = await paused_flow(proxy)
    ctx = ctx_for(proxy, flow)
    assert registry.call(ctx, "flow.kill") == "killed 1 flow"
    rc, out, err = await task
    assert rc == 52 and out == b""  # curl: (52) Empty reply from server
    await wait_for(lambda: flow.is_finished, what="the flow to end")
    assert flow.killed and flow.error == "killed" and flow.response is None
    assert not origin.requests  # it never went upstream


async def test_revert_sends_the_original(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~q")
    async with client(proxy) as c:
        task = asyncio.create_task(c.post(origin.url("/echo"), content=b"original"))
        flow = await paused_flow(proxy)
        ctx = ctx_for(proxy, flow)
        registry.call(ctx, "flow.edit.apply", flow_to_text(flow).replace("original", "edited"))
        assert flow.request.body == b"edited" and flow.modified
        assert registry.call(ctx, "flow.revert") == "reverted 1 flow"
        assert flow.request.body == b"original" and not flow.modified and flow.original_request is None
        with pytest.raises(CommandError, match="nothing to revert"):
            registry.call(ctx, "flow.revert")
        registry.call(ctx, "flow.resume")
        echo = (await asyncio.wait_for(task, 30)).json()
    assert echo["body"] == "original"


async def test_auto_resume_after_the_timeout(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~q", intercept_timeout=0.3)
    async with client(proxy) as c:
        task = asyncio.create_task(c.get(origin.url("/json")))
        await paused_flow(proxy)
        p = next(iter(proxy.intercept.paused.values()))
        assert p.remaining() is not None and p.remaining() <= 0.3
        resp = await asyncio.wait_for(task, 30)  # nobody resumed it
    assert resp.status_code == 200 and not proxy.intercept.paused


async def test_broken_edit_is_refused_with_its_line(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~q")
    async with client(proxy) as c:
        task = asyncio.create_task(c.get(origin.url("/echo")))
        flow = await paused_flow(proxy)
        broken = flow_to_text(flow).replace("\n\n", "\nthis is not a header\n\n", 1)
        line = broken.split("\n").index("this is not a header") + 1
        with pytest.raises(EditError) as exc:
            apply_text(flow, broken)
        assert exc.value.line == line and "broken header line" in str(exc.value)
        ctx = ctx_for(proxy, flow)
        with pytest.raises(CommandError, match=f"line {line}: broken header line"):
            registry.call(ctx, "flow.edit.apply", broken)
        assert not flow.modified
        registry.call(ctx, "flow.resume")
        assert (await asyncio.wait_for(task, 30)).status_code == 200


async def test_commands_set_toggle_and_refuse_what_is_not_paused(make_proxy, origin) -> None:
    proxy = await make_proxy()
    ctx = ctx_for(proxy)
    with pytest.raises(CommandError, match="intercept filter"):
        registry.call(ctx, "intercept.set", "~c")
    assert registry.call(ctx, "intercept.set", "~s & ~d nowhere") == "breakpoints on: ~s & ~d nowhere"
    assert registry.call(ctx, "intercept.toggle") == "breakpoints off: ~s & ~d nowhere"
    assert registry.call(ctx, "flow.resume_all") == "no flow is paused"
    assert registry.call(ctx, "intercept.set", "").startswith("breakpoints off (no intercept filter")
    with pytest.raises(CommandError, match="no intercept filter set"):
        registry.call(ctx, "intercept.toggle")
    proxy.flows.max_flows = 10
    async with client(proxy) as c:
        await c.get(origin.url("/json"))
    done = next(iter(proxy.flows))
    ctx = ctx_for(proxy, done)
    with pytest.raises(CommandError, match="no paused flow selected"):
        registry.call(ctx, "flow.resume")
    with pytest.raises(CommandError, match="no paused flow selected"):
        registry.call(ctx, "flow.kill")
    # a finished flow can be edited (what a replay would send) and reverted
    registry.call(ctx, "flow.edit.apply", flow_to_text(done, "request").replace("/json", "/other"), "request")
    assert done.request.path == "/other" and done.modified
    registry.call(ctx, "flow.revert")
    assert done.request.path == "/json" and not done.modified


async def test_stop_kills_paused_flows(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~q")
    task = asyncio.create_task(run("curl", "-s", "-x", proxy_url(proxy), origin.url("/json")))
    await paused_flow(proxy)
    await asyncio.wait_for(proxy.stop(), 10)
    rc, _, _ = await task
    assert rc != 0 and not proxy.intercept.paused


async def test_store_publishes_updated_on_pause_and_resume(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~q")
    proxy.flows.max_flows = 100  # keep flows, as the UI's engine does
    events: list[tuple[str, str]] = []
    proxy.flows.subscribe(lambda kind, fid, flow: events.append((kind, flow.state)))
    async with client(proxy) as c:
        task = asyncio.create_task(c.get(origin.url("/json")))
        flow = await paused_flow(proxy)
        assert ("updated", INTERCEPTED) in events
        n = len(events)
        proxy.intercept.resume([flow])
        await asyncio.wait_for(task, 30)
    assert events[n][0] == "updated" and events[n][1] != INTERCEPTED  # resumed: told at once


async def test_kill_at_the_response(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~s")
    async with client(proxy) as c:
        task = asyncio.create_task(c.get(origin.url("/json")))
        flow = await paused_flow(proxy, "response")
        assert proxy.intercept.kill([flow]) == 1
        with pytest.raises(httpx.RemoteProtocolError):
            await asyncio.wait_for(task, 30)
    await wait_for(lambda: flow.is_finished, what="the flow to end")
    assert flow.killed and flow.error == "killed"


def test_no_ui_with_intercept_is_refused(capsys) -> None:
    from omniproxy_tui.cli import run as cli_run

    assert cli_run(["--no-ui", "--intercept", "~q", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--intercept needs the terminal UI" in err[0]


def test_intercept_options_from_yaml_and_environment(tmp_path, monkeypatch) -> None:
    from proxycore.config import load_options

    cfg = tmp_path / "config.yaml"
    cfg.write_text("intercept:\n  filter: '~d example.com & ~q'\n  timeout: 30\n")
    opts = load_options(str(cfg), {}, {})
    assert opts.intercept == "~d example.com & ~q" and opts.intercept_timeout == 30.0
    opts = load_options(None, {"OMNIPROXY_INTERCEPT": "~s", "OMNIPROXY_INTERCEPT_TIMEOUT": "5"}, {})
    assert opts.intercept == "~s" and opts.intercept_timeout == 5.0


async def test_ids_reach_paused_flows_the_view_does_not_show(make_proxy, origin) -> None:
    proxy = await make_proxy(intercept="~q")
    async with client(proxy) as c:
        task = asyncio.create_task(c.get(origin.url("/json")))
        flow = await paused_flow(proxy)
        ctx = ctx_for(proxy)  # an empty view: the user deleted the row
        with pytest.raises(CommandError):
            registry.call(ctx, "flow.resume")  # @focus: nothing
        assert registry.call(ctx, "flow.resume", str(flow.id)) == "resumed 1 flow"
        assert (await asyncio.wait_for(task, 30)).status_code == 200


async def test_replay_cli_ignores_breakpoints_from_the_config(make_proxy, origin, tmp_path, capsys,
                                                              monkeypatch) -> None:
    """`omniproxy-tui replay` has no UI: an intercept filter from the config or the environment
    must not hold its requests forever."""
    from omniproxy_tui.cli import run as cli_run
    from proxycore.flows.serialize import write_flows

    proxy = await make_proxy()
    done: list = []
    proxy.subscribe(lambda kind, flow: done.append(flow) if kind == "done" else None)
    async with client(proxy) as c:
        await c.get(origin.url("/json"))
    await wait_for(lambda: done, what="a captured flow")
    path = tmp_path / "one.flows"
    write_flows(path, done)
    monkeypatch.setenv("OMNIPROXY_INTERCEPT", "~q")
    code = await asyncio.wait_for(asyncio.to_thread(cli_run, ["replay", str(path)]), 60)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(origin.requests) == 2
