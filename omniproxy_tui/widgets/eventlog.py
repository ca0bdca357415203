"""The event log screen (`E`): the engine's start-up facts, warnings and errors, newest last.

It reads `EngineClient.events` (a bounded ring in proxycore.eventlog) and re-reads it twice a second
while open, only when the log's version moved.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from omniproxy_tui.widgets.bars import KeyBar
from proxycore.eventlog import ERROR, INFO, WARN, EventLog

_LEVEL_LABEL = {INFO: "info ", WARN: "warn ", ERROR: "error"}
REFRESH_S = 0.5


class EventLogScreen(Screen[None]):
    DEFAULT_CSS = """
    EventLogScreen #eventlog-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    EventLogScreen VerticalScroll { height: 1fr; padding: 0 1; }
    EventLogScreen > .eventlog--info { color: $text-muted; }
    EventLogScreen > .eventlog--warn { color: $text-warning; text-style: bold; }
    EventLogScreen > .eventlog--error { color: $text-error; text-style: bold; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"eventlog--info", "eventlog--warn", "eventlog--error"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,E", "close", "Back", id="eventlog.back"),
        Binding("l", "cycle_level", "Level", tooltip="Show all events, warnings and errors, or errors only",
                id="eventlog.level"),
        Binding("z", "clear", "Clear", tooltip="Clear the event log (as mitmproxy's z there)", id="eventlog.clear"),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
        Binding("g,home", "edge(0)", "Top", show=False),
        Binding("G,end", "edge(1)", "Bottom", show=False),
    ]

    def __init__(self, log: EventLog) -> None:
        super().__init__()
        self.log_ = log
        self.min_level = INFO
        self._drawn: tuple[int, str] | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="eventlog-title")
        with VerticalScroll(id="eventlog-scroll"):
            yield Static("", id="eventlog-body")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self._redraw()
        self.set_interval(REFRESH_S, self._redraw, name="eventlog-refresh")

    def _redraw(self) -> None:
        log = self.log_
        if self._drawn == (log.version, self.min_level):
            return
        scroll = self.query_one(VerticalScroll)
        at_end = scroll.scroll_y >= scroll.max_scroll_y
        self._drawn = (log.version, self.min_level)
        entries = log.entries(self.min_level)
        level_name = {INFO: "all", WARN: "warnings and errors", ERROR: "errors"}[self.min_level]
        dropped = f", {log.dropped:,} older dropped" if log.dropped else ""
        self.query_one("#eventlog-title", Static).update(
            f"Event log: {len(entries):,} event{'s' * (len(entries) != 1)} ({level_name}{dropped})")
        body: Table | Text
        if not entries:
            body = Text("No events." if self.min_level == INFO else "No warnings or errors.", "dim")
        else:
            # a table, so a long message wraps under itself rather than under the time
            body = Table(show_header=False, box=None, padding=(0, 1, 0, 0), expand=True)
            body.add_column(no_wrap=True, style="dim")
            body.add_column(no_wrap=True)
            body.add_column(ratio=1, overflow="fold")
            styles = {lvl: self.get_component_rich_style(f"eventlog--{lvl}") for lvl in _LEVEL_LABEL}
            for e in entries:
                body.add_row(time.strftime("%H:%M:%S", time.localtime(e.time)),
                             Text(_LEVEL_LABEL[e.level], styles[e.level]), Text(e.message))
        self.query_one("#eventlog-body", Static).update(body)
        if at_end:
            self.call_after_refresh(scroll.scroll_end, animate=False)

    def action_cycle_level(self) -> None:
        order = (INFO, WARN, ERROR)
        self.min_level = order[(order.index(self.min_level) + 1) % len(order)]
        self._redraw()

    def action_clear(self) -> None:
        self.log_.clear()
        self._redraw()

    def action_scroll(self, step: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=step, animate=False)

    def action_edge(self, end: int) -> None:
        scroll = self.query_one(VerticalScroll)
        scroll.scroll_end(animate=False) if end else scroll.scroll_home(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
