"""The Strip.divide fix: same results as Textual's, and no strip left referencing itself."""

from __future__ import annotations

import gc
import random

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

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
