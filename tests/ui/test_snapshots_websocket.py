"""SVG snapshots of WebSocket flows at 80×24 and 160×48: the flow table with a WebSocket row, the
Messages tab (text and binary both ways, a dropped and an injected message, the close), and one
message opened whole. Stored in snapshots/test_snapshots_websocket/.

Regenerate after an intended change with
`python3 -m pytest tests/ui/test_snapshots_websocket.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    T0,
    _flow,
    fixed_environment,
    make_app,
    sample_flows,
    size_params,
    snapshot,
    until,
)

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.detail import FlowDetail
from omniproxy_tui.widgets.messages import MessageScreen, MessagesPane
from proxycore.flows.websocket import BINARY, TEXT, WebSocketData, WebSocketMessage

WS_ID = 301


def ws_flow():
    f = _flow(WS_ID, "GET", "https://stream.example.com/v2/ticker?pairs=BTC-EUR", status=101,
              reason="Switching Protocols", start=30.0, duration=42.5,
              req_headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
                           ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")],
              resp_headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")])
    ws = f.websocket = WebSocketData()
    t = T0 + 30.2
    msgs = [
        (True, TEXT, b'{"op": "subscribe", "channel": "ticker", "pairs": ["BTC-EUR"]}', {}),
        (False, TEXT, b'{"event": "subscribed", "channel": "ticker", "id": 7}', {}),
        (False, TEXT, b'{"channel": "ticker", "pair": "BTC-EUR", "bid": 61234.5, "ask": 61240.1}', {}),
        (False, BINARY, bytes(range(0, 48)), {}),
        (True, TEXT, b'{"op": "ping"}', {"dropped": True}),
        (False, TEXT, b"maintenance at 13:00 UTC", {"injected": True}),
        (True, TEXT, b'{"op": "unsubscribe", "channel": "ticker"}', {}),
    ]
    for i, (fc, typ, content, flags) in enumerate(msgs):
        ws.add(WebSocketMessage(typ, fc, content, t + i * 1.25, **flags))
    ws.closed_by_client, ws.close_code, ws.close_reason = True, 1000, "bye"
    ws.timestamp_end = t + 12
    return f


def open_messages(message: int | None = None):
    """run_before: the sample flows and the WebSocket flow; its detail open on the Messages tab,
    and `message` opened whole."""

    async def run(pilot) -> None:
        app: OmniProxyApp = pilot.app
        flows = sample_flows() + [ws_flow()]
        app._snapshot_flows = flows  # the app tracks flows weakly; keep them alive
        for f in flows:
            app.on_flow_event("done", f)
        await until(pilot, lambda: app.view.total == len(flows) and app._drawn_version == app.view.version,
                    "the flows")
        await pilot.press("end", "enter")
        await until(pilot, lambda: app.screen.query(FlowDetail) and app.screen.query_one(FlowDetail).flow is not None
                    and app.screen.query_one(FlowDetail).flow.id == WS_ID, "the ws flow shown")
        detail = app.screen.query_one(FlowDetail)
        await pilot.press("5")
        await until(pilot, lambda: detail.active_tab == "messages", "the Messages tab")
        pane = app.screen.query_one(MessagesPane)
        await until(pilot, lambda: pane.list.option_count == 7, "the rows")
        if message is not None:
            pane.list.highlighted = message
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, MessageScreen), "the message")
        await pilot.pause()

    return run


async def _table(pilot) -> None:
    app: OmniProxyApp = pilot.app
    flows = sample_flows() + [ws_flow()]
    app._snapshot_flows = flows
    for f in flows:
        app.on_flow_event("done", f)
    await until(pilot, lambda: app.view.total == len(flows) and app._drawn_version == app.view.version, "the flows")
    await pilot.press("end")
    await pilot.pause()


@pytest.mark.parametrize("size", size_params())
def test_table_with_a_websocket_row(snap_compare, size: tuple[int, int]) -> None:
    """The WebSocket flow's row: status ws, type websocket, its message count in the size column."""
    assert snap_compare(make_app(), terminal_size=size, run_before=_table)


@pytest.mark.parametrize("size", size_params())
def test_messages_tab(snap_compare, size: tuple[int, int]) -> None:
    """Both directions, text and binary, a dropped (✕) and an injected (✚) message, the close."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_messages())


@pytest.mark.parametrize("size", size_params())
def test_one_message_whole(snap_compare, size: tuple[int, int]) -> None:
    """⏎ on a server message: the JSON view of its payload."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_messages(2))


@pytest.mark.parametrize("size", size_params())
def test_binary_message_whole(snap_compare, size: tuple[int, int]) -> None:
    """⏎ on a binary message: the hex view."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_messages(3))
