"""The `?` screen: every key (read from the live bindings, so it cannot drift), the filter
language and the command list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from proxycore.control.commands import registry
from proxycore.flows.filter import help_text

_KEY_NAMES = {"question_mark": "?", "slash": "/", "enter": "⏎", "escape": "esc", "up": "↑", "down": "↓", "pageup": "PgUp",
              "pagedown": "PgDn", "home": "Home", "end": "End"}


def _key_name(b: Binding) -> str:
    if b.key_display:
        return b.key_display
    keys = []
    for k in b.key.split(","):
        k = k.strip()
        keys.append(_KEY_NAMES.get(k, k))
    return " ".join(keys)


def _table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None,
              padding=(0, 1), expand=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    for k, d in rows:
        t.add_row(Text(k), Text(d))  # never markup: signatures contain [optional] args
    return t


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            rows.append((_key_name(b), b.tooltip or b.description))
    return rows


def command_rows() -> list[tuple[str, str]]:
    """Short signatures (`view.sort <key>`); choices go with the description so the table stays narrow."""
    rows = []
    for c in registry:
        sig = [c.name]
        extra = ""
        for a in c.args:
            sig.append(f"<{a.name}>" if a.required else f"[{a.name}]")
            choices = a.choice_list()
            if choices:
                extra = f" ({a.name}: {', '.join(choices)})"
        rows.append((" ".join(sig), c.help + extra))
    return rows


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > VerticalScroll {
        width: 100%; max-width: 110; height: 100%; max-height: 46;
        border: round $accent; border-title-color: $text-accent; border-subtitle-color: $text-muted;
        background: $surface; padding: 0 1;
    }
    HelpScreen Static { width: 100%; margin-bottom: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", show=False),
        # one line per press, without animation: an animated scroll restarted by each repeated key
        # moved a few lines for ten presses
        Binding("j,down", "scroll(1)", show=False),
        Binding("k,up", "scroll(-1)", show=False),
        Binding("pagedown,space,ctrl+f", "page(1)", show=False),
        Binding("pageup,ctrl+b", "page(-1)", show=False),
        Binding("g,home", "edge(0)", show=False),
        Binding("G,end", "edge(1)", show=False),
    ]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll() as vs:
            vs.border_title = "OmniProxy keys"
            vs.border_subtitle = "esc closes · ↑↓ j k scroll · space PgDn page"
            for title, rows in self.sections:
                yield Static(_table(title, rows))
            yield Static(_table("Filter language (f)", help_text()))
            yield Static(_table("Commands (ctrl+p)", command_rows()))
            yield Static(Text("Flows stay in memory up to --max-flows (oldest dropped first); the capture "
                              "file or database keeps everything.", style="italic"))

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, step: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=step, animate=False)

    def action_page(self, direction: int) -> None:
        vs = self.query_one(VerticalScroll)
        vs.scroll_relative(y=direction * max(1, vs.scrollable_content_region.height - 1), animate=False)

    def action_edge(self, end: int) -> None:
        vs = self.query_one(VerticalScroll)
        vs.scroll_end(animate=False) if end else vs.scroll_home(animate=False)
