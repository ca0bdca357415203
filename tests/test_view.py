"""FlowView: bounded store, incremental filtering/sorting, focus, marks, follow."""

from __future__ import annotations

import gc
import random
import weakref

import pytest

from proxycore.flows import view as viewmod
from proxycore.flows.filter import FilterError, parse
from proxycore.flows.flow import DONE, ERROR, Flow, Headers, Request, Response
from proxycore.flows.view import SORT_KEYS, FlowView, flows_by_selector


def mk(method: str = "GET", host: str = "example.com", path: str = "/", status: int | None = 200,
       size: int = 0, start: float = 1000.0, dur: float = 0.05, error: str | None = None) -> Flow:
    f = Flow(Request(method, "http", host, 80, path, headers=Headers.from_pairs([("Host", host)])))
    f.timings.start = start
    if status is not None:
        f.response = Response(status, "OK", headers=Headers.from_pairs([("Content-Type", "text/plain")]),
                              body=b"x" * size)
        f.timings.end = start + dur
        f.state = DONE
    if error:
        f.error = error
        f.state = ERROR
        f.timings.end = start + dur
    return f


def ids(view: FlowView) -> list[int]:
    return [f.id for f in view.shown()]


def test_add_keeps_time_order_and_counts() -> None:
    v = FlowView()
    fs = [mk(start=1000 + i) for i in range(5)]
    v.add_many(fs)
    assert len(v) == 5 and v.total == 5
    assert ids(v) == [f.id for f in fs]
    assert v[0] is fs[0] and v[-1] is fs[-1]
    # an out-of-order start time is inserted in place, not appended
    late = mk(start=1002.5)
    v.add(late)
    assert ids(v).index(late.id) == 3


def test_max_flows_drops_oldest() -> None:
    v = FlowView(max_flows=3)
    fs = [mk(start=1000 + i) for i in range(5)]
    for f in fs:
        v.add(f)
    assert ids(v) == [f.id for f in fs[2:]]
    assert v.total == 3 and v.dropped == 2
    assert v.get(fs[0].id) is None
    # a bulk add bigger than the cap keeps only the newest (rebuild path)
    big = [mk(start=2000 + i) for i in range(200)]
    v2 = FlowView(max_flows=100)
    v2.add_many(big[:100])
    v2.add_many(big[100:])
    assert ids(v2) == [f.id for f in big[100:]]
    with pytest.raises(ValueError):
        FlowView(max_flows=0)


def test_filter_set_toggle_history_and_errors() -> None:
    v = FlowView()
    a, b, c = mk("GET", path="/api/a"), mk("POST", path="/api/b"), mk("GET", path="/static/x.css")
    v.add_many([a, b, c])
    v.set_filter("~m post")
    assert ids(v) == [b.id]
    assert v.filter_expr == "~m post" and v.filter_active
    # flows added later are matched on the way in
    d = mk("POST", path="/late")
    v.add(d)
    assert ids(v) == [b.id, d.id]
    assert v.total == 4
    # toggle off shows everything, toggle on restores the same filter
    assert v.toggle_filter() is False
    assert len(v) == 4 and v.filter_expr == "~m post"
    assert v.toggle_filter() is True
    assert ids(v) == [b.id, d.id]
    # a syntax error leaves the current filter in place
    with pytest.raises(FilterError) as ei:
        v.set_filter("~m post & (")
    assert ei.value.position >= 0
    assert ids(v) == [b.id, d.id]
    v.set_filter("api")
    assert ids(v) == [a.id, b.id]
    assert v.filter_history == ["~m post", "api"]
    v.set_filter("~m post")  # re-used expressions move to the end of the history
    assert v.filter_history == ["api", "~m post"]
    v.set_filter("")
    assert v.filter is None and len(v) == 4
    assert v.count_matching(None) == 4


def test_update_refilters_one_flow() -> None:
    v = FlowView()
    f = mk(status=None)
    v.add(f)
    v.set_filter("~s")
    assert len(v) == 0
    f.response = Response(201, "Created")
    f.timings.end = f.timings.start + 0.01
    v.update(f)
    assert ids(v) == [f.id]
    v.set_filter("~c 201")
    assert len(v) == 1
    f.response.status = 500
    v.update(f)
    assert len(v) == 0


def test_sort_keys_reverse_and_cycle() -> None:
    v = FlowView()
    a = mk("POST", host="b.example", size=10, start=1000, dur=0.3, status=404)
    b = mk("GET", host="a.example", size=300, start=1001, dur=0.1, status=200)
    c = mk("DELETE", host="c.example", size=0, start=1002, dur=2.0, status=None, error="connect failed")
    v.add_many([a, b, c])
    expect = {
        "time": [a, b, c],
        "method": [c, b, a],
        "url": [b, a, c],
        "size": [c, a, b],
        "duration": [b, a, c],
        "status": [b, a, c],
    }
    for key in SORT_KEYS:
        v.set_sort(key)
        assert ids(v) == [f.id for f in expect[key]], key
    v.set_sort("size")
    v.toggle_reverse()
    assert ids(v) == [b.id, a.id, c.id]
    assert v[0] is b and v.index_of(c) == 2
    v.toggle_reverse()
    v.set_sort("time")
    assert [v.cycle_sort() for _ in range(len(SORT_KEYS))] == list(SORT_KEYS[1:]) + ["time"]
    with pytest.raises(ValueError):
        v.set_sort("colour")


def test_dynamic_sort_key_repositions_on_update() -> None:
    v = FlowView()
    v.set_sort("size")
    a, b = mk(size=100), mk(size=200)
    v.add_many([a, b])
    assert ids(v) == [a.id, b.id]
    b.response.body_size = 5
    v.update(b)
    assert ids(v) == [b.id, a.id]


def test_marks_and_marked_only() -> None:
    v = FlowView()
    fs = [mk(start=1000 + i) for i in range(4)]
    v.add_many(fs)
    assert v.toggle_mark([fs[1]]) is True
    assert fs[1].marked
    v.set_marked_only(True)
    assert ids(v) == [fs[1].id]
    # marking while marked-only shows the flow; unmarking hides it
    v.set_marked([fs[3]], True)
    assert ids(v) == [fs[1].id, fs[3].id]
    v.toggle_mark([fs[1]])
    assert ids(v) == [fs[3].id]
    v.set_marked_only(False)
    v.set_filter("~marked")
    assert ids(v) == [fs[3].id]
    # toggle over a mixed selection marks all first
    assert v.toggle_mark(fs) is True
    assert len(v) == 4


def test_delete_clear_duplicate_and_focus() -> None:
    v = FlowView()
    fs = [mk(start=1000 + i) for i in range(5)]
    v.add_many(fs)
    assert v.focus is fs[-1]  # follow is on by default
    v.follow = False
    v.set_focus_index(2)
    assert v.focus is fs[2]
    assert v.delete([fs[2]]) == 1
    assert v.focus is fs[3]  # the next flow takes the focus
    assert v.total == 4
    dup = v.duplicate(fs[1])
    assert dup.id != fs[1].id and dup.request is not fs[1].request
    assert dup.request.url == fs[1].request.url
    assert ids(v).index(dup.id) == ids(v).index(fs[1].id) + 1  # sorts next to the original
    assert v.focus is dup
    assert v.clear() == 5
    assert len(v) == 0 and v.focus is None


def test_follow_tracks_new_flows_until_turned_off() -> None:
    v = FlowView()
    v.add_many([mk(start=1000 + i) for i in range(3)])
    new = mk(start=2000)
    v.add(new)
    assert v.focus is new
    v.follow = False
    v.set_focus_index(0)
    first = v.focus
    v.add(mk(start=3000))
    assert v.focus is first
    # reversed time order: the newest is at the top
    v.follow = True
    v.toggle_reverse()
    newest = mk(start=4000)
    v.add(newest)
    assert v.focus is newest and v.focus_index == 0


def test_focus_survives_filter_to_nearest() -> None:
    v = FlowView()
    v.follow = False
    fs = [mk("GET" if i % 2 else "POST", start=1000 + i) for i in range(6)]
    v.add_many(fs)
    v.set_focus(fs[2])  # a POST
    v.set_filter("~m get")
    assert v.focus is fs[3]  # nearest shown flow after it


def test_selectors() -> None:
    v = FlowView()
    fs = [mk(start=1000 + i) for i in range(3)]
    v.add_many(fs)
    fs[0].marked = True
    v.set_filter("~m nothing-matches")
    assert flows_by_selector(v, "@shown") == []
    assert flows_by_selector(v, "@all") == fs
    assert flows_by_selector(v, "@marked") == [fs[0]]
    assert flows_by_selector(v, "@hidden") == fs
    assert flows_by_selector(v, f"{fs[1].id},{fs[2].id},99999") == [fs[1], fs[2]]
    with pytest.raises(ValueError, match="bad flow selector"):
        flows_by_selector(v, "@nope")


def test_incremental_matches_full_rebuild_randomised() -> None:
    """Whatever the sequence of adds/updates/drops, the shown list equals a from-scratch computation."""
    rnd = random.Random(7)
    v = FlowView(max_flows=300)
    v.set_filter("~m get | ~c 404")
    v.set_sort("status")
    live: list[Flow] = []
    for step in range(2000):
        op = rnd.random()
        if op < 0.6 or not live:
            f = mk(rnd.choice(["GET", "POST", "PUT"]), start=1000 + rnd.random() * 100,
                   status=rnd.choice([None, 200, 404, 500]), size=rnd.randrange(1000))
            live.append(f)
            v.add(f)
        else:
            f = rnd.choice(live)
            f.response = Response(rnd.choice([200, 404, 500]), body=b"y" * rnd.randrange(1000))
            v.update(f)
        if step % 500 == 499:
            v.set_sort(rnd.choice(SORT_KEYS))
    incremental = ids(v)
    v._rebuild()
    assert ids(v) == incremental
    assert len(incremental) <= 300


def test_many_flows_add_is_fast_enough_structurally() -> None:
    # 50 000 flows through a filtered view: must not re-filter per add (would take minutes)
    v = FlowView(max_flows=50000)
    v.set_filter("~m get")
    flows = [mk("GET" if i % 3 else "POST", start=1000 + i * 0.001) for i in range(60000)]
    for i in range(0, len(flows), 500):
        v.add_many(flows[i:i + 500])
    assert v.total == 50000
    assert len(v) == sum(1 for f in flows[10000:] if f.request.method == "GET")


def _expected(v: FlowView, live: dict[int, Flow]) -> list[int]:
    """From scratch, independent of the view's caches: filter, then sort by (value, id)."""
    from proxycore.flows.view import _VAL_FUNCS

    stored = [f for f in live.values() if v.get(f.id) is f]
    shown = [f for f in stored if v.matches(f)]
    shown.sort(key=lambda f: (_VAL_FUNCS[v.sort_key](f), f.id), reverse=v.sort_reverse)
    return [f.id for f in shown]


@pytest.mark.parametrize("bulk", [1, 4, 10_000])
def test_view_equals_brute_force_under_random_operations(bulk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adds (some out of id order), responses that move flows, marks, deletes, drops, sort, reverse,
    filter on/off, marked only, clear: after every step the shown list, index_of and focus agree with
    a brute force. `bulk`: from how many flows at once the list is rebuilt in one pass."""
    monkeypatch.setattr(viewmod, "_BULK", bulk)
    rnd = random.Random(11)
    v = FlowView(max_flows=150)
    live: dict[int, Flow] = {}
    held: list[Flow] = []  # created but published later: arrives after flows with higher ids
    for step in range(3000):
        op = rnd.random()
        if op < 0.45:
            batch = [mk(rnd.choice(["GET", "POST"]), path=rnd.choice(["/a", "/b", "/c"]),
                        start=1000 + rnd.randrange(50),  # many equal start times: ties by id
                        status=rnd.choice([None, 200, 404]), size=rnd.randrange(3))
                     for _ in range(rnd.choice([1, 1, 1, 3, 8]))]
            if rnd.random() < 0.1:
                held += batch
                continue
            if rnd.random() < 0.3:
                batch, held = batch + held, []
            for b in batch:
                live[b.id] = b
            v.add_many(batch)
        elif op < 0.7 and live:
            changed = rnd.sample(list(live.values()), min(len(live), rnd.choice([1, 1, 2, 6])))
            for f in changed:
                f.response = Response(rnd.choice([200, 404, 500]), body=b"y" * rnd.randrange(3))
                f.timings.end = f.timings.start + rnd.random()
            v.update_many(changed)
        elif op < 0.78 and live:
            v.toggle_mark([rnd.choice(list(live.values()))])
        elif op < 0.83 and len(v):
            v.delete([v[rnd.randrange(len(v))]])
        elif op < 0.88:
            v.set_sort(rnd.choice(SORT_KEYS), reverse=rnd.random() < 0.5)
        elif op < 0.91:
            v.set_filter(rnd.choice(["", "~m get", "~c 404", "!~u /a", "~marked | ~m post"]), remember=False)
        elif op < 0.96:
            v.toggle_filter()  # switched back on, it re-tests only what was added or changed meanwhile
        elif op < 0.975:
            v.set_marked_only()
        elif op < 0.98:
            v.clear()
        else:
            v.follow = not v.follow
        want = _expected(v, live)
        assert ids(v) == want, f"step {step}"
        for pos in {0, len(want) - 1, rnd.randrange(len(want))} if want else ():
            assert v.index_of(v[pos]) == pos
        if want:
            assert v.focus is not None and v.is_shown(v.focus)
        else:
            assert v.focus is None


def test_switched_off_filter_keeps_no_flow_alive() -> None:
    """The filter switched off remembers what passed; flows dropped, deleted or cleared meanwhile
    must not be kept in memory by that."""
    def alive_after(action) -> int:
        v = FlowView(max_flows=10)
        v.add_many(mk(path=f"/p{i}") for i in range(10))
        v.set_filter("~u /p")
        v.toggle_filter()
        refs = [weakref.ref(f) for f in v.all_flows()]
        action(v)
        gc.collect()
        return sum(r() is not None for r in refs)

    assert alive_after(lambda v: None) == 10
    assert alive_after(lambda v: v.add_many(mk() for _ in range(10))) == 0  # dropped by max_flows
    assert alive_after(lambda v: v.delete(v.all_flows())) == 0
    assert alive_after(lambda v: v.clear()) == 0


def test_filter_in_steps_equals_set_filter_and_can_be_abandoned() -> None:
    rnd = random.Random(3)
    flows = [mk(rnd.choice(["GET", "POST"]), path=f"/p{i % 7}", start=1000 + i, status=rnd.choice([200, 404]))
             for i in range(1000)]
    stepped, direct = FlowView(), FlowView()
    for v in (stepped, direct):
        v.add_many(flows)
        v.set_sort("status")
        v.set_marked(flows[::5], True)
    before = ids(stepped)
    steps = stepped.set_filter_in_steps(parse("~m post & !~u /p3"), chunk=128)
    next(steps)
    next(steps)
    assert ids(stepped) == before and stepped.filter is None  # unchanged until the last slice
    assert stepped.stepping
    steps.close()  # a keystroke came: the preview is dropped
    assert ids(stepped) == before and stepped.filter is None and not stepped.stepping
    for v, marked_only in ((stepped, True), (direct, True)):
        v.set_marked_only(marked_only)
    n = sum(1 for _ in stepped.set_filter_in_steps(parse("~m post & !~u /p3"), chunk=128))
    assert n == 8  # 1000 flows in slices of 128
    direct.set_filter("~m post & !~u /p3", remember=False)
    assert ids(stepped) == ids(direct) and stepped.filter_expr == direct.filter_expr
    assert stepped.focus is direct.focus or stepped.focus.id == direct.focus.id
    list(stepped.set_filter_in_steps(None))
    direct.set_filter(None)
    assert ids(stepped) == ids(direct)
