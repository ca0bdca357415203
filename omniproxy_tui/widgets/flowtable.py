"""The live flow table: a Line-API ScrollView that renders only the rows on screen.

The widget owns no flow data: it draws rows straight from a `proxycore.flows.view.FlowView` (index →
flow in O(1)), so 50 000 flows cost nothing until they scroll into view. It never repaints per
proxy event: the app calls `refresh_view()` from a 10–20 Hz timer when the view's version moved.
Rendered rows are cached on the few fields a row shows, so scrolling and repaints of unchanged rows
are dictionary look-ups.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar, Self

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from omniproxy_tui.textual_fixes import follow_focus, run_bindings_now
from proxycore.flows.flow import ERROR, INTERCEPTED, PENDING, Flow
from proxycore.flows.view import FlowView
from proxycore.humanize import human_duration, human_size, short_content_type

# Terminal control characters in hosts/paths would let a request repaint the user's terminal.
_CTRL = {i: "?" for i in (*range(0x20), 0x7F)}

# Rows built, by row key: enough for a few screens of scrolling back and forth. Not more: each
# row costs ~1.5 KiB, and a cache as big as the flow list is memory every kept flow pays for.
_CACHE_MAX = 1000
# which column header is underlined for each sort key
_SORT_COLUMN = {"time": "time", "method": "method", "url": "path", "size": "size", "duration": "duration",
                "status": "status"}


def _clean(s: str) -> str:
    return s if s.isprintable() else s.translate(_CTRL)


def _fit(s: str, width: int, align_right: bool = False, cut_left: bool = False) -> str:
    """Pad or truncate to exactly `width` cells (an ellipsis marks a cut)."""
    if width <= 0:
        return ""
    if s.isascii():
        n = len(s)
        if n > width:
            s = ("…" + s[n - width + 1:]) if cut_left else (s[: width - 1] + "…")
            return s
        return s.rjust(width) if align_right else s.ljust(width)
    n = cell_len(s)
    if n > width:
        if cut_left:
            while cell_len(s) > width - 1:
                s = s[1:]
            return set_cell_size("…" + s, width)
        return set_cell_size(s, width - 1) + "…"
    pad = " " * (width - n)
    return pad + s if align_right else s + pad


def _size_class(n: int) -> str:
    if n < 1024:
        return "small"
    if n < 100 * 1024:
        return "medium"
    if n < 1024 * 1024:
        return "large"
    return "huge"


def _dur_class(seconds: float) -> str:
    if seconds < 0.1:
        return "fast"
    if seconds < 1.0:
        return "medium"
    if seconds < 3.0:
        return "slow"
    return "huge"


class Column:
    __slots__ = ("name", "title", "width", "right")

    def __init__(self, name: str, title: str, width: int, right: bool = False) -> None:
        self.name = name
        self.title = title
        self.width = width
        self.right = right


# The path is cut before the time and then the content type go: a column is added only while the
# path keeps at least this many cells (beside the side pane the table keeps its time column).
MIN_PATH = 24


def layout_columns(width: int, id_width: int = 4) -> list[Column]:
    """Columns for a table `width` cells wide: the path gives way first, then type, then time."""
    if width >= 140:
        host_w, time_w, type_w = 28, 12, 16
    elif width >= 100:
        host_w, time_w, type_w = 22, 8, 10
    else:
        host_w, time_w, type_w = 16, 8, 8
    base = id_width + 7 + host_w + 3 + 5 + 5 + 2 + 7  # id method host sts size dur marks + 7 spaces
    path = width - base
    if path - (time_w + 1) < MIN_PATH:
        time_w = 0
    else:
        path -= time_w + 1
    if path - (type_w + 1) < MIN_PATH:
        type_w = 0
    cols = [Column("id", "#", id_width, right=True)]
    if time_w:
        cols.append(Column("time", "time", time_w))
    cols += [Column("method", "method", 7), Column("host", "host", host_w, right=True),
             Column("path", "path", 0), Column("status", "sts", 3, right=True)]
    if type_w:
        cols.append(Column("type", "type", type_w))
    cols += [Column("size", "size", 5, right=True), Column("duration", "dur", 5, right=True),
             Column("marks", "", 2)]
    fixed = sum(c.width for c in cols) + len(cols) - 1  # one space between columns
    cols[[c.name for c in cols].index("path")].width = max(6, width - fixed)
    return cols


def flow_marks(flow: Flow) -> str:
    """Up to two state symbols: ⏸ intercepted, ● marked, ¶ commented, ↺ replayed, ✎ modified, ⇄ tunnel,
    ² a stream of a client's HTTP/2 connection."""
    out = ""
    if flow.state == INTERCEPTED:
        out += "⏸"
    if flow.marked:
        out += "●"
    if flow.comment:
        out += "¶"
    if flow.is_replay:
        out += "↺"
    if flow.modified:
        out += "✎"
    if flow.passthrough:
        out += "⇄"
    if flow.stream is not None:
        out += "²"
    return out[:2]


class FlowTable(ScrollView, can_focus=True):
    """Rows of the flows a FlowView shows; the cursor is the view's focus."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "flowtable--header", "flowtable--cursor", "flowtable--cursor-blurred", "flowtable--muted",
        "flowtable--method", "flowtable--host", "flowtable--path", "flowtable--s1", "flowtable--s2",
        "flowtable--s3", "flowtable--s4", "flowtable--s5", "flowtable--err", "flowtable--pending",
        "flowtable--size-small", "flowtable--size-medium", "flowtable--size-large", "flowtable--size-huge",
        "flowtable--dur-fast", "flowtable--dur-medium", "flowtable--dur-slow", "flowtable--dur-huge",
        "flowtable--marks", "flowtable--intercepted", "flowtable--empty", "flowtable--ws",
    }

    DEFAULT_CSS = """
    FlowTable {
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        background: $surface;
    }
    FlowTable > .flowtable--header { text-style: bold; color: $text-muted; background: $panel; }
    FlowTable > .flowtable--cursor { background: $block-cursor-background; color: $block-cursor-foreground;
                                     text-style: bold; }
    FlowTable > .flowtable--cursor-blurred { background: $block-cursor-blurred-background;
                                             color: $block-cursor-blurred-foreground; }
    FlowTable > .flowtable--muted { color: $text-muted; }
    FlowTable > .flowtable--method { color: $text; text-style: bold; }
    FlowTable > .flowtable--host { color: $text-secondary; }
    FlowTable > .flowtable--path { color: $text; }
    FlowTable > .flowtable--s1 { color: $text-muted; }
    FlowTable > .flowtable--s2 { color: $text-success; }
    FlowTable > .flowtable--s3 { color: $text-primary; }
    FlowTable > .flowtable--s4 { color: $text-warning; }
    FlowTable > .flowtable--s5 { color: $text-error; }
    FlowTable > .flowtable--err { color: $text-error; text-style: bold; }
    FlowTable > .flowtable--pending { color: $text-muted; }
    FlowTable > .flowtable--size-small { color: $text-muted; }
    FlowTable > .flowtable--size-medium { color: $text; }
    FlowTable > .flowtable--size-large { color: $text-warning; }
    FlowTable > .flowtable--size-huge { color: $text-error; }
    FlowTable > .flowtable--dur-fast { color: $text-success; }
    FlowTable > .flowtable--dur-medium { color: $text; }
    FlowTable > .flowtable--dur-slow { color: $text-warning; }
    FlowTable > .flowtable--dur-huge { color: $text-error; }
    FlowTable > .flowtable--marks { color: $text-accent; }
    FlowTable > .flowtable--intercepted { color: $text-warning; text-style: bold; }
    FlowTable > .flowtable--ws { color: $text-accent; }
    FlowTable > .flowtable--empty { color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("pagedown,ctrl+f,space", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "First flow", show=False),
        Binding("end,G", "last", "Newest flow (and follow again)", show=False),
        Binding("enter", "open", "Detail", key_display="⏎", id="flow.open"),
    ]

    class Open(Message):
        """Enter (or a double click) on a flow."""

        def __init__(self, flow: Flow) -> None:
            super().__init__()
            self.flow = flow

    def __init__(self, view: FlowView, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.view = view
        self._cache: dict[tuple, list[Segment]] = {}  # row key -> the row's segments, full width
        # Called at once when the user moved the cursor (key or mouse), not through a message: under
        # load every message hop waits a turn of the busy event loop, and the status line and detail
        # pane belong in the same frame as the cursor.
        self.on_moved: Callable[[], None] | None = None
        self._columns: list[Column] = []
        self._columns_width = -1
        self._id_width = 4
        self._top_flow: Flow | None = None  # the flow in the first row, as last scrolled or refreshed
        # What each line of the widget showed when last drawn (see _line_key): a refresh repaints
        # only the lines whose content changed. Not following, a tick under heavy traffic changes
        # none (new flows arrive below the screen) and a cursor move two.
        self._drawn: dict[int, tuple] = {}
        self._styles: tuple = ()  # the styles the cached rows were built with
        # The same styles by name (and the widget's own under ""), read once per style change:
        # Textual drops its cache of them on every refresh, which is every tick, and recomputing
        # one walks every ancestor's styles (a dozen per new row otherwise).
        self._style_map: dict[str, Style] = {}
        self._clock_cache: tuple[int, str] = (-1, "")
        self.empty_message = "No flows yet. Point a client at the proxy."

    # ---------------------------------------------------------------- data → screen

    def refresh_view(self, scroll_to_focus: bool = True) -> None:
        """Re-read the view: new row count, keep the cursor visible, repaint the visible rows."""
        size = Size(self.scrollable_content_region.width, len(self.view) + 1)
        if size != self.virtual_size:
            # Not `self.virtual_size = size`: that reactive re-lays out and repaints the whole screen
            # on every tick while the row count grows. Only the scrollbar depends on it; updating it
            # now also lets the scroll below go past the old end.
            self.set_reactive(ScrollView.virtual_size, size)
            self._scroll_update(size)
        if scroll_to_focus:
            self._scroll_to_cursor()
        else:
            self._keep_top_row()
        self._remember_top()  # rows may have shifted under an unchanged scroll offset
        self._refresh_changed_lines()

    def _refresh_changed_lines(self) -> None:
        drawn, key = self._drawn, self._line_key
        height, width = self.size.height, self.size.width
        changed = [y for y in range(height) if drawn.get(y) != key(y)]
        if len(changed) > height // 2:
            drawn.clear()
            super().refresh()
        else:
            for y in changed:
                super().refresh(Region(0, y, width, 1))

    def refresh(self, *regions: Region, **kwargs: bool) -> Self:
        if regions or kwargs.get("layout") or kwargs.get("recompose") or not self._drawn:
            if not regions:
                self._drawn.clear()
            return super().refresh(*regions, **kwargs)
        # A plain repaint of everything: Textual asks for one on focus, blur and scroll. Only the
        # lines whose content changed need it (on focus, the cursor row).
        self._refresh_changed_lines()
        return self

    def _line_key(self, y: int) -> tuple:
        """What line `y` of the widget shows now: equal keys, equal pixels."""
        width = self.scrollable_content_region.width
        cols = self._layout(width)
        view = self.view
        if y == 0:
            return (id(cols), view.sort_key)
        index = round(self.scroll_y) + y - 1
        if index >= len(view):
            return (index, view.total) if len(view) == 0 else ()
        flow = view[index]
        return (id(cols), self._row_key(flow, width), flow is view.focus and self.has_focus,
                flow is view.focus)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._remember_top()

    def _remember_top(self) -> None:
        i = round(self.scroll_y)
        self._top_flow = self.view[i] if 0 <= i < len(self.view) else None

    def _keep_top_row(self) -> None:
        """Not following: flows dropped (max_flows) or sorted in above the screen must not slide the
        rows, and the cursor with them, out from under the user."""
        top = self._top_flow
        i = self.view.index_of(top) if top is not None else None
        if i is None:  # the top row itself went away: at least keep the cursor on screen
            self._scroll_to_cursor()
        elif i != round(self.scroll_y):
            self.scroll_to(y=i, animate=False, immediate=True)

    @property
    def visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        idx = self.view.focus_index
        if idx is None:
            return
        top = round(self.scroll_y)
        rows = self.visible_rows
        if idx < top:
            self.scroll_to(y=idx, animate=False, immediate=True)
        elif idx >= top + rows:
            self.scroll_to(y=idx - rows + 1, animate=False, immediate=True)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # Textual re-applies the CSS on every focus change; the rows' colours rarely change with it
        names = sorted(self.COMPONENT_CLASSES)
        try:
            styles = (self.rich_style, *(self.get_component_rich_style(c) for c in names))
        except KeyError:  # not registered yet: nothing cached either
            styles = ()
        self._style_map = dict(zip(["", *names], styles, strict=True)) if styles else {}
        if not styles or styles != self._styles:
            self._styles = styles
            self._cache.clear()  # e.g. the theme changed: cached colours are stale
            self._drawn.clear()

    def on_resize(self, event: events.Resize) -> None:
        self.refresh_view()

    def _layout(self, width: int) -> list[Column]:
        # called for every line drawn: must be O(1) (newest_shown() is O(n) outside time order)
        id_width = max(4, len(str(self.view.newest_id)))
        if width != self._columns_width or id_width != self._id_width:
            self._id_width = id_width
            self._columns = layout_columns(width, id_width)
            self._columns_width = width
            self._cache.clear()
        return self._columns

    def _style(self, name: str) -> Style:
        """A component class's style ("": the widget's own), from the map while it is known."""
        style = self._style_map.get(name)
        if style is None:
            return self.rich_style if not name else self.get_component_rich_style(name)
        return style

    def _fmt_time(self, ts: float) -> tuple[str, str]:
        sec = int(ts)
        cached_sec, text = self._clock_cache
        if sec != cached_sec:
            text = time.strftime("%H:%M:%S", time.localtime(sec))
            self._clock_cache = (sec, text)
        return text, f"{text}.{int((ts - sec) * 1000):03d}"

    def render_line(self, y: int) -> Strip:
        self._drawn[y] = self._line_key(y)
        width = self.scrollable_content_region.width
        cols = self._layout(width)
        if y == 0:
            return self._render_header(cols, width)
        view = self.view
        index = round(self.scroll_y) + y - 1
        if index >= len(view):
            if len(view) == 0:
                msg = self.empty_message if view.total == 0 else f"No flows match ({view.total} hidden)"
                lines = msg.split("\n")
                if index < len(lines):
                    style = self._style("flowtable--empty")
                    return Strip([Segment(_fit(" " + lines[index], width), style)], width)
            return Strip.blank(width, self._style(""))
        flow = view[index]
        segments = self._row_segments(flow, cols, width)
        if flow is view.focus:
            cursor = self._style("flowtable--cursor" if self.has_focus else "flowtable--cursor-blurred")
            segments = list(Segment.apply_style(segments, post_style=cursor))
            return Strip(segments).adjust_cell_length(width, cursor)
        return Strip(segments, width)  # every row's segments fill the width exactly

    def _render_header(self, cols: list[Column], width: int) -> Strip:
        style = self._style("flowtable--header")
        sorted_style = style + Style(underline=True, bold=True)
        sorted_col = _SORT_COLUMN.get(self.view.sort_key, "")
        if sorted_col == "time" and not any(c.name == "time" for c in cols):
            sorted_col = "id"  # narrow layout: ids follow arrival order
        segs: list[Segment] = []
        for i, c in enumerate(cols):
            if i:
                segs.append(Segment(" ", style))
            segs.append(Segment(_fit(c.title, c.width, c.right), sorted_style if c.name == sorted_col else style))
        return Strip(segs).adjust_cell_length(width, style)

    def _row_key(self, flow: Flow, width: int) -> tuple:
        resp, req = flow.response, flow.request
        ws = flow.websocket
        return (flow.id, width, flow.state, resp.status if resp is not None else None,
                resp.body_size if resp is not None else None, flow.timings.end, flow.error is not None,
                flow.marked, bool(flow.comment), flow.is_replay, flow.modified, flow.passthrough, req.method, req.host, req.port,
                req.target, None if ws is None else len(ws.messages) + ws.omitted,
                flow.tcp_messages is not None and len(flow.tcp_messages))

    def _row_segments(self, flow: Flow, cols: list[Column], width: int) -> list[Segment]:
        key = self._row_key(flow, width)
        segs = self._cache.get(key)
        if segs is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            row = self._build_row(flow, cols)
            if sum(c.width for c in cols) + len(cols) - 1 != width:  # else every cell is _fit exactly
                row = list(Strip(row).adjust_cell_length(width, self._style("")))
            segs = self._cache[key] = row
        return segs

    def _build_row(self, flow: Flow, cols: list[Column]) -> list[Segment]:
        st = self._style
        req, resp = flow.request, flow.response
        out: list[Segment] = []
        space = Segment(" ", st("flowtable--path"))
        for i, c in enumerate(cols):
            if i:
                out.append(space)
            name = c.name
            text, style = "", "flowtable--muted"
            if name == "id":
                text = str(flow.id)
            elif name == "time":
                short, long = self._fmt_time(flow.timings.start)
                text = long if c.width >= 12 else short
            elif name == "method":
                text, style = _clean(req.method), "flowtable--method"
            elif name == "host":
                text = _clean(req.host if req.port in (80, 443) else f"{req.host}:{req.port}")
                style = "flowtable--host"
            elif name == "path":
                if flow.tcp_messages is not None:  # a raw TCP flow (WireGuard mode)
                    n = len(flow.tcp_messages)
                    text = f"(tcp) {n} message{'' if n == 1 else 's'}"
                else:
                    text = "(tunnel)" if req.method == "CONNECT" else _clean(req.target)
                style = "flowtable--path"
            elif name == "status":
                text, style = self._status(flow)
            elif name == "type":
                if flow.websocket is not None:
                    text, style = "websocket", "flowtable--ws"
                elif resp is not None:
                    text = _clean(short_content_type(resp.headers.get("content-type")))
                elif flow.tcp_messages is not None:
                    text = "tcp"
            elif name == "size":
                if flow.websocket is not None:  # a WebSocket: its message count, not a body size
                    n = len(flow.websocket.messages) + flow.websocket.omitted
                    text, style = (f"{n}✉" if n < 10000 else f"{n // 1000}k✉"), "flowtable--ws"
                elif resp is not None:
                    text = human_size(resp.body_size)
                    style = f"flowtable--size-{_size_class(resp.body_size)}"
                elif flow.tcp_messages is not None:
                    total = sum(m.size for m in flow.tcp_messages)
                    text, style = human_size(total), f"flowtable--size-{_size_class(total)}"
            elif name == "duration":
                t = flow.timings
                if t.end is not None:
                    d = max(0.0, t.end - t.start)
                    text, style = human_duration(d * 1000.0), f"flowtable--dur-{_dur_class(d)}"
            elif name == "marks":
                text = flow_marks(flow)
                style = "flowtable--intercepted" if flow.state == INTERCEPTED else "flowtable--marks"
            out.append(Segment(_fit(text, c.width, c.right, cut_left=name == "host"), st(style)))
        return out

    @staticmethod
    def _status(flow: Flow) -> tuple[str, str]:
        if flow.error is not None or flow.state == ERROR:
            return "err", "flowtable--err"
        resp = flow.response
        if resp is None:
            if flow.state == INTERCEPTED:
                return "⏸", "flowtable--intercepted"
            return ("…" if flow.state == PENDING else "-"), "flowtable--pending"
        if flow.websocket is not None:
            return ("⏸" if flow.state == INTERCEPTED else "ws"), "flowtable--ws"
        cls = resp.status // 100
        return str(resp.status), f"flowtable--s{cls}" if 1 <= cls <= 5 else "flowtable--muted"

    # ---------------------------------------------------------------- cursor

    def _moved(self, follow: bool = False) -> None:
        self.view.follow = follow
        # re-read the row count first: under heavy traffic the app repaints less often than flows
        # arrive, and scrolling within a stale virtual size cannot reach a newer focused flow
        self.refresh_view(scroll_to_focus=True)
        self._notify_moved()

    def _notify_moved(self) -> None:
        if self.on_moved is not None:
            self.on_moved()

    async def _on_key(self, event: events.Key) -> None:
        if not follow_focus(self, event) and not await run_bindings_now(self, event):
            await super()._on_key(event)

    def action_cursor(self, delta: int) -> None:
        self.view.move_focus(delta)
        self._moved()

    def action_page(self, direction: int) -> None:
        self.view.move_focus(direction * max(1, self.visible_rows - 1))
        self._moved()

    def action_first(self) -> None:
        self.view.set_focus_index(0)
        self._moved()

    def action_last(self) -> None:
        """Jump to the newest flow and follow again from there."""
        v = self.view
        v.set_focus(v.newest_shown())
        self._moved(follow=True)

    def action_open(self) -> None:
        if self.view.focus is not None:
            self.post_message(self.Open(self.view.focus))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = round(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self.view):
            flow = self.view[index]
            self.view.set_focus(flow)
            self._moved()
            if event.chain >= 2:
                self.post_message(self.Open(flow))

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        # reading older flows with the wheel: new arrivals must not yank the view back down
        if self.view.follow:
            self.view.follow = False
            self._notify_moved()
