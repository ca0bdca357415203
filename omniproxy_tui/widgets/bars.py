"""The one-line bars: header (address, mode, capture target, live counters), the view status line
and the key bar.

All are plain render() widgets: the first two are fed by the app's refresh timer and re-render
only when the text they would show changed, fitting any width by shortening the least important
part first.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widget import Widget

from proxycore.flows.view import FlowView
from proxycore.throttle import format_throughput


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


def throttle_label(throttle: Any) -> str:
    """'3g ↓98.0 kB/s ↑1.2 kB/s': the active throttle profile and the live throughput of the traffic
    it shapes; '' when throttling is off (or the engine has none)."""
    if throttle is None or throttle.profile is None:
        return ""
    down, up = throttle.throughput()
    return f"{throttle.profile.name} ↓{format_throughput(down)} ↑{format_throughput(up)}"


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
        self.breakpoints = False  # an intercept filter is active
        self.state = "starting"
        self.throttle = ""  # throttle_label(): the profile and live throughput, '' when off
        self._last: tuple | None = None

    def set_info(self, **values: object) -> None:
        for k, v in values.items():
            setattr(self, k, v)
        snapshot = (self.address, self.mode, self.capture, self.flows, round(self.rate), self.intercepted,
                    self.state, self.throttle, self.breakpoints)
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
        elif self.breakpoints:  # breakpoints on, nothing paused yet
            right.append("  ⏸ 0", muted)
        right.append(" ")
        left = Text()
        left.append(" OmniProxy ", st("bar--brand"))
        if self.state != "running":
            left.append(f" {self.state}", muted)
        else:
            left.append(f" {self.address}", strong)
            left.append(f"  {self.mode}", accent if self.mode == "MITM" else warn)
        if self.throttle:  # the profile always; its live rates when they fit
            name, _, rates = self.throttle.partition(" ")
            shown = Text.assemble(("throttle " + name, warn), (" " + rates, muted), "  ")
            if left.cell_len + shown.cell_len + right.cell_len + 2 > width:
                shown = Text.assemble(("throttle " + name, warn), "  ")
            right = shown + right
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


class KeyBar(Widget):
    """The keys that matter now, on one line: what Textual's Footer shows, drawn as one widget.

    The Footer re-composes a widget per key whenever the focus moves (opening the filter bar, closing
    it, opening the detail): several message hops and frames per key press, which under load cost
    more than the key's own work. This bar only re-renders its line. A click runs the key.
    """

    COMPONENT_CLASSES = {"keybar--key", "keybar--description"}
    DEFAULT_CSS = """
    KeyBar { height: 1; background: $footer-background; }
    KeyBar > .keybar--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
    KeyBar > .keybar--description { color: $footer-description-foreground; background: $footer-description-background; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._items: list[tuple[str, str, str]] = []  # (key, key display, description)
        self._palette: tuple[str, str, str] | None = None
        self._spans: list[tuple[int, int, str]] = []  # (start x, end x, key) of the last render

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: object) -> None:
        app = self.app
        active = self.screen.active_bindings
        items: list[tuple[str, str, str]] = []
        seen_actions: set[str] = set()
        for _node, binding, enabled, _tooltip in active.values():
            if binding.show and enabled and binding.action not in seen_actions:
                seen_actions.add(binding.action)
                items.append((binding.key, app.get_key_display(binding), binding.description))
        palette = active.get(app.COMMAND_PALETTE_BINDING) if app.ENABLE_COMMAND_PALETTE else None
        palette_item = None if palette is None else (
            palette.binding.key, app.get_key_display(palette.binding), palette.binding.description)
        if (items, palette_item) != (self._items, self._palette):
            self._items, self._palette = items, palette_item
            self.refresh()

    def render(self) -> Text:
        st = self.get_component_rich_style
        key_style, desc_style = st("keybar--key"), st("keybar--description")
        width = self.size.width
        right = Text()
        if self._palette is not None:
            right.append(self._palette[1], key_style)
            right.append(f" {self._palette[2]} ", desc_style)
        out = Text()
        spans: list[tuple[int, int, str]] = []
        room = width - right.cell_len - 1
        wanted = sum(cell_len(d) + 1 + cell_len(desc) for _, d, desc in self._items)
        gap = "  " if wanted + 2 * len(self._items) <= room else " "  # two spaces when they fit
        for key, display, description in self._items:
            start = out.cell_len
            if start + cell_len(display) + 1 + cell_len(description) > room:
                break
            out.append(display, key_style)
            out.append(f" {description}", desc_style)
            spans.append((start, out.cell_len, key))
            out.append(gap, desc_style)
        if right.cell_len:
            start = max(out.cell_len, width - right.cell_len)
            out.append(" " * (start - out.cell_len), desc_style)
            out.append_text(right)
            spans.append((start, out.cell_len, self._palette[0]))  # type: ignore[index]
        self._spans = spans
        out.truncate(width)
        return out

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
