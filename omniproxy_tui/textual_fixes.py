"""Three targeted changes to Textual's behaviour (pinned to an exact version in pyproject.toml).

`Strip.divide()` caches its result on the strip; when the cut is the whole strip the result is
`[self]`, so nearly every line the compositor draws ends up referencing itself and can only be
freed by the cyclic garbage collector. The app keeps full collections away from key presses by
freezing long-lived objects (gcpolicy.py); every such strip alive at a freeze was leaked, about
7 000 objects a second under load (measured with bench/bench_ui.py and gc.DEBUG_SAVEALL). Not
caching that trivial result removes the cycle; everything else is Textual's own code.

`run_bindings_now()`: a key goes to the focused widget, then bubbles up to the app one ancestor at
a time, and only there are the bindings run. Each hop waits a turn of the event loop, which under
heavy traffic also serves the proxy's sockets: 4-5 hops took 20-60 ms (bench_ui --trace).
The widget with the focus runs the bindings when the key reaches it instead.

`focus_now()` and `follow_focus()`: keys that arrive together (fast typing, a paste, tmux
send-keys) are all handed to the widget that has the focus when the app reads them, before the
first one ran its binding. So after f, the keys of `~c 404` went to the table (`c` copied a curl
command), and a j after Enter went into the closed filter bar. The focus now moves at once (not
on a later turn of the loop, as `Widget.focus()` does), and a key that reaches a widget which no
longer has the focus is passed on to the one that has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import textual
from textual import events
from textual.strip import Strip
from textual.widget import Widget

TESTED_WITH = "8.2.8"

_original_divide = Strip.divide


def _divide(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    cell_length = self.cell_length
    cuts = [cut for cut in cuts if cut <= cell_length]
    if cuts == [cell_length]:
        return [self]  # what the original returns, without storing it on self
    return _original_divide(self, cuts)


def apply() -> bool:
    """Install the fix once; only on the Textual version it was checked against."""
    if textual.__version__ != TESTED_WITH or Strip.divide is _divide:
        return Strip.divide is _divide
    Strip.divide = _divide  # type: ignore[method-assign]
    return True


async def run_bindings_now(widget: Widget, event: events.Key) -> bool:
    """From the focused `widget`'s key handler: run the binding for `event` (the focused widget's,
    its ancestors' or the app's, as the app would after the key bubbled up) and stop the event.
    False when no binding took it: the key then bubbles as usual."""
    check = getattr(widget.app, "_check_bindings", None)
    if check is None or widget.screen.focused is not widget or not await check(event.key):
        return False
    event.stop()
    event.prevent_default()
    return True


def focus_now(widget: Widget) -> None:
    """Give `widget` the focus before the next key is handled (see the module docstring)."""
    if widget.focusable:
        widget.screen.set_focus(widget)
    else:  # a container that passes the focus on to a child of its choice
        widget.focus()


def follow_focus(widget: Widget, event: events.Key) -> bool:
    """From `widget`'s key handler: when the focus moved away while this key waited in the
    widget's queue, hand the key to the widget that has it now and stop it here."""
    focused = widget.app.focused  # on the screen on top: a dialog the key before opened, too
    if focused is None or focused is widget:
        return False
    key = events.Key(event.key, event.character)
    key.set_sender(event._sender)
    key._set_forwarded()
    focused.post_message(key)
    event.stop()
    event.prevent_default()
    return True
