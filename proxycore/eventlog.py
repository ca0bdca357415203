"""The engine's event log: start-up facts, warnings and errors, bounded.

The engine writes here (listen address, CA path, capture targets, capture and addon errors,
refused clients); the UI reads it through `EngineClient.events` and shows it with `E`. It is a
ring of the last `maxlen` entries, so a proxy that logs an error per request keeps constant
memory. `add` may be called from a capture writer's thread: `deque.append` with a `maxlen` is
atomic in CPython, and readers copy the deque before iterating it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

INFO, WARN, ERROR = "info", "warn", "error"
LEVELS = (INFO, WARN, ERROR)
DEFAULT_MAXLEN = 1000


@dataclass(frozen=True, slots=True)
class Event:
    time: float
    level: str
    message: str


class EventLog:
    """The last `maxlen` events, oldest first. `version` grows with every event (readers poll it)."""

    def __init__(self, maxlen: int = DEFAULT_MAXLEN, clock: Callable[[], float] = time.time) -> None:
        self._events: deque[Event] = deque(maxlen=maxlen)
        self._clock = clock
        self.version = 0
        self.dropped = 0  # events pushed out of the ring

    def add(self, level: str, message: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown event level {level!r}")
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        # one line per event: a multi-line exception text would break the log's layout
        self._events.append(Event(self._clock(), level, " ".join(message.split())))
        self.version += 1

    def info(self, message: str) -> None:
        self.add(INFO, message)

    def warn(self, message: str) -> None:
        self.add(WARN, message)

    def error(self, message: str) -> None:
        self.add(ERROR, message)

    def entries(self, min_level: str = INFO) -> list[Event]:
        floor = LEVELS.index(min_level)
        return [e for e in list(self._events) if LEVELS.index(e.level) >= floor]

    def __len__(self) -> int:
        return len(self._events)

    def clear(self) -> None:
        self._events.clear()
        self.dropped = 0
        self.version += 1
