"""The main screen driven with Pilot against the real proxy and a real origin.

Every test starts `OmniProxyApp` with `Options(port=0)` (the CA goes to the per-test
OMNIPROXY_HOME from tests/conftest.py), sends real requests through the proxy with httpx, and
asserts on what the user sees (screen text, clipboard, files written).
"""

from __future__ import annotations

import io
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jsonschema
from conftest import free_port
from rich.console import Console
from textual import events
from textual.app import App
from textual.strip import Strip

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail
from omniproxy_tui.widgets.dialogs import ConfirmScreen, ExportScreen
from omniproxy_tui.widgets.filterbar import FilterBar
from omniproxy_tui.widgets.flowtable import FlowTable
from omniproxy_tui.widgets.help import HelpScreen
from proxycore.flows.flow import DONE, PENDING, Flow, Headers, Request, Response
from proxycore.options import Options

SCHEMA = Path(__file__).parent.parent / "data" / "har-1.2.schema.json"
NARROW = (80, 24)


def screen_text(app: App) -> str:
    """Plain text of the screen (the render Textual's SVG screenshot uses, without styles)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


async def until(pilot, cond: Callable[[], object], what: str, timeout: float = 10.0) -> object:
    """Let the app run until `cond()` holds (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n--- screen ---\n{screen_text(pilot.app)}")
        await pilot.pause(0.02)


async def type_text(pilot, text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text])


def row_lines(app: App) -> list[str]:
    """Table rows on screen (below the column header, above the status line)."""
    lines = screen_text(app).splitlines()
    return [ln for ln in lines[2:-2] if ln.strip() and ln.strip()[0].isdigit()]


def proxy_client(app: OmniProxyApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(proxy=f"http://127.0.0.1:{app.proxy.address[1]}", trust_env=False, timeout=10)


async def send(app: OmniProxyApp, origin, *paths: str, method: str = "GET", content: bytes | None = None) -> None:
    async with proxy_client(app) as client:
        for p in paths:
            await client.request(method, origin.url(p), content=content)


def make_app(**options) -> OmniProxyApp:
    options.setdefault("port", 0)
    options.setdefault("host", "127.0.0.1")
    return OmniProxyApp(Options(**options))


# --------------------------------------------------------------------------- rows, header


async def test_rows_appear_with_the_right_fields(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        port = app.proxy.address[1]
        await until(pilot, lambda: f"127.0.0.1:{port}" in screen_text(app), "listen address in the header")
        text = screen_text(app)
        assert "MITM" in text and "not saved" in text
        # first run: a CA was created, and the user is told where and how to trust it
        assert any("omniproxy-tui ca info" in n.message for n in app._notifications)
        await send(app, origin, "/json", "/status/404")
        await send(app, origin, "/echo", method="POST")
        # a row shows as the request arrives; its status once the tick after the response ran
        await until(pilot, lambda: len(row_lines(app)) == 3 and " 200 " in row_lines(app)[2], "three rows")
        rows = row_lines(app)
        host = f"127.0.0.1:{origin.port}"
        assert "GET" in rows[0] and host in rows[0] and "/json" in rows[0] and " 200 " in rows[0]
        assert "GET" in rows[1] and "/status/404" in rows[1] and " 404 " in rows[1]
        assert "POST" in rows[2] and "/echo" in rows[2] and " 200 " in rows[2]
        assert "ms" in rows[0]  # duration column
        assert "3 flows" in screen_text(app).splitlines()[0]
        assert "[3/3]" in screen_text(app)
        # every row is a real flow in the view, in arrival order
        assert [f.request.path for f in app.view.shown()] == ["/json", "/status/404", "/echo"]


async def test_errors_show_as_err(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        # a port nobody listens on: the proxy answers 502 and the flow carries the error
        dead = free_port()
        async with proxy_client(app) as client:
            r = await client.get(f"http://127.0.0.1:{dead}/x")
        assert r.status_code == 502
        await until(pilot, lambda: row_lines(app), "the failed flow")
        await until(pilot, lambda: " err " in row_lines(app)[0] + " ", "err status")


async def test_engine_errors_become_notifications(workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        app._engine_error("capture file: disk full")
        t = threading.Thread(target=app._engine_error, args=("from a writer thread",))
        t.start()  # must not block the thread on the UI
        await until(pilot, lambda: not t.is_alive(), "the thread returned")
        await until(pilot, lambda: sum(n.severity == "error" for n in app._notifications) == 2, "two errors")
        await until(pilot, lambda: "disk full" in screen_text(app), "the toast on screen")


async def test_startup_error_exits_with_code_2(workdir) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        app = make_app(port=busy.getsockname()[1])
        async with app.run_test(size=NARROW) as pilot:
            await until(pilot, lambda: app.startup_error is not None, "the startup error")
        assert app.return_code == 2
        msg = str(app.startup_error)
        assert "in use" in msg and "\n" not in msg


# --------------------------------------------------------------------------- filter


async def test_filter_narrows_reports_errors_toggles_and_remembers(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json", "/status/404", "/status/500", "/echo")
        await until(pilot, lambda: app.view.total == 4, "four flows")
        await pilot.press("f")
        bar = app.screen.query_one(FilterBar)
        assert bar.is_open and bar.input.has_focus
        await type_text(pilot, "~c 404")
        await until(pilot, lambda: len(row_lines(app)) == 1, "filter applied while typing")
        assert "1/4" in screen_text(app)  # live count in the bar
        assert "/status/404" in row_lines(app)[0]
        await pilot.press("enter")
        await until(pilot, lambda: not bar.is_open, "bar closed")
        assert "[1/4]" in screen_text(app) and "filter ~c 404" in screen_text(app)
        assert app.screen.query_one(FlowTable).has_focus

        # t toggles the filter off and on without losing it
        await pilot.press("t")
        await until(pilot, lambda: len(row_lines(app)) == 4, "filter off")
        assert "filter off" in screen_text(app) and "~c 404" in screen_text(app)
        await pilot.press("t")
        await until(pilot, lambda: len(row_lines(app)) == 1, "filter back on")

        # a syntax error is shown inline with a caret; the table keeps the last good filter
        await pilot.press("f")
        assert bar.input.value == "~c 404"  # the bar opens with the current filter
        await type_text(pilot, " & ~c abc")
        await until(pilot, lambda: "~c needs a number" in screen_text(app), "inline error")
        lines = screen_text(app).splitlines()
        err_line = next(ln for ln in lines if "~c needs a number" in ln)
        input_line = next(ln for ln in lines if "filter:" in ln and "~c abc" in ln)
        assert err_line.index("^") == input_line.index("abc")  # the caret points at the bad argument
        assert len(app.view) == 1
        await pilot.press("enter")  # Enter on a broken expression keeps the bar open
        assert bar.is_open
        await pilot.press("escape")  # Esc restores the filter that was active before
        await until(pilot, lambda: not bar.is_open, "bar closed")
        assert app.view.filter_expr == "~c 404" and len(app.view) == 1

        # history: up recalls the last filter
        await pilot.press("f", "ctrl+u")
        await pilot.press("up")
        assert bar.input.value == "~c 404"
        await pilot.press("ctrl+u")
        await type_text(pilot, "json | echo")
        await pilot.press("enter")
        await until(pilot, lambda: len(row_lines(app)) == 2, "bare words match the URL")
        assert app.view.filter_history[-2:] == ["~c 404", "json | echo"]


# --------------------------------------------------------------------------- actions


async def test_mark_marked_only_delete_duplicate_clear(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json", "/status/404", "/echo")
        await until(pilot, lambda: len(row_lines(app)) == 3, "three rows")
        await pilot.press("up")  # cursor to /status/404; moving the cursor stops following
        assert app.view.focus.request.path == "/status/404" and not app.view.follow
        await pilot.press("m")
        await until(pilot, lambda: "●" in row_lines(app)[1], "mark symbol")
        assert app.view.focus.marked
        await pilot.press("M")
        await until(pilot, lambda: len(row_lines(app)) == 1, "marked only")
        assert "marked only" in screen_text(app)
        await pilot.press("M")
        await until(pilot, lambda: len(row_lines(app)) == 3, "all again")

        await pilot.press("D")  # duplicate: a new flow next to the original, focused
        await until(pilot, lambda: len(row_lines(app)) == 4, "duplicate row")
        dup = app.view.focus
        assert dup.request.path == "/status/404" and not dup.marked
        assert [f.request.path for f in app.view.shown()] == ["/json", "/status/404", "/status/404", "/echo"]

        await pilot.press("d")  # delete the duplicate
        await until(pilot, lambda: len(row_lines(app)) == 3, "deleted")
        assert app.view.get(dup.id) is None

        await pilot.press("z")  # clear asks first
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirm dialog")
        assert "Clear all flows?" in screen_text(app)
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "dialog closed")
        assert app.view.total == 3
        await pilot.press("z")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirm dialog")
        await pilot.press("y")
        await until(pilot, lambda: app.view.total == 0, "cleared")
        assert "No flows yet" in screen_text(app)


async def test_sort_cycle_reverse_and_follow(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/status/500", "/bytes?n=5000", "/status/201")
        await send(app, origin, "/echo", method="PUT")
        await until(pilot, lambda: len(row_lines(app)) == 4, "four rows")
        assert app.view.focus.request.path == "/echo"  # follows the newest
        await pilot.press("o")
        await until(pilot, lambda: "sort method" in screen_text(app), "sort by method")
        assert [f.request.method for f in app.view.shown()] == ["GET", "GET", "GET", "PUT"]
        await pilot.press("o", "o", "o", "o")  # url → size → duration → status
        await until(pilot, lambda: "sort status" in screen_text(app), "sort by status")
        statuses = [ln.split()[4] for ln in row_lines(app)]
        assert statuses == ["200", "200", "201", "500"]
        await pilot.press("v")
        await until(pilot, lambda: "sort status ▼" in screen_text(app), "reversed")
        assert [ln.split()[4] for ln in row_lines(app)] == ["500", "201", "200", "200"]
        await pilot.press("o")
        await until(pilot, lambda: "sort time ▼" in screen_text(app), "back to time (reversed)")
        await pilot.press("v")

        # follow: moving the cursor stops it, new flows do not steal the cursor; F turns it back on
        await pilot.press("home")
        first = app.view.focus
        assert "follow" not in screen_text(app).splitlines()[-2]
        await send(app, origin, "/json")
        await until(pilot, lambda: len(row_lines(app)) == 5, "fifth row")
        assert app.view.focus is first
        await pilot.press("F")
        await until(pilot, lambda: app.view.follow, "follow on")
        assert app.view.focus.request.path == "/json"
        await send(app, origin, "/status/204")
        await until(pilot, lambda: app.view.focus.request.path == "/status/204", "focus follows the new flow")
        assert "follow" in screen_text(app).splitlines()[-2]


async def test_export_to_clipboard(origin, workdir, monkeypatch) -> None:
    for var in ("TMUX", "STY"):  # a plain terminal: OSC 52 reaches its clipboard
        monkeypatch.delenv(var, raising=False)
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/echo?x=1", method="POST", content=b"hello=1")
        await until(pilot, lambda: app.view.focus is not None and app.view.focus.response is not None,
                    "a finished flow")
        url = origin.url("/echo?x=1")
        await pilot.press("c")
        await until(pilot, lambda: app.clipboard.startswith("curl"), "curl on the clipboard")
        assert url in app.clipboard and "hello=1" in app.clipboard
        n = len(app.clipboard.encode())
        assert any(m.message.startswith(f"copied curl ({n:,} bytes) to OSC 52") for m in app._notifications)

        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen), "format chooser")
        text = screen_text(app)
        for label in ("curl", "HTTPie", "raw request", "raw response", "Python"):
            assert label in text
        await pilot.press("4")  # raw response
        await until(pilot, lambda: app.clipboard.startswith("HTTP/1.1 200"), "raw response copied")

        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen), "format chooser")
        await pilot.press("down", "down", "down", "down", "enter")  # python httpx, by keyboard
        await until(pilot, lambda: "import httpx" in app.clipboard, "python copied")
        assert url in app.clipboard

        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen), "format chooser")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ExportScreen), "chooser closed")
        assert "import httpx" in app.clipboard


async def test_har_key_writes_valid_har_of_shown_flows(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json", "/status/404", "/echo")
        await until(pilot, lambda: app.view.total == 3 and all(f.response for f in app.view.shown()), "3 flows")
        app.run_command("view.filter.set", "!~c 404")
        await pilot.press("H")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "sanitized / sensitive choice")
        await pilot.press("enter")  # the default: sanitized
        files = await until(pilot, lambda: list(workdir.glob("omniproxy-*.har")), "the HAR file")
        assert files[0].name.startswith("omniproxy-") and len(files[0].stem) == len("omniproxy-YYYYMMDD-HHMMSS")
        await until(pilot, lambda: any(str(files[0]) in n.message for n in app._notifications), "path notified")
        har = json.loads(files[0].read_text())
        jsonschema.validate(har, json.loads(SCHEMA.read_text()))
        entries = har["log"]["entries"]
        assert [e["request"]["url"] for e in entries] == [origin.url("/json"), origin.url("/echo")]
        assert [e["response"]["status"] for e in entries] == [200, 200]


async def test_har_export_offers_sanitized_and_with_sensitive_data(origin, workdir) -> None:
    """H asks, as Chrome DevTools does: sanitized (the default) or with sensitive data; the
    notification says which was written and where. Keyboard only, at 80x24."""
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        async with proxy_client(app) as client:
            await client.get(origin.url("/cookies"), headers={"Cookie": "sid=s3cret", "Authorization": "Bearer tok"})
        await until(pilot, lambda: app.view.total == 1 and all(f.response for f in app.view.shown()), "1 flow")

        async def export(key: str) -> tuple[dict, str]:
            before = set(workdir.glob("*.har"))
            notes = len(app._notifications)
            await pilot.press("H")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the HAR choice")
            text = screen_text(app)
            assert "Export HAR" in text and "sanitized" in text and "with sensitive data" in text, text
            await pilot.press(key)
            new = await until(pilot, lambda: set(workdir.glob("*.har")) - before, "the HAR file")
            path = new.pop()
            note = await until(pilot, lambda: [n.message for n in list(app._notifications)[notes:]
                                               if str(path) in n.message], "notification")
            return json.loads(path.read_text()), note[0]

        har, note = await export("s")
        assert "sanitized" in note and "sensitive" not in note
        req = {h["name"]: h["value"] for h in har["log"]["entries"][0]["request"]["headers"]}
        assert req["cookie"] == "[REDACTED]" and req["authorization"] == "[REDACTED]"

        har, note = await export("w")
        assert "with sensitive data" in note
        entry = har["log"]["entries"][0]
        req = {h["name"]: h["value"] for h in entry["request"]["headers"]}
        assert req["cookie"] == "sid=s3cret" and req["authorization"] == "Bearer tok"
        assert [h["value"] for h in entry["response"]["headers"] if h["name"] == "set-cookie"] == [
            "a=1; Path=/", "b=2; Path=/"]

        await pilot.press("H")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the HAR choice")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "cancelled")
        assert len(list(workdir.glob("*.har"))) == 2


async def test_w_saves_ndjson_and_quit_then_needs_no_confirmation(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json", "/status/404")
        await until(pilot, lambda: app.view.total == 2 and all(f.response for f in app.view.shown()), "2 flows")
        assert app.needs_quit_confirmation()
        await pilot.press("w")  # the save dialog: tab picks NDJSON, Enter saves under the default name
        await until(pilot, lambda: type(app.screen).__name__ == "SaveScreen", "the save dialog")
        await pilot.press("tab", "enter")
        files = await until(pilot, lambda: list(workdir.glob("omniproxy-*.ndjson")), "the NDJSON file")
        await until(pilot, lambda: not app.needs_quit_confirmation(), "saved state")
        records = [json.loads(ln) for ln in files[0].read_text().splitlines()]
        assert len(records) == 2
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, "app exits")
    assert app.return_code == 0


async def test_quit_asks_when_flows_are_only_in_memory(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json")
        await until(pilot, lambda: app.view.total == 1, "a flow")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "quit confirmation")
        assert "only in memory" in screen_text(app)
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "stayed")
        assert app.return_code is None
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "quit confirmation")
        await pilot.press("h")  # save a HAR, then quit
        await until(pilot, lambda: app.return_code is not None, "app exits after saving")
    assert list(workdir.glob("omniproxy-*.har"))


async def test_quit_twice_means_yes(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json")
        await until(pilot, lambda: app.view.total == 1, "a flow")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "quit confirmation")
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, "app exits")
    assert app.return_code == 0
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json")
        await until(pilot, lambda: app.view.total == 1, "a flow")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "quit confirmation")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app.return_code is not None, "app exits")


async def test_quit_is_immediate_with_a_capture_file_and_drains_it(origin, workdir) -> None:
    out = workdir / "capture.ndjson"
    app = make_app(output=str(out))
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: "capture.ndjson" in screen_text(app).splitlines()[0], "capture target shown")
        await send(app, origin, "/json", "/echo")
        await until(pilot, lambda: app.view.total == 2, "2 flows")
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, "app exits without asking")
    assert len(out.read_text().splitlines()) == 2  # the capture queue was drained on quit


# --------------------------------------------------------------------------- help, palette, detail


async def test_help_screen_lists_keys_and_filter_language(workdir) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        text = screen_text(app)
        for needle in ("without losing it", "Show only marked flows", "as a curl command", "Save shown flows as HAR"):
            assert needle in text, needle
        await pilot.press("end")
        await until(pilot, lambda: "Filter language" in screen_text(app) or "view.sort" in screen_text(app),
                    "lower sections")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "help closed")


async def test_footer_fits_80_columns(workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        for item in ("⏎ Detail", "f Filter", "t Filter on/off", "x Export", "H HAR", "q Quit", "? Help",
                     "palette"):
            assert item in footer, item


async def test_command_palette_runs_commands(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json", "/status/404")
        await until(pilot, lambda: app.view.total == 2, "2 flows")
        await pilot.press("ctrl+p")
        await type_text(pilot, "view.sort status")
        await until(pilot, lambda: "view.sort status" in screen_text(app), "palette hit")
        await pilot.press("enter")
        await until(pilot, lambda: app.view.sort_key == "status", "sorted by status via the palette")
        # a whole command line with an argument
        await pilot.press("ctrl+p")
        await type_text(pilot, "view.filter.set ~c 404")
        await until(pilot, lambda: "run: view.filter.set" in screen_text(app), "command-line hit")
        await pilot.press("enter")
        await until(pilot, lambda: len(app.view) == 1, "filter set via the palette")


async def test_enter_opens_detail_screen_when_narrow(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json")
        await until(pilot, lambda: app.view.focus is not None and app.view.focus.response, "a flow")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "detail screen")
        assert app.screen.flow is app.view.focus
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen), "back to the list")
        assert app.screen.query_one(FlowTable).has_focus


async def test_wide_terminal_splits_and_detail_follows_cursor(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await send(app, origin, "/json", "/status/404")
        await until(pilot, lambda: app.view.total == 2 and all(f.response for f in app.view.shown()), "2 flows")
        detail = app.screen.query_one(FlowDetail)
        assert detail.display and detail.region.width > 40
        await until(pilot, lambda: detail.flow is app.view.focus, "detail shows the focused flow")
        assert detail.flow.request.path == "/status/404"
        await pilot.press("up")
        await until(pilot, lambda: detail.flow is not None and detail.flow.request.path == "/json", "detail follows")
        await pilot.press("tab")
        assert not app.screen.query_one(FlowTable).has_focus
        await pilot.press("tab")
        assert app.screen.query_one(FlowTable).has_focus


async def test_wide_detail_pane_catches_up_with_a_followed_stream(workdir) -> None:
    """Following a burst, the pane beside the table is redrawn at most every DETAIL_FOLLOW_INTERVAL,
    but it always ends on the newest flow, and a changed flow (its response came) is re-read."""
    from omniproxy_tui.app import DETAIL_FOLLOW_INTERVAL
    app = OmniProxyApp(Options(port=0), start_proxy=False)
    async with app.run_test(size=(160, 40)) as pilot:
        detail = app.screen.query_one(FlowDetail)
        shown: list[int] = []
        original = detail.show_flow

        def record(flow: Flow | None) -> None:
            if flow is not None and (not shown or shown[-1] != flow.id):
                shown.append(flow.id)
            original(flow)

        detail.show_flow = record  # type: ignore[method-assign]
        flows = [_synthetic(i) for i in range(40)]
        started = time.monotonic()
        for f in flows:  # one flow per tick, faster than the pane may follow
            app.on_flow_event("add", f)
            app._tick()
            await pilot.pause()
        elapsed = time.monotonic() - started
        await until(pilot, lambda: detail.flow is flows[-1], "pane shows the newest flow")
        assert len(shown) <= 2 + elapsed / DETAIL_FOLLOW_INTERVAL, (len(shown), elapsed)
        newest = flows[-1]
        newest.response = Response(404, "Not Found", headers=Headers.from_pairs([("Content-Type", "text/plain")]),
                                   body=b"gone")
        app.on_flow_event("update", newest)
        await until(pilot, lambda: (app._tick(), "404" in screen_text(app).split("│", 1)[-1])[1],
                    "pane re-reads the changed flow")


async def test_mouse_click_selects_a_row(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/json", "/status/404", "/echo")
        await until(pilot, lambda: len(row_lines(app)) == 3, "three rows")
        await pilot.click(FlowTable, offset=(10, 1))  # row 0 is the column header
        await until(pilot, lambda: app.view.focus.request.path == "/json", "clicked row focused")
        assert not app.view.follow
        await pilot.press("F")
        await until(pilot, lambda: app.view.follow, "follow on")
        await pilot.mouse_down(FlowTable)  # no-op press, then the wheel: scrolling up stops following
        table = app.screen.query_one(FlowTable)
        table.post_message(events.MouseScrollUp(table, 5, 5, 0, 0, 0, False, False, False))
        await until(pilot, lambda: not app.view.follow, "wheel stops follow")


# --------------------------------------------------------------------------- scale


def _synthetic(i: int) -> Flow:
    f = Flow(Request("GET", "http", "bulk.example", 80, f"/item/{i}", headers=Headers.from_pairs([("Host", "x")])))
    f.response = Response(200, "OK", headers=Headers.from_pairs([("Content-Type", "text/plain")]), body=b"ok")
    f.timings.start = 1_700_000_000.0 + i / 1000
    f.timings.end = f.timings.start + 0.01
    f.state = DONE
    return f


async def test_cursor_stays_on_screen_while_heavy_traffic_drops_old_flows(workdir) -> None:
    """Not following, 1 500 flows/s into a view capped at 4 000: the oldest rows are dropped under
    the table. Whatever a tick did (painted or not), the focused row is within the rows on screen,
    so the frame of a key never shows other rows than the cursor's."""
    now = [1000.0]
    app = OmniProxyApp(Options(port=0, max_flows=4000), start_proxy=False, clock=lambda: now[0])
    async with app.run_test(size=NARROW) as pilot:
        table = app.screen.query_one(FlowTable)
        view = app.view
        n = 0

        def tick(count: int) -> None:
            nonlocal n
            for _ in range(count):
                app.on_flow_event("add", _synthetic(n))
                n += 1
            now[0] += 1 / 15
            app._tick()

        def assert_cursor_on_screen(step: int) -> None:
            top, idx = round(table.scroll_y), view.focus_index
            assert idx is not None and top <= idx < top + table.visible_rows, (step, top, idx)

        for _ in range(20):  # 4 000 flows at 3 000/s: the tick paints every third time from now on
            tick(200)
        await until(pilot, lambda: view.total == 4000 and app._drawn_version == view.version, "view full")
        await pilot.press("k", "k", "k")  # stop following, a few rows up from the newest
        assert not view.follow
        focus = view.focus
        painted = []
        for step in range(30):
            before = view.version
            tick(100)
            painted.append(view.version != before)
            assert_cursor_on_screen(step)
            if step % 4 == 0:
                await pilot.press("k")
                assert_cursor_on_screen(step)
        assert True in painted and False in painted  # both kinds of tick happened
        assert view.is_shown(focus)  # the cursor's flows were kept: the rows shifted under it


async def test_table_repainting_only_changed_lines_matches_the_view(workdir) -> None:
    """The table repaints only the lines whose content changed. After random traffic, responses,
    marks, cursor moves, sorts, focus changes and themes, every row on screen must still be the flow
    the view has at that position, drawn as it is now, with the cursor on the focused row only."""
    rnd = random.Random(4)
    app = OmniProxyApp(Options(port=0, max_flows=400), start_proxy=False)
    async with app.run_test(size=NARROW) as pilot:
        table = app.screen.query_one(FlowTable)
        flows: list[Flow] = []
        for step in range(120):
            op = rnd.random()
            if op < 0.35:
                for _ in range(rnd.randint(1, 30)):
                    f = _synthetic(len(flows))
                    if rnd.random() < 0.5:  # pending: its response comes later
                        f.response, f.state, f.timings.end = None, PENDING, None
                    flows.append(f)
                    app.on_flow_event("add", f)
            elif op < 0.55:
                for f in rnd.sample(flows, min(len(flows), 5)):
                    f.response = Response(rnd.choice([200, 404, 500]), "X",
                                          headers=Headers.from_pairs([("Content-Type", "text/html")]),
                                          body=b"x" * rnd.randrange(5000))
                    f.timings.end = f.timings.start + rnd.random()
                    f.state = DONE
                    app.on_flow_event("update", f)
            elif op < 0.62:  # the focus leaves the table and comes back: the cursor row's colours change
                await pilot.press("f")
                await pilot.pause()
                _assert_table_matches_view(app, table, step)
                await pilot.press("escape")
            elif op < 0.65:
                app.theme = rnd.choice(["textual-light", "nord", "textual-dark"])
            else:
                await pilot.press(rnd.choice(["j", "k", "k", "pagedown", "pageup", "m", "o", "v", "G", "home"]))
            app._tick()
            await pilot.pause()
            _assert_table_matches_view(app, table, step)


def _assert_table_matches_view(app: OmniProxyApp, table: FlowTable, step: int) -> None:
    view = app.view
    region = table.region
    strips = app.screen._compositor.render_strips()
    cursor_bg = table.get_component_rich_style(
        "flowtable--cursor" if table.has_focus else "flowtable--cursor-blurred").bgcolor
    width = table.scrollable_content_region.width
    cols = table._layout(width)
    top = round(table.scroll_y)
    for y in range(1, table.visible_rows + 1):
        strip = strips[region.y + y].crop(region.x, region.x + width)
        index = top + y - 1
        if index >= len(view):
            assert not strip.text.strip()[:1].isdigit(), (step, y)
            continue
        flow = view[index]
        fresh = Strip(table._build_row(flow, cols)).adjust_cell_length(width, table.rich_style)
        assert strip.text == fresh.text, (step, y, strip.text, fresh.text)
        on_cursor = any(seg.style is not None and seg.style.bgcolor == cursor_bg for seg in strip)
        assert on_cursor == (flow is view.focus), (step, y)
        if not on_cursor:  # colours as the current theme draws them
            assert _cell_colours(strip) == _cell_colours(fresh), (step, y)


def _cell_colours(strip: Strip) -> list:
    return [seg.style.color if seg.style else None for seg in strip for _ in seg.text]


async def test_50000_flows_render_only_visible_rows(workdir) -> None:
    app = OmniProxyApp(Options(port=0, max_flows=50_000), start_proxy=False)
    async with app.run_test(size=NARROW) as pilot:
        table = app.screen.query_one(FlowTable)
        built: list[int] = []
        original = table._build_row

        def counting(flow, cols):
            built.append(flow.id)
            return original(flow, cols)

        table._build_row = counting  # count rows actually rendered
        flows = [_synthetic(i) for i in range(60_000)]
        for f in flows:  # events as the proxy would publish them: recorded, not rendered
            app.on_flow_event("add", f)
        assert built == []
        await until(pilot, lambda: app.view.total == 50_000, "capped at max_flows")
        await until(pilot, lambda: f"/item/{59_999}" in screen_text(app), "newest row on screen (follow)")
        assert len(set(built)) <= 3 * table.visible_rows  # only what was on screen, never 50 000
        assert "[50,000/50,000]" in screen_text(app)
        # a filter over all of them still answers
        app.run_command("view.filter.set", "~u /item/5999")
        await until(pilot, lambda: len(app.view) == 10, "filtered 50 000 flows")  # /item/5999 itself was dropped


def test_gc_policy_freezes_and_collects_when_idle() -> None:
    import gc

    from omniproxy_tui.gcpolicy import GcPolicy

    now = [100.0]
    before = gc.get_threshold()
    policy = GcPolicy(clock=lambda: now[0], freeze_every=2.0, idle_after=5.0, min_full_interval=60.0,
                      max_full_interval=600.0)
    try:
        junk = [[i] for i in range(1000)]  # tracked containers that survive
        policy.tick()
        assert gc.get_threshold()[:2] == before[:2] and gc.get_threshold()[2] > 10_000  # no automatic gen 2
        assert gc.get_freeze_count() == 0  # not yet: freezing waits freeze_every
        now[0] += 2.0
        policy.tick()
        assert gc.get_freeze_count() >= 1000
        for _ in range(30):  # busy traffic: never a full collection
            now[0] += 3.0
            policy.busy()
            policy.tick()
        assert policy.full_collections == 0
        now[0] += 6.0  # idle long enough, and 60 s since the last full collection
        policy.tick()
        assert policy.full_collections == 1
        for _ in range(201):  # constant traffic for 603 s: one full collection anyway
            now[0] += 3.0
            policy.busy()
            policy.tick()
        assert policy.full_collections == 2
        del junk
    finally:
        policy.release()
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


async def test_keys_typed_right_after_f_go_into_the_filter_bar(workdir) -> None:
    """A fast typist (or a paste, or tmux send-keys) sends f and the filter in one go: no key may
    reach the table (c is copy-as-curl there), and j right after Enter moves the table cursor."""
    app = OmniProxyApp(Options(port=0), start_proxy=False)
    async with app.run_test(size=NARROW) as pilot:
        for i in range(5):
            app.on_flow_event("add", _synthetic(i))
        app._tick()
        await pilot.pause()
        await pilot.press("k")  # not following: j must move the cursor down again
        focus = app.view.focus
        bar = app.screen.query_one(FilterBar)
        _keys_at_once(app, ("f", "f"), ("c", "c"), ("space", " "), ("x", "x"))
        await until(pilot, lambda: bar.input.value == "c x", "the typed filter in the bar")
        assert not any("curl" in n.message for n in app._notifications)
        _keys_at_once(app, ("ctrl+u", None), ("enter", "\r"), ("j", "j"))
        await until(pilot, lambda: not bar.is_open and app.view.focus is not focus, "the cursor moved by j")
        assert bar.input.value == ""


def _keys_at_once(app: App, *keys: tuple[str, str | None]) -> None:
    """Key events as the terminal driver delivers them, without waiting for each to be handled
    (Pilot.press waits, which hides races between a key and the next)."""
    for key, char in keys:
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


async def test_sighup_leaves_like_quit_and_the_har_is_complete(origin, workdir) -> None:
    """The SSH session that ran the UI is gone: SIGHUP stops the engine and drains the capture,
    as `q` does, instead of killing the process with flows still queued."""
    import os
    import signal

    har = workdir / "cap.har"
    app = make_app(output=str(har))
    # were the app not to handle it, SIGHUP must fail this test, not kill the test run
    previous = signal.signal(signal.SIGHUP, lambda *_: None)
    try:
        async with app.run_test(size=NARROW) as pilot:
            await send(app, origin, "/json", "/status/404")
            await until(pilot, lambda: len(row_lines(app)) == 2, "two rows")
            os.kill(os.getpid(), signal.SIGHUP)
            await until(pilot, lambda: app.stopped_by_signal == "SIGHUP", "the app to see the signal")
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert app.return_code == 0
    entries = json.loads(har.read_text())["log"]["entries"]
    assert [e["request"]["url"].rsplit("/", 2)[-2:] for e in entries] == [[f"127.0.0.1:{origin.port}", "json"],
                                                                         ["status", "404"]]
