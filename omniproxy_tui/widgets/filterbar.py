"""The filter bar: type a flow filter, watch the table narrow, see syntax errors where they are.

While typing, every expression that parses is applied to the view (debounced) so `shown/total`
is live; an expression that does not parse shows the message with a caret under the column and
leaves the last good filter in place. Enter keeps the filter (and adds it to the history), Esc
restores the filter that was active when the bar opened. Up/Down walk the history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Static

from omniproxy_tui.textual_fixes import focus_now, follow_focus, run_bindings_now
from proxycore.flows.filter import Filter, FilterError, parse
from proxycore.flows.view import FlowView

_LABEL = " filter: "
# Seconds of no typing before the expression is tried on the flows. The preview runs in slices (a
# keystroke waits for one slice at most), and the sooner it starts the likelier it is done when
# Enter comes, which then only closes the bar: 60-80 ms, a little longer with more flows kept.
DEBOUNCE_MIN, DEBOUNCE_MAX, DEBOUNCE_FULL_AT = 0.06, 0.08, 50_000


def debounce(total_flows: int) -> float:
    """Seconds to wait after a keystroke before re-filtering `total_flows` flows."""
    return DEBOUNCE_MIN + (DEBOUNCE_MAX - DEBOUNCE_MIN) * min(1.0, total_flows / DEBOUNCE_FULL_AT)


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Apply", key_display="⏎"),
        Binding("escape", "cancel", "Cancel", key_display="esc"),
        Binding("up", "history(-1)", "History", key_display="↑↓"),
        Binding("down", "history(1)", "Newer", show=False),
    ]

    async def _on_key(self, event: events.Key) -> None:
        if follow_focus(self, event):  # a key typed after Enter or Esc: the table's
            return
        await super()._on_key(event)  # types a printable key
        if not event.is_printable:
            await run_bindings_now(self, event)

    @property
    def _bar(self) -> FilterBar | None:
        bar = self.parent.parent if self.parent is not None else None
        return bar if isinstance(bar, FilterBar) else None

    def action_history(self, step: int) -> None:
        if (bar := self._bar) is not None:
            bar.history_step(step)

    async def action_submit(self) -> None:
        if (bar := self._bar) is not None:  # directly, not through an Input.Submitted message
            bar.close(commit=True)

    def action_cancel(self) -> None:
        if (bar := self._bar) is not None:
            bar.close(commit=False)


class FilterBar(Vertical):
    DEFAULT_CSS = """
    FilterBar { height: auto; display: none; background: $panel; }
    FilterBar.-open { display: block; }
    FilterBar > Horizontal { height: 1; }
    FilterBar #fb-label { width: auto; color: $text-accent; text-style: bold; }
    FilterBar FilterInput { border: none; height: 1; padding: 0; width: 1fr; background: $panel; }
    FilterBar FilterInput:focus { border: none; background: $boost; }
    FilterBar #fb-count { width: auto; color: $text-muted; padding: 0 1; }
    FilterBar #fb-error { height: 1; color: $text-error; display: none; }
    FilterBar.-error #fb-error { display: block; }
    FilterBar.-error #fb-count { color: $text-error; }
    """

    def __init__(self, view: FlowView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self.error: FilterError | None = None
        self._original: tuple[Filter | None, bool] = (None, True)
        self._timer: Timer | None = None
        self._history_pos: int | None = None
        self._draft = ""
        self._applied_text: str | None = None
        # A one-row widget the bar takes the place of while open (the status line), and one its
        # error line takes the place of while shown (the key bar): the table keeps its height, so
        # opening the bar or showing an error repaints a row or two instead of the whole screen.
        self.replaces: Widget | None = None
        self.error_replaces: Widget | None = None
        # The filter changed (live preview, commit or cancel) / the bar closed: called at once, not
        # through messages (see FlowTable.on_moved).
        self.on_changed: Callable[[], None] | None = None
        self.on_closed: Callable[[bool], None] | None = None
        self._preview_task: asyncio.Task[None] | None = None
        self._preview_steps: Generator[None, None, None] | None = None
        self._preview_text = ""  # what the running preview filters by

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(_LABEL, id="fb-label")
            yield FilterInput(placeholder="e.g. ~d example.com & ~c 404 | ~m post", id="fb-input",
                              select_on_focus=False)
            yield Static("", id="fb-count")
        yield Static("", id="fb-error")

    @property
    def input(self) -> FilterInput:
        return self.query_one(FilterInput)

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    # ---------------------------------------------------------------- open / close

    def open(self) -> None:
        v = self.view
        self._original = (v.filter, v.filter_enabled)
        self._history_pos = None
        self._applied_text = v.filter_expr if v.filter_active else ""
        self.add_class("-open")
        if self.replaces is not None:
            self.replaces.display = False
        self.input.value = v.filter_expr
        self.input.cursor_position = len(self.input.value)
        self._set_error(None)
        self._update_count()
        focus_now(self.input)

    def close(self, commit: bool) -> None:
        if not self.is_open:
            return
        self._cancel_timer()
        v = self.view
        if commit and self._preview_steps is not None and self._preview_text == self.input.value.strip():
            # Enter while the preview of this very text runs: finish its remaining slices now
            # rather than filter every flow again from the first
            steps = self._preview_steps
            self._preview_steps = None
            for _ in steps:
                pass
        self._cancel_preview()
        if commit:
            text = self.input.value.strip()
            try:
                v.set_filter(text, remember=True)
            except FilterError as exc:
                self._set_error(exc)  # stay open: Enter on a broken expression must not lose it
                return
        else:
            flt, enabled = self._original
            v.set_filter(flt, remember=False)
            if flt is not None and not enabled:
                v.toggle_filter()
        self.remove_class("-open")
        if self.replaces is not None:
            self.replaces.display = True
        self._set_error(None)
        self._changed()
        if self.on_closed is not None:
            self.on_closed(commit)

    # ---------------------------------------------------------------- typing

    @on(Input.Changed, "#fb-input")
    def _on_changed(self, event: Input.Changed) -> None:
        event.stop()
        if not self.is_open:
            return
        self._cancel_timer()
        self._cancel_preview()
        self._timer = self.set_timer(debounce(self.view.total), self.apply_now)

    def apply_now(self) -> None:
        """Parse what is typed; apply it when valid (in slices, see _preview), show the error
        otherwise."""
        self._timer = None
        text = self.input.value.strip()
        try:
            flt = parse(text) if text else None
        except FilterError as exc:
            self._set_error(exc)
            self._update_count()
            return
        self._set_error(None)
        if text != self._applied_text:
            self._cancel_preview()
            self._preview_text = text
            self._preview_task = asyncio.get_running_loop().create_task(self._preview(flt, text))
        else:
            self._update_count()

    async def _preview(self, flt: Filter | None, text: str) -> None:
        # A slice of the flows at a time: a keystroke typed meanwhile is echoed between two slices
        # instead of after the whole re-filter, and it cancels this preview (the next one starts).
        steps = self._preview_steps = self.view.set_filter_in_steps(flt)
        try:
            for _ in steps:
                await asyncio.sleep(0)
        finally:
            steps.close()
        self._preview_task = self._preview_steps = None
        self._applied_text = text
        self._changed()
        self._update_count()

    def _cancel_preview(self) -> None:
        if self._preview_steps is not None:
            self._preview_steps.close()  # the view is back as it was, now
        if self._preview_task is not None:
            self._preview_task.cancel()
        self._preview_task = self._preview_steps = None

    def _changed(self) -> None:
        if self.on_changed is not None:  # the view's filter changed: repaint the table
            self.on_changed()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _set_error(self, exc: FilterError | None) -> None:
        self.error = exc
        self.set_class(exc is not None, "-error")
        if self.error_replaces is not None:
            self.error_replaces.display = exc is None
        if exc is None:
            self._show("#fb-error", "")
            return
        col = len(_LABEL) + exc.position
        msg = exc.message
        width = self.size.width or 80
        if col + 2 + len(msg) <= width:
            self._show("#fb-error", " " * col + "^ " + msg)
        else:
            self._show("#fb-error", f" {msg} (column {exc.position + 1})")

    def _update_count(self) -> None:
        v = self.view
        text = f"{len(v):,}/{v.total:,}"
        if self.error is not None:
            text = "error · " + text
        self._show("#fb-count", text)

    def _show(self, selector: str, text: str) -> None:
        # Static.update re-lays out the screen: skip it when the text is the same (every keystroke),
        # and for the error line, whose size never changes
        label = self.query_one(selector, Static)
        if label.content != text:
            label.update(text, layout=selector != "#fb-error")

    # ---------------------------------------------------------------- history

    def history_step(self, step: int) -> None:
        hist = self.view.filter_history
        if not hist:
            return
        if self._history_pos is None:
            if step > 0:
                return
            self._draft = self.input.value
            pos = len(hist) - 1
        else:
            pos = self._history_pos + step
        if pos >= len(hist):
            self._history_pos = None
            self._set_value(self._draft)
            return
        pos = max(0, pos)
        self._history_pos = pos
        self._set_value(hist[pos])

    def _set_value(self, text: str) -> None:
        self.input.value = text
        self.input.cursor_position = len(text)
