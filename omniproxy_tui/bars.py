"""The one-line header (address, mode, capture target, live counters) and the view status line.

Both are plain render() widgets fed by the app's refresh timer; they re-render only when the text
they would show changed, and fit any width by shortening the least important part first.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

from proxycore.view import FlowView


def _shorten_middle(s: str, width: int) -> str:
    if cell_len(s) <= width:
        return s
    if width <= 1:
        return "…"[:width]
    keep = width - 1
    head = keep // 3
    return s[:head] + "…" + s[len(s) - (keep - head):]


def _shorten_left(s: str, width: int) -> str:
    """Keep the end (a file name says more than the directories leading to it)."""
    if cell_len(s) <= width:
        return s
    if width <= 1:
        return "…"[:width]
    return "…" + s[len(s) - (width - 1):]


def capture_label(output: str | None, db: str | None) -> str:
    """Where flows are saved, short enough for the header: file names, not directories."""
    parts = []
    if output:
        parts.append(output.replace("\\", "/").rsplit("/", 1)[-1] or output)
    if db:
        scheme, _, rest = db.partition(":")
        tail = rest.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or rest
        parts.append(f"{scheme}:{tail}")
    return " + ".join(parts)


class HeaderBar(Widget):
    """OmniProxy · listen address · mode · capture target ··· flows · req/s · intercepted."""

    COMPONENT_CLASSES = {"bar--accent", "bar--muted", "bar--warn", "bar--strong", "bar--brand"}
    DEFAULT_CSS = """
    HeaderBar { height: 1; background: $panel; color: $text; }
    HeaderBar > .bar--brand { background: $primary; color: $text; text-style: bold; }
    HeaderBar > .bar--accent { color: $text-accent; }
    HeaderBar > .bar--muted { color: $text-muted; }
    HeaderBar > .bar--warn { color: $text-warning; text-style: bold; }
    HeaderBar > .bar--strong { color: $text; text-style: bold; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.address = ""
        self.mode = ""
        self.capture = ""
        self.flows = 0
        self.rate = 0.0
        self.intercepted = 0
        self.state = "starting"
        self._last: tuple | None = None

    def set_info(self, **values: object) -> None:
        for k, v in values.items():
            setattr(self, k, v)
        snapshot = (self.address, self.mode, self.capture, self.flows, round(self.rate), self.intercepted,
                    self.state)
        if snapshot != self._last:
            self._last = snapshot
            self.refresh()

    def render(self) -> Text:
        width = self.size.width
        st = self.get_component_rich_style
        accent, muted, warn, strong = st("bar--accent"), st("bar--muted"), st("bar--warn"), st("bar--strong")
        right = Text()
        right.append(f"{self.flows:,}", strong)
        right.append(" flows ", muted)
        right.append(f"{self.rate:.0f}", strong)
        right.append("/s", muted)
        if self.intercepted:
            right.append(f"  ⏸ {self.intercepted}", warn)
        right.append(" ")
        left = Text()
        left.append(" OmniProxy ", st("bar--brand"))
        if self.state != "running":
            left.append(f" {self.state}", muted)
        else:
            left.append(f" {self.address}", strong)
            left.append(f"  {self.mode}", accent if self.mode == "MITM" else warn)
        room = width - left.cell_len - right.cell_len - 2
        if self.state == "running" and room >= 6:
            cap = self.capture
            left.append("  → " if cap else "  ", muted)
            shown = _shorten_left(cap, room - 4) if cap else _shorten_middle("not saved", room - 2)
            left.append(shown, "" if cap else muted)
        pad = max(1, width - left.cell_len - right.cell_len)
        out = left + Text(" " * pad) + right
        out.truncate(width)
        return out


class StatusLine(Widget):
    """[shown/total] · filter (on/off) · marked only ··· sort · follow."""

    COMPONENT_CLASSES = {"bar--accent", "bar--muted", "bar--warn", "bar--strong", "bar--off"}
    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; color: $text-muted; }
    StatusLine > .bar--accent { color: $text-accent; }
    StatusLine > .bar--muted { color: $text-muted; }
    StatusLine > .bar--warn { color: $text-warning; text-style: bold; }
    StatusLine > .bar--strong { color: $text; text-style: bold; }
    StatusLine > .bar--off { color: $text-muted; text-style: strike; }
    """

    def __init__(self, view: FlowView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self.toggle_key = "t"
        self._last: tuple | None = None

    def update_view(self) -> None:
        v = self.view
        snapshot = (len(v), v.total, v.filter_expr, v.filter_enabled, v.marked_only, v.sort_key, v.sort_reverse,
                    v.follow)
        if snapshot != self._last:
            self._last = snapshot
            self.refresh()

    def render(self) -> Text:
        v = self.view
        width = self.size.width
        st = self.get_component_rich_style
        accent, warn, strong = st("bar--accent"), st("bar--warn"), st("bar--strong")
        right = Text()
        right.append("sort ")
        right.append(v.sort_key + (" ▼" if v.sort_reverse else " ▲"), strong)
        right.append("  follow" if v.follow else "", accent)
        right.append(" ")
        left = Text(" ")
        left.append(f"[{len(v):,}/{v.total:,}]", strong)
        if v.marked_only:
            left.append("  marked only", warn)
        if v.filter is not None:
            label = "  filter " if v.filter_enabled else f"  filter off ({self.toggle_key}): "
            left.append(label, accent if v.filter_enabled else None)
            room = width - left.cell_len - right.cell_len - 1
            left.append(_shorten_middle(v.filter_expr, max(4, room)), strong if v.filter_enabled else st("bar--off"))
        pad = max(1, width - left.cell_len - right.cell_len)
        out = left + Text(" " * pad) + right
        out.truncate(width)
        return out
