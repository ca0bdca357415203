"""`r` in the app, with Pilot, the real proxy running and a real origin: a replay is a new flow
(↺) that reached the origin; an edited flow replays as edited; marked flows replay together; a
replay goes through the addons' hooks."""

from __future__ import annotations

import json

from test_app import make_app, row_lines, screen_text, send, until

from omniproxy_tui.app import MainScreen
from omniproxy_tui.widgets.help import HelpScreen, binding_rows
from proxycore.flows.flow import Flow, Request

NARROW = (80, 24)


def _replays(app) -> list[Flow]:
    return [f for f in app.view.all_flows() if f.is_replay]


async def test_r_replays_the_focused_flow_as_a_new_flow(origin, workdir) -> None:  # noqa: F811
    app = make_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await send(app, origin, "/json", "/echo")
        await until(pilot, lambda: len(row_lines(app)) == 2 and all(f.is_finished for f in app.view.all_flows()),
                    "two finished rows")
        await pilot.press("up")
        focused = app.view.focus
        assert focused.request.path == "/json"
        await pilot.press("r")
        await until(pilot, lambda: any("replaying 1 flow" in n.message for n in app._notifications),
                    "the notification")
        await until(pilot, lambda: _replays(app) and _replays(app)[0].is_finished, "the replayed flow")
        replay = _replays(app)[0]
        assert replay.id != focused.id and not focused.is_replay
        assert replay.response.status == 200 and json.loads(replay.response.body)["hello"] == "world"
        assert [r["target"] for r in origin.requests] == ["/json", "/echo", "/json"]  # it reached the origin
        await until(pilot, lambda: len(row_lines(app)) == 3, "three rows")
        assert any("↺" in ln and "/json" in ln for ln in row_lines(app)), screen_text(app)


async def test_r_replays_an_edited_flow_as_edited(origin, workdir) -> None:  # noqa: F811
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await send(app, origin, "/echo", method="POST", content=b"original body")
        await until(pilot, lambda: app.view.total == 1 and app.view.all_flows()[0].is_finished, "the flow")
        flow = app.view.all_flows()[0]
        req = flow.request
        # what the breakpoint editor does: keep the original, change the request
        flow.original_request = Request(req.method, req.scheme, req.host, req.port, req.target,
                                        headers=req.headers.copy(), body=req.body)
        flow.modified = True
        req.method = "PATCH"
        req.target = "/echo?edited=yes"
        req.headers.set("X-Edited-In-Test", "1")
        req.body = b"edited body"
        await pilot.press("r")
        await until(pilot, lambda: _replays(app) and _replays(app)[0].is_finished, "the replayed flow")
        sent = origin.requests[-1]
        assert sent["method"] == "PATCH" and sent["target"] == "/echo?edited=yes"
        assert sent["body"] == b"edited body" and ("X-Edited-In-Test", "1") in sent["headers"]
        assert _replays(app)[0].request.method == "PATCH"


async def test_r_replays_the_marked_flows_and_runs_addon_hooks(origin, workdir) -> None:  # noqa: F811
    calls: list[tuple[str, str]] = []

    class Recorder:
        def request(self, flow: Flow) -> None:
            if flow.is_replay:
                calls.append(("request", flow.request.path))

        def response(self, flow: Flow) -> None:
            if flow.is_replay:
                calls.append(("response", flow.request.path))

    app = make_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        app.proxy.proxy.addons.add(Recorder())  # the engine's Proxy: a user addon, as -s loads one
        await send(app, origin, "/json", "/status/404", "/echo")
        await until(pilot, lambda: app.view.total == 3 and all(f.is_finished for f in app.view.all_flows()),
                    "three flows")
        await pilot.press("up", "up")
        await pilot.press("m")  # /json
        await pilot.press("down", "down")
        await pilot.press("m")  # /echo
        await until(pilot, lambda: len(app.view.marked()) == 2, "two marked")
        await pilot.press("r")
        await until(pilot, lambda: any("replaying 2 flows" in n.message for n in app._notifications),
                    "the notification")
        await until(pilot, lambda: len(_replays(app)) == 2 and all(f.is_finished for f in _replays(app)),
                    "two replays")
        assert sorted(f.request.path for f in _replays(app)) == ["/echo", "/json"]
        # in order, one at a time, each through the hooks
        assert calls == [("request", "/json"), ("response", "/json"), ("request", "/echo"), ("response", "/echo")]


async def test_r_on_nothing_and_help_lists_r(workdir) -> None:  # noqa: F811
    app = make_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: any("no flow selected" in n.message for n in app._notifications),
                    "a one-line warning")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        # the help screen is built from the live bindings: r is among them, with what it does
        rows = dict(binding_rows(MainScreen.BINDINGS))
        assert rows["r"].startswith("Replay the flow")
