"""SVG snapshots of WireGuard mode: the W screen (client configuration and QR code; at 80x24 the
note that the code needs a bigger terminal) and a raw TCP flow in the table and its detail.

Deterministic as the other snapshots (see snapshot_kit): a fixed configuration text with made-up
keys, synthetic flows with fixed ids and timings, no proxy. The real engine behind W is tested in
tests/ui/test_wireguard_ui.py."""

from __future__ import annotations

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    T0,
    feed,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    until,
)

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.wireguard import WireGuardScreen
from proxycore.flows.flow import DONE
from proxycore.flows.tcp import TCPMessage, new_tcp_flow

CONFIG = (
    "[Interface]\n"
    "PrivateKey = SNAPSHOTclientKEYnotREALxxxxxxxxxxxxxxxxxxx=\n"
    "Address = 10.0.0.1/32\n"
    "DNS = 10.0.0.53\n"
    "\n"
    "[Peer]\n"
    "PublicKey = SNAPSHOTserverKEYnotREALxxxxxxxxxxxxxxxxxxx=\n"
    "AllowedIPs = 0.0.0.0/0\n"
    "Endpoint = 192.0.2.10:51820\n"
)


@pytest.mark.parametrize("size", size_params())
def test_wireguard_screen(snap_compare, size: tuple[int, int]) -> None:
    async def show(pilot) -> None:
        app: OmniProxyApp = pilot.app
        app.push_screen(WireGuardScreen(CONFIG))
        await until(pilot, lambda: isinstance(app.screen, WireGuardScreen), "the WireGuard screen")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=show)


def _tcp_flow() -> object:
    f = new_tcp_flow("10.9.8.7", 6379, ("10.0.0.1", 40312))
    f.id = 111
    t0 = T0 + 5.0
    f.timings.start, f.timings.connect_start, f.timings.connect_end = t0, t0 + 0.001, t0 + 0.004
    for n, (from_client, data) in enumerate(((True, b"*1\r\n$4\r\nPING\r\n"), (False, b"+PONG\r\n"),
                                             (True, b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"),
                                             (False, b"\x00\x01\x02binary\xff\xfe reply"))):
        f.tcp_messages.append(TCPMessage(from_client, data, t0 + 0.010 * (n + 1)))
        if from_client:
            f.request.body_size += len(data)
    f.timings.end = t0 + 0.5
    f.state = DONE
    return f


@pytest.mark.parametrize("size", size_params())
def test_tcp_flow_detail(snap_compare, size: tuple[int, int]) -> None:
    async def show(pilot) -> None:
        app: OmniProxyApp = pilot.app
        await feed(pilot)
        f = _tcp_flow()
        app._snapshot_flows.append(f)
        app.on_flow_event("done", f)
        await until(pilot, lambda: app.view.total == len(app._snapshot_flows)
                    and app._drawn_version == app.view.version, "the TCP flow in the table")
        await pilot.press("end")
        await until(pilot, lambda: app.view.focus is not None and app.view.focus.id == 111, "the TCP flow")
        await pilot.press("enter")
        await until(pilot, lambda: "Stream" in str(app.screen.query("Tab").first().label)
                    if app.screen.query("Tab") else False, "the detail")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=show)
