"""Dialogs for captures: `w` (save the shown flows: path and format) and `L` (open a capture: path).

Both are keyboard-first: the path is typed in an input that completes file names (→ or tab takes
the grey suggestion), Enter goes, Esc cancels. In the save dialog tab cycles the format instead, and
a typed extension picks the format (`.har`, `.ndjson`), as the default extension follows the format.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Static

from omniproxy_tui.widgets.dialogs import _DIALOG_CSS
from proxycore.control.commands import FLOWS_EXT, save_format_for

# format -> (label, default extension, what it keeps)
SAVE_FORMATS: dict[str, tuple[str, str, str]] = {
    "flows": ("lossless", FLOWS_EXT, "everything: bodies as bytes, edits, marks, comments"),
    "ndjson": ("NDJSON", "ndjson", "records: redacted, bodies capped"),
    "har": ("HAR", "har", "HAR 1.2, sanitized: for browsers and other tools"),
}


class PathSuggester(Suggester):
    """Completes the last component of a path from the directory's entries (directories get a /)."""

    def __init__(self, cwd: Path | None = None) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.cwd = cwd

    async def get_suggestion(self, value: str) -> str | None:
        if not value.strip():
            return None
        expanded = os.path.expanduser(value)
        folder, _, stem = expanded.rpartition(os.sep)
        base = Path(folder or ".") if folder or not expanded.startswith(os.sep) else Path(os.sep)
        if not base.is_absolute() and self.cwd is not None:
            base = self.cwd / base
        try:
            names = sorted(e.name + (os.sep if e.is_dir() else "") for e in os.scandir(base)
                           if e.name.startswith(stem) and (stem.startswith(".") or not e.name.startswith(".")))
        except OSError:
            return None
        names = [n for n in names if n != stem]
        if not names:
            return None
        return value + names[0][len(stem):]


class _PathDialog(ModalScreen[tuple[str, str] | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _complete(self) -> bool:
        """Take the input's completion, if it shows one."""
        inp = self.query_one(Input)
        suggestion = getattr(inp, "_suggestion", "")
        if suggestion and suggestion != inp.value and suggestion.startswith(inp.value):
            inp.value = suggestion
            inp.cursor_position = len(suggestion)
            return True
        return False


class SaveScreen(_PathDialog):
    """Path and format for saving flows; dismisses with (format, path) or None."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="SaveScreen") + """
    SaveScreen > Vertical { width: 76; max-width: 96%; }
    SaveScreen Vertical > .wrap { width: 100%; }
    SaveScreen Input { width: 100%; margin: 1 0 0 0; }
    SaveScreen #save-format { margin: 1 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "next_format", "Next format", show=False, priority=True),
        Binding("shift+tab", "previous_format", "Previous format", show=False, priority=True),
    ]

    def __init__(self, count: int, total: int, default_stem: str, fmt: str = "flows",
                 cwd: Path | None = None) -> None:
        super().__init__()
        self.count, self.total = count, total
        self.default_stem = default_stem  # the timestamped name without its extension
        self.fmt = fmt
        self.cwd = cwd

    def compose(self) -> ComposeResult:
        n, total = self.count, self.total
        which = f"{n:,} shown flow{'s' * (n != 1)}" + (f" (of {total:,})" if total != n else "")
        with Vertical():
            yield Static(f"Save {which}", classes="dialog-title wrap", markup=False)
            yield Input(f"{self.default_stem}.{SAVE_FORMATS[self.fmt][1]}", id="save-path",
                        suggester=PathSuggester(self.cwd), select_on_focus=False)
            yield Static(id="save-format", classes="wrap")
            yield Static("[b]⏎[/b] save   [b]tab[/b] format   [b]→[/b] complete   [b]esc[/b] cancel",
                         classes="dialog-keys")

    def on_mount(self) -> None:
        inp = self.query_one(Input)
        inp.focus()
        inp.cursor_position = len(inp.value)
        self._show_format()

    def _show_format(self) -> None:
        parts = []
        for key, (label, _, _) in SAVE_FORMATS.items():
            parts.append(f"[reverse b] {label} [/]" if key == self.fmt else f" {label} ")
        keeps = SAVE_FORMATS[self.fmt][2]
        self.query_one("#save-format", Static).update(f"Format {''.join(parts)}\n[dim]{keeps}[/dim]")

    def _set_format(self, fmt: str) -> None:
        old_ext = "." + SAVE_FORMATS[self.fmt][1]
        self.fmt = fmt
        inp = self.query_one(Input)
        if inp.value.endswith(old_ext):  # the extension follows the format (a typed name keeps its own)
            inp.value = inp.value[: -len(old_ext)] + "." + SAVE_FORMATS[fmt][1]
            inp.cursor_position = len(inp.value)
        self._show_format()

    def action_next_format(self) -> None:
        keys = list(SAVE_FORMATS)
        self._set_format(keys[(keys.index(self.fmt) + 1) % len(keys)])

    def action_previous_format(self) -> None:
        keys = list(SAVE_FORMATS)
        self._set_format(keys[(keys.index(self.fmt) - 1) % len(keys)])

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        fmt = save_format_for(event.value)
        if fmt is not None and fmt != self.fmt:
            self.fmt = fmt
            self._show_format()

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        path = event.value.strip()
        if path:
            self.dismiss((self.fmt, path))


class LoadScreen(_PathDialog):
    """Asks which capture to open; dismisses with ("load", path) or None."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="LoadScreen") + """
    LoadScreen > Vertical { width: 76; max-width: 96%; }
    LoadScreen Vertical > .wrap { width: 100%; }
    LoadScreen Input { width: 100%; margin: 1 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("tab", "complete", "Complete", show=False, priority=True)]

    def __init__(self, cwd: Path | None = None, value: str = "") -> None:
        super().__init__()
        self.cwd = cwd
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Open a capture", classes="dialog-title")
            yield Static("A flow file (w), HAR, NDJSON/IR, JSON or a --db SQLite database: its flows join "
                         "the list.", classes="dialog-keys wrap", markup=False)
            yield Input(self.value, placeholder="path of the file", id="load-path",
                        suggester=PathSuggester(self.cwd))
            yield Static("[b]⏎[/b] open   [b]tab[/b]/[b]→[/b] complete   [b]esc[/b] cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_complete(self) -> None:
        self._complete()

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        path = event.value.strip()
        if path:
            self.dismiss(("load", path))
