"""SVG snapshots of the main views at 80×24 and 160×48 (pytest-textual-snapshot).

The SVGs live in the repository's top-level `snapshots/` directory, in `snapshots/test_snapshots/`
(not syrupy's default `tests/ui/__snapshots__/`): the `snapshot` fixture below hands `snap_compare` an assertion whose
SVG extension stores files there. Regenerate after an intended UI change with
`python3 -m pytest tests/ui/test_snapshots.py --snapshot-update` and look at the diff report.

Rendering is made deterministic: no proxy (`start_proxy=False`), a frozen clock (req/s shows 0),
synthetic flows with fixed ids and timings fed through `on_flow_event`, `TZ=UTC`, a fixed theme
and a non-blinking cursor in the filter bar.
"""

from __future__ import annotations

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    JSON_FLOW_ID,
    feed,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    type_text,
    until,
)

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail
from omniproxy_tui.widgets.filterbar import FilterBar
from omniproxy_tui.widgets.help import HelpScreen


@pytest.mark.parametrize("size", size_params())
def test_main_empty(snap_compare, size: tuple[int, int]) -> None:
    """No flows yet: header, empty table with its hint, status line, footer."""

    async def ready(pilot) -> None:
        await until(pilot, lambda: pilot.app._drawn_version == pilot.app.view.version, "first draw")

    assert snap_compare(make_app(), terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", size_params())
def test_main_with_flows(snap_compare, size: tuple[int, int]) -> None:
    """Ten flows; the table follows the newest (a pending request); wide: its detail beside the table."""
    assert snap_compare(make_app(), terminal_size=size, run_before=feed)


@pytest.mark.parametrize("size", size_params())
def test_detail_json_response(snap_compare, size: tuple[int, int]) -> None:
    """Response tab of the JSON flow: narrow as its own screen (Enter), wide in the split pane."""

    async def open_json(pilot) -> None:
        app: OmniProxyApp = pilot.app
        await feed(pilot)
        await pilot.press("home")  # the JSON flow is the first one
        assert app.view.focus is not None and app.view.focus.id == JSON_FLOW_ID
        await pilot.press("enter")
        if app.is_wide:
            await until(pilot, lambda: app.screen.query_one(FlowDetail).has_focus_within, "detail focused")
        else:
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        await pilot.press("2")
        detail = app.screen.query_one(FlowDetail)
        await until(pilot, lambda: detail.active_tab == "response" and "JSON" in detail.status_text,
                    "the response tab")
        await app.workers.wait_for_complete()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_json)


@pytest.mark.parametrize("size", size_params())
def test_filter_syntax_error(snap_compare, size: tuple[int, int]) -> None:
    """The filter bar open on a broken expression: the message and a caret inline, the table intact."""

    async def bad_filter(pilot) -> None:
        app: OmniProxyApp = pilot.app
        await feed(pilot)
        await pilot.press("f")
        bar = app.screen.query_one(FilterBar)
        bar.input.cursor_blink = False  # a blinking cursor would make the snapshot flaky
        # The bar applies what parses after a short debounce: let "~t json" take effect before
        # breaking it, or the table would show whichever prefix happened to be applied.
        await type_text(pilot, "~t json")
        await until(pilot, lambda: app.view.filter_expr == "~t json" and len(app.view) == 4
                    and app._drawn_version == app.view.version, "the valid prefix applied")
        await type_text(pilot, " & ~c abc")
        await until(pilot, lambda: bar.input.value == "~t json & ~c abc" and bar.has_class("-error")
                    and "~c needs a number" in str(bar.query_one("#fb-error").render()), "the inline error")
        assert app.view.filter_expr == "~t json"  # the last good filter stays in place

    assert snap_compare(make_app(), terminal_size=size, run_before=bad_filter)


@pytest.mark.parametrize("size", size_params())
def test_help(snap_compare, size: tuple[int, int]) -> None:
    """`?` over a table with flows."""

    async def help_(pilot) -> None:
        await feed(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the help screen")

    assert snap_compare(make_app(), terminal_size=size, run_before=help_)

