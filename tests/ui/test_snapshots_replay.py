"""SVG snapshots of replayed flows in the main screen, at 80×24 and 160×48: the ↺ mark in the
table next to the flows they replay, and (wide) the replay's detail beside it.

Deterministic as the other snapshots (see snapshot_kit): synthetic flows with fixed ids and timings,
no proxy. The replays are what the engine makes (`is_replay`, a new id, the same request); that a
real `r` makes them is tested with the real proxy in test_replay_ui.py."""

from __future__ import annotations

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    T0,
    feed,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    until,
)

from omniproxy_tui.app import OmniProxyApp
from proxycore.flows.view import copy_flow


@pytest.mark.parametrize("size", size_params())
def test_replayed_flows(snap_compare, size: tuple[int, int]) -> None:
    """Two replays (of the JSON GET and of the 404) at the end of the list, the newest focused."""

    async def replayed(pilot) -> None:
        app: OmniProxyApp = pilot.app
        await feed(pilot)
        by_id = {f.id: f for f in app._snapshot_flows}
        replays = []
        for n, (src, start) in enumerate(((101, 6.0), (106, 6.5))):
            r = copy_flow(by_id[src])
            r.id, r.is_replay, r.marked = 111 + n, True, False
            shift = T0 + start - r.timings.start
            t = r.timings
            for name in ("start", "connect_start", "connect_end", "tls_end", "request_sent", "first_byte", "end"):
                if getattr(t, name) is not None:
                    setattr(t, name, getattr(t, name) + shift)
            replays.append(r)
        app._snapshot_flows += replays
        for r in replays:
            app.on_flow_event("done", r)
        await until(pilot, lambda: app.view.total == len(app._snapshot_flows)
                    and app._drawn_version == app.view.version, "the replays in the table")
        await pilot.press("end")
        await until(pilot, lambda: app.view.focus is not None and app.view.focus.id == 112, "the newest replay")
        await until(pilot, lambda: app._drawn_version == app.view.version, "drawn")

    assert snap_compare(make_app(), terminal_size=size, run_before=replayed)
