"""A one-line prompt at the bottom of the screen: the `:` command line, the `;` comment, editing an
option's value.

The prompt does not run anything itself: `submit(text)` (given by the caller) returns None when the
text was accepted (the prompt closes) or a one-line error (shown under the input, the text kept
for fixing). Tab completes from `complete(text) -> (start, candidates)`: the part of the text from
`start` is replaced by the longest common prefix of the candidates, and the candidates are listed
above the input; Tab again cycles through them. Up/Down walk the history (the caller's list,
newest last, bounded by the caller).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from proxycore.control.commands import CommandRegistry

Completer = Callable[[str], tuple[int, list[str]]]
HISTORY_MAX = 100
_SHOWN_CANDIDATES = 12


class PromptInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", "Complete", show=False, priority=True),
        Binding("up", "history(-1)", "History", show=False),
        Binding("down", "history(1)", "Newer", show=False),
    ]

    def action_complete(self) -> None:
        self.screen.complete()  # type: ignore[attr-defined]

    def action_history(self, step: int) -> None:
        self.screen.history_step(step)  # type: ignore[attr-defined]


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line. Dismissed with the accepted text, or None on Esc."""

    DEFAULT_CSS = """
    PromptScreen { align: left bottom; }
    PromptScreen > Vertical { height: auto; width: 100%; background: $panel; }
    PromptScreen #prompt-candidates { height: auto; max-height: 3; color: $text-muted; padding: 0 1;
                                      display: none; }
    PromptScreen #prompt-candidates.-shown { display: block; }
    PromptScreen #prompt-error { height: auto; color: $text-error; padding: 0 1; display: none; }
    PromptScreen #prompt-error.-shown { display: block; }
    PromptScreen #prompt-help { height: auto; color: $text-muted; padding: 0 1; display: none; }
    PromptScreen #prompt-help.-shown { display: block; }
    PromptScreen Horizontal { height: 1; }
    PromptScreen #prompt-label { width: auto; color: $text-accent; text-style: bold; padding: 0 0 0 1; }
    PromptScreen PromptInput { border: none; height: 1; padding: 0; width: 1fr; background: $boost; }
    PromptScreen PromptInput:focus { border: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, label: str, submit: Callable[[str], str | None], *, value: str = "",
                 complete: Completer | None = None, history: list[str] | None = None, help: str = "",
                 placeholder: str = "", describe: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self.label = label
        self._submit = submit
        self._complete = complete
        self.history = history if history is not None else []
        self.help = help
        self._initial = value
        self._placeholder = placeholder
        self._describe = describe  # the help line for what is typed (the command's signature)
        self._history_pos: int | None = None
        self._draft = ""
        self._cycle: tuple[int, list[str], int] | None = None  # (start, candidates, index) on Tab again

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="prompt-candidates", markup=False)
            yield Static("", id="prompt-error", markup=False)
            yield Static(self.help, id="prompt-help", markup=False, classes="-shown" if self.help else "")
            with Horizontal():
                yield Static(self.label, id="prompt-label", markup=False)
                yield PromptInput(self._initial, placeholder=self._placeholder, id="prompt-input",
                                  select_on_focus=False)

    def on_mount(self) -> None:
        inp = self.input
        inp.focus()
        inp.cursor_position = len(inp.value)

    @property
    def input(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def error_text(self) -> str:
        return str(self.query_one("#prompt-error", Static).render())

    def _show(self, wid: str, text: str) -> None:
        w = self.query_one(wid, Static)
        w.update(text)
        w.set_class(bool(text), "-shown")

    # --- keys ------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._describe is not None:
            self._show("#prompt-help", self._describe(event.value) or self.help)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value
        error = self._submit(text)
        if error:
            self._show("#prompt-error", error.splitlines()[0] if error.strip() else error)
            return
        if text.strip() and (not self.history or self.history[-1] != text):
            self.history.append(text)
            del self.history[:-HISTORY_MAX]
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_key(self, event: events.Key) -> None:
        if event.key != "tab":
            self._cycle = None
            self._show("#prompt-error", "")

    def complete(self) -> None:
        if self._complete is None:
            return
        inp = self.input
        text = inp.value[: inp.cursor_position]
        rest = inp.value[inp.cursor_position:]
        if self._cycle is not None and self._cycle[1]:
            start, cands, i = self._cycle
            i = (i + 1) % len(cands)
            self._cycle = (start, cands, i)
            self._set(text[:start] + cands[i], rest)
            return
        start, cands = self._complete(text)
        if not cands:
            self._show("#prompt-candidates", "no completions")
            return
        word = text[start:]
        common = os.path.commonprefix(cands)
        if len(cands) == 1:
            self._set(text[:start] + cands[0] + " ", rest)
            self._show("#prompt-candidates", "")
            return
        self._show("#prompt-candidates", "  ".join(cands[:_SHOWN_CANDIDATES])
                   + (f"  … {len(cands) - _SHOWN_CANDIDATES} more" if len(cands) > _SHOWN_CANDIDATES else ""))
        if len(common) > len(word):
            self._set(text[:start] + common, rest)
        else:
            self._cycle = (start, cands, 0)
            self._set(text[:start] + cands[0], rest)

    def _set(self, before: str, after: str) -> None:
        inp = self.input
        inp.value = before + after
        inp.cursor_position = len(before)

    def history_step(self, step: int) -> None:
        if not self.history:
            return
        inp = self.input
        if self._history_pos is None:
            if step > 0:
                return
            self._draft = inp.value
            pos = len(self.history) - 1
        else:
            pos = self._history_pos + step
        if pos >= len(self.history):
            self._history_pos = None
            inp.value = self._draft
        else:
            self._history_pos = max(0, pos)
            inp.value = self.history[self._history_pos]
        inp.cursor_position = len(inp.value)


def command_completer(registry: CommandRegistry) -> Completer:
    """Completion for `:`: command names first, then each argument's choices."""

    def complete(text: str) -> tuple[int, list[str]]:
        try:
            words = shlex.split(text)
        except ValueError:  # an open quote: nothing sensible to offer
            return len(text), []
        if text and not text[-1].isspace() and words:
            current, done = words[-1], words[:-1]
            start = len(text) - len(current)
        else:
            current, done = "", words
            start = len(text)
        if not done:
            return start, [c.name for c in registry if c.name.startswith(current)]
        if done[0] not in registry:
            return start, []
        cmd = registry.get(done[0])
        index = len(done) - 1
        if index >= len(cmd.args):
            return start, []
        return start, [c for c in cmd.args[index].completions(done[1:]) if c.startswith(current)]

    return complete


def command_help(registry: CommandRegistry, text: str) -> str:
    """The signature and help of the command being typed ('' when none)."""
    name = text.strip().split(" ", 1)[0] if text.strip() else ""
    if name and name in registry:
        cmd = registry.get(name)
        return f"{cmd.signature}: {cmd.help}"
    return ""


def quote_arg(value: str) -> str:
    return shlex.quote(value) if value else "''"


__all__ = ["PromptScreen", "command_completer", "command_help", "quote_arg"]
