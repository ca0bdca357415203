"""SVG snapshots of the capture dialogs (`w` save, `L` open) at 80×24 and 160×48.

Deterministic as the kit makes the main views: no proxy, a frozen clock (the default file name is
`omniproxy-20260101-120100.flows`, from the kit's T0 + 60 s in UTC), synthetic flows, and an
empty temporary directory as the place files are saved (nothing there to complete).
Regenerate with `python3 -m pytest tests/ui/test_snapshots_captures.py --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    feed,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    until,
)
from textual.widgets import Input

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.capturedialogs import LoadScreen, SaveScreen


def _app(tmp_path: Path) -> OmniProxyApp:
    app = make_app()
    app.ctx.cwd = tmp_path  # an empty directory: the default name is free, nothing to complete
    return app


async def _steady_input(pilot) -> None:
    inp = pilot.app.screen.query_one(Input)
    inp.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", size_params())
def test_save_dialog(snap_compare, size: tuple[int, int], tmp_path: Path) -> None:
    """`w` over ten flows: the timestamped default name, lossless selected, what each format keeps."""

    async def open_save(pilot) -> None:
        await feed(pilot)
        await pilot.press("w")
        await until(pilot, lambda: isinstance(pilot.app.screen, SaveScreen), "the save dialog")
        await _steady_input(pilot)

    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=open_save)


@pytest.mark.parametrize("size", size_params())
def test_save_dialog_har(snap_compare, size: tuple[int, int], tmp_path: Path) -> None:
    """The same dialog after tab twice: HAR, and the default name's extension followed."""

    async def open_save(pilot) -> None:
        await feed(pilot)
        await pilot.press("w")
        await until(pilot, lambda: isinstance(pilot.app.screen, SaveScreen), "the save dialog")
        await pilot.press("tab", "tab")
        await until(pilot, lambda: pilot.app.screen.fmt == "har", "HAR chosen")
        await _steady_input(pilot)

    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=open_save)


@pytest.mark.parametrize("size", size_params())
def test_load_dialog(snap_compare, size: tuple[int, int], tmp_path: Path) -> None:
    """`L`: the path prompt over the flow list."""

    async def open_load(pilot) -> None:
        await feed(pilot)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(pilot.app.screen, LoadScreen), "the load prompt")
        await _steady_input(pilot)

    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=open_load)
