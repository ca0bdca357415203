"""The UI's chrome, driven with Pilot: the options screen (O), the command prompt (:), comments (;),
clearing all but the marked flows (Z), the event log (E), the side pane keys (- [ ]), and the rough
edges of issue 12 (dialogs at 80 columns, the detail title, help, light themes, the remembered
theme, toasts, copies that went nowhere, a failed flow's timing, D under marked-only).

Tests that need the engine run the real proxy on 127.0.0.1 with real requests; the others feed
synthetic flows through the engine's store (tests/ui/snapshot_kit.py) as the proxy would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import free_port
from snapshot_kit import feed
from snapshot_kit import make_app as make_demo_app
from test_app import NARROW, make_app, proxy_client, row_lines, screen_text, until

from omniproxy_tui import uistate
from omniproxy_tui.app import MainScreen, OmniProxyApp
from omniproxy_tui.views.colors import LIGHT
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail
from omniproxy_tui.widgets.dialogs import ConfirmScreen
from omniproxy_tui.widgets.eventlog import EventLogScreen
from omniproxy_tui.widgets.flowtable import FlowTable
from omniproxy_tui.widgets.help import HelpScreen
from omniproxy_tui.widgets.options import OptionsScreen
from omniproxy_tui.widgets.prompt import PromptScreen
from proxycore.config import KEYS
from proxycore.flows.flow import DONE, ERROR, Flow, Headers, Request, Response

WIDE = (160, 48)


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory: exports and keys that write files never touch the repository."""
    d = tmp_path / "cwd"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


async def on_main(pilot) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, MainScreen), "the main screen")


async def open_screen(pilot, key: str, cls: type) -> None:
    await on_main(pilot)
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, cls), cls.__name__)


# --------------------------------------------------------------------------- O: options


async def test_options_screen_shows_every_option_and_changes_them(cwd, omniproxy_home: Path) -> None:
    cfg = omniproxy_home / "config.yaml"
    omniproxy_home.mkdir(parents=True, exist_ok=True)
    cfg.write_text("ui:\n  maxFlows: 40000\n")  # the user's own key: kept when we save
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: app._state == "running", "the proxy running")
        await open_screen(pilot, "O", OptionsScreen)
        screen = app.screen
        table = screen.query_one("DataTable")
        assert table.row_count == len(KEYS)  # every option declared in proxycore/options.py
        assert screen.config_path == cfg and "config.yaml" in screen_text(app).splitlines()[0]
        assert "host" in screen_text(app) and "restart" in screen_text(app) and "live" in screen_text(app)
        # the help panel follows the cursor
        await pilot.press("down")
        await until(pilot, lambda: "port to listen on" in screen_text(app).lower(), "the port's help")

        # a live option: a bad value is a one-line error in the prompt, a good one applies and saves
        target = [k.field for k in KEYS].index("client_head_timeout")
        table.move_cursor(row=target)
        await until(pilot, lambda: "complete request head" in screen_text(app), "its help")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the value prompt")
        prompt = app.screen
        assert prompt.input.value == "30"
        prompt.input.value = "soon"
        await pilot.press("enter")
        await until(pilot, lambda: "server.clientHeadTimeout" in prompt.error_text, "the error")
        assert isinstance(app.screen, PromptScreen)  # still open, to fix the value
        prompt.input.value = "12.5"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, OptionsScreen), "back on the options")
        assert app.engine.proxy.options.client_head_timeout == 12.5  # live
        data = yaml.safe_load(cfg.read_text())
        assert data == {"ui": {"maxFlows": 40000}, "server": {"clientHeadTimeout": 12.5}}
        await until(pilot, lambda: "12.5" in screen_text(app), "the new value shown")

        # an on/off option flips with Enter; it applies at the next start (saved, marked *)
        table.move_cursor(row=[k.field for k in KEYS].index("ssl_insecure"))
        await pilot.press("enter")
        await until(pilot, lambda: "true *" in screen_text(app), "the pending value")
        assert yaml.safe_load(cfg.read_text())["mitm"] == {"sslInsecure": True}
        assert app.options.ssl_insecure is False  # the running engine is not changed under its feet
        # d: back to the default, removed from the file
        await pilot.press("d")
        await until(pilot, lambda: "true *" not in screen_text(app), "the default again")
        assert "mitm" not in yaml.safe_load(cfg.read_text())
        await pilot.press("escape")
        await on_main(pilot)


# --------------------------------------------------------------------------- : prompt


async def test_command_prompt_completes_runs_remembers_and_reports_errors(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        await open_screen(pilot, "colon", PromptScreen)
        prompt = app.screen
        await pilot.press(*"view.so", "tab")  # command names
        await until(pilot, lambda: prompt.input.value == "view.sort", "the common prefix")
        assert "view.sort.cycle" in screen_text(app)  # the candidates are listed
        await pilot.press("space", "s", "tab")  # then the argument's choices
        await until(pilot, lambda: prompt.input.value in ("view.sort s", "view.sort size", "view.sort status"),
                    "argument completion")
        await until(pilot, lambda: "size" in screen_text(app) and "status" in screen_text(app), "the choices")
        prompt.input.value = "view.sort size"
        await until(pilot, lambda: "view.sort <time|method|url|size|duration|status>" in screen_text(app),
                    "the command's signature above the input")
        await pilot.press("enter")
        await on_main(pilot)
        assert app.view.sort_key == "size"

        # an error: one line under the input, the prompt stays open with the text
        await open_screen(pilot, "colon", PromptScreen)
        prompt = app.screen
        await pilot.press(*"view.sort colour", "enter")
        await until(pilot, lambda: "key: 'colour' is not one of" in prompt.error_text, "the error")
        assert "\n" not in prompt.error_text and prompt.input.value == "view.sort colour"
        await pilot.press("escape")
        await on_main(pilot)
        assert app.view.sort_key == "size"

        # flow selectors complete too
        await open_screen(pilot, "colon", PromptScreen)
        await pilot.press(*"flow.mark @ma", "tab")
        await until(pilot, lambda: app.screen.input.value == "flow.mark @marked ", "the selector")
        await pilot.press("escape")
        await on_main(pilot)

        # an option's value completes from what the option allows
        await open_screen(pilot, "colon", PromptScreen)
        await pilot.press(*"option.set ssl_ins", "tab", "f", "tab")
        await until(pilot, lambda: app.screen.input.value == "option.set ssl_insecure false ", "the value")
        await pilot.press("escape")
        await on_main(pilot)

        # history: ↑ brings back the last command run
        await open_screen(pilot, "colon", PromptScreen)
        await pilot.press("up")
        await until(pilot, lambda: app.screen.input.value == "view.sort size", "history")
        app.screen.input.value = "view.sort.reverse"
        await pilot.press("enter")
        await on_main(pilot)
        assert app.view.sort_reverse


# --------------------------------------------------------------------------- ; comment, Z, D


async def test_comment_is_prefilled_and_shown_in_table_and_detail(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        await pilot.press("home")
        flow = app.view.focus
        await open_screen(pilot, "semicolon", PromptScreen)
        await pilot.press(*"slow on prod", "enter")
        await on_main(pilot)
        assert flow.comment == "slow on prod"
        await until(pilot, lambda: row_lines(app)[0].rstrip().endswith("¶"), "the ¶ mark in the row")
        # ; again: the prompt holds the comment to edit
        await open_screen(pilot, "semicolon", PromptScreen)
        assert app.screen.input.value == "slow on prod"
        await pilot.press("escape")
        await on_main(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        await until(pilot, lambda: "¶ slow" in screen_text(app).splitlines()[0], "the comment in the title")
        await until(pilot, lambda: "¶ comment slow on prod" in screen_text(app), "and in the request tab")
        await pilot.press("escape")
        await on_main(pilot)
        # the filter language finds it
        app.run_command("view.filter.set", "~comment prod")
        await until(pilot, lambda: len(app.view) == 1, "~comment")


async def test_Z_asks_then_clears_all_but_marked(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)  # one flow (104) is marked
        await pilot.press("home", "m")  # and now 101 too
        await until(pilot, lambda: app.view.get(101).marked, "101 marked")
        await open_screen(pilot, "Z", ConfirmScreen)
        assert "Remove 8 flows, keep 2 marked" in screen_text(app)
        await pilot.press("n")
        await on_main(pilot)
        assert app.view.total == 10
        await open_screen(pilot, "Z", ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: app.view.total == 2, "only the marked flows left")
        assert sorted(f.id for f in app.view.all_flows()) == [101, 104]
        await until(pilot, lambda: len(row_lines(app)) == 2, "two rows")


async def test_D_under_marked_only_shows_the_copy(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        await pilot.press("M")
        await until(pilot, lambda: len(row_lines(app)) == 1, "marked only: one row")
        await pilot.press("D")
        await until(pilot, lambda: len(row_lines(app)) == 2, "the copy is visible")
        assert app.view.focus.marked and app.view.focus.id != 104


# --------------------------------------------------------------------------- E: event log


async def test_event_log_shows_start_up_facts_and_engine_errors(origin, cwd) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: app._state == "running", "the proxy running")
        port = app.proxy.address[1]
        await open_screen(pilot, "E", EventLogScreen)
        await until(pilot, lambda: f"listening on 127.0.0.1:{port}" in screen_text(app), "the listen address")
        assert "CA certificate:" in screen_text(app) and "kept in memory only" in screen_text(app)
        # an engine error while the log is open appears in it
        app.engine.proxy.report_error("capture file: disk full")
        await until(pilot, lambda: "error capture file: disk full" in screen_text(app), "the error")
        await pilot.press("l", "l")  # errors only
        await until(pilot, lambda: "listening on" not in screen_text(app), "errors only")
        assert "disk full" in screen_text(app)
        await pilot.press("z")  # clear it
        await until(pilot, lambda: "No warnings or errors." in screen_text(app), "the log cleared")
        await pilot.press("escape")
        await on_main(pilot)


# --------------------------------------------------------------------------- wide layout


async def test_side_pane_toggles_resizes_and_is_remembered(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=WIDE) as pilot:
        await feed(pilot)
        main = app.screen.query_one("#main")
        detail = app.screen.query_one("#detail", FlowDetail)
        await until(pilot, lambda: main.has_class("wide") and detail.size.width > 0, "the side pane")
        table = app.screen.query_one(FlowTable)
        assert "time" in [c.name for c in table._layout(table.size.width)]  # beside the pane, time stays
        w0 = detail.size.width
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: detail.size.width > w0, "a wider pane")
        await pilot.press("left_square_bracket", "left_square_bracket")
        await until(pilot, lambda: detail.size.width < w0, "a narrower pane")
        await pilot.press("minus")
        await until(pilot, lambda: not main.has_class("wide"), "the pane hidden")
        assert not app.is_wide
        await pilot.press("enter")  # without the pane, Enter opens the detail screen
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        await pilot.press("escape")
        await on_main(pilot)
        assert uistate.load() == {"side_pane": False, "pane_width": 40}
    again = make_demo_app()
    async with again.run_test(size=WIDE) as pilot:
        await feed(pilot)
        assert not again.is_wide  # remembered
        await pilot.press("minus")
        await until(pilot, lambda: again.screen.query_one("#main").has_class("wide"), "the pane back")
        assert again.pane_width == 40


async def test_comment_shows_in_the_side_pane_at_once(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=WIDE) as pilot:
        await feed(pilot)
        await pilot.press("home")
        detail = app.screen.query_one("#detail", FlowDetail)
        await until(pilot, lambda: detail.flow is app.view.focus, "the pane on the first flow")
        await open_screen(pilot, "semicolon", PromptScreen)
        await pilot.press(*"see ticket", "enter")
        await until(pilot, lambda: "¶ comment see ticket" in screen_text(app), "the comment in the pane")


async def test_side_pane_keys_say_why_on_narrow_terminals(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await feed(pilot)
        await pilot.press("minus")
        await until(pilot, lambda: any("140 columns" in n.message for n in app._notifications), "the reason")


# --------------------------------------------------------------------------- rough edges


@pytest.mark.parametrize("key", ["z", "Z", "H", "q"])
async def test_dialogs_at_80_columns_cut_no_words(cwd, key: str) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        await pilot.press("home", "m")
        await open_screen(pilot, key, ConfirmScreen)
        dialog = app.screen
        text = " ".join(ln.strip(" │╭╮╰╯─") for ln in screen_text(app).splitlines())
        for word in dialog.body.split():
            assert word in text, f"{word!r} cut from the dialog"
        box = dialog.query_one("Vertical")
        assert box.region.right <= NARROW[0]


async def test_detail_title_wraps_instead_of_hiding_the_status(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        long_path = "/v1/reports/" + "x" * 90
        f = Flow(Request("GET", "https", "api.example.com", 443, long_path,
                         headers=Headers.from_pairs([("Host", "api.example.com")])), client_addr=("127.0.0.1", 1))
        f.response = Response(418, "I'm a teapot", headers=Headers.from_pairs([("Content-Length", "0")]), body=b"")
        f.timings.end = f.timings.start + 0.01
        f.state = DONE
        app.push_screen(DetailScreen(f))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        await until(pilot, lambda: "→ 418" in screen_text(app), "the status visible")


async def test_help_lists_detail_keys_filter_syntax_and_q_and_scrolls_one_line(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        await open_screen(pilot, "question_mark", HelpScreen)
        help_screen = app.screen
        body = " ".join(t for s in help_screen.sections for row in s[1] for t in row)
        for needle in ("Response, Timing, Raw, Messages (WebSocket, TCP) tab", "Cycle the body view", "back to the flow list",
                       "in the bar ? is typed as ?", "q goes back", "Command prompt", "Event log",
                       "Options:", "side pane", "Clear all flows except the marked", "[shown/total]"):
            assert needle in body, needle
        assert "? in the bar for syntax" not in body
        scroll = help_screen.query_one("VerticalScroll")
        for _ in range(10):
            await pilot.press("j")
        await until(pilot, lambda: scroll.scroll_y == 10, "10 lines for 10 presses of j")
        for _ in range(10):
            await pilot.press("down")
        await until(pilot, lambda: scroll.scroll_y == 20, "10 lines for 10 presses of ↓")
        for _ in range(5):
            await pilot.press("up")
        await until(pilot, lambda: scroll.scroll_y == 15, "5 back")


def _luminance(hex_color: str) -> float:
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_color.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_light_theme_colours_are_readable() -> None:
    """Every syntax colour's light twin against every light theme's surfaces: WCAG AA (4.5:1)."""
    from textual.app import App

    themes = App().available_themes
    checked = 0
    for name, theme in themes.items():
        if theme.dark or name.startswith("ansi"):  # ansi themes use the terminal's own colours
            continue
        colours = theme.to_color_system().generate()
        for surface in ("surface", "panel", "background"):
            bg = colours[surface].lstrip("#")[:6]
            for dark, light in LIGHT.items():
                assert _contrast(light, "#" + bg) >= 4.5, (name, surface, dark, light)
                checked += 1
    assert checked >= 5 * 3 * len(LIGHT)


async def test_json_strings_on_a_light_theme_use_the_dark_twins(cwd) -> None:
    app = make_demo_app()
    app.theme = "textual-light"
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        await pilot.press("home", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        await pilot.press("2")
        view = app.screen.query_one("#view-response")
        await app.workers.wait_for_complete()

        def colours() -> set[str]:
            return {seg.style.color.triplet.hex for y in range(view.size.height)
                    for seg in view.render_line(y) if seg.style and seg.style.color and seg.style.color.triplet}

        await until(pilot, lambda: LIGHT["#98c379"] in colours(), "light-theme string colour")
        assert "#98c379" not in colours()


async def test_theme_is_remembered_across_runs(cwd, omniproxy_home: Path) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        app.theme = "solarized-light"
        await until(pilot, lambda: uistate.state_path().exists(), "the state file")
    assert uistate.state_path() == omniproxy_home / "ui.json"
    assert json.loads(uistate.state_path().read_text())["theme"] == "solarized-light"
    again = OmniProxyApp(app.options, start_proxy=False)
    assert again.theme == "solarized-light"
    # a broken file means defaults, not a crash
    uistate.state_path().write_text("{not json")
    assert OmniProxyApp(app.options, start_proxy=False).theme == "textual-dark"


async def test_toasts_do_not_cover_the_status_line(cwd) -> None:
    app = make_demo_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await feed(pilot)
        app.notify("a long message " * 8)
        await until(pilot, lambda: "a long message" in screen_text(app), "the toast")
        lines = screen_text(app).splitlines()
        assert "[10/10]" in lines[-2] and "sort time" in lines[-2]  # the status line, whole
        assert "a long message" not in lines[-1] + lines[-2]


async def test_copy_says_copied_only_when_the_copy_went_somewhere(cwd, monkeypatch) -> None:
    # tmux whose server does not answer (so set-clipboard cannot be on), no X or Wayland display
    monkeypatch.setenv("TMUX", f"{cwd}/no-such-tmux-socket,1,0")
    monkeypatch.delenv("STY", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = make_demo_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await feed(pilot)
        await pilot.press("home", "c")
        await until(pilot, lambda: any(n.message.startswith("not copied") for n in app._notifications),
                    "the warning")
        assert not any(n.message.startswith("copied") for n in app._notifications)
        assert app.clipboard == ""
        assert "set-clipboard on" in [n.message for n in app._notifications][-1]
    monkeypatch.delenv("TMUX")
    app = make_demo_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await feed(pilot)
        await pilot.press("home", "c")
        await until(pilot, lambda: any(n.message.startswith("copied curl") for n in app._notifications), "copied")
        assert "to OSC 52" in [n.message for n in app._notifications][-1]


async def test_failed_flow_timing_says_what_is_known(origin, cwd) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        dead = free_port()
        async with proxy_client(app) as client:
            r = await client.get(f"http://127.0.0.1:{dead}/x")
        assert r.status_code == 502
        await until(pilot, lambda: app.view.focus is not None and app.view.focus.error, "the failed flow")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        await pilot.press("3")
        await until(pilot, lambda: "error:" in screen_text(app), "the timing tab")
        text = screen_text(app)
        assert "No timings yet" not in text
        assert "Failed after" in text or "connect" in text
        assert "refused" in text.lower() or "cannot connect" in text.lower()


def test_timing_of_a_flow_that_never_connected() -> None:
    from omniproxy_tui.widgets.detail import timing_document

    f = Flow(Request("GET", "http", "10.255.255.1", 80, "/", headers=Headers()), client_addr=("127.0.0.1", 1))
    f.timings.connect_start = f.timings.start + 0.001
    f.timings.end = f.timings.start + 15.0
    f.error, f.state = "cannot connect to 10.255.255.1:80: timed out", ERROR
    text = "\n".join(timing_document(f).plain(i) for i in range(len(timing_document(f))))
    assert "Failed after 15,000.0 ms: connecting to the server did not complete" in text
    assert "error: cannot connect" in text and "No timings yet" not in text
    pending = Flow(Request("GET", "http", "a", 80, "/", headers=Headers()), client_addr=("127.0.0.1", 1))
    doc = timing_document(pending)
    assert any("No timings yet" in doc.plain(i) for i in range(len(doc)))



async def test_prompt_takes_keys_the_flow_list_binds(cwd) -> None:
    """q ? E : ; Z - [ typed in a prompt are text, not the flow list's keys."""
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        await open_screen(pilot, "semicolon", PromptScreen)
        await pilot.press(*"quick?E:;Z-[", "enter")
        await on_main(pilot)
        assert app.view.focus.comment == "quick?E:;Z-["


async def test_sizes_and_counts_are_written_one_way(cwd) -> None:
    """912B / 6.2k / 14k in the table, the detail title and the body title alike; counts with separators."""
    app = make_demo_app()
    async with app.run_test(size=NARROW) as pilot:
        await feed(pilot)
        json_row = next(r for r in row_lines(app) if r.lstrip().startswith("101 "))
        png_row = next(r for r in row_lines(app) if r.lstrip().startswith("104 "))
        assert " 368B " in json_row and " 14k " in png_row
        await pilot.press("home", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        await pilot.press("2")
        await until(pilot, lambda: "JSON · 368B" in screen_text(app), "the body title")
        assert "200  368B" in screen_text(app).splitlines()[0]
        assert " KiB" not in screen_text(app) and " B " not in screen_text(app)
        await pilot.press("escape")
        await on_main(pilot)
        # counts: thousands separators in the header, the status line and the dialogs
        extra: list[Flow] = []  # kept alive here, as snapshot_kit.feed keeps its flows
        for i in range(1_190):
            f = Flow(Request("GET", "http", "example.com", 80, f"/n/{i}", headers=Headers()),
                     client_addr=("127.0.0.1", 1))
            f.id = 1_000 + i  # clear of the demo flows' fixed ids (101-110)
            f.response = Response(200, "OK", headers=Headers(), body=b"")
            f.state = DONE
            extra.append(f)
            app.on_flow_event("done", f)
        await until(pilot, lambda: "[1,200/1,200]" in screen_text(app), "the status line count")
        assert "1,200 flows" in screen_text(app).splitlines()[0]
        await open_screen(pilot, "z", ConfirmScreen)
        assert "Remove all 1,200 flows" in screen_text(app)
