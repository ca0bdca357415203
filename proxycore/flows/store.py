"""The engine's flow store: the flows the proxy keeps, keyed by id, and the events about them.

The proxy is the owner of its flows; a UI (in process today, maybe over a socket later) mirrors
them from the events and asks the store for a flow by id. Events are `callback(kind, flow_id, flow)`:

- "added":   a flow became visible (its request head arrived, or it finished without ever having
             been shown: CONNECT tunnels, failed handshakes);
- "updated": a shown flow changed (response head, finished);
- "removed": the store dropped it (`max_flows` reached, `remove`, `clear`).

`max_flows` bounds what is kept, oldest dropped first. `max_flows=0` keeps nothing: flows in
flight are remembered weakly (so the "added"/"updated" order stays right) and forgotten when done,
with no "removed" event, since nothing was ever kept. That is the headless mode's and the library
default's setting: memory never grows with the number of flows seen.

Built for the hot path (~10 000 flows/s): an add is one dict insert, one eviction and one call per
subscriber; with `max_flows=0` and nobody subscribed every call returns at once.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from weakref import WeakValueDictionary

from proxycore.flows.flow import DONE, ERROR, Flow, compact_flow

StoreCallback = Callable[[str, int, Flow], None]

ADDED = "added"
UPDATED = "updated"
REMOVED = "removed"


def snapshot_flows(flows: Iterable[Flow]) -> list[Flow]:
    """The flows as they are now, safe to hand to a worker thread: copies of those still in flight
    (the proxy keeps changing them), the finished ones shared (the proxy changes them no more).
    Call it on the event loop's thread, where the proxy changes flows."""
    return [f if f.state == DONE or f.state == ERROR else copy.deepcopy(f) for f in flows]


class FlowStore:
    """Flows by id, oldest first, bounded by `max_flows`; see the module docstring."""

    def __init__(self, max_flows: int = 50000, on_error: Callable[[str], None] | None = None) -> None:
        if max_flows < 0:
            raise ValueError(f"max_flows must be 0 or more, got {max_flows}")
        self.max_flows = max_flows
        self.on_error = on_error
        self.dropped = 0  # flows dropped because of max_flows
        # oldest first; an OrderedDict because dropping the oldest of a plain dict scans the holes
        # earlier deletions left at its front
        self._flows: OrderedDict[int, Flow] = OrderedDict()
        self._subscribers: list[StoreCallback] = []
        # Flows no longer kept but still in flight, remembered weakly (never kept alive by this):
        # dropped by max_flows while in flight, their "done" is not news any more; with
        # max_flows=0, every flow in flight, so that its "done" is an update, not a new flow.
        self._gone_live: WeakValueDictionary[int, Flow] = WeakValueDictionary()
        # Called with each flow the store drops, after the subscribers (the UI's proxy deletes the
        # flow's spill files there).
        self.on_removed: Callable[[Flow], None] | None = None
        # Keep finished flows compactly (flow.compact_flow): the UI's store, which keeps them long.
        self.compact = False

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._flows)

    def __iter__(self) -> Iterator[Flow]:
        """Oldest first. Over a copy: subscribers may change the store meanwhile."""
        return iter(list(self._flows.values()))

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._flows

    def get(self, flow_id: int) -> Flow | None:
        return self._flows.get(flow_id)

    def snapshot(self, ids: Iterable[int] | None = None) -> list[Flow]:
        """Every kept flow (or those of `ids` still kept), oldest first, as `snapshot_flows` makes
        them: what an export running in a worker thread reads while the proxy goes on."""
        if ids is None:
            flows: Iterable[Flow] = list(self._flows.values())
        else:
            get = self._flows.get
            flows = [f for f in map(get, ids) if f is not None]
        return snapshot_flows(flows)

    # ------------------------------------------------------------------ events

    def subscribe(self, callback: StoreCallback) -> Callable[[], None]:
        """Call `callback(kind, flow_id, flow)` on every change; returns the unsubscribe function.
        Called on the event loop, synchronously: record, don't render."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, kind: str, flow: Flow) -> None:
        for cb in self._subscribers:
            try:
                cb(kind, flow.id, flow)
            except Exception as exc:  # a broken subscriber must not break proxying
                if self.on_error is not None:
                    self.on_error(f"flow subscriber failed: {exc!r}")

    # ------------------------------------------------------------------ changes

    def add(self, flow: Flow) -> None:
        """A new flow (a known one is updated instead)."""
        if not self.max_flows and not self._subscribers:
            return  # nothing kept, nobody told: the headless hot path
        flows = self._flows
        fid = flow.id
        if fid in flows or fid in self._gone_live:
            self.update(flow)
            return
        if not self.max_flows:
            self._gone_live[fid] = flow
            self._emit(ADDED, flow)
            return
        flows[fid] = flow
        self._emit(ADDED, flow)
        if len(flows) > self.max_flows:
            self._evict()

    def update(self, flow: Flow) -> None:
        """A flow changed. One never seen is added; one dropped meanwhile is no news."""
        if not self.max_flows and not self._subscribers:
            return
        fid = flow.id
        if fid in self._flows:
            self._emit(UPDATED, flow)
        elif fid in self._gone_live:
            if not self.max_flows:
                self._emit(UPDATED, flow)
        else:
            self.add(flow)

    def done(self, flow: Flow) -> None:
        """A flow finished: an update, or an add when it was never shown (tunnels, failed
        handshakes). With max_flows=0 it is then forgotten."""
        if not self.max_flows and not self._subscribers:
            return
        fid = flow.id
        if fid in self._flows:
            if self.compact:
                compact_flow(flow)
            self._emit(UPDATED, flow)
            return
        was_live = self._gone_live.pop(fid, None) is not None
        if not self.max_flows:
            self._emit(UPDATED if was_live else ADDED, flow)
        elif not was_live:
            if self.compact:
                compact_flow(flow)
            self.add(flow)

    def _evict(self) -> None:
        flows = self._flows
        while len(flows) > self.max_flows:
            fid, f = flows.popitem(last=False)
            self.dropped += 1
            if not (f.state == DONE or f.state == ERROR):
                self._gone_live[fid] = f  # its "done" must not bring it back
            self._emit(REMOVED, f)
            if self.on_removed is not None:
                self.on_removed(f)

    def remove(self, ids: Iterable[int]) -> int:
        """Drop flows (the user deleted them). Returns how many were kept."""
        n = 0
        flows = self._flows
        for fid in list(ids):
            f = flows.pop(fid, None)
            if f is None:
                continue
            n += 1
            if not (f.state == DONE or f.state == ERROR):
                self._gone_live[fid] = f  # its "done" must not bring it back
            self._emit(REMOVED, f)
            if self.on_removed is not None:
                self.on_removed(f)
        return n

    def clear(self) -> int:
        """Drop every flow. Returns how many were kept."""
        return self.remove(list(self._flows))


__all__ = ["ADDED", "REMOVED", "UPDATED", "FlowStore", "StoreCallback", "snapshot_flows"]
