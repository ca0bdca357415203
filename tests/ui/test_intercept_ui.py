"""Breakpoints driven with Pilot: the real proxy, a real origin, a real client (httpx).

Each test pauses a flow with an intercept filter, acts on it with the keys a user presses, and
checks what the origin received or the client got.
"""

from __future__ import annotations

import asyncio
import stat
import sys
from pathlib import Path

import httpx
import pytest
from test_app import NARROW, make_app, screen_text, type_text, until

from omniproxy_tui.widgets.breakpoints import EditorScreen, InboxScreen, InterceptPrompt
from omniproxy_tui.widgets.detail import DetailScreen
from proxycore.flows.flow import INTERCEPTED


def start(app, method: str, url: str, content: bytes | None = None) -> asyncio.Task:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{app.proxy.address[1]}", trust_env=False,
                                     timeout=60) as c:
            return await c.request(method, url, content=content)

    return asyncio.ensure_future(go())


async def paused(pilot, phase: str = "request"):
    app = pilot.app
    ctl = app.engine.intercept
    await until(pilot, lambda: any(p.phase == phase for p in ctl.paused.values())
                and app.view.focus is not None and app.view.focus.state == INTERCEPTED, f"a paused {phase}")
    return app.view.focus


async def open_editor(pilot) -> EditorScreen:
    await pilot.press("e")
    await until(pilot, lambda: isinstance(pilot.app.screen, EditorScreen), "the editor")
    return pilot.app.screen


async def test_request_edited_in_the_ui_reaches_the_origin_as_edited(origin, workdir) -> None:
    app = make_app(intercept="~q & ~u /echo")
    async with app.run_test(size=NARROW) as pilot:
        task = start(app, "POST", origin.url("/echo"), b"hello")
        flow = await paused(pilot)
        assert "⏸ 1" in screen_text(app).splitlines()[0]  # the header counts it
        editor = await open_editor(pilot)
        assert editor.text.startswith(f"POST {origin.url('/echo')} HTTP/1.1\n")
        editor.set_text(editor.text.replace("POST ", "PATCH ").replace("hello", "edited in the UI"))
        area = editor.query_one("TextArea")
        area.move_cursor((1, 0))
        await type_text(pilot, "X-From-Ui: 1")
        await pilot.press("enter")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, EditorScreen), "the editor to close")
        assert flow.modified and flow.state == INTERCEPTED  # edited, still paused
        await pilot.press("a")
        echo = (await asyncio.wait_for(task, 30)).json()
        assert echo["method"] == "PATCH" and echo["body"] == "edited in the UI"
        assert ["X-From-Ui", "1"] in echo["headers"]
        await until(pilot, lambda: "⏸" not in screen_text(app).splitlines()[0].replace("⏸ 0", ""),
                    "the header to count nothing paused")


async def test_response_edited_in_the_ui_reaches_the_client_as_edited(origin, workdir) -> None:
    app = make_app(intercept="~s")
    async with app.run_test(size=NARROW) as pilot:
        task = start(app, "GET", origin.url("/json"))
        await paused(pilot, "response")
        editor = await open_editor(pilot)
        assert editor.part == "response" and '"hello": "world"' in editor.text
        editor.set_text(editor.text.replace("200 OK", "418 Teapot").replace('"world"', '"edited"'))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, EditorScreen), "the editor to close")
        await pilot.press("a")
        resp = await asyncio.wait_for(task, 30)
        assert resp.status_code == 418 and resp.json()["hello"] == "edited"


async def test_broken_header_line_is_pointed_at_and_nothing_applied(origin, workdir) -> None:
    app = make_app(intercept="~q")
    async with app.run_test(size=NARROW) as pilot:
        task = start(app, "GET", origin.url("/echo"))
        flow = await paused(pilot)
        editor = await open_editor(pilot)
        lines = editor.text.split("\n")
        lines.insert(2, "no colon here")
        editor.set_text("\n".join(lines))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not applied: line 3: broken header line" in screen_text(app), "the error")
        assert isinstance(app.screen, EditorScreen) and not flow.modified
        assert editor.query_one("TextArea").cursor_location == (2, 0)  # on the broken line
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, EditorScreen), "the editor to close")
        await pilot.press("a")
        assert (await asyncio.wait_for(task, 30)).status_code == 200


async def test_kill_and_revert_keys(origin, workdir) -> None:
    app = make_app(intercept="~q")
    async with app.run_test(size=NARROW) as pilot:
        task = start(app, "POST", origin.url("/echo"), b"one")
        flow = await paused(pilot)
        app.run_command("flow.edit.apply", _text(flow).replace("one", "two"))
        assert flow.request.body == b"two"
        await pilot.press("V")
        await until(pilot, lambda: flow.request.body == b"one" and not flow.modified, "the revert")
        await pilot.press("X")
        with pytest.raises(httpx.RemoteProtocolError):  # the connection closed without a response
            await asyncio.wait_for(task, 30)
        await until(pilot, lambda: flow.is_finished and flow.killed, "the flow to end killed")
        assert not origin.requests


def _text(flow) -> str:
    from proxycore.flows.rawedit import flow_to_text

    return flow_to_text(flow)


async def test_inbox_lists_paused_flows_with_wait_and_countdown(origin, workdir) -> None:
    app = make_app(intercept="~q", intercept_timeout=600)
    async with app.run_test(size=NARROW) as pilot:
        tasks = [start(app, "GET", origin.url(f"/json?n={i}")) for i in range(2)]
        await until(pilot, lambda: len(app.engine.intercept.paused) == 2, "two paused flows")
        await pilot.press("B")
        await until(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
        await until(pilot, lambda: "2 paused" in screen_text(app) and len(app.screen._rows) == 2
                    and screen_text(app).count("/json?n") == 2 and "9m5" in screen_text(app),
                    "both rows with their countdown")
        await pilot.press("a")  # the first row
        await until(pilot, lambda: "1 paused" in screen_text(app), "one resumed")
        await pilot.press("A")
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await until(pilot, lambda: "0 paused" in screen_text(app) and "No flow is paused" in screen_text(app),
                    "an empty inbox")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, InboxScreen), "back to the list")


async def test_i_sets_the_filter_with_a_syntax_check_and_I_toggles(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InterceptPrompt), "the prompt")
        await type_text(pilot, "~c")
        await until(pilot, lambda: "^" in screen_text(app) and "~c" in screen_text(app), "the syntax error")
        await pilot.press("enter")  # refused: still open
        assert isinstance(app.screen, InterceptPrompt)
        await pilot.press("backspace", "backspace")
        await type_text(pilot, "~u /json")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, InterceptPrompt), "the prompt to close")
        ctl = app.engine.intercept
        assert ctl.active and ctl.expr == "~u /json"
        await pilot.press("I")
        assert not ctl.active and ctl.expr == "~u /json"
        resp = await asyncio.wait_for(start(app, "GET", origin.url("/json")), 30)  # not paused: off
        assert resp.status_code == 200
        await pilot.press("I")
        assert ctl.active
        task = start(app, "GET", origin.url("/json"))
        await paused(pilot)
        await pilot.press("A")  # the request
        await paused(pilot, "response")
        await pilot.press("A")  # and the response (no ~q / ~s: both pause)
        assert (await asyncio.wait_for(task, 30)).status_code == 200


EDITOR_SCRIPT = """\
import sys
path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    text = f.read()
with open(path, "w", encoding="utf-8") as f:
    f.write(text.replace("hello", "from $EDITOR"))
"""


@pytest.fixture
def editor_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "fake_editor.py"
    script.write_text(EDITOR_SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    return script


async def test_ctrl_e_in_the_editor_runs_EDITOR_and_comes_back(origin, workdir, editor_script) -> None:
    app = make_app(intercept="~q")
    async with app.run_test(size=NARROW) as pilot:
        task = start(app, "POST", origin.url("/echo"), b"hello")
        await paused(pilot)
        editor = await open_editor(pilot)
        await pilot.press("ctrl+e")
        await until(pilot, lambda: editor.text.endswith("from $EDITOR"), "the text $EDITOR saved")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, EditorScreen), "the editor to close")
        await pilot.press("a")
        assert (await asyncio.wait_for(task, 30)).json()["body"] == "from $EDITOR"


async def test_E_in_the_detail_view_edits_in_EDITOR_directly(origin, workdir, editor_script) -> None:
    app = make_app(intercept="~q")
    async with app.run_test(size=NARROW) as pilot:
        task = start(app, "POST", origin.url("/echo"), b"hello")
        flow = await paused(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        await pilot.press("E")
        await until(pilot, lambda: flow.request.body == b"from $EDITOR", "the edit from $EDITOR")
        await until(pilot, lambda: "✎ edited" in screen_text(app), "the detail to show it was edited")
        await pilot.press("u")  # the original
        await until(pilot, lambda: "showing original" in screen_text(app) and "hello" in screen_text(app),
                    "the original")
        await pilot.press("u")  # the difference
        await until(pilot, lambda: "-hello" in screen_text(app) and "+from $EDITOR" in screen_text(app), "the diff")
        await pilot.press("a")
        assert (await asyncio.wait_for(task, 30)).json()["body"] == "from $EDITOR"


async def test_ctrl_r_turns_the_edit_into_a_rule_for_later_flows(origin, workdir) -> None:
    app = make_app(intercept="~q & ~u /echo")
    async with app.run_test(size=NARROW) as pilot:
        task = start(app, "GET", origin.url("/echo"))
        flow = await paused(pilot)
        editor = await open_editor(pilot)
        editor.set_text(editor.text.replace("\n\n", "\nX-Debug: from-breakpoint\n\n", 1))
        await pilot.press("ctrl+r")  # applies the edit, then makes rules of it
        await until(pilot, lambda: not isinstance(app.screen, EditorScreen), "the editor to close")
        assert flow.modified and len(app.engine.rules) == 1
        await pilot.press("a")
        assert ["X-Debug", "from-breakpoint"] in (await asyncio.wait_for(task, 30)).json()["headers"]
        await pilot.press("I")  # breakpoints off: the next request is not paused, the rule edits it
        later = (await asyncio.wait_for(start(app, "GET", origin.url("/echo")), 30)).json()
        assert ["X-Debug", "from-breakpoint"] in later["headers"]
