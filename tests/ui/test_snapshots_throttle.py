"""SVG snapshots of throttling in the UI: the panel (T) at 80×24 and 160×48, off and with a preset
active over flows, and the header naming the active profile. Deterministic like the other snapshots:
no proxy, a frozen flow clock, no traffic (the live throughput reads 0 B/s).

Regenerate with `python3 -m pytest tests/ui/test_snapshots_throttle.py --snapshot-update` and look at them.
"""

from __future__ import annotations

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    feed,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    until,
)

from omniproxy_tui.widgets.throttlepanel import ThrottlePanel
from proxycore.throttle import preset


async def _open_panel(pilot) -> None:
    await pilot.press("T")
    await until(pilot, lambda: isinstance(pilot.app.screen, ThrottlePanel), "the throttle panel")
    await pilot.pause()


@pytest.mark.parametrize("size", size_params())
def test_throttle_panel_off(snap_compare, size: tuple[int, int]) -> None:
    """Nothing throttled yet: the list starts on "off", the custom fields are empty."""

    async def run(pilot) -> None:
        await until(pilot, lambda: pilot.app._drawn_version == pilot.app.view.version, "first draw")
        await _open_panel(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", size_params())
def test_throttle_panel_active(snap_compare, size: tuple[int, int]) -> None:
    """3G active for one API over flows: the list on 3g, its values in the custom fields, the scope."""

    async def run(pilot) -> None:
        th = pilot.app.engine.throttle
        th.set_filter("~d api.example.com")
        th.set(preset("3g"))
        await feed(pilot)
        await _open_panel(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", size_params())
def test_header_throttled(snap_compare, size: tuple[int, int]) -> None:
    """The header names the active profile and the live throughput of the traffic it shapes."""

    async def run(pilot) -> None:
        pilot.app.engine.throttle.set(preset("very-bad"))
        await feed(pilot)
        await until(pilot, lambda: "very-bad" in pilot.app.get_screen_main().query_one("#header").throttle,
                    "the profile in the header")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run)
