"""The throttle panel (`T`): pick a preset, type custom values, scope it with a filter, or turn it off.

Every change goes through the `throttle.*` commands (proxycore/control/throttle_commands.py), so the
panel does nothing the palette and the command line cannot. Keyboard first: ↑↓ and Enter in the
list, Tab to the custom fields, Enter there applies them; Esc closes. It fits 80×24.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from proxycore.throttle import PRESETS, Profile, format_ms, format_rate

OFF = "off"


def rate_text(rate: float | None) -> str:
    """Bytes per second as a value the rate parser takes back: 780kbit, 1.6mbit; None -> 0."""
    if rate is None:
        return "0"
    bits = rate * 8
    if bits >= 1e6:
        return f"{bits / 1e6:g}mbit"
    if bits >= 1e3:
        return f"{bits / 1e3:g}kbit"
    return f"{bits:g}bit"


def _row(p: Profile) -> str:
    extra = f"  {p.loss * 100:g}% loss" if p.loss else ""
    return f"{p.name:<9}↓{format_rate(p.down):>11}  ↑{format_rate(p.up):>11}  {format_ms(p.latency):>6}{extra}"


class ThrottlePanel(ModalScreen[None]):
    """Choose how matching traffic is throttled; the app runs the commands (`run_command`)."""

    DEFAULT_CSS = """
    ThrottlePanel { align: center middle; background: $background 60%; }
    ThrottlePanel > Vertical {
        width: 74; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    ThrottlePanel .dialog-title { text-style: bold; color: $text-accent; }
    ThrottlePanel #throttle-now { color: $text; }
    ThrottlePanel #throttle-presets { height: auto; max-height: 12; border: none; background: $surface;
                                      padding: 0; }
    ThrottlePanel Horizontal { height: 1; margin-top: 1; }
    ThrottlePanel #throttle-scope-row { margin-top: 0; }
    ThrottlePanel .label { width: auto; color: $text-muted; padding-right: 1; }
    ThrottlePanel Input { border: none; height: 1; padding: 0 1; width: 1fr; background: $boost; }
    ThrottlePanel Input:focus { border: none; background: $primary 30%; }
    ThrottlePanel #throttle-error { color: $text-error; height: auto; }
    ThrottlePanel .dialog-keys { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close", show=False)]

    def __init__(self, run_command: Any, current: Profile | None, filter_expr: str, status: str) -> None:
        """`run_command(name, *args)` runs a command and returns its message or raises CommandError."""
        super().__init__()
        self.run = run_command
        self.current = current
        self.filter_expr = filter_expr
        self.status = status

    def compose(self) -> ComposeResult:
        cur = self.current
        options = [Option(f"{'off':<9}no throttling", id=OFF)]
        options += [Option(_row(p), id=name) for name, p in PRESETS.items()]
        with Vertical():
            yield Static("Throttle matching traffic", classes="dialog-title")
            yield Static(self.status, id="throttle-now", markup=False)
            yield OptionList(*options, id="throttle-presets")
            with Horizontal(id="throttle-custom-row"):
                yield Static("custom  down", classes="label")
                yield Input(rate_text(cur.down) if cur else "", placeholder="1mbit", id="throttle-down")
                yield Static(" up", classes="label")
                yield Input(rate_text(cur.up) if cur else "", placeholder="512kbit", id="throttle-up")
                yield Static(" latency", classes="label")
                yield Input(format_ms(cur.latency).replace(" ", "") if cur else "", placeholder="100ms",
                            id="throttle-latency")
            with Horizontal(id="throttle-scope-row"):
                yield Static("only flows matching", classes="label")
                yield Input(self.filter_expr, placeholder="all flows, or e.g. ~d api.example.com",
                            id="throttle-filter")
            yield Static("", id="throttle-error", markup=False)
            yield Static("[b]↑↓[/b] preset  [b]⏎[/b] apply  [b]tab[/b] custom values / filter  "
                         "[b]esc[/b] close", classes="dialog-keys")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        cur = self.current
        ids = [OFF, *PRESETS]
        ol.highlighted = ids.index(cur.name) if cur is not None and cur.name in PRESETS else 0
        ol.focus()

    # --- applying ----------------------------------------------------------------------------------
    def _apply(self, name: str, *args: str) -> bool:
        """Apply the scope filter if it changed, then the command; False (error shown) on failure."""
        from proxycore.control.commands import CommandError

        try:
            expr = self.query_one("#throttle-filter", Input).value.strip()
            if expr != self.filter_expr:
                self.run("throttle.filter", expr)
                self.filter_expr = expr
            message = self.run(name, *args)
        except CommandError as exc:
            self.query_one("#throttle-error", Static).update(str(exc))
            return False
        self.dismiss(None)
        self.app.notify(str(message))
        return True

    @on(OptionList.OptionSelected)
    def _preset_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        pid = event.option.id or OFF
        if pid == OFF:
            self._apply("throttle.off")
        else:
            self._apply("throttle.set", pid)

    @on(Input.Submitted)
    def _custom_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "throttle-filter" and self.current is not None and not self._custom_changed():
            self._apply("throttle.status")  # only the scope changed: keep the profile
            return
        values = [self.query_one(f"#throttle-{k}", Input).value.strip() for k in ("down", "up", "latency")]
        self._apply("throttle.custom", values[0] or "0", values[1] or "0", values[2] or "0")

    def _custom_changed(self) -> bool:
        cur = self.current
        if cur is None:
            return True
        return [self.query_one(f"#throttle-{k}", Input).value.strip() for k in ("down", "up", "latency")] != \
            [rate_text(cur.down), rate_text(cur.up), format_ms(cur.latency).replace(" ", "")]

    def action_close(self) -> None:
        self.dismiss(None)
