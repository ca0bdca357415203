"""One targeted fix to Textual (pinned to an exact version in pyproject.toml).

`Strip.divide()` caches its result on the strip; when the cut is the whole strip the result is
`[self]`, so nearly every line the compositor draws ends up referencing itself and can only be
freed by the cyclic garbage collector. The app keeps full collections away from key presses by
freezing long-lived objects (gcpolicy.py); every such strip alive at a freeze was leaked, about
7 000 objects a second under load (measured with bench/bench_ui.py and gc.DEBUG_SAVEALL). Not
caching that trivial result removes the cycle; everything else is Textual's own code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import textual
from textual.strip import Strip

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
