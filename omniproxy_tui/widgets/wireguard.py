"""The WireGuard screen (`W`, or `wireguard.config` at the : prompt): the client configuration
of `--mode wireguard` and a QR code of it for the phone apps to scan.

The QR code is drawn with half-block characters (two modules per character cell, dark on light
whatever the theme, so phones read it); when the terminal is too small for it the screen says
how big it must be instead of drawing a code no camera could read.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from omniproxy_tui.widgets.bars import KeyBar

QR_BORDER = 2  # quiet zone in modules (the standard's 4 costs 4 rows; phone scanners read 2)
_QR_STYLE = "#000000 on #ffffff"


def qr_rows(text: str) -> list[str]:
    """The QR code of `text` as rows of half blocks: each character is two modules stacked."""
    import segno

    qr = segno.make(text, error="l", micro=False)
    matrix = [list(row) for row in qr.matrix]
    size = len(matrix)
    full = [[0] * (size + 2 * QR_BORDER) for _ in range(QR_BORDER)]
    rows = full + [[0] * QR_BORDER + r + [0] * QR_BORDER for r in matrix] + [list(x) for x in full]
    if len(rows) % 2:
        rows.append([0] * len(rows[0]))
    out = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        out.append("".join("█" if t and b else "▀" if t else "▄" if b else " "
                           for t, b in zip(top, bottom, strict=True)))
    return out


class WireGuardScreen(Screen[None]):
    DEFAULT_CSS = """
    WireGuardScreen #wg-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    WireGuardScreen VerticalScroll { height: 1fr; padding: 0 1; }
    WireGuardScreen #wg-config { margin: 1 0 0 0; }
    WireGuardScreen #wg-qr { width: auto; margin: 1 0 0 0; }
    WireGuardScreen #wg-note { color: $text-warning; margin: 1 0 0 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,W", "close", "Back", id="wireguard.back"),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
    ]

    def __init__(self, config: str) -> None:
        super().__init__()
        self.config = config
        self.qr = qr_rows(config)

    def compose(self) -> ComposeResult:
        yield Static("WireGuard client configuration: import it in a WireGuard app, or scan the QR code",
                     id="wg-title")
        with VerticalScroll():
            yield Static(Text(self.config.rstrip()), id="wg-config")
            yield Static("", id="wg-note")
            yield Static("", id="wg-qr")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def needed_size(self) -> tuple[int, int]:
        """(columns, rows) the terminal needs to show the whole code at once."""
        return len(self.qr[0]) + 2, len(self.qr) + 2  # the padding, the title and the key bar

    def _draw(self) -> None:
        if not self.query("#wg-qr"):
            return  # a resize before the widgets exist: on_mount draws
        need_w, need_h = self.needed_size()
        w, h = self.app.size
        qr, note = self.query_one("#wg-qr", Static), self.query_one("#wg-note", Static)
        trust = "For HTTPS, the device must trust the OmniProxy CA (see `omniproxy-tui ca info`)."
        if w < need_w or h < need_h:
            qr.update("")
            qr.display = False
            note.update(f"{trust}\nThe QR code needs a terminal of at least {need_w}x{need_h} (this one is "
                        f"{w}x{h}): enlarge the window or make the font smaller, or copy the text above.")
        else:
            qr.display = True
            qr.update(Text("\n".join(self.qr), _QR_STYLE))
            note.update(trust)

    def action_close(self) -> None:
        self.app.pop_screen()

    def action_scroll(self, delta: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=delta, animate=False)
