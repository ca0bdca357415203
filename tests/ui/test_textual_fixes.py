"""The Strip.divide fix: same results as Textual's, and no strip left referencing itself.
Bindings run by the focused widget: the same action, without the key bubbling up to the app."""

from __future__ import annotations

import gc
import random

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.strip import Strip
from textual.widget import Widget

from omniproxy_tui import textual_fixes


def _strip(rnd: random.Random) -> Strip:
    return Strip([Segment("x" * rnd.randint(1, 6), Style(bold=rnd.random() < 0.5)) for _ in range(rnd.randint(1, 5))])


def test_divide_gives_textuals_results() -> None:
    assert textual_fixes.apply()
    rnd = random.Random(5)
    for _ in range(500):
        s = _strip(rnd)
        n = s.cell_length
        cuts = sorted(rnd.sample(range(1, n + 3), rnd.randint(1, min(4, n + 2))))
        ours = [p.text for p in s.divide(cuts)]
        theirs = [p.text for p in textual_fixes._original_divide(_copy(s), cuts)]
        assert ours == theirs, (s.text, cuts)


def _copy(s: Strip) -> Strip:
    return Strip(list(s), s.cell_length)


def test_a_whole_strip_cut_leaves_no_reference_cycle() -> None:
    assert textual_fixes.apply()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        for _ in range(100):
            s = Strip([Segment("hello "), Segment("world")])
            assert s.divide([s.cell_length]) == [s]
            del s
        assert gc.collect() == 0  # freed by reference counting: nothing left for the cyclic GC
        s = Strip([Segment("hello "), Segment("world")])
        textual_fixes._original_divide(s, [s.cell_length])
        del s
        assert gc.collect() > 0  # Textual's own divide does leave a cycle (why the fix exists)
    finally:
        if was_enabled:
            gc.enable()


class _Focused(Widget, can_focus=True):
    BINDINGS = [Binding("j", "hit('widget')")]

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.hits = log

    def action_hit(self, who: str) -> None:
        self.hits.append(who)

    async def _on_key(self, event: events.Key) -> None:
        if not await textual_fixes.run_bindings_now(self, event):
            await super()._on_key(event)


class _KeysApp(App[None]):
    BINDINGS = [Binding("a", "hit('app')")]

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[str] = []

    def compose(self) -> ComposeResult:
        with Container():
            yield _Focused(self.hits)

    def on_mount(self) -> None:
        self.query_one(_Focused).focus()

    def action_hit(self, who: str) -> None:
        self.hits.append(who)

    def on_key(self, event: events.Key) -> None:  # reached only by keys that bubbled up
        self.hits.append(f"bubbled {event.key}")


async def test_focused_widget_runs_bindings_without_bubbling() -> None:
    app = _KeysApp()
    async with app.run_test() as pilot:
        await pilot.press("j", "a", "x")
        await pilot.pause()
        # its own binding and the app's ran, neither key went up the tree; an unbound key did
        assert app.hits == ["widget", "app", "bubbled x"]
        app.query_one(_Focused).blur()
        await pilot.press("a")
        await pilot.pause()
        assert sorted(app.hits[3:]) == ["app", "bubbled a"]  # not focused: Textual's usual path
