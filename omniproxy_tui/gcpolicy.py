"""Keep CPython's full garbage collections away from key presses.

With 50 000 flows in memory the interpreter tracks ~10^6 container objects, and a generation-2
collection walks them all: measured here at ~180 ms, long enough to make a key press visibly lag
while thousands of flows per second arrive. Flows are long-lived and acyclic (they are freed by
reference counting when dropped), so while the UI runs:

- every quarter second, what was allocated since the last time is collected once and the
  survivors are moved into the permanent generation (`gc.freeze()`, O(1)), so collections only
  ever scan what is new (5 ms median under 2 000 flows/s; every 0.1 s made them 3 ms but cost
  30% more in total);
- automatic generation-2 collections are off: at 2 000 flows/s they came about twice a second,
  each walking everything since the last freeze, 27 ms median and 83 ms at worst
  (bench/bench_ui.py --trace). Young cyclic garbage is still collected by the generation-0 and
  -1 collections, which stay automatic;
- the cyclic garbage that got frozen or promoted anyway is reclaimed by one full collection when
  the user and the traffic have both been idle for a while, and at the latest every
  `max_full_interval` seconds even under constant traffic (one long pause every ten minutes
  instead of several a second), and on exit.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

_NO_AUTO_FULL = 1_000_000  # generation-2 threshold: "after a million generation-1 collections"


class GcPolicy:
    def __init__(self, clock: Callable[[], float] = time.monotonic, freeze_every: float = 0.25,
                 idle_after: float = 5.0, min_full_interval: float = 60.0,
                 max_full_interval: float = 600.0) -> None:
        self._clock = clock
        self.freeze_every = freeze_every
        self.idle_after = idle_after
        self.min_full_interval = min_full_interval
        self.max_full_interval = max_full_interval
        now = clock()
        self._last_freeze = now
        self._last_busy = now
        self._last_full = now
        self._frozen = False
        self._saved_threshold: tuple[int, int, int] | None = None
        self.full_collections = 0

    def busy(self) -> None:
        """A key press or new traffic: not a good moment for a full collection."""
        self._last_busy = self._clock()

    def tick(self) -> None:
        if self._saved_threshold is None:
            self._saved_threshold = gc.get_threshold()
            t0, t1, _ = self._saved_threshold
            gc.set_threshold(t0, t1, _NO_AUTO_FULL)
        now = self._clock()
        since_full = now - self._last_full
        if (since_full >= self.min_full_interval and now - self._last_busy >= self.idle_after) or \
                since_full >= self.max_full_interval:
            self._full_collection(now)
        if now - self._last_freeze >= self.freeze_every:
            # collect what died since the last freeze first (it only scans those objects), or it
            # would be frozen with the survivors: Textual's render caches make cyclic garbage
            # every frame (measured: +150 MiB in 50 s without this)
            gc.collect(2)
            gc.freeze()
            self._frozen = True
            self._last_freeze = now

    def _full_collection(self, now: float) -> None:
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
        gc.collect()
        self.full_collections += 1
        self._last_full = now

    def release(self) -> None:
        """Hand frozen objects back to the collector and restore automatic full collections (exit)."""
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
        if self._saved_threshold is not None:
            gc.set_threshold(*self._saved_threshold)
            self._saved_threshold = None
