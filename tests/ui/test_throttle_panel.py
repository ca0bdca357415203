"""The throttle panel (T) driven with Pilot against the real proxy: presets, custom values, the scope
filter, errors in place, off; the header shows the profile; traffic set up from the panel is shaped."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from test_app import NARROW, make_app, screen_text, type_text, until

from omniproxy_tui.widgets.throttlepanel import ThrottlePanel
from proxycore.throttle import DOWN


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a scratch directory (nothing the app might write lands in the repository)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def header(app) -> str:
    return screen_text(app).splitlines()[0]


async def open_panel(pilot) -> ThrottlePanel:
    app = pilot.app
    await until(pilot, lambda: app.proxy.address[1] != 0 and "127.0.0.1:" in header(app), "the proxy running")
    await pilot.press("T")
    await until(pilot, lambda: isinstance(app.screen, ThrottlePanel), "the throttle panel")
    return app.screen


async def test_pick_a_preset_with_the_keyboard_then_turn_it_off(workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await open_panel(pilot)
        text = screen_text(app)
        assert "throttle: off" in text and "3g-fast" in text and "very-bad" in text
        await pilot.press("down", "down", "down", "down", "enter")  # off, gprs, 2g, edge, 3g
        await until(pilot, lambda: not isinstance(app.screen, ThrottlePanel), "the panel closed")
        th = app.engine.throttle
        assert th.profile is not None and th.profile.name == "3g"
        await until(pilot, lambda: "throttle 3g" in header(app), "the profile in the header")
        assert any("throttle: 3g" in n.message for n in app._notifications)
        # reopened, the list starts on the active preset; Home + Enter turns it off
        panel = await open_panel(pilot)
        assert panel.query_one("#throttle-presets").highlighted == 4
        await pilot.press("home", "enter")
        await until(pilot, lambda: th.profile is None, "throttling off")
        await until(pilot, lambda: "throttle" not in header(app), "the header without a profile")


async def test_custom_values_and_scope_shape_real_traffic(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await open_panel(pilot)
        await pilot.press("tab")
        await type_text(pilot, "16mbit")
        await pilot.press("tab")
        await type_text(pilot, "8mbit")
        await pilot.press("tab")
        await type_text(pilot, "5ms")
        await pilot.press("tab")
        await type_text(pilot, "~d localhost")
        await pilot.press("enter")  # Enter in any field applies the custom values and the scope
        await until(pilot, lambda: not isinstance(app.screen, ThrottlePanel), "the panel closed")
        th = app.engine.throttle
        assert (th.profile.name, th.profile.down, th.profile.up) == ("custom", 2_000_000, 1_000_000)
        assert th.filter_expr == "~d localhost"
        await until(pilot, lambda: "throttle custom" in header(app), "the profile in the header")
        n = 300_000
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{app.proxy.address[1]}", trust_env=False,
                                     timeout=30) as client:
            r = await client.get(origin.url(f"/bytes?n={n}", host="localhost"))
            shaped = th.links[DOWN].bytes
            assert len(r.content) == n and shaped >= n
            r = await client.get(origin.url(f"/bytes?n={n}"))  # 127.0.0.1: outside the scope
            assert hashlib.sha256(r.content).digest() and th.links[DOWN].bytes == shaped


async def test_a_bad_value_is_shown_in_the_panel_which_stays_open(workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await open_panel(pilot)
        await pilot.press("tab")
        await type_text(pilot, "fast")
        await pilot.press("enter")
        await until(pilot, lambda: "bad rate 'fast'" in screen_text(app), "the error in the panel")
        assert isinstance(app.screen, ThrottlePanel)
        assert app.engine.throttle.profile is None
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ThrottlePanel), "the panel closed")
        assert app.engine.throttle.profile is None


async def test_bad_filter_is_refused_in_place(workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await open_panel(pilot)
        await pilot.press("tab", "tab", "tab", "tab")
        await type_text(pilot, "~d (")
        await pilot.press("enter")
        await until(pilot, lambda: "throttle filter" in screen_text(app), "the filter error in the panel")
        assert app.engine.throttle.filter_expr == ""


async def test_started_throttled_shows_in_the_header(workdir) -> None:
    app = make_app(throttle="edge")
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: "throttle edge" in header(app), "the profile in the header")
