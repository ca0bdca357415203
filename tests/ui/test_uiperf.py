"""What the UI's speed work must not change: rows fill the table's width exactly, the detail
beside the table follows the focus (wrapped for its width) without laying the screen out again,
Enter during the filter bar's preview applies the same result, and the newest shown flow is found
under any sort order."""

from __future__ import annotations

import asyncio
import time

from rich.cells import cell_len

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.detail import FlowDetail
from omniproxy_tui.widgets.filterbar import FilterBar
from omniproxy_tui.widgets.flowtable import FlowTable
from proxycore.flows.flow import DONE, Flow, Headers, Request, Response
from proxycore.flows.view import SORT_KEYS, FlowView
from proxycore.options import Options

WIDE = (160, 48)


def _flow(i: int, host: str = "api.example.com", path: str = "/items", status: int = 200,
          body: bytes = b"{}") -> Flow:
    req = Request("GET", "https", host, 443, f"{path}?n={i}", headers=Headers([(b"Host", host.encode())]),
                  authority=host)
    f = Flow(req, client_addr=("127.0.0.1", 40000 + i))
    f.timings.start = 1_000_000.0 + i
    f.response = Response(status, "OK", headers=Headers.from_pairs([("Content-Type", "application/json")]),
                          body=body)
    f.timings.end = f.timings.start + 0.01
    f.state = DONE
    return f


async def _settle(pilot, app: OmniProxyApp) -> None:
    app._tick()
    await pilot.pause()
    await pilot.pause()


async def test_rows_fill_the_width_exactly() -> None:
    """Rows whose cells add up to the width skip Textual's length adjustment: every row, ASCII or
    not, cut or padded, must then be exactly as wide as the table."""
    app = OmniProxyApp(Options(port=0), start_proxy=False)
    hosts = ["a.test", "例え.テスト.example", "x" * 80 + ".example.com", "host:8080"]
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one(FlowTable)
        flows = [_flow(i, host=h, path="/" + "パス" * (i % 3) + "p" * (i * 7)) for i, h in enumerate(hosts * 3)]
        flows[1].marked = True
        flows[2].comment = "¶"
        for f in flows:
            app.on_flow_event("add", f)
        await _settle(pilot, app)
        for width in (60, 80, 99, 139, 140, 200):
            table._cache.clear()
            cols = table._layout(width)
            for f in flows:
                segs = table._row_segments(f, cols, width)
                assert sum(cell_len(s.text) for s in segs) == width, (width, f.request.host)


async def test_detail_beside_the_table_follows_the_focus_without_a_new_layout() -> None:
    app = OmniProxyApp(Options(port=0), start_proxy=False)
    async with app.run_test(size=WIDE) as pilot:
        # documents of different lengths: the detail's scroll height changes with the focus
        for i in range(30):
            f = _flow(i, path=f"/doc{i}")
            f.request.headers = Headers([(b"Host", b"api.example.com")] + [(b"X-N", b"%d" % n) for n in range(i)])
            app.on_flow_event("add", f)
        await _settle(pilot, app)
        screen = app.screen
        detail = screen.query_one("#detail", FlowDetail)
        layouts = []
        refresh_layout = screen._refresh_layout

        def counting(*args, **kwargs):
            layouts.append(1)
            return refresh_layout(*args, **kwargs)

        screen._refresh_layout = counting
        heights: set[int] = set()
        for key in ("k", "k", "k", "j"):
            await pilot.press(key)
            await pilot.pause()
            await pilot.pause()
            focus = app.view.focus
            assert detail.flow is focus
            view = detail.view()
            assert focus.request.target in view.doc.plain(0)
            heights.add(view.virtual_size.height)
            assert view.virtual_size.height >= len(view.doc)
        assert len(heights) > 1
        assert layouts == []  # a changed document height re-lays out nothing


async def test_detail_text_is_wrapped_again_after_the_pane_is_resized() -> None:
    app = OmniProxyApp(Options(port=0), start_proxy=False)
    async with app.run_test(size=WIDE) as pilot:
        long_path = "/" + "segment/" * 30
        app.on_flow_event("add", _flow(0, path=long_path))
        await _settle(pilot, app)
        detail = app.screen.query_one("#detail", FlowDetail)
        view = detail.view()
        rows_before = view.virtual_size.height
        await pilot.press("]")  # a wider side pane: fewer rows for the same text
        await pilot.pause()
        await pilot.pause()
        assert view._width == view.scrollable_content_region.width
        assert view.virtual_size.height < rows_before
        first = view.render_line(0).text
        assert first.startswith("GET https://api.example.com/segment/")
        assert len(first.rstrip()) > 60  # drawn for the new width, not the old one


async def test_enter_during_the_filter_preview_applies_that_filter() -> None:
    app = OmniProxyApp(Options(port=0), start_proxy=False)
    async with app.run_test(size=WIDE) as pilot:
        for i in range(12_000):  # more than one preview slice (5 000 flows)
            app.on_flow_event("add", _flow(i, path="/small" if i % 3 == 0 else "/big"))
        await _settle(pilot, app)
        await pilot.press("f")
        bar = app.screen.query_one(FilterBar)
        bar.input.value = "~u small"
        bar.apply_now()  # what the debounce timer calls
        deadline = time.monotonic() + 5
        while bar._preview_steps is None or not app.view.stepping:
            assert time.monotonic() < deadline, "the preview never started"
            await asyncio.sleep(0)
        assert app.view.filter_expr == ""  # mid-preview: not applied yet
        await pilot.press("enter")
        await pilot.pause()
        assert not bar.is_open and not app.view.stepping
        assert app.view.filter_expr == "~u small"
        assert len(app.view) == 4_000
        assert all("/small" in f.request.target for f in app.view.shown())
        assert app.view.filter_history[-1] == "~u small"


def test_newest_shown_under_every_sort_order() -> None:
    v = FlowView()
    flows = [_flow(i, status=200 + (i * 7) % 5) for i in range(200)]
    v.add_many(flows)
    v.set_filter("!~u n=199")  # the newest flow is hidden: the next one is the newest shown
    for key in SORT_KEYS:
        v.set_sort(key)
        assert v.newest_shown() is flows[198], key
    v.set_filter("~u n=3")  # only far older flows shown: past the store's newest ones
    for key in SORT_KEYS:
        v.set_sort(key)
        assert v.newest_shown() is max(v.shown(), key=lambda f: f.id), key
