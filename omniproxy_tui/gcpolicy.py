"""Keep CPython's full garbage collections away from key presses.

With 50 000 flows in memory the interpreter tracks ~10^6 container objects, and a generation-2
collection walks them all: measured here at ~180 ms, long enough to make a key press visibly lag
while thousands of flows per second arrive. Flows are long-lived and acyclic (they are freed by
reference counting when dropped), so the app moves surviving objects into the permanent
generation (`gc.freeze()`, O(1)) every couple of seconds; automatic collections then only scan
what is new. Cyclic garbage that happened to be frozen is reclaimed by one full collection when
the user and the traffic have both been idle for a while, and on exit.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


class GcPolicy:
    def __init__(self, clock: Callable[[], float] = time.monotonic, freeze_every: float = 2.0,
                 idle_after: float = 5.0, min_full_interval: float = 60.0) -> None:
        self._clock = clock
        self.freeze_every = freeze_every
        self.idle_after = idle_after
        self.min_full_interval = min_full_interval
        now = clock()
        self._last_freeze = now
        self._last_busy = now
        self._last_full = now
        self._frozen = False
        self.full_collections = 0

    def busy(self) -> None:
        """A key press or new traffic: not a good moment for a full collection."""
        self._last_busy = self._clock()

    def tick(self) -> None:
        now = self._clock()
        if self._frozen and now - self._last_busy >= self.idle_after and \
                now - self._last_full >= self.min_full_interval:
            self.release()
            gc.collect()
            self.full_collections += 1
            self._last_full = now
        if now - self._last_freeze >= self.freeze_every:
            gc.freeze()
            self._frozen = True
            self._last_freeze = now

    def release(self) -> None:
        """Hand frozen objects back to the collector (idle time, exit)."""
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
