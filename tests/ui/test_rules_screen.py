"""The rewrite rules screen (R) with Pilot, against the real proxy and a real origin: rules typed
in the screen change real traffic at once, and every change lands in the rules file."""

from __future__ import annotations

from pathlib import Path

import httpx
from test_app import NARROW, make_app, screen_text, type_text, until

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail
from omniproxy_tui.widgets.help import HelpScreen
from omniproxy_tui.widgets.rules import RulesScreen
from proxycore.addons.rules import load_rules_file


def client(app: OmniProxyApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(proxy=f"http://127.0.0.1:{app.proxy.address[1]}", trust_env=False, timeout=10)


def sent(origin, name: str) -> list[str]:
    return [v for k, v in origin.requests[-1]["headers"] if k.lower() == name.lower()]


async def test_rules_screen_add_toggle_move_edit_delete(origin, workdir, omniproxy_home: Path) -> None:
    app = make_app()
    saved = omniproxy_home / "rules.yaml"
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: app.proxy.address[1], "the proxy listening")
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RulesScreen), "the rules screen")
        assert "No rules yet" in screen_text(app)
        # add: a, type, enter
        await pilot.press("a")
        await type_text(pilot, "set_header@request /~u echo/X-Debug/1")
        await pilot.press("enter")
        await until(pilot, lambda: len(app.proxy.rules) == 1, "the rule added")
        await until(pilot, lambda: "set_header@req" in screen_text(app), "the rule in the table")
        async with client(app) as c:
            await c.get(origin.url("/echo"))
        assert sent(origin, "x-debug") == ["1"]
        await until(pilot, lambda: "X-Debug: 1" in screen_text(app) and " 1 " in _row(app, 1), "hits: 1")
        # a bad rule: one-line error, the input stays open, nothing added
        await pilot.press("a")
        await type_text(pilot, "block :~d ads:abc")
        await pilot.press("enter")
        await until(pilot, lambda: "not a number" in screen_text(app), "the error")
        assert len(app.proxy.rules) == 1
        await pilot.press("ctrl+a", "ctrl+k")
        await type_text(pilot, "block :~u status:403")
        await pilot.press("enter")
        await until(pilot, lambda: len(app.proxy.rules) == 2, "the second rule")
        assert [r.kind for r in load_rules_file(saved)] == ["set_header", "block"]
        # move the block rule up (cursor is on it), then toggle it off
        await pilot.press("K")
        await until(pilot, lambda: [r.kind for r in app.proxy.rules] == ["block", "set_header"], "moved")
        assert [r.kind for r in load_rules_file(saved)] == ["block", "set_header"]
        async with client(app) as c:
            assert (await c.get(origin.url("/status/200"))).status_code == 403
            await pilot.press("space")
            await until(pilot, lambda: not app.proxy.rules.rules[0].enabled, "toggled off")
            assert (await c.get(origin.url("/status/200"))).status_code == 200
        assert "off" in _row(app, 1)
        assert [r.enabled for r in load_rules_file(saved)] == [False, True]
        # edit the header rule: move down, e, replace the text
        await pilot.press("j", "e")
        await until(pilot, lambda: app.screen.query_one("#rules-input").has_focus, "the editor")
        assert app.screen.query_one("#rules-input").value.startswith("set_header@request ")
        await pilot.press("ctrl+a", "ctrl+k")
        await type_text(pilot, "set_header@request /~u echo/X-Debug/2")
        await pilot.press("enter")
        await until(pilot, lambda: app.proxy.rules.rules[1].value == "2", "edited")
        async with client(app) as c:
            await c.get(origin.url("/echo"))
        assert sent(origin, "x-debug") == ["2"]
        # delete both; the file follows
        await pilot.press("d")
        await until(pilot, lambda: len(app.proxy.rules) == 1, "deleted one")
        await pilot.press("d")
        await until(pilot, lambda: len(app.proxy.rules) == 0, "deleted all")
        assert load_rules_file(saved) == []
        assert app.engine.proxy._rules_addon is None  # no rules: no hooks
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RulesScreen), "back to the flows")


def _row(app: OmniProxyApp, n: int) -> str:
    lines = [ln for ln in screen_text(app).splitlines() if ln.strip().startswith(f"{n} ")]
    return lines[0] if lines else ""


async def test_detail_shows_the_rules_that_changed_a_flow(origin, workdir) -> None:
    app = make_app(modify_headers=["/~s/X-From-Rule/yes"])
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: app.proxy.address[1], "the proxy listening")
        async with client(app) as c:
            await c.get(origin.url("/json"))
        await until(pilot, lambda: app.view.total == 1 and app.view.focus is not None, "the flow")
        await until(pilot, lambda: app.view.focus.rules_applied, "the rule applied")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        detail = app.screen.query_one(FlowDetail)
        await until(pilot, lambda: "changed by rule: set_header X-From-Rule: yes" in screen_text(app),
                    "the rule in the detail")
        assert detail.active_tab == "request"


async def test_palette_entry_and_help_list_the_rules_screen(workdir) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: app.proxy.address[1], "the proxy listening")
        app.open_rules()  # what the palette's rules.list entry runs (INTERACTIVE_COMMANDS)
        assert OmniProxyApp.INTERACTIVE_COMMANDS["rules.list"] == "open_rules"
        await until(pilot, lambda: isinstance(app.screen, RulesScreen), "the rules screen")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RulesScreen), "closed")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        help_rows = [r for title, rows in app.screen.sections for r in rows if "Rewrite rules" in title]
        assert ("a", "Add a rule (KIND SPEC)") in help_rows
        assert any(k == "R" for title, rows in app.screen.sections for k, _ in rows)
