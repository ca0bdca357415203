"""The UI mirrors the engine's flow store: new and old flows are told apart by the store's events
(flow ids), and flows the engine drops or forgets leave the table."""

from __future__ import annotations

import time
from collections.abc import Callable

from omniproxy_tui.app import OmniProxyApp
from proxycore.flows.flow import DONE, PENDING, Flow, Headers, Request, Response
from proxycore.options import Options

TIMEOUT = 10.0


async def until(pilot, cond: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def mk(i: int, state: str = DONE) -> Flow:
    f = Flow(Request("GET", "http", "ev.example", 80, f"/{i}", headers=Headers.from_pairs([("Host", "x")])))
    f.timings.start = 1_700_000_000.0 + i
    f.state = state
    return f


async def test_the_view_follows_the_engine_store_by_id() -> None:
    app = OmniProxyApp(Options(port=0, max_flows=5), start_proxy=False)
    async with app.run_test(size=(100, 30)) as pilot:
        live = mk(0, PENDING)
        app.on_flow_event("add", live)
        tunnel = mk(1)
        app.on_flow_event("done", tunnel)  # never added: new at done
        await until(pilot, lambda: app.view.total == 2, "two flows")
        live.response = Response(201, "Created")
        live.state = DONE
        app.on_flow_event("done", live)  # known by id: an update, not a second row
        await until(pilot, lambda: app.view.get(live.id) is live and app._pending_upd == {}, "update applied")
        assert app.view.total == 2 and app.engine.get_flow(live.id) is live

        more = [mk(i) for i in range(2, 9)]
        for f in more:  # the engine keeps 5: the oldest are removed, and leave the view
            app.on_flow_event("add", f)
        await until(pilot, lambda: [f.id for f in app.view.all_flows()] == [f.id for f in more[2:]],
                    "the view holds what the engine keeps")
        assert [f.id for f in app.engine.snapshot()] == [f.id for f in more[2:]]

        app.engine.remove_flows([more[-1].id])  # forgotten by the engine: gone from the table too
        await until(pilot, lambda: app.view.get(more[-1].id) is None, "removed from the view")

        await pilot.press("z", "y")  # clearing the view frees the engine's flows too
        await until(pilot, lambda: app.view.total == 0 and len(app.engine.snapshot()) == 0, "cleared")
