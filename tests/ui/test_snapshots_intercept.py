"""SVG snapshots of the breakpoint screens at 80×24 and 160×48: the inbox (B), the editor (e) and
the intercept filter prompt (i).

Deterministic like tests/ui/test_snapshots.py: no proxy, synthetic flows, and the paused entries
placed in the engine's intercept controller with fixed wait times and a frozen inbox clock.
Regenerate with `python3 -m pytest tests/ui/test_snapshots_intercept.py --snapshot-update`.
"""

from __future__ import annotations

import asyncio

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    feed,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    type_text,
    until,
)
from textual.widgets import Input, TextArea

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.breakpoints import EditorScreen, InboxScreen, InterceptPrompt
from proxycore.addons.intercept import Paused
from proxycore.flows.flow import INTERCEPTED

NOW = 5000.0  # the inbox's frozen monotonic clock


async def pause_two(pilot) -> None:
    """Flow 102 (POST /v1/orders) paused at its request with auto-resume in 18 s, flow 101 at its
    response, waiting for the user for 2 minutes."""
    app: OmniProxyApp = pilot.app
    await feed(pilot)
    ctl = app.engine.intercept
    ctl.set_filter("~d api.example.com")
    ctl.timeout = 30
    loop = asyncio.get_running_loop()
    flows = {f.id: f for f in app._snapshot_flows}
    order = flows[102]
    order.response, order.state = None, INTERCEPTED
    order.timings.end = order.timings.first_byte = None
    users = flows[101]
    users.state = INTERCEPTED
    users.timings.end = None
    ctl.paused[102] = Paused(order, "request", NOW - 12, NOW + 18, loop.create_future())
    ctl.paused[101] = Paused(users, "response", NOW - 125, None, loop.create_future())
    for f in (order, users):
        app.on_flow_event("update", f)
    await until(pilot, lambda: len(app._intercepted) == 2, "two paused flows in the header")


def _settle(pilot):
    return until(pilot, lambda: pilot.app._drawn_version == pilot.app.view.version, "the draw")


@pytest.mark.parametrize("size", size_params())
def test_inbox(snap_compare, size: tuple[int, int]) -> None:
    """B: two paused flows, the longest waiting first; one counts down to its auto-resume."""

    async def run_before(pilot) -> None:
        await pause_two(pilot)
        pilot.app.push_screen(InboxScreen(clock=lambda: NOW))
        await until(pilot, lambda: isinstance(pilot.app.screen, InboxScreen) and len(pilot.app.screen._rows) == 2,
                    "the inbox with two rows")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", size_params())
def test_editor_request(snap_compare, size: tuple[int, int]) -> None:
    """e on the paused POST: its request as raw HTTP text in the editor."""

    async def run_before(pilot) -> None:
        app: OmniProxyApp = pilot.app
        await pause_two(pilot)
        app.view.set_focus(app.view.get(102))
        app.sync_view()
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditorScreen), "the editor")
        app.screen.query_one(TextArea).cursor_blink = False

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", size_params())
def test_editor_validation_error(snap_compare, size: tuple[int, int]) -> None:
    """ctrl+s with a broken header line: pointed at, nothing applied."""

    async def run_before(pilot) -> None:
        app: OmniProxyApp = pilot.app
        await pause_two(pilot)
        app.view.set_focus(app.view.get(101))
        app.sync_view()
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditorScreen), "the editor")
        editor = app.screen
        editor.query_one(TextArea).cursor_blink = False
        lines = editor.text.split("\n")
        lines.insert(3, "Cache-Control max-age=60")
        editor.set_text("\n".join(lines))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: editor.error is not None, "the error")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)



@pytest.mark.parametrize("size", size_params())
def test_intercept_prompt_syntax_error(snap_compare, size: tuple[int, int]) -> None:
    """i: the intercept filter prompt pointing at a syntax error as it is typed."""

    async def run_before(pilot) -> None:
        app: OmniProxyApp = pilot.app
        await feed(pilot)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InterceptPrompt), "the prompt")
        app.screen.query_one(Input).cursor_blink = False
        await type_text(pilot, "~d api.example.com & ~c")
        await until(pilot, lambda: app.screen.error is not None, "the syntax error")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
