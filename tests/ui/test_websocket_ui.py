"""The Messages tab driven with Pilot: the real proxy, a real `websockets` server and client.

Messages appear live as they flow; ⏎ shows one whole; > and < send new messages; a message
paused at a breakpoint is edited, dropped or resumed with e, X, a.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from test_app import NARROW, make_app, screen_text, type_text, until

sys.path.insert(0, str(Path(__file__).parents[1]))
from wsutil import server_port, start_server, ws_through_proxy  # noqa: E402

from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail  # noqa: E402
from omniproxy_tui.widgets.messages import MessageScreen, MessagesPane  # noqa: E402
from omniproxy_tui.widgets.prompt import PromptScreen  # noqa: E402


async def open_messages(pilot) -> MessagesPane:
    app = pilot.app
    await until(pilot, lambda: app.view.focus is not None and app.view.focus.websocket is not None, "the ws flow")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
    await pilot.press("5")
    detail = app.screen.query_one(FlowDetail)
    await until(pilot, lambda: detail.active_tab == "messages", "the Messages tab")
    return app.screen.query_one(MessagesPane)


async def recv(ws) -> object:
    return await asyncio.wait_for(ws.recv(), 10)


async def test_messages_listed_live_viewed_and_sent_both_ways(workdir) -> None:
    server = await start_server()
    app = make_app()
    try:
        async with app.run_test(size=NARROW) as pilot:
            async with ws_through_proxy(app.proxy.address[1], server_port(server)) as ws:
                assert await recv(ws) == "welcome"
                pane = await open_messages(pilot)
                await until(pilot, lambda: pane.list.option_count == 1, "the first row")
                await ws.send('{"op": "subscribe", "topic": "prices"}')
                assert await recv(ws) == 'echo:{"op": "subscribe", "topic": "prices"}'
                await until(pilot, lambda: pane.list.option_count == 3, "rows added live")
                text = screen_text(app)
                assert "→" in text and "←" in text and "subscribe" in text
                # ⏎ on the client's JSON message: shown whole through the JSON view
                pane.list.highlighted = 1
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, MessageScreen), "the message screen")
                await until(pilot, lambda: '"topic": "prices"' in screen_text(app), "the JSON pretty-printed")
                await pilot.press("escape")
                await until(pilot, lambda: isinstance(app.screen, DetailScreen), "back in the detail")
                # > sends to the server (it echoes), < to the client
                await pilot.press("greater_than_sign")
                await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the send prompt")
                await type_text(pilot, "from ui")
                await pilot.press("enter")
                assert await recv(ws) == "echo:from ui"
                await until(pilot, lambda: not isinstance(app.screen, PromptScreen), "the prompt closed")
                await pilot.press("less_than_sign")
                await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the send prompt")
                await type_text(pilot, "hi client")
                await pilot.press("enter")
                assert await recv(ws) == "hi client"
                await until(pilot, lambda: pane.list.option_count == 6, "the injected rows")
                assert "✚" in screen_text(app)
    finally:
        server.close()


async def test_paused_message_edited_dropped_resumed_with_keys(workdir) -> None:
    server = await start_server()
    app = make_app(intercept="~websocket & ~bq stop")
    try:
        async with app.run_test(size=NARROW) as pilot:
            async with ws_through_proxy(app.proxy.address[1], server_port(server)) as ws:
                assert await recv(ws) == "welcome"
                pane = await open_messages(pilot)
                ctl = app.engine.intercept
                await ws.send("stop one")
                await until(pilot, lambda: ctl.paused, "a paused message")
                await until(pilot, lambda: "⏸" in screen_text(app), "the paused mark")
                await pilot.press("e")
                await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the edit prompt")
                app.screen.input.value = "edited one"
                await pilot.press("enter")
                await until(pilot, lambda: not isinstance(app.screen, PromptScreen), "the prompt closed")
                await pilot.press("a")
                assert await recv(ws) == "echo:edited one"
                await ws.send("stop two")
                await until(pilot, lambda: ctl.paused, "the second paused message")
                await until(pilot, lambda: pane._paused_message() is not None, "the pane sees it")
                await pilot.press("X")
                await ws.send("go")
                assert await recv(ws) == "echo:go"  # "stop two" never reached the server
                await until(pilot, lambda: "✕" in screen_text(app), "the dropped mark")
    finally:
        server.close()


async def test_rows_follow_the_bounded_message_list(workdir, monkeypatch) -> None:
    """Past MAX_MESSAGES the oldest rows leave the front as new ones come (no full rebuild)."""
    import proxycore.flows.websocket as wsmod
    from proxycore.flows.flow import Flow, Request, Response
    from proxycore.flows.websocket import TEXT, WebSocketData, WebSocketMessage

    monkeypatch.setattr(wsmod, "MAX_MESSAGES", 5)
    flow = Flow(Request("GET", "http", "example.com", 80, "/ws"))
    flow.response = Response(101, "Switching Protocols")
    flow.websocket = WebSocketData()
    for i in range(3):
        flow.websocket.add(WebSocketMessage(TEXT, True, f"m{i}".encode()))
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        app._snapshot_flows = [flow]
        app.on_flow_event("added", flow)
        pane = await open_messages(pilot)
        await until(pilot, lambda: pane.list.option_count == 3, "three rows")
        first_row = pane.list.get_option_at_index(0)
        for i in range(3, 8):
            flow.websocket.add(WebSocketMessage(TEXT, False, f"m{i}".encode()))
        app.on_flow_event("updated", flow)
        await until(pilot, lambda: pane.list.option_count == 5 and pane.selected() is not None
                    and pane.selected().content == b"m7", "the last five rows")
        assert flow.websocket.omitted == 3
        assert pane.list.get_option_at_index(0) is not first_row
        assert "m3" in str(pane.list.get_option_at_index(0).prompt)
        assert "8 messages" in screen_text(app)
