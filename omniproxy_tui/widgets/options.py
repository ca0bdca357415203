"""The options screen (`O`): every option of `proxycore.options` with its value and help.

Enter edits the focused option in a prompt (an on/off option flips at once, as in mitmproxy's
options editor); `d` sets it back to its default. Both run the `option.set` / `option.reset`
commands: the value is checked by the option's own parser, applied to the running engine when it
can take it (the `live` column) and saved to the config file, keeping the file's other keys.
Options the engine reads only at start show `restart` and, once changed, the saved value with a
`*` until the next start.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from omniproxy_tui.widgets.bars import KeyBar
from omniproxy_tui.widgets.prompt import PromptScreen
from proxycore.config import KEYS, config_path_default
from proxycore.control.settings import LIVE_OPTIONS, current_value, format_value
from proxycore.options import LIST_KINDS, Key, Options

if TYPE_CHECKING:
    from omniproxy_tui.app import OmniProxyApp

NAME_WIDTH = max(len(k.field) for k in KEYS)


def describe(key: Key) -> str:
    """The help panel's text for one option."""
    default = format_value(key, key.default) or "unset"
    where = [f"config {key.path}"]
    if key.flag:
        where.append(key.flag_name if "/" not in key.flag else key.flag)
    where.append(key.env)
    applies = "applies at once" if key.field in LIVE_OPTIONS else "applies at the next start"
    extra = f"; one of {', '.join(key.choices)}" if key.choices else ""
    return f"{key.help[:1].upper()}{key.help[1:]}.\nDefault {default}{extra}; {applies}. {' · '.join(where)}"


class OptionsScreen(Screen[None]):
    DEFAULT_CSS = """
    OptionsScreen #options-title { height: 1; padding: 0 1; background: $boost; text-style: bold;
                                   text-wrap: nowrap; text-overflow: ellipsis; }
    OptionsScreen DataTable { height: 1fr; }
    OptionsScreen #options-help { height: 4; padding: 0 1; background: $panel; color: $text; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,O", "close", "Back", id="options.back"),
        Binding("enter", "edit", "Edit", key_display="⏎", tooltip="Edit the option (on/off options flip)",
                id="options.edit", priority=True),
        Binding("d", "reset", "Default", tooltip="Set the option back to its default", id="options.reset"),
    ]

    def __init__(self, app_: OmniProxyApp) -> None:
        super().__init__()
        self.app_ = app_
        self.keys: list[Key] = list(KEYS)

    @property
    def config_path(self) -> Path:
        return Path(self.app_.ctx.config_path) if self.app_.ctx.config_path else config_path_default()

    def compose(self) -> ComposeResult:
        yield Static("", id="options-title", markup=False)
        yield DataTable(id="options-table", cursor_type="row", zebra_stripes=False)
        yield Static("", id="options-help", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("option", key="name", width=NAME_WIDTH)
        table.add_column("when", key="when", width=7)
        table.add_column("value", key="value")
        for key in self.keys:
            table.add_row(key.field, *self._cells(key)[::-1], key=key.field)
        table.focus()
        self._show_help()

    def on_resize(self) -> None:
        # the file name must stay visible: a long directory is cut in the middle
        path = str(self.config_path)
        home = str(Path.home())
        if path.startswith(home + "/"):
            path = "~" + path[len(home):]
        room = max(12, self.size.width - len("Options · saved to ") - 2)
        if len(path) > room:
            path = path[: room // 3] + "…" + path[-(room - room // 3 - 1):]
        self.query_one("#options-title", Static).update(f"Options · saved to {path}")

    def _cells(self, key: Key) -> tuple[Text, Text]:
        ctx = self.app_.ctx
        value = current_value(ctx, key)
        pending = key.field in ctx.pending_options
        shown = format_value(key, value) or "—"
        style = "bold" if value != getattr(Options(), key.field) else ""
        value_text = Text(shown + (" *" if pending else ""), style=style, no_wrap=True, overflow="ellipsis")
        when = Text("live", style="green") if key.field in LIVE_OPTIONS else Text("restart", style="dim")
        return value_text, when

    def _focused_key(self) -> Key | None:
        table = self.query_one(DataTable)
        if not self.keys or table.cursor_row is None or not (0 <= table.cursor_row < len(self.keys)):
            return None
        return self.keys[table.cursor_row]

    def _show_help(self) -> None:
        key = self._focused_key()
        text = describe(key) if key is not None else ""
        if key is not None and key.field in self.app_.ctx.pending_options:
            text += f"\n* saved; running with {format_value(key, getattr(self.app_.options, key.field)) or 'unset'}"
        self.query_one("#options-help", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_help()

    def refresh_row(self, key: Key) -> None:
        table = self.query_one(DataTable)
        value, when = self._cells(key)
        table.update_cell(key.field, "value", value, update_width=False)
        table.update_cell(key.field, "when", when)
        self._show_help()

    def _run(self, name: str, *args: Any) -> str | None:
        """Run an option command; the error text (None when it worked)."""
        key = self._focused_key()
        error = self.app_.run_command_checked(name, *args)
        if key is not None:
            self.refresh_row(key)
        return error

    def action_edit(self) -> None:
        key = self._focused_key()
        if key is None:
            return
        value = current_value(self.app_.ctx, key)
        if key.kind == "bool":
            self._run("option.set", key.field, "false" if value else "true")
            return
        prefill = "" if key.secret else format_value(key, value)

        def complete(text: str) -> tuple[int, list[str]]:
            return 0, [c for c in (key.choices or ()) if c.startswith(text)]

        self.app.push_screen(PromptScreen(
            f"{key.field} = ", lambda text: self._run("option.set", key.field, text), value=prefill,
            complete=complete if key.choices else None,
            help="⏎ check, apply and save · esc cancel" + (" · lists: a,b" if key.kind in LIST_KINDS else "")
            + ("" if key.kind in ("str", "int", "float", "size", "count") else " · empty: unset"),
            placeholder="(hidden: type a new value)" if key.secret else ""))

    def action_reset(self) -> None:
        key = self._focused_key()
        if key is not None:
            self._run("option.reset", key.field)

    def action_close(self) -> None:
        self.dismiss(None)
