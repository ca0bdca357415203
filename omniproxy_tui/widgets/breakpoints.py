"""Breakpoint screens: the intercept filter prompt (i), the inbox of paused flows (B) and the raw
HTTP editor (e), with $EDITOR (ctrl+e here, E in the detail view).

Every action runs a named command (proxycore/control/intercept_cmds.py) through the app, so the
keys do exactly what the palette and the tests do.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Static, TextArea

from omniproxy_tui.textual_fixes import focus_now
from omniproxy_tui.widgets.bars import KeyBar
from proxycore.flows.filter import FilterError, parse
from proxycore.flows.flow import Flow
from proxycore.flows.rawedit import EditError, check_text, edit_part, flow_to_text

if TYPE_CHECKING:
    from omniproxy_tui.app import OmniProxyApp

RULES_COMMAND = "rules.from_flow"


def _secs(s: float) -> str:
    s = int(s)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s"


# --------------------------------------------------------------------------- the filter prompt


class InterceptPrompt(ModalScreen[str | None]):
    """Type the intercept filter; the syntax is checked as you type (like the filter bar).
    Enter sets it (empty: breakpoints off), Esc keeps the old one."""

    DEFAULT_CSS = """
    InterceptPrompt { align: center middle; background: $background 60%; }
    InterceptPrompt > Vertical { width: 90%; max-width: 100; height: auto; border: round $accent;
                                 background: $surface; padding: 0 1; }
    InterceptPrompt #ip-title { text-style: bold; color: $text-accent; }
    InterceptPrompt Input, InterceptPrompt Input:focus { border: none; height: 1; padding: 0;
                                                          background: $boost; }
    InterceptPrompt #ip-error { color: $text-error; height: auto; }
    InterceptPrompt #ip-hint { color: $text-muted; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current
        self.error: FilterError | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Intercept filter (breakpoints)", id="ip-title")
            yield Input(self.current, placeholder="e.g. ~d api.example.com & ~m post", id="ip-input")
            yield Static("", id="ip-error")
            yield Static("~q requests only · ~s responses only · else both · empty: off\n"
                         "⏎ set   esc keep the old one   (? in the flow list: filter syntax)", id="ip-hint")

    def on_mount(self) -> None:
        focus_now(self.query_one(Input))

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._check(event.value)

    def _check(self, text: str) -> bool:
        box = self.query_one("#ip-error", Static)
        try:
            if text.strip():
                parse(text)
        except FilterError as exc:
            self.error = exc
            # the caret sits under the column of the input above (no padding on either)
            box.update(Text(f"{' ' * exc.position}^ {exc.message}"))
            return False
        self.error = None
        box.update("")
        return True

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._check(event.value):
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


# --------------------------------------------------------------------------- the inbox


class InboxScreen(Screen):
    """The paused flows, the longest waiting first, with how long each waited and the auto-resume
    countdown; refreshed twice a second."""

    DEFAULT_CSS = """
    InboxScreen #inbox-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    InboxScreen DataTable { height: 1fr; }
    InboxScreen #inbox-empty { height: auto; padding: 1 2; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,B", "back", "Back", id="inbox.back"),
        Binding("a", "act('flow.resume')", "Resume", id="inbox.resume"),
        Binding("A", "resume_all", "Resume all", id="inbox.resume_all"),
        Binding("e", "edit", "Edit", id="inbox.edit"),
        Binding("X", "act('flow.kill')", "Kill", id="inbox.kill"),
        Binding("V", "act('flow.revert')", "Revert", id="inbox.revert"),
        Binding("enter", "open", "Detail", show=False, id="inbox.open"),
    ]

    def __init__(self, clock: Any = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._rows: list[int] = []

    @property
    def app_(self) -> OmniProxyApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("", id="inbox-title")
        table: DataTable = DataTable(id="inbox-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="inbox-empty")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("#", key="id")
        table.add_column("at", key="phase")
        table.add_column("method", key="method")
        table.add_column("url", key="url")
        table.add_column("waited", key="waited")
        table.add_column("resumes in", key="resume")
        self.refresh_rows()
        self.set_interval(0.5, self.refresh_rows, name="inbox-refresh")
        focus_now(table)

    def on_resize(self) -> None:
        self._rows = []  # rebuilt: the URL column's width follows the screen's
        self.refresh_rows()

    def refresh_rows(self) -> None:
        ctl = self.app_.engine.intercept
        paused = ctl.inbox() if ctl is not None else []
        now = self._clock()
        table = self.query_one(DataTable)
        title = self.query_one("#inbox-title", Static)
        state = "off" if ctl is None or ctl.filter is None else ("on" if ctl.active else "off")
        expr = f": {ctl.expr}" if ctl is not None and ctl.expr else ""
        title.update(Text(f"⏸ Breakpoints {state}{expr} · {len(paused)} paused", no_wrap=True,
                          overflow="ellipsis"))
        empty = self.query_one("#inbox-empty", Static)
        empty.update("" if paused else "No flow is paused. Set a filter with i in the flow list; matching "
                     "flows wait here until resumed (a), edited (e) or killed (X).")
        empty.display = not paused
        ids = [p.flow.id for p in paused]
        cursor = table.cursor_row
        keep = self._rows[cursor] if 0 <= cursor < len(self._rows) else None
        if ids != self._rows:
            table.clear()
            for p in paused:
                table.add_row(*self._cells(p, now), key=str(p.flow.id))
            self._rows = ids
            if keep in ids:
                table.move_cursor(row=ids.index(keep))
        else:
            for p in paused:
                cells = self._cells(p, now)
                table.update_cell(str(p.flow.id), "phase", cells[1])
                table.update_cell(str(p.flow.id), "waited", cells[4])
                table.update_cell(str(p.flow.id), "resume", cells[5])

    def _cells(self, p: Any, now: float) -> tuple:
        req = p.flow.request
        remaining = p.remaining(now)
        resume = Text("—", "dim") if remaining is None else Text(_secs(remaining + 0.999),
                                                                    "bold yellow" if remaining < 10 else "")
        # the URL takes what the other columns leave: every column stays visible at 80 columns
        room = max(16, self.size.width - 50)
        url = req.url if len(req.url) <= room else req.url[:room - 1] + "…"
        # the client left meanwhile (its connection recorded the error): resuming only ends the flow
        at = Text(f"{p.phase} ✖", "bold red") if p.flow.error else Text(p.phase, "bold")
        return (str(p.flow.id), at, req.method, url, _secs(p.waited(now)), resume)

    def selected(self) -> Flow | None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        if not 0 <= row < len(self._rows):
            return None
        ctl = self.app_.engine.intercept
        p = ctl.paused.get(self._rows[row]) if ctl is not None else None
        return p.flow if p is not None else None

    def _selected_or_say(self) -> Flow | None:
        flow = self.selected()
        if flow is None:
            self.app_.notify("no paused flow selected", severity="warning")
        return flow

    def action_act(self, name: str) -> None:
        flow = self._selected_or_say()
        if flow is not None:
            self.app_.run_command(name, str(flow.id), quiet=False)
            self.refresh_rows()

    def action_resume_all(self) -> None:
        self.app_.run_command("flow.resume_all", quiet=False)
        self.refresh_rows()

    def action_edit(self) -> None:
        flow = self._selected_or_say()
        if flow is not None:
            self.app_.edit_flow(flow)

    def action_open(self) -> None:
        flow = self._selected_or_say()
        if flow is not None:
            from omniproxy_tui.widgets.detail import DetailScreen

            self.app_.push_screen(DetailScreen(flow))

    def action_back(self) -> None:
        self.dismiss()


# --------------------------------------------------------------------------- the editor


class EditorScreen(Screen):
    """The paused request or response as raw HTTP text. ctrl+s checks and applies it (a broken
    line is pointed at, nothing is sent), esc cancels, ctrl+e hands it to $EDITOR, ctrl+r makes a
    rewrite rule of the edit."""

    DEFAULT_CSS = """
    EditorScreen #editor-title { height: 1; padding: 0 1; background: $boost; text-wrap: nowrap;
                                 text-overflow: ellipsis; }
    EditorScreen TextArea, EditorScreen TextArea:focus { height: 1fr; border: none; padding: 0 1; }
    EditorScreen #editor-error { height: auto; max-height: 3; padding: 0 1; color: $text-error;
                                 background: $panel; display: none; }
    EditorScreen.-error #editor-error { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply", "Apply", priority=True, id="editor.apply"),
        Binding("escape", "cancel", "Cancel", priority=True, id="editor.cancel"),
        Binding("ctrl+e", "external", "$EDITOR", priority=True, id="editor.external"),
        Binding("ctrl+r", "to_rule", "As rule", priority=True, id="editor.rule"),
    ]

    def __init__(self, flow: Flow, text: str | None = None) -> None:
        super().__init__()
        self.flow = flow
        self.part = edit_part(flow)
        self.initial = flow_to_text(flow) if text is None else text
        self.error: EditError | None = None

    @property
    def app_(self) -> OmniProxyApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        req = self.flow.request
        yield Static(Text(f"✎ #{self.flow.id} {self.part}: {req.method} {req.url}", no_wrap=True,
                          overflow="ellipsis"), id="editor-title")
        yield TextArea(self.initial, id="editor-text", soft_wrap=True, show_line_numbers=True,
                       tab_behavior="indent")
        yield Static("", id="editor-error")
        yield KeyBar()

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        focus_now(area)
        area.move_cursor((0, 0))

    @property
    def text(self) -> str:
        return self.query_one(TextArea).text

    def set_text(self, text: str) -> None:
        self.query_one(TextArea).load_text(text)

    def validate(self) -> bool:
        """Check the text; a broken line is shown under the editor and the cursor put on it."""
        try:
            check_text(self.flow, self.text, self.part)
        except EditError as exc:
            self.show_error(exc)
            return False
        self.error = None
        self.set_class(False, "-error")
        return True

    def show_error(self, exc: EditError) -> None:
        self.error = exc
        self.query_one("#editor-error", Static).update(Text(f"✖ not applied: {exc}"))
        self.set_class(True, "-error")
        if exc.line:
            self.query_one(TextArea).move_cursor((exc.line - 1, 0))

    def apply(self) -> bool:
        if not self.validate():
            return False
        result = self.app_.run_command("flow.edit.apply", self.text, self.part, str(self.flow.id), quiet=False)
        return result is not None

    def action_apply(self) -> None:
        if self.apply():
            self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    async def action_external(self) -> None:
        text = await self.app_.run_external_editor(self.text)
        if text is not None:
            self.set_text(text)
            self.validate()  # re-checked on the way back

    def action_to_rule(self) -> None:
        if self.apply():
            self.app_.view.set_focus(self.flow)
            self.app_.run_command(RULES_COMMAND, "@focus", quiet=False)
            self.dismiss(True)
