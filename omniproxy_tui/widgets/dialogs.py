"""Small modal dialogs: a keyboard-first confirm and the export-format chooser."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

_DIALOG_CSS = """
    {name} {{ align: center middle; background: $background 60%; }}
    {name} > Vertical {{
        width: 76; max-width: 96%; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }}
    /* 100% of the box, never wider: at 80 columns a body as wide as its text was cut mid-word */
    {name} .dialog-title {{ text-style: bold; color: $text-accent; width: 100%; }}
    {name} .dialog-body {{ width: 100%; margin: 1 0; }}
    {name} .dialog-keys {{ color: $text-muted; width: 100%; }}
"""


class ConfirmScreen(ModalScreen[str | None]):
    """Ask a question answered by one key per choice; Esc answers None.

    `choices` maps a key to its label, e.g. {"y": "quit", "n": "cancel"}. The first choice is also
    taken by Enter.
    """

    DEFAULT_CSS = _DIALOG_CSS.format(name="ConfirmScreen")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "answer('')", "Cancel", show=False),
        Binding("enter", "default", "Default", show=False),
    ]

    def __init__(self, title: str, body: str, choices: dict[str, str], aliases: dict[str, str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.choices = choices
        self.aliases = aliases or {}  # extra keys answering like a choice (q on "Quit?" means yes)
        self.purpose = ""  # lets the app recognise its own question (quit pressed twice = yes)

    def compose(self) -> ComposeResult:
        keys = "   ".join(f"[b]{k}[/b] {label}" for k, label in self.choices.items())
        with Vertical():
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.body, classes="dialog-body", markup=False)
            yield Static(keys + "   [b]esc[/b] cancel", classes="dialog-keys")

    def on_key(self, event) -> None:  # noqa: ANN001 - textual.events.Key
        ch = event.character
        if ch and (ch in self.choices or ch in self.aliases):
            event.stop()
            self.dismiss(self.aliases.get(ch, ch))

    def action_answer(self, key: str) -> None:
        self.dismiss(key or None)

    def action_default(self) -> None:
        self.dismiss(next(iter(self.choices)))


EXPORT_LABELS = {
    "curl": "curl command",
    "httpie": "HTTPie command",
    "raw_request": "raw request",
    "raw_response": "raw response",
    "python": "Python (httpx)",
}


class ExportScreen(ModalScreen[str | None]):
    """Choose an export format for the clipboard: arrows + Enter, a digit, or a click."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="ExportScreen") + """
    ExportScreen OptionList { height: auto; border: none; width: 40; background: $surface; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss_none", "Cancel", show=False)]

    def __init__(self, formats: list[str], flow_label: str) -> None:
        super().__init__()
        self.formats = formats
        self.flow_label = flow_label

    def compose(self) -> ComposeResult:
        options = [Option(f"{i}  {EXPORT_LABELS.get(f, f)}", id=f) for i, f in enumerate(self.formats, 1)]
        with Vertical():
            yield Static("Copy to clipboard as…", classes="dialog-title")
            yield Static(self.flow_label, classes="dialog-keys", markup=False)
            yield OptionList(*options, id="export-formats")
            yield Static("[b]↑↓[/b] choose  [b]⏎[/b] copy  [b]1-9[/b] pick  [b]esc[/b] cancel",
                         classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def on_key(self, event) -> None:  # noqa: ANN001 - textual.events.Key
        if event.character and event.character.isdigit():
            i = int(event.character) - 1
            if 0 <= i < len(self.formats):
                event.stop()
                self.dismiss(self.formats[i])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
