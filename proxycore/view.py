"""The flow view: which flows the user sees, in which order, and which one has the focus.

UI-independent (no Textual) so the same behaviour is driven by keys, the command palette, the
control API and tests. Built for a live table: 50 000 flows kept, thousands added per second.

- The store is an insertion-ordered dict bounded by `max_flows`: appends are O(1) and the oldest
  flows are dropped first (they are still in the capture file or database).
- The shown list is kept sorted (ascending key, plus a parallel list of keys for bisect) and is
  maintained incrementally: a new flow is tested against the filter once and inserted (an append in
  the common case of time order); only changing the filter, the marked-only switch or the sort key
  re-filters or re-sorts everything.
- Reverse order is a mapping of indexes, never a second list.
"""

from __future__ import annotations

import copy
import gc
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable

from proxycore import flow as flowmod
from proxycore.flow import Flow
from proxycore.flowfilter import Filter, parse

SORT_KEYS: tuple[str, ...] = ("time", "method", "url", "size", "duration", "status")

_HISTORY_MAX = 100

SortKey = tuple  # (primary value, flow id): unique, so bisect finds exactly one flow


def _key_time(f: Flow) -> SortKey:
    return (f.timings.start, f.id)


def _key_method(f: Flow) -> SortKey:
    return (f.request.method, f.id)


def _key_url(f: Flow) -> SortKey:
    return (f.request.url, f.id)


def _key_size(f: Flow) -> SortKey:
    resp = f.response
    return (f.request.body_size + (resp.body_size if resp is not None else 0), f.id)


def _key_duration(f: Flow) -> SortKey:
    t = f.timings
    return ((t.end - t.start) if t.end is not None else -1.0, f.id)


def _key_status(f: Flow) -> SortKey:
    # pending sorts first, errors last, like "err" after every real status
    if f.response is not None:
        return (f.response.status, f.id)
    return (1000 if f.error else 0, f.id)


_KEY_FUNCS: dict[str, Callable[[Flow], SortKey]] = {
    "time": _key_time,
    "method": _key_method,
    "url": _key_url,
    "size": _key_size,
    "duration": _key_duration,
    "status": _key_status,
}


def copy_flow(flow: Flow) -> Flow:
    """A duplicate with a fresh id: same request/response/timings, unmarked, not intercepted."""
    dup = copy.deepcopy(flow)
    dup.id = next(flowmod._ids)  # ids stay unique and increasing across the process
    dup.marked = False
    if dup.state == flowmod.INTERCEPTED:
        dup.state = flowmod.PENDING
    return dup


class FlowView:
    """Ordered, filtered, sorted flows plus focus, marks and follow state."""

    def __init__(self, max_flows: int = 50000) -> None:
        if max_flows < 1:
            raise ValueError(f"max_flows must be at least 1, got {max_flows}")
        self.max_flows = max_flows
        self._store: OrderedDict[int, Flow] = OrderedDict()
        # shown flows in ascending key order; _keys[i] is the key of _flows[i]
        self._flows: list[Flow] = []
        self._keys: list[SortKey] = []
        self._key_of: dict[int, SortKey] = {}  # flow id -> its key in the shown list
        self._filter: Filter | None = None
        self.filter_enabled = True
        self.filter_history: list[str] = []
        self.marked_only = False
        self.sort_key = "time"
        self.sort_reverse = False
        self._keyfn: Callable[[Flow], SortKey] = _key_time
        self._focus: Flow | None = None
        self.follow = True
        self.dropped = 0  # flows dropped because of max_flows, for the header
        self.version = 0  # bumped on every visible change: the UI repaints when it moves

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._flows)

    def __getitem__(self, index: int) -> Flow:
        """The flow at display position `index` (honours reverse order)."""
        n = len(self._flows)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        return self._flows[n - 1 - index] if self.sort_reverse else self._flows[index]

    @property
    def total(self) -> int:
        return len(self._store)

    def shown(self) -> list[Flow]:
        """A snapshot of the shown flows in display order (safe to hand to a worker thread)."""
        return self._flows[::-1] if self.sort_reverse else list(self._flows)

    def all_flows(self) -> list[Flow]:
        """Every stored flow, oldest first, whether shown or not."""
        return list(self._store.values())

    def get(self, flow_id: int) -> Flow | None:
        return self._store.get(flow_id)

    def is_shown(self, flow: Flow) -> bool:
        return flow.id in self._key_of

    def index_of(self, flow: Flow) -> int | None:
        """Display position of `flow`, or None when it is not shown. O(log n)."""
        key = self._key_of.get(flow.id)
        if key is None:
            return None
        i = bisect_left(self._keys, key)
        return len(self._keys) - 1 - i if self.sort_reverse else i

    @property
    def filter(self) -> Filter | None:
        return self._filter

    @property
    def filter_expr(self) -> str:
        return self._filter.expr if self._filter is not None else ""

    @property
    def filter_active(self) -> bool:
        return self._filter is not None and self.filter_enabled

    def matches(self, flow: Flow) -> bool:
        if self.marked_only and not flow.marked:
            return False
        f = self._filter
        return f is None or not self.filter_enabled or f(flow)

    def count_matching(self, flt: Filter | None) -> int:
        """How many stored flows `flt` would show (marked-only applies): the filter bar's live count."""
        flows: Iterable[Flow] = self._store.values()
        if self.marked_only:
            flows = [f for f in flows if f.marked]
        if flt is None:
            return sum(1 for _ in flows)
        pred = flt.predicate
        return sum(1 for f in flows if pred(f))

    # ------------------------------------------------------------------ focus

    @property
    def focus(self) -> Flow | None:
        return self._focus

    @property
    def focus_index(self) -> int | None:
        return self.index_of(self._focus) if self._focus is not None else None

    def set_focus(self, flow: Flow | None) -> None:
        if flow is not None and not self.is_shown(flow):
            return
        if flow is not self._focus:
            self._focus = flow
            self.version += 1

    def set_focus_index(self, index: int) -> None:
        """Focus the flow at display position `index`, clamped to the list."""
        n = len(self._flows)
        if n == 0:
            self.set_focus(None)
            return
        self.set_focus(self[max(0, min(index, n - 1))])

    def move_focus(self, delta: int) -> None:
        i = self.focus_index
        self.set_focus_index((i if i is not None else 0) + delta)

    @property
    def newest_id(self) -> int:
        """Id of the most recently stored flow (0 when empty), in O(1): ids only grow, the store
        keeps arrival order. For sizing the id column on every rendered line."""
        return next(reversed(self._store), 0)

    def newest_shown(self) -> Flow | None:
        """The flow "follow" tracks: the most recent shown flow (highest id)."""
        if not self._flows:
            return None
        if self.sort_key == "time":  # ascending by start time: the newest is at the end
            return self._flows[-1]
        return max(self._flows, key=lambda f: f.id)

    def _refocus(self, old_key: SortKey | None) -> None:
        """After a bulk change: keep the focus if still shown, else take the nearest shown flow."""
        f = self._focus
        if f is not None and f.id in self._key_of:
            return
        if not self._flows:
            self._focus = None
            return
        if old_key is None:
            self._focus = self[0]
            return
        i = bisect_left(self._keys, old_key)
        if self.sort_reverse:  # keep the neighbour in display order: the next one down the screen
            i -= 1
        self._focus = self._flows[max(0, min(i, len(self._flows) - 1))]

    # ------------------------------------------------------------------ shown-list maintenance

    def _insert(self, flow: Flow) -> None:
        key = self._keyfn(flow)
        keys = self._keys
        if not keys or key > keys[-1]:  # the common case: newest flow, time order
            keys.append(key)
            self._flows.append(flow)
        else:
            i = bisect_left(keys, key)
            keys.insert(i, key)
            self._flows.insert(i, flow)
        self._key_of[flow.id] = key

    def _remove_shown(self, flow: Flow) -> None:
        key = self._key_of.pop(flow.id, None)
        if key is None:
            return
        i = bisect_left(self._keys, key)
        del self._keys[i]
        del self._flows[i]

    def _rebuild(self) -> None:
        """Re-filter and re-sort everything (filter, marked-only or sort key changed)."""
        keyfn = self._keyfn
        focus = self._focus
        # Allocation-heavy but creates no cyclic garbage: keep the cyclic GC from walking every
        # stored flow in the middle of it (measured: up to 5x slower with 50 000 flows).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            flows = list(self._store.values())
            if self.marked_only:
                flows = [f for f in flows if f.marked]
            flt = self._filter
            if flt is not None and self.filter_enabled:
                pred = flt.predicate
                flows = [f for f in flows if pred(f)]
            keys = [keyfn(f) for f in flows]
            if any(keys[i] > keys[i + 1] for i in range(len(keys) - 1)):
                order = sorted(range(len(keys)), key=keys.__getitem__)
                keys = [keys[i] for i in order]
                flows = [flows[i] for i in order]
            self._keys = keys
            self._flows = flows
            self._key_of = {f.id: k for f, k in zip(flows, keys, strict=True)}
        finally:
            if gc_was_enabled:
                gc.enable()
        if self.follow:
            self._focus = self.newest_shown()
        else:
            self._refocus(keyfn(focus) if focus is not None else None)
        self.version += 1

    # ------------------------------------------------------------------ live updates

    def add(self, flow: Flow) -> None:
        self.add_many((flow,))

    def add_many(self, flows: Iterable[Flow]) -> None:
        """New flows, oldest first. Drops the oldest stored flows beyond `max_flows`."""
        batch = list(flows)
        if not batch:
            return
        store = self._store
        for f in batch:
            store[f.id] = f
        dropped: list[Flow] = []
        while len(store) > self.max_flows:
            dropped.append(store.popitem(last=False)[1])
        focus_key = None
        if dropped:
            self.dropped += len(dropped)
            if self._focus is not None:
                focus_key = self._key_of.get(self._focus.id)
            self._drop_from_shown(dropped)
        newest = None
        match = self.matches
        for f in batch:
            if f.id in store and f.id not in self._key_of and match(f):
                self._insert(f)
                newest = f
        if self.follow and newest is not None:
            self._focus = newest
        elif dropped:
            self._refocus(focus_key)
        elif self._focus is None and self._flows:
            self._focus = self[0]
        self.version += 1

    def _drop_from_shown(self, gone: list[Flow]) -> None:
        # Locate every dropped flow first (indexes stay valid), then delete contiguous runs from the
        # end: in time order the dropped flows are a prefix, so this is one slice deletion.
        keys, key_of = self._keys, self._key_of
        idxs = sorted(bisect_left(keys, key_of.pop(f.id)) for f in gone if f.id in key_of)
        while idxs:
            end = idxs.pop()
            start = end
            while idxs and idxs[-1] == start - 1:
                start = idxs.pop()
            del keys[start:end + 1]
            del self._flows[start:end + 1]

    def update(self, flow: Flow) -> None:
        self.update_many((flow,))

    def update_many(self, flows: Iterable[Flow]) -> None:
        """Flows that changed (response arrived, error, mark): re-test the filter, re-place by key."""
        changed = False
        for f in flows:
            if f.id not in self._store:
                continue  # dropped or deleted meanwhile
            old = self._key_of.get(f.id)
            if self.matches(f):
                if old is None:
                    self._insert(f)
                elif self._keyfn(f) != old:
                    self._remove_shown(f)
                    self._insert(f)
            elif old is not None:
                self._remove_shown_keep_focus(f)
            changed = True
        if changed:
            self.version += 1

    def _remove_shown_keep_focus(self, flow: Flow) -> None:
        was_focus = flow is self._focus
        key = self._key_of.get(flow.id)
        self._remove_shown(flow)
        if was_focus:
            self._focus = None
            self._refocus(key)

    # ------------------------------------------------------------------ user actions

    def delete(self, flows: Iterable[Flow]) -> int:
        """Remove flows from the view (not from capture files). Returns how many were removed."""
        n = 0
        for f in list(flows):
            if self._store.pop(f.id, None) is None:
                continue
            self._remove_shown_keep_focus(f)
            n += 1
        if n:
            self.version += 1
        return n

    def clear(self) -> int:
        n = len(self._store)
        self._store.clear()
        self._flows, self._keys, self._key_of = [], [], {}
        self._focus = None
        self.version += 1
        return n

    def duplicate(self, flow: Flow) -> Flow:
        """Copy `flow` into the view (it sorts next to the original by time) and focus the copy."""
        dup = copy_flow(flow)
        follow, self.follow = self.follow, False
        self.add(dup)
        self.follow = follow
        self.set_focus(dup)
        return dup

    def set_marked(self, flows: Iterable[Flow], marked: bool) -> None:
        fl = list(flows)
        for f in fl:
            f.marked = marked
        # marked-only and ~marked depend on marks
        self.update_many(fl)
        self.version += 1

    def toggle_mark(self, flows: Iterable[Flow]) -> bool:
        """Mark all when any is unmarked, else unmark all (mitmproxy's rule). Returns the new state."""
        fl = list(flows)
        state = not all(f.marked for f in fl)
        self.set_marked(fl, state)
        return state

    def marked(self) -> list[Flow]:
        return [f for f in self._store.values() if f.marked]

    # ------------------------------------------------------------------ filter

    def set_filter(self, expr: str | Filter | None, remember: bool = True) -> None:
        """Compile and apply a filter expression; "" or None removes it.

        Raises FilterError (with `.position`) on a syntax error; the current filter stays.
        `remember` adds the expression to the history (the filter bar passes False while typing).
        """
        if isinstance(expr, Filter):
            flt: Filter | None = expr
        else:
            text = (expr or "").strip()
            flt = parse(text) if text else None
        if flt is not None and remember:
            self.remember_filter(flt.expr)
        same = (flt.expr if flt else "") == self.filter_expr and self.filter_enabled
        self._filter = flt
        self.filter_enabled = True
        if not same:
            self._rebuild()

    def remember_filter(self, expr: str) -> None:
        expr = expr.strip()
        if not expr:
            return
        h = self.filter_history
        if expr in h:
            h.remove(expr)
        h.append(expr)
        del h[:-_HISTORY_MAX]

    def toggle_filter(self) -> bool:
        """Switch the filter off and on again without losing it. Returns whether it is now active."""
        if self._filter is None:
            self.filter_enabled = True
            return False
        self.filter_enabled = not self.filter_enabled
        self._rebuild()
        return self.filter_enabled

    def set_marked_only(self, value: bool | None = None) -> bool:
        self.marked_only = (not self.marked_only) if value is None else value
        self._rebuild()
        return self.marked_only

    # ------------------------------------------------------------------ sort

    def set_sort(self, key: str, reverse: bool | None = None) -> None:
        if key not in _KEY_FUNCS:
            raise ValueError(f"unknown sort key {key!r} (choose from {', '.join(SORT_KEYS)})")
        changed = key != self.sort_key
        self.sort_key = key
        self._keyfn = _KEY_FUNCS[key]
        if reverse is not None and reverse != self.sort_reverse:
            self.sort_reverse = reverse
            self.version += 1
        if changed:
            self._rebuild()

    def cycle_sort(self) -> str:
        nxt = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self.set_sort(nxt)
        return nxt

    def toggle_reverse(self) -> bool:
        self.sort_reverse = not self.sort_reverse
        self.version += 1
        return self.sort_reverse


def flows_by_selector(view: FlowView, selector: str) -> list[Flow]:
    """mitmproxy-style flow selectors: @focus @shown @all @marked @unmarked @hidden, or flow ids "3,5"."""
    s = selector.strip() or "@focus"
    if s == "@focus":
        return [view.focus] if view.focus is not None else []
    if s == "@shown":
        return view.shown()
    if s == "@all":
        return view.all_flows()
    if s == "@marked":
        return view.marked()
    if s == "@unmarked":
        return [f for f in view.all_flows() if not f.marked]
    if s == "@hidden":
        return [f for f in view.all_flows() if not view.is_shown(f)]
    out: list[Flow] = []
    for part in s.split(","):
        try:
            fid = int(part.strip())
        except ValueError:
            raise ValueError(
                f"bad flow selector {selector!r} (use @focus, @shown, @all, @marked, @unmarked, @hidden or ids)"
            ) from None
        f = view.get(fid)
        if f is not None:
            out.append(f)
    return out


__all__ = ["SORT_KEYS", "FlowView", "copy_flow", "flows_by_selector"]
