"""SVG snapshots of the body features: the `b` path prompt over the detail, at 80×24 and 160×48.

Regenerate with `python3 -m pytest tests/ui/test_snapshots_bodies.py --snapshot-update` and look
at the SVGs in snapshots/test_snapshots_bodies/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    JSON_FLOW_ID,
    feed,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    until,
)

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.bodyfile import PathPrompt
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail


@pytest.mark.parametrize("size", size_params())
def test_save_body_prompt(snap_compare, size: tuple[int, int], tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`b` on the JSON response: the path prompt with the default name from the URL and type."""
    monkeypatch.chdir(tmp_path)  # the default name depends on what the directory holds

    async def prompt(pilot) -> None:
        app: OmniProxyApp = pilot.app
        await feed(pilot)
        await pilot.press("home")
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
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt), "the path prompt")
        await app.workers.wait_for_complete()

    assert snap_compare(make_app(), terminal_size=size, run_before=prompt)
