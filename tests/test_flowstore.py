"""The engine's flow store, the proxy publishing through it, the UI's client interface and the
snapshots exports work on."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import httpx
import pytest
from conftest import collect_done, proxy_url, wait_for

from proxycore.control.client import EngineClient, LocalEngine
from proxycore.control.commands import CommandContext, CommandError, Job, registry
from proxycore.errors import StartupError
from proxycore.flows.flow import DONE, PENDING, Flow, Headers, Request, Response
from proxycore.flows.store import FlowStore, snapshot_flows
from proxycore.flows.view import FlowView
from proxycore.options import Options


def mk(path: str = "/", state: str = DONE) -> Flow:
    f = Flow(Request("GET", "http", "example.com", 80, path, headers=Headers.from_pairs([("Host", "example.com")])),
             ("127.0.0.1", 5000))
    f.state = state
    return f


def recorder(store: FlowStore) -> list[tuple[str, int]]:
    events: list[tuple[str, int]] = []
    store.subscribe(lambda kind, fid, flow: events.append((kind, fid)))
    return events


# ------------------------------------------------------------------ FlowStore


def test_add_update_done_and_unknown_flows_at_done_are_new() -> None:
    store = FlowStore(10)
    ev = recorder(store)
    a, tunnel = mk("/a", PENDING), mk("/t")
    store.add(a)
    store.update(a)
    a.state = DONE
    store.done(a)
    store.done(tunnel)  # never added (a CONNECT tunnel, a failed handshake): new at done
    store.add(a)  # a known id again: an update, never a second flow
    assert ev == [("added", a.id), ("updated", a.id), ("updated", a.id), ("added", tunnel.id), ("updated", a.id)]
    assert [f.id for f in store] == [a.id, tunnel.id] and len(store) == 2
    assert store.get(a.id) is a and store.get(12345) is None and a.id in store


def test_max_flows_drops_the_oldest_with_removed_events() -> None:
    store = FlowStore(3)
    ev = recorder(store)
    fs = [mk(f"/{i}") for i in range(5)]
    for f in fs:
        store.add(f)
    assert [f.id for f in store] == [f.id for f in fs[2:]]
    assert [e for e in ev if e[0] == "removed"] == [("removed", fs[0].id), ("removed", fs[1].id)]
    assert store.dropped == 2


def test_a_flow_dropped_while_in_flight_does_not_come_back_at_done() -> None:
    store = FlowStore(1)
    ev = recorder(store)
    slow, fast = mk("/slow", PENDING), mk("/fast")
    store.add(slow)
    store.add(fast)  # drops slow, still in flight
    store.update(slow)
    slow.state = DONE
    store.done(slow)
    assert ev == [("added", slow.id), ("added", fast.id), ("removed", slow.id)]
    assert [f.id for f in store] == [fast.id]


def test_remove_and_clear() -> None:
    store = FlowStore(10)
    fs = [mk(f"/{i}") for i in range(4)]
    for f in fs:
        store.add(f)
    ev = recorder(store)
    live = mk("/live", PENDING)
    store.add(live)
    assert store.remove([fs[1].id, 999]) == 1
    assert store.clear() == 4
    assert len(store) == 0
    store.done(live)  # deleted by the user while in flight: stays deleted
    assert ev == [("added", live.id), ("removed", fs[1].id)] + [("removed", f.id) for f in (fs[0], fs[2], fs[3], live)]


def test_a_raising_subscriber_is_reported_and_the_others_still_hear() -> None:
    errors: list[str] = []
    store = FlowStore(10, on_error=errors.append)
    store.subscribe(lambda *a: 1 / 0)
    ev = recorder(store)
    store.add(mk())
    assert len(ev) == 1 and errors and "ZeroDivisionError" in errors[0]


def test_max_flows_zero_keeps_nothing_and_holds_no_flow_alive() -> None:
    store = FlowStore(0)
    f = mk("/quiet", PENDING)
    store.add(f)  # nobody listens: nothing at all happens
    ev = recorder(store)
    g = mk("/x", PENDING)
    store.add(g)
    store.update(g)
    g.state = DONE
    store.done(g)
    store.done(mk("/tunnel"))
    assert [k for k, _ in ev] == ["added", "updated", "updated", "added"]
    assert len(store) == 0 and list(store) == [] and store.snapshot() == []
    h = mk("/gone", PENDING)
    store.add(h)
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None  # in flight, yet only weakly remembered


def test_snapshot_copies_flows_in_flight_and_shares_finished_ones() -> None:
    store = FlowStore(10)
    done, live = mk("/done"), mk("/live", PENDING)
    store.add(done)
    store.add(live)
    snap = store.snapshot()
    assert snap[0] is done
    assert snap[1] is not live and snap[1].id == live.id
    live.response = Response(200)
    live.request.headers.set("X-Late", "1")
    assert snap[1].response is None and "X-Late" not in snap[1].request.headers
    assert [f.id for f in store.snapshot([live.id, 999])] == [live.id]
    assert snapshot_flows([done]) == [done]


# ------------------------------------------------------------------ the proxy publishes through it


async def test_proxy_publishes_flows_through_its_store(origin, origin_ca) -> None:
    from proxycore.proxy.server import Proxy

    proxy = Proxy(Options(port=0, upstream_ca=str(origin_ca.cert_path)), keep_flows=2)
    events: list[tuple[str, int, Flow]] = []
    proxy.flows.subscribe(lambda kind, fid, flow: events.append((kind, fid, flow)))
    done = collect_done(proxy)
    await proxy.start()
    try:
        async with httpx.AsyncClient(proxy=proxy_url(proxy), trust_env=False) as client:
            for path in ("/json", "/status/404", "/echo"):
                await client.get(origin.url(path))
        await wait_for(lambda: len(done) == 3, what="three flows done")
    finally:
        await proxy.stop()
    ids = list(dict.fromkeys(fid for _, fid, _ in events))
    assert len(ids) == 3
    for fid in ids:  # each flow: added first, once
        kinds = [k for k, i, _ in events if i == fid]
        assert kinds[0] == "added" and kinds.count("added") == 1
    assert [k for k, i, _ in events if i == ids[0]][-1] == "removed"  # --max-flows 2
    assert [f.request.path for f in proxy.flows] == ["/status/404", "/echo"]
    assert proxy.stats["kept"] == 2


async def test_a_proxy_keeps_no_flows_by_default(make_proxy, origin) -> None:
    proxy = await make_proxy()
    seen: list[str] = []
    proxy.flows.subscribe(lambda kind, fid, flow: seen.append(kind))
    async with httpx.AsyncClient(proxy=proxy_url(proxy), trust_env=False) as client:
        await client.get(origin.url("/json"))
    await wait_for(lambda: seen.count("updated") == 2, what="response head and done")
    assert seen == ["added", "updated", "updated"] and len(proxy.flows) == 0


# ------------------------------------------------------------------ the client interface


async def test_local_engine_runs_the_proxy_and_serves_flows(origin, origin_ca, tmp_path: Path) -> None:
    errors: list[str] = []
    engine: EngineClient = LocalEngine(Options(port=0, upstream_ca=str(origin_ca.cert_path)), on_error=errors.append)
    assert engine.first_run is False  # not started: no CA yet
    events: list[tuple[str, int]] = []
    engine.subscribe(lambda kind, fid, flow: events.append((kind, fid)))
    await engine.start()
    try:
        assert engine.first_run and engine.ca_cert_path is not None and engine.ca_cert_path.exists()
        host, port = engine.address
        assert host == "127.0.0.1" and port > 0
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{port}", trust_env=False) as client:
            await client.get(origin.url("/json"))
        await wait_for(lambda: len(events) == 3, what="a flow added and updated twice")
        fid = events[0][1]
        flow = engine.get_flow(fid)
        assert flow is not None and flow.response is not None and flow.response.status == 200
        assert engine.stats["flows"] == 1 and engine.stats["kept"] == 1

        # commands run against the caller's view, with the engine owning the flows
        view = FlowView()
        view.add(flow)
        ctx = CommandContext(view=view, cwd=tmp_path)
        engine.run_command("flow.duplicate", ctx, flows="@all")
        assert len(view) == 2 and len(engine.snapshot()) == 2
        assert "sorted by size" in engine.run_command("view.sort", ctx, key="size")
        job = engine.run_command("export.har", ctx, flows="@all")
        assert isinstance(job, Job)
        with pytest.raises(CommandError):
            engine.run_command("view.sort", ctx, nope="size")
        engine.run_command("view.clear", ctx)
        assert engine.get_flow(fid) is None and len(engine.snapshot()) == 0
        assert events[-1][0] == "removed"
    finally:
        await engine.stop()
        await engine.stop()  # idempotent
    assert not errors


async def test_local_engine_startup_error(origin_ca) -> None:
    first = LocalEngine(Options(port=0))
    await first.start()
    try:
        second = LocalEngine(Options(host="127.0.0.1", port=first.address[1]))
        with pytest.raises(StartupError, match="already in use"):
            await second.start()
        await second.stop()  # nothing to stop: fine
    finally:
        await first.stop()


# ------------------------------------------------------------------ exports work on a snapshot


def test_an_export_writes_the_flows_as_they_were_when_it_was_asked_for(tmp_path: Path) -> None:
    live = mk("/live", PENDING)
    view = FlowView()
    view.add(live)
    ctx = CommandContext(view=view, cwd=tmp_path)
    job = registry.call(ctx, "export.ndjson", str(tmp_path / "out.ndjson"), "@all")
    # the proxy goes on with the flow while the job waits for its worker thread
    live.request.headers.set("X-Changed-Later", "1")
    live.response = Response(500, "Later")
    live.state = DONE
    job.fn()
    rec = json.loads((tmp_path / "out.ndjson").read_text())
    assert "X-Changed-Later" not in json.dumps(rec) and "Later" not in json.dumps(rec)
