"""WireGuard mode in the UI with a real engine: W (and `wireguard.config` at the : prompt) shows
the client configuration and its QR code; the QR drawn is the configuration's; outside WireGuard
mode W says how to get there; a TCP flow shows as one in the table and the detail."""

from __future__ import annotations

import segno
from test_app import screen_text, type_text, until

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.wireguard import QR_BORDER, WireGuardScreen, qr_rows
from proxycore.flows.flow import DONE
from proxycore.flows.tcp import add_message, new_tcp_flow
from proxycore.options import Options


def _modules(rows: list[str]) -> list[list[int]]:
    """The modules the half blocks draw (the inverse of qr_rows)."""
    top = {"█": 1, "▀": 1, "▄": 0, " ": 0}
    bottom = {"█": 1, "▀": 0, "▄": 1, " ": 0}
    out = []
    for row in rows:
        out.append([top[c] for c in row])
        out.append([bottom[c] for c in row])
    return out


def test_the_half_blocks_draw_exactly_the_qr_code() -> None:
    text = "[Interface]\nPrivateKey = x\n"
    drawn = _modules(qr_rows(text))
    matrix = [list(r) for r in segno.make(text, error="l", micro=False).matrix]
    n = len(matrix)
    inner = [row[QR_BORDER:QR_BORDER + n] for row in drawn[QR_BORDER:QR_BORDER + n]]
    assert inner == matrix
    assert all(not any(row) for row in drawn[:QR_BORDER])  # the quiet zone is light


async def test_w_shows_the_client_configuration_of_a_real_wireguard_engine(tmp_path) -> None:
    app = OmniProxyApp(Options(host="127.0.0.1", port=0, mode=f"wireguard:{tmp_path / 'wg.conf'}@0"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine.wireguard_config, "the WireGuard server")
        conf = app.engine.wireguard_config
        text = screen_text(app)
        assert f"WireGuard 127.0.0.1:{app.engine.address[1]}" in text  # the header: the UDP address
        assert "Connect a WireGuard client: W shows" in text
        await pilot.press("W")
        await until(pilot, lambda: isinstance(app.screen, WireGuardScreen), "the WireGuard screen")
        text = screen_text(app)
        assert "PrivateKey = " + conf.split("PrivateKey = ")[1].split("\n")[0] in text
        assert "needs a terminal of at least" in text  # 80x24 cannot hold the code
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, WireGuardScreen), "back")
        await pilot.resize_terminal(160, 48)
        await pilot.press("colon")
        await type_text(pilot, "wireguard.config")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WireGuardScreen), "the screen from the : prompt")
        await until(pilot, lambda: "▀" in screen_text(app), "the QR code at 160x48")
        assert "needs a terminal" not in screen_text(app)


async def test_w_outside_wireguard_mode_says_how(workdir) -> None:
    app = OmniProxyApp(Options(host="127.0.0.1", port=0))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: app.engine.address[1], "the proxy")
        await pilot.press("W")
        await until(pilot, lambda: any("--mode wireguard" in n.message for n in app._notifications), "the hint")
        assert not isinstance(app.screen, WireGuardScreen)


async def test_a_tcp_flow_in_the_table_and_the_detail() -> None:
    app = OmniProxyApp(Options(host="127.0.0.1", port=8080), start_proxy=False)
    async with app.run_test(size=(100, 30)) as pilot:
        f = new_tcp_flow("10.9.8.7", 7007, ("10.0.0.1", 40000))
        add_message(f, True, b"ping\n", None)
        add_message(f, False, b"echo:ping\n", None)
        f.state, f.timings.end = DONE, f.timings.start + 0.2
        app._kept = f
        app.on_flow_event("done", f)
        await until(pilot, lambda: "(tcp) 2 messages" in screen_text(app), "the TCP row")
        await pilot.press("colon")
        await type_text(pilot, "view.filter.set ~http")
        await pilot.press("enter")
        await until(pilot, lambda: "(tcp)" not in screen_text(app), "~http hides it")
        await pilot.press("colon")
        await type_text(pilot, "view.filter.set ~tcp")
        await pilot.press("enter")
        await until(pilot, lambda: "(tcp) 2 messages" in screen_text(app), "~tcp shows it")
        await pilot.press("enter")
        await until(pilot, lambda: "echo:ping" in screen_text(app), "the messages in the detail")
        text = screen_text(app)
        assert "→ client" in text and "← server" in text and "Messages" in text
