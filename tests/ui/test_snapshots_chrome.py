"""SVG snapshots of the UI's chrome at 80×24 and 160×48: the options screen (O), the event log (E),
the command prompt (:) with completions, the comment prompt (;) and the dialogs at 80 columns.

Stored in snapshots/test_snapshots_chrome/ (see snapshot_kit). Regenerate after an intended change
with `python3 -m pytest tests/ui/test_snapshots_chrome.py --snapshot-update` and look at them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    T0,
    feed,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    type_text,
    until,
)

from omniproxy_tui.app import MainScreen, OmniProxyApp
from omniproxy_tui.widgets.dialogs import ConfirmScreen
from omniproxy_tui.widgets.eventlog import EventLogScreen
from omniproxy_tui.widgets.options import OptionsScreen
from omniproxy_tui.widgets.prompt import PromptScreen

CONFIG = Path("/home/ada/.omniproxy/config.yaml")  # shown in the options title: fixed for the snapshot


def _no_blink(app: OmniProxyApp) -> None:
    screen = app.screen
    if isinstance(screen, PromptScreen):
        screen.input.cursor_blink = False


@pytest.mark.parametrize("size", size_params())
def test_options_screen(snap_compare, size: tuple[int, int]) -> None:
    """O: every option, its value and when it applies; the help of the focused one below."""
    app = make_app()
    app.ctx.config_path = CONFIG

    async def options(pilot) -> None:
        await feed(pilot)
        app.ctx.pending_options["port"] = 9000  # a saved start-only change, shown with *
        await pilot.press("O")
        await until(pilot, lambda: isinstance(app.screen, OptionsScreen), "the options screen")
        await pilot.press("down", "down", "down")  # connect_timeout: a live one

    assert snap_compare(app, terminal_size=size, run_before=options)


@pytest.mark.parametrize("size", size_params())
def test_option_value_prompt(snap_compare, size: tuple[int, int]) -> None:
    """Enter on an option: its value in a prompt, a bad value's one-line error."""
    app = make_app()
    app.ctx.config_path = CONFIG

    async def edit(pilot) -> None:
        await feed(pilot)
        await pilot.press("O")
        await until(pilot, lambda: isinstance(app.screen, OptionsScreen), "the options screen")
        row = next(i for i, k in enumerate(app.screen.keys) if k.field == "connect_timeout")
        await pilot.press(*["down"] * row, "enter")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the prompt")
        _no_blink(app)
        app.screen.input.value = "soon"
        await pilot.press("enter")
        await until(pilot, lambda: "server.connectTimeout" in app.screen.error_text, "the error")

    assert snap_compare(app, terminal_size=size, run_before=edit)


@pytest.mark.parametrize("size", size_params())
def test_event_log(snap_compare, size: tuple[int, int]) -> None:
    """E: start-up facts, a warning and errors, with times and levels."""
    app = make_app()

    async def log(pilot) -> None:
        await feed(pilot)
        events = app.engine.events
        times = iter(T0 + i for i in range(100))
        events._clock = lambda: next(times)
        events.info("listening on 127.0.0.1:8080")
        events.info("CA certificate: /home/ada/.omniproxy/ca/omniproxy-ca.crt")
        events.info("no capture file or database: flows are kept in memory only")
        events.info("addon script loaded: tag.py")
        events.warn("refused client 203.0.113.7 (not an allowed network; --allow-client)")
        events.error("addon hook Tag.response failed: KeyError('content-type')")
        events.error("capture: cannot write /var/log/flows.ndjson: [Errno 28] No space left on device")
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, EventLogScreen), "the event log")
        await until(pilot, lambda: app.screen._drawn == (events.version, "info"), "the events drawn")

    assert snap_compare(app, terminal_size=size, run_before=log)


@pytest.mark.parametrize("size", size_params())
def test_command_prompt(snap_compare, size: tuple[int, int]) -> None:
    """`:` after `view.so` and Tab: the completions above, the command's signature, the line."""
    app = make_app()

    async def prompt(pilot) -> None:
        await feed(pilot)
        await pilot.press("colon")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the prompt")
        _no_blink(app)
        await type_text(pilot, "view.so")
        await pilot.press("tab")
        await until(pilot, lambda: app.screen.input.value == "view.sort", "the completion")

    assert snap_compare(app, terminal_size=size, run_before=prompt)


@pytest.mark.parametrize("size", size_params())
def test_comment_prompt(snap_compare, size: tuple[int, int]) -> None:
    """`;` on a flow that has a comment: the prompt prefilled, the ¶ mark in the table."""
    app = make_app()

    async def comment(pilot) -> None:
        await feed(pilot)
        await pilot.press("home")
        app.run_command("flow.comment", "slow on prod, see ticket 4711")
        await until(pilot, lambda: app._drawn_version == app.view.version, "the table redrawn")
        await pilot.press("semicolon")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the prompt")
        _no_blink(app)

    assert snap_compare(app, terminal_size=size, run_before=comment)


@pytest.mark.parametrize("key", ["z", "Z", "H", "q"])
def test_dialog_at_80_columns(snap_compare, key: str) -> None:
    """The confirm dialogs at 80 columns: every word of the question on screen."""
    app = make_app()

    async def dialog(pilot) -> None:
        await feed(pilot)
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the main screen")
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")

    assert snap_compare(app, terminal_size=(80, 24), run_before=dialog)


@pytest.mark.parametrize("key", ["z", "q"])
def test_dialog_at_160_columns(snap_compare, key: str) -> None:
    app = make_app()

    async def dialog(pilot) -> None:
        await feed(pilot)
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")

    assert snap_compare(app, terminal_size=(160, 48), run_before=dialog)
