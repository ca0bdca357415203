"""The rewrite rules screen (`R`): the rules in order with kind, filter, action, on/off and hits;
add, edit, toggle, reorder and delete them with the keyboard. Every change runs the rules.*
commands (proxycore.control.commands), so it applies to the next flow at once and is saved to
the rules file."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from proxycore.control.commands import CommandError

HINT = ("[b]a[/b] add  [b]e[/b]/[b]⏎[/b] edit  [b]space[/b] on/off  [b]K[/b]/[b]J[/b] move  "
        "[b]d[/b] delete  [b]esc[/b] back")
EXAMPLE = "e.g. set_header@request /~d example.com/X-Debug/1 · block :~d ads:404"
_SOURCE = {"file": "", "config": "cfg", "flag": "flag"}


class RulesScreen(Screen[None]):
    DEFAULT_CSS = """
    RulesScreen { layout: vertical; }
    RulesScreen #rules-title { height: 1; background: $panel; color: $text; padding: 0 1; }
    RulesScreen #rules-table { height: 1fr; }
    RulesScreen #rules-input { display: none; height: 3; }
    RulesScreen #rules-input.-open { display: block; }
    RulesScreen #rules-message { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    RulesScreen #rules-message.-error { color: $text-error; }
    RulesScreen #rules-keys { height: 1; padding: 0 1; background: $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add", tooltip="Add a rule (KIND SPEC)"),
        Binding("e,enter", "edit", "Edit", tooltip="Edit the rule under the cursor"),
        Binding("space", "toggle", "On/off", tooltip="Switch the rule off or on"),
        Binding("K,shift+up", "move(-1)", "Move up", tooltip="Move the rule up (rules apply in order)"),
        Binding("J,shift+down", "move(1)", "Move down", tooltip="Move the rule down"),
        Binding("d,delete", "delete", "Delete", tooltip="Delete the rule"),
        Binding("j", "cursor(1)", show=False),
        Binding("k", "cursor(-1)", show=False),
        Binding("escape,q", "back", "Back", tooltip="Close the input, or go back to the flows"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._editing: int | None = None  # rule number being edited; None: adding
        self._drawn: tuple = ()

    # ------------------------------------------------------------- pieces
    @property
    def rules(self) -> Any:
        return self.app.engine.rules  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        path = getattr(self.rules, "path", None)
        yield Static(Text.assemble(("Rewrite rules", "bold"), f"  saved to {path}" if path else ""),
                     id="rules-title")
        table: DataTable = DataTable(id="rules-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "on", "hits", "kind", "filter", "action", "from")
        yield table
        yield Input(placeholder="KIND SPEC, e.g. set_header /~d example.com/X-Debug/1", id="rules-input")
        yield Static(EXAMPLE, id="rules-message", markup=False)
        yield Static(HINT, id="rules-keys")

    def on_resize(self) -> None:
        self.refresh_rules(force=True)

    def on_mount(self) -> None:
        self.query_one(Input).cursor_blink = False
        self.refresh_rules(force=True)
        self.query_one(DataTable).focus()
        # hit counters move while traffic flows: redraw when they changed, once a second
        self.set_interval(1.0, self.refresh_rules)

    def _signature(self) -> tuple:
        return tuple((id(r), r.enabled, r.hits, r.label, r.filter) for r in self.rules)

    def refresh_rules(self, force: bool = False, cursor: int | None = None) -> None:
        sig = self._signature()
        if not force and sig == self._drawn:
            return
        self._drawn = sig
        table = self.query_one(DataTable)
        row = table.cursor_row if cursor is None else cursor
        table.clear()
        # at 80 columns every column fits: the long ones are cut (the editor shows them whole)
        wide = self.size.width >= 120
        fw, aw = (40, 60) if wide else (15, 18)
        for i, r in enumerate(self.rules, 1):
            on_ = Text("on", "green") if r.enabled else Text("off", "dim")
            kind = r.kind + (f"@{r.side[:3]}" if r.side != "both" else "")
            style = "" if r.enabled else "dim"
            table.add_row(str(i), on_, Text(str(r.hits), justify="right"), Text(kind, style),
                          Text(_short(r.filter or "(all)", fw), style), Text(_short(r.summary, aw), style),
                          _SOURCE.get(r.source, r.source), key=str(i))
        if len(self.rules):
            table.move_cursor(row=max(0, min(row, len(self.rules) - 1)))
        else:
            self._message("No rules yet: press a to add one. " + EXAMPLE)

    def _message(self, text: str, error: bool = False) -> None:
        msg = self.query_one("#rules-message", Static)
        msg.update(text)
        msg.set_class(error, "-error")

    def _current(self) -> int | None:
        """The 1-based number of the rule under the cursor."""
        if not len(self.rules):
            return None
        return self.query_one(DataTable).cursor_row + 1

    def _run(self, name: str, *args: Any) -> str | None:
        try:
            result = self.app.engine.run_command(name, self.app.ctx, *args)  # type: ignore[attr-defined]
        except CommandError as exc:
            self._message(str(exc), error=True)
            return None
        self._message(str(result))
        return str(result)

    # ------------------------------------------------------------- actions
    def _open_input(self, value: str, editing: int | None) -> None:
        self._editing = editing
        field = self.query_one(Input)
        field.value = value
        field.cursor_position = len(value)
        field.add_class("-open")
        field.focus()
        self._message((f"Editing rule {editing}. " if editing else "New rule. ") + "⏎ saves, esc cancels. "
                      + EXAMPLE)

    def action_add(self) -> None:
        self._open_input("", None)

    def action_edit(self) -> None:
        n = self._current()
        if n is None:
            self.action_add()
            return
        self._open_input(self.rules.rules[n - 1].to_line(), n)

    def action_toggle(self) -> None:
        n = self._current()
        if n is not None and self._run("rules.toggle", n):
            self.refresh_rules(force=True)

    def action_move(self, delta: int) -> None:
        n = self._current()
        if n is None:
            return
        if self._run("rules.move", n, "UP" if delta < 0 else "DOWN"):
            self.refresh_rules(force=True, cursor=max(0, min(len(self.rules) - 1, n - 1 + delta)))

    def action_delete(self) -> None:
        n = self._current()
        if n is not None and self._run("rules.delete", n):
            self.refresh_rules(force=True)

    def action_cursor(self, delta: int) -> None:
        table = self.query_one(DataTable)
        if len(self.rules):
            table.move_cursor(row=max(0, min(len(self.rules) - 1, table.cursor_row + delta)))

    def action_back(self) -> None:
        field = self.query_one(Input)
        if field.has_class("-open"):
            self._close_input()
            self._message(EXAMPLE)
            return
        self.dismiss(None)

    def _close_input(self) -> None:
        field = self.query_one(Input)
        field.remove_class("-open")
        self.query_one(DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # while typing a rule, letters go to the input, not to the screen's keys
        if action != "back" and self.query_one(Input).has_focus:
            return False
        return True

    @on(Input.Submitted, "#rules-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        spec = event.value.strip()
        if not spec:
            self._message("Type a rule: " + EXAMPLE, error=True)
            return
        if self._editing is None:
            ok = self._run("rules.add", spec)
            cursor = len(self.rules) - 1
        else:
            ok = self._run("rules.edit", self._editing, spec)
            cursor = self._editing - 1
        if ok:  # a bad rule keeps the input open with its one-line error below
            self._close_input()
            self.refresh_rules(force=True, cursor=cursor)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
