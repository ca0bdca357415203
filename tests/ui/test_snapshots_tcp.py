"""SVG snapshots of a raw TCP flow at 80×24 and 160×48: its Messages tab (both directions, text
and binary, a dropped and an injected message) and its Stream tab with the same marks. Stored in
snapshots/test_snapshots_tcp/.

Regenerate after an intended change with
`python3 -m pytest tests/ui/test_snapshots_tcp.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    T0,
    fixed_environment,
    make_app,
    sample_flows,
    size_params,
    snapshot,
    until,
)

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.detail import FlowDetail
from omniproxy_tui.widgets.messages import MessagesPane
from proxycore.flows.flow import DONE
from proxycore.flows.tcp import TCPMessage, new_tcp_flow

TCP_ID = 401


def tcp_flow():
    f = new_tcp_flow("10.9.8.7", 6379, ("10.0.0.1", 40312))
    f.id = TCP_ID
    t0 = T0 + 40.0
    f.timings.start, f.timings.connect_start, f.timings.connect_end = t0, t0 + 0.001, t0 + 0.004
    msgs = [
        (True, b"*1\r\n$4\r\nPING\r\n", {}),
        (False, b"+PONG\r\n", {}),
        (True, b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", {}),
        (False, b"\x00\x01\x02binary\xff\xfe reply", {}),
        (True, b"*1\r\n$8\r\nFLUSHALL\r\n", {"dropped": True}),
        (False, b"-ERR injected by the proxy\r\n", {"injected": True}),
    ]
    for n, (from_client, data, flags) in enumerate(msgs):
        f.tcp_messages.append(TCPMessage(from_client, data, t0 + 0.010 * (n + 1), **flags))
        if from_client:
            f.request.body_size += len(data)
    f.timings.end = t0 + 0.5
    f.state = DONE
    return f


def open_tab(key: str):
    """run_before: the sample flows and the TCP flow; its detail open on tab `key`."""

    async def run(pilot) -> None:
        app: OmniProxyApp = pilot.app
        flows = sample_flows() + [tcp_flow()]
        app._snapshot_flows = flows  # the app tracks flows weakly; keep them alive
        for f in flows:
            app.on_flow_event("done", f)
        await until(pilot, lambda: app.view.total == len(flows) and app._drawn_version == app.view.version,
                    "the flows")
        await pilot.press("end", "enter")
        await until(pilot, lambda: app.screen.query(FlowDetail) and app.screen.query_one(FlowDetail).flow is not None
                    and app.screen.query_one(FlowDetail).flow.id == TCP_ID, "the TCP flow shown")
        detail = app.screen.query_one(FlowDetail)
        await pilot.press(key)
        if key == "5":
            await until(pilot, lambda: detail.active_tab == "messages", "the Messages tab")
            pane = app.screen.query_one(MessagesPane)
            await until(pilot, lambda: pane.list.option_count == 6, "the rows")
        else:
            await until(pilot, lambda: detail.active_tab == "request", "the Stream tab")
        await pilot.pause()

    return run


@pytest.mark.parametrize("size", size_params())
def test_tcp_messages_tab(snap_compare, size: tuple[int, int]) -> None:
    """Both directions, text and binary rows, a dropped (✕) and an injected (✚) message."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_tab("5"))


@pytest.mark.parametrize("size", size_params())
def test_tcp_stream_tab(snap_compare, size: tuple[int, int]) -> None:
    """The Stream tab: every message in order, the dropped and injected ones marked."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_tab("1"))
