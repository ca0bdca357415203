"""The flow view: which flows the user sees, in which order, and which one has the focus.

UI-independent (no Textual) so the same behaviour is driven by keys, the command palette, the
control API and tests. Built for a live table: 50 000 flows kept, thousands added per second.

- The store is an insertion-ordered dict bounded by `max_flows`: appends are O(1) and the oldest
  flows are dropped first (they are still in the capture file or database). The engine's
  FlowStore (proxycore.flows.store) owns the flows and enforces --max-flows; a view mirroring it
  deletes what the store dropped, and its own bound (the same number) is a backstop.
- The shown list is kept sorted (ascending key, plus a parallel list of keys for bisect) and is
  maintained incrementally: a new flow is tested against the filter once and inserted (an append in
  the common case of time order); only changing the filter, the marked-only switch or the sort key
  re-filters or re-sorts everything.
- Reverse order is a mapping of indexes, never a second list.
"""

from __future__ import annotations

import copy
import gc
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable
from itertools import filterfalse
from operator import attrgetter
from typing import Any

from proxycore.flows import flow as flowmod
from proxycore.flows.filter import Filter, parse
from proxycore.flows.flow import Flow

SORT_KEYS: tuple[str, ...] = ("time", "method", "url", "size", "duration", "status")

_HISTORY_MAX = 100
# From this many flows placed or taken out at once, the shown list is rebuilt with slices in one
# pass (O(n)) instead of one insert or delete each (O(n) memmove each): a 5 Hz repaint under heavy
# traffic folds in ~400 new and ~400 answered flows, scattered all over when sorted by size.
_BULK = 16

_ID = attrgetter("id")


# Sort values: one scalar per flow and key. Ties are broken by flow id (the shown list is kept in
# (value, id) order), so every flow has exactly one place and bisect finds it.

def _val_time(f: Flow) -> float:
    return f.timings.start


def _val_method(f: Flow) -> str:
    return f.request.method


def _val_url(f: Flow) -> str:
    return f.request.url


def _val_size(f: Flow) -> int:
    resp = f.response
    return f.request.body_size + (resp.body_size if resp is not None else 0)


def _val_duration(f: Flow) -> float:
    t = f.timings
    return (t.end - t.start) if t.end is not None else -1.0


def _val_status(f: Flow) -> int:
    # pending sorts first, errors last, like "err" after every real status
    if f.response is not None:
        return f.response.status
    return 1000 if f.error else 0


_VAL_FUNCS: dict[str, Callable[[Flow], Any]] = {
    "time": _val_time,
    "method": _val_method,
    "url": _val_url,
    "size": _val_size,
    "duration": _val_duration,
    "status": _val_status,
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
        self._store_in_id_order = True  # false once a flow arrived after one with a higher id
        # Every stored flow's sort value for the current key, computed when it arrives or changes:
        # a re-sort is then one C-level sort over cached scalars (no Python call per flow), and the
        # value a shown flow was placed under stays findable after the flow itself changed. Only
        # the current key's: the other keys' values would cost every kept flow ~250 bytes, and
        # set_sort computes the new key's in one pass.
        self._vals: dict[str, dict[Flow, Any]] = {"time": {}}
        # shown flows in ascending (value, id) order, and the same flows as a set for membership
        self._flows: list[Flow] = []
        self._shown: set[Flow] = set()
        self._filter: Filter | None = None
        self.filter_enabled = True
        self.filter_history: list[str] = []
        self.marked_only = False
        self.sort_key = "time"
        self.sort_reverse = False
        self._cur: dict[Flow, Any] = self._vals["time"]  # sort values for the current key
        self._focus: Flow | None = None
        self.follow = True
        self.dropped = 0  # flows dropped because of max_flows, for the header
        self.version = 0  # bumped on every visible change: the UI repaints when it moves
        self.stepping = False  # a set_filter_in_steps() is under way
        # While the filter is switched off: the flows that passed it when it was switched off, and
        # those added or changed since (not tested yet). Switching it back on then tests only
        # those, not every stored flow again. None: not kept (re-filter everything).
        self._off_passing: set[Flow] | None = None
        self._off_unchecked: dict[Flow, None] = {}

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
        return flow in self._shown

    def index_of(self, flow: Flow) -> int | None:
        """Display position of `flow`, or None when it is not shown. O(log n)."""
        if flow not in self._shown:
            return None
        i = self._position(self._cur[flow], flow.id)
        return len(self._flows) - 1 - i if self.sort_reverse else i

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
        if self._store_in_id_order:  # the store's newest flows first: one shown is usually near
            shown = self._shown
            for i, f in enumerate(reversed(self._store.values())):
                if f in shown:
                    return f
                if i >= 64:  # a filter hides the newest ones: not worth walking on
                    break
        return max(self._flows, key=_ID)

    def _sort_pos(self, flow: Flow) -> tuple[Any, int] | None:
        """Where `flow` sits (or sat) in the current order, while its sort value is still cached."""
        v = self._cur.get(flow)
        return None if v is None else (v, flow.id)

    def _refocus(self, old_pos: tuple[Any, int] | None) -> None:
        """After a bulk change: keep the focus if still shown, else take the nearest shown flow."""
        f = self._focus
        if f is not None and f in self._shown:
            return
        if not self._flows:
            self._focus = None
            return
        if old_pos is None:
            self._focus = self[0]
            return
        i = self._position(*old_pos)
        if self.sort_reverse:  # keep the neighbour in display order: the next one down the screen
            i -= 1
        self._focus = self._flows[max(0, min(i, len(self._flows) - 1))]

    # ------------------------------------------------------------------ shown-list maintenance

    def _position(self, value: Any, flow_id: int) -> int:
        """Index in the shown list where (value, flow_id) is or would be inserted. O(log n)."""
        flows, getv = self._flows, self._cur.__getitem__
        lo = bisect_left(flows, value, key=getv)
        hi = bisect_right(flows, value, lo, key=getv)
        if hi - lo <= 1 and (hi == lo or flows[lo].id == flow_id):
            return lo
        return bisect_left(flows, flow_id, lo, hi, key=_ID)  # equal values: ordered by id

    def _cache_vals(self, flow: Flow) -> None:
        for key, vals in self._vals.items():
            vals[flow] = _VAL_FUNCS[key](flow)

    def _uncache_vals(self, flow: Flow) -> None:
        for vals in self._vals.values():
            vals.pop(flow, None)

    def _insert(self, flow: Flow) -> None:
        flows = self._flows
        value = self._cur[flow]
        # the common case, time order: the newest flow goes at the end
        if not flows or (value, flow.id) > (self._cur[flows[-1]], flows[-1].id):
            flows.append(flow)
        else:
            flows.insert(self._position(value, flow.id), flow)
        self._shown.add(flow)

    def _insert_many(self, new: list[Flow]) -> None:
        """Place flows that are not shown yet (their values cached)."""
        if len(new) < _BULK:
            for f in new:
                self._insert(f)
            return
        cur, flows = self._cur, self._flows
        new.sort(key=_ID)
        new.sort(key=cur.__getitem__)  # (value, id) order, like the shown list
        self._shown.update(new)
        first = new[0]
        if not flows or (cur[first], first.id) > (cur[flows[-1]], flows[-1].id):
            flows.extend(new)  # time order: all newer than what is shown
            return
        # where each goes in the current list (non-decreasing), then one pass of slices
        at = [self._position(cur[f], f.id) for f in new]
        out: list[Flow] = []
        prev = 0
        for i, f in zip(at, new, strict=True):
            out += flows[prev:i]
            out.append(f)
            prev = i
        out += flows[prev:]
        self._flows = out

    def _remove_many(self, gone: list[Flow]) -> None:
        """Take shown flows out, in one pass over the list (their cached values may be stale)."""
        goneset = set(gone)
        self._shown.difference_update(goneset)
        self._flows = list(filterfalse(goneset.__contains__, self._flows))

    def _remove_shown(self, flow: Flow) -> None:
        """Take `flow` out of the shown list; its cached value must still be the one it was placed by."""
        if flow not in self._shown:
            return
        self._shown.discard(flow)
        del self._flows[self._position(self._cur[flow], flow.id)]

    def _rebuild(self, matching: list[Flow] | None = None, same_flows: bool = False) -> None:
        """Re-filter and re-sort everything (filter, marked-only or sort key changed). `matching`:
        the stored flows that pass, in store order, when the caller already knows them;
        `same_flows`: they are the flows shown now (a new order only)."""
        focus = self._focus
        # Allocation-heavy but creates no cyclic garbage: keep the cyclic GC from walking every
        # stored flow in the middle of it (measured: up to 5x slower with 50 000 flows).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            flows = self._matching() if matching is None else matching
            # Ties must fall in id order: arrival order is id order except for the odd flow
            # published late. Then a stable sort by the cached value (cheap on sorted input).
            if not self._store_in_id_order:
                flows.sort(key=_ID)
            flows.sort(key=self._cur.__getitem__)
            self._flows = flows
            if not same_flows:
                self._shown = set(flows)
        finally:
            if gc_was_enabled:
                gc.enable()
        if self.follow:
            self._focus = self.newest_shown()
        else:
            self._refocus(self._sort_pos(focus) if focus is not None else None)
        self.version += 1

    def _matching(self, flows: list[Flow] | None = None) -> list[Flow]:
        """The stored flows (or `flows`) the marked-only switch and the filter let through."""
        if flows is None:
            flows = list(self._store.values())
        if self.marked_only:
            flows = [f for f in flows if f.marked]
        flt = self._filter
        if flt is not None and self.filter_enabled:
            flows = list(filter(flt.predicate, flows))
        return flows

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
            if f.id not in store:
                if store and f.id < self.newest_id:
                    self._store_in_id_order = False
                store[f.id] = f
                self._cache_vals(f)
        if self._off_passing is not None:
            self._note_unchecked(batch)
        dropped: list[Flow] = []
        while len(store) > self.max_flows:
            dropped.append(store.popitem(last=False)[1])
        focus_pos = None
        if dropped:
            self.dropped += len(dropped)
            if self._focus is not None and self._focus in self._shown:
                focus_pos = self._sort_pos(self._focus)
            self._drop_from_shown(dropped)
            self._forget_off(dropped)
            for f in dropped:
                self._uncache_vals(f)
        match = self.matches
        shown = self._shown
        new = [f for f in batch if f.id in store and f not in shown and match(f)]
        newest = new[-1] if new else None
        self._insert_many(new)
        if self.follow and newest is not None:
            self._focus = newest
        elif dropped:
            self._refocus(focus_pos)
        elif self._focus is None and self._flows:
            self._focus = self[0]
        self.version += 1

    def _drop_from_shown(self, gone: list[Flow]) -> None:
        # Locate every dropped flow first (indexes stay valid), then delete contiguous runs from the
        # end: in time order the dropped flows are a prefix, so this is one slice deletion.
        if self.sort_key != "time" and len(gone) >= _BULK:  # scattered all over the list
            self._remove_many(gone)
            return
        shown, cur = self._shown, self._cur
        idxs = sorted(self._position(cur[f], f.id) for f in gone if f in shown)
        shown.difference_update(gone)
        flows = self._flows
        while idxs:
            end = idxs.pop()
            start = end
            while idxs and idxs[-1] == start - 1:
                start = idxs.pop()
            del flows[start:end + 1]

    def update(self, flow: Flow) -> None:
        self.update_many((flow,))

    def update_many(self, flows: Iterable[Flow]) -> None:
        """Flows that changed (response arrived, error, mark): re-test the filter, re-place by key."""
        changed = False
        cur, valfn = self._cur, _VAL_FUNCS[self.sort_key]
        if self._off_passing is not None:
            flows = list(flows)
            self._note_unchecked(flows)
        place: list[Flow] = []  # to (re)insert once all are known
        moved: list[Flow] = []  # shown under a value that changed: out first, then back in
        for f in flows:
            if self._store.get(f.id) is not f:
                continue  # dropped or deleted meanwhile
            changed = True
            was_shown = f in self._shown
            if self.matches(f):
                if not was_shown:
                    self._cache_vals(f)
                    place.append(f)
                elif valfn(f) != cur[f]:
                    moved.append(f)  # its cached value stays the one it is placed by until it is out
                    place.append(f)
                else:
                    self._cache_vals(f)
            else:
                if was_shown:
                    self._remove_shown_keep_focus(f)
                self._cache_vals(f)
        if moved:
            if len(moved) < _BULK:
                for f in moved:
                    self._remove_shown(f)
            else:
                self._remove_many(moved)
            for f in moved:
                self._cache_vals(f)
        self._insert_many(place)
        if self._focus is None and self._flows:  # the first flow shown came by an update (a mark)
            self._focus = self.newest_shown() if self.follow else self[0]
        if changed:
            self.version += 1

    def _remove_shown_keep_focus(self, flow: Flow) -> None:
        was_focus = flow is self._focus
        pos = self._sort_pos(flow)
        self._remove_shown(flow)
        if was_focus:
            self._focus = None
            self._refocus(pos)

    # ------------------------------------------------------------------ user actions

    def delete(self, flows: Iterable[Flow]) -> int:
        """Remove flows from the view (not from capture files). Returns how many were removed."""
        store = self._store
        gone = [g for g in (store.pop(f.id, None) for f in list(flows)) if g is not None]
        if not gone:
            return 0
        if len(gone) < _BULK:
            for f in gone:
                self._remove_shown_keep_focus(f)
        else:
            # Many at once (the engine dropped its oldest flows, or the user deleted a selection):
            # take them out of the shown list in slices, as add_many drops the oldest.
            focus = self._focus
            focus_gone = focus is not None and focus in self._shown and any(g is focus for g in gone)
            focus_pos = self._sort_pos(focus) if focus_gone else None
            self._drop_from_shown(gone)
            if focus_gone:
                self._focus = None
                self._refocus(focus_pos)
        self._forget_off(gone)
        for f in gone:
            self._uncache_vals(f)
        self.version += 1
        return len(gone)

    def clear(self) -> int:
        n = len(self._store)
        self._store.clear()
        for vals in self._vals.values():
            vals.clear()
        self._store_in_id_order = True
        self._flows, self._shown = [], set()
        self._drop_off_state()
        self._focus = None
        self.version += 1
        return n

    def duplicate(self, flow: Flow) -> Flow:
        """Copy `flow` into the view (it sorts next to the original by time) and focus the copy."""
        dup = copy_flow(flow)
        if self.marked_only:
            dup.marked = True  # an unmarked copy would vanish at once: the user never saw it made
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
        self._drop_off_state()
        if not same:
            self._rebuild()

    def set_filter_in_steps(self, flt: Filter | None, chunk: int = 5000) -> Generator[None, None, None]:
        """`set_filter(flt, remember=False)` computed a slice of `chunk` flows at a time, yielding
        between slices so an event loop can handle keys meanwhile (the filter bar's live preview).
        The filter is applied when the iterator is exhausted; dropped before that, nothing changed.
        `stepping` is true meanwhile: the caller must not change the view (the app holds new flows
        back until it is false)."""
        if (flt.expr if flt else "") == self.filter_expr and self.filter_enabled:
            self._filter = flt
            return
        old = self._filter, self.filter_enabled
        stored = list(self._store.values())
        matching: list[Flow] = []
        self.stepping = True
        try:
            for i in range(0, len(stored), chunk):
                self._filter, self.filter_enabled = flt, True
                matching += self._matching(stored[i:i + chunk])
                self._filter, self.filter_enabled = old
                yield
            self._filter, self.filter_enabled = flt, True
            self._drop_off_state()
            self._rebuild(matching)
        finally:
            self.stepping = False

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
        if self.filter_enabled:
            # the shown flows are those that pass (unless marked-only hides some): keep them
            self._off_passing = None if self.marked_only else self._shown
            self._off_unchecked = {}
            self.filter_enabled = False
            self._rebuild()
        else:
            self.filter_enabled = True
            self._rebuild(self._passing_again())
        return self.filter_enabled

    def _passing_again(self) -> list[Flow] | None:
        """The stored flows that pass the filter being switched back on, in store order, from
        what passed when it was switched off plus a test of the flows added or changed since."""
        passing, unchecked = self._off_passing, self._off_unchecked
        self._drop_off_state()
        if passing is None:
            return None
        pred, store = self._filter.predicate, self._store  # type: ignore[union-attr]
        for f in unchecked:
            if store.get(f.id) is not f:
                continue
            if pred(f):
                passing.add(f)
            else:
                passing.discard(f)
        return list(filter(passing.__contains__, store.values()))

    def _note_unchecked(self, flows: Iterable[Flow]) -> None:
        unchecked = self._off_unchecked
        unchecked.update(dict.fromkeys(flows))
        if len(unchecked) > self.max_flows:  # cheaper to re-filter everything
            self._drop_off_state()

    def _forget_off(self, flows: Iterable[Flow]) -> None:
        """Flows gone from the store: kept alive by nothing here (the off state holds references)."""
        if self._off_passing is not None:
            self._off_passing.difference_update(flows)
            for f in flows:
                self._off_unchecked.pop(f, None)

    def _drop_off_state(self) -> None:
        self._off_passing, self._off_unchecked = None, {}

    def set_marked_only(self, value: bool | None = None) -> bool:
        self.marked_only = (not self.marked_only) if value is None else value
        self._drop_off_state()
        self._rebuild()
        return self.marked_only

    # ------------------------------------------------------------------ sort

    def set_sort(self, key: str, reverse: bool | None = None) -> None:
        if key not in _VAL_FUNCS:
            raise ValueError(f"unknown sort key {key!r} (choose from {', '.join(SORT_KEYS)})")
        changed = key != self.sort_key
        self.sort_key = key
        if changed:
            valfn = _VAL_FUNCS[key]
            self._cur.clear()  # the old key's values go first: never two sets of them at once
            self._vals = {key: {f: valfn(f) for f in self._store.values()}}
        self._cur = self._vals[key]
        if reverse is not None and reverse != self.sort_reverse:
            self.sort_reverse = reverse
            self.version += 1
        if changed:  # the same flows in another order: no need to run the filter again
            stored = self._store.values()
            everything = len(self._flows) == len(self._store)
            self._rebuild(list(stored) if everything else list(filter(self._shown.__contains__, stored)),
                          same_flows=True)

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
