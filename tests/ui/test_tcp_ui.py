"""The Messages tab of a TCP flow driven with Pilot: the real proxy, a real TCP echo server and a
plain socket client, through the WireGuard server's stream handler (tests/tcputil.py).

Messages appear live; ⏎ shows one whole; > and < send data (inject.tcp); a message paused at a
breakpoint is edited, dropped or resumed with e, X, a, and waits in the inbox (B) like the others.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from test_app import NARROW, make_app, screen_text, type_text, until

sys.path.insert(0, str(Path(__file__).parents[1]))
from tcputil import exchange, port_of, start_echo, tunnel_entry  # noqa: E402

from omniproxy_tui.widgets.breakpoints import InboxScreen  # noqa: E402
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail  # noqa: E402
from omniproxy_tui.widgets.messages import MessageScreen, MessagesPane  # noqa: E402
from omniproxy_tui.widgets.prompt import PromptScreen  # noqa: E402


async def open_messages(pilot) -> MessagesPane:
    app = pilot.app
    await until(pilot, lambda: app.view.focus is not None and app.view.focus.tcp_messages is not None,
                "the TCP flow")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
    await pilot.press("5")
    detail = app.screen.query_one(FlowDetail)
    await until(pilot, lambda: detail.active_tab == "messages", "the Messages tab")
    return app.screen.query_one(MessagesPane)


async def read_exactly(reader: asyncio.StreamReader, expect: bytes) -> bytes:
    got = b""
    while len(got) < len(expect):
        more = await asyncio.wait_for(reader.read(65536), 10)
        if not more:
            break
        got += more
    return got


async def test_tcp_messages_listed_live_viewed_and_sent_both_ways(workdir) -> None:
    echo = await start_echo()
    app = make_app()
    try:
        async with app.run_test(size=NARROW) as pilot:
            async with tunnel_entry(app.engine.proxy, ("127.0.0.1", port_of(echo))) as port:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                assert await exchange(r, w, b'{"op": "hello"}', b'echo:{"op": "hello"}') == b'echo:{"op": "hello"}'
                pane = await open_messages(pilot)
                await until(pilot, lambda: pane.list.option_count == 2, "the first rows")
                assert await exchange(r, w, b"\x00\x01bin", b"echo:\x00\x01bin") == b"echo:\x00\x01bin"
                await until(pilot, lambda: pane.list.option_count == 4, "rows added live")
                text = screen_text(app)
                assert "→" in text and "←" in text and "hello" in text and "binary" in text
                assert "open" in text  # the summary line
                # ⏎ on the client's JSON message: shown whole
                pane.list.highlighted = 0
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, MessageScreen), "the message screen")
                await until(pilot, lambda: '"op": "hello"' in screen_text(app), "the message whole")
                await pilot.press("escape")
                await until(pilot, lambda: isinstance(app.screen, DetailScreen), "back in the detail")
                # > sends to the server (it echoes), < to the client
                await pilot.press("greater_than_sign")
                await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the send prompt")
                await type_text(pilot, "from ui")
                await pilot.press("enter")
                assert await read_exactly(r, b"echo:from ui") == b"echo:from ui"
                await until(pilot, lambda: not isinstance(app.screen, PromptScreen), "the prompt closed")
                await pilot.press("less_than_sign")
                await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the send prompt")
                await type_text(pilot, "hi client")
                await pilot.press("enter")
                assert await read_exactly(r, b"hi client") == b"hi client"
                await until(pilot, lambda: pane.list.option_count == 7, "the injected rows")
                assert "✚" in screen_text(app)
                w.close()
    finally:
        echo.close()


async def test_paused_tcp_message_edited_dropped_resumed_with_keys(workdir) -> None:
    echo = await start_echo()
    app = make_app(intercept="~tcp & ~bq stop")
    try:
        async with app.run_test(size=NARROW) as pilot:
            async with tunnel_entry(app.engine.proxy, ("127.0.0.1", port_of(echo))) as port:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                assert await exchange(r, w, b"go", b"echo:go") == b"echo:go"
                pane = await open_messages(pilot)
                ctl = app.engine.intercept
                w.write(b"stop one")
                await until(pilot, lambda: ctl.paused, "a paused message")
                await until(pilot, lambda: "⏸" in screen_text(app), "the paused mark")
                await pilot.press("e")
                await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the edit prompt")
                assert app.screen.input.value == "stop one"
                app.screen.input.value = "edited one"
                await pilot.press("enter")
                await until(pilot, lambda: not isinstance(app.screen, PromptScreen), "the prompt closed")
                await pilot.press("a")
                assert await read_exactly(r, b"echo:edited one") == b"echo:edited one"
                w.write(b"stop two")
                await until(pilot, lambda: ctl.paused, "the second paused message")
                await until(pilot, lambda: pane._paused_message() is not None, "the pane sees it")
                # the same inbox as every paused flow
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(app.screen, DetailScreen), "the flow list")
                await pilot.press("B")
                await until(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
                await until(pilot, lambda: "message" in screen_text(app) and "tcp://" in screen_text(app),
                            "the paused TCP message in the inbox")
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(app.screen, InboxScreen), "the flow list")
                pane = await open_messages(pilot)
                await until(pilot, lambda: pane._paused_message() is not None, "the pane sees it")
                await pilot.press("X")
                assert await exchange(r, w, b"after", b"echo:after") == b"echo:after"  # "stop two" never arrived
                await until(pilot, lambda: "✕" in screen_text(app), "the dropped mark")
                w.close()
    finally:
        echo.close()
