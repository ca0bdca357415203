"""The detail view's additions: hex search across rows, next/previous flow, the query, cookie and
certificate tables. Pilot tests assert on what a user sees."""

from __future__ import annotations

import random
from pathlib import Path

from snapshot_kit import feed, make_app, until
from test_detail import DetailApp, make_flow, screen_text, seen, settle

from omniproxy_tui.views.contentviews import view_body
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail
from omniproxy_tui.widgets.lineview import Document, find_matches

CHAIN = (Path(__file__).parents[1] / "data" / "example_chain.pem").read_text()


def _binary_with_needles(count: int = 30) -> tuple[bytes, int]:
    """Random bytes with `count` copies of "needle" at offsets that straddle 16-byte rows too."""
    rng = random.Random(7)
    data = bytearray(rng.randbytes(16 * 200))
    for b in (ord("n"), ord("N")):  # no accidental matches
        data = bytearray(x if x not in (b,) else 0 for x in data)
    offsets = [i * 100 + (i % 16) for i in range(count)]  # every position in a row, some across
    for off in offsets:
        data[off:off + 6] = b"needle"
    across = sum(1 for off in offsets if off // 16 != (off + 5) // 16)
    return bytes(data), across


def test_hex_search_finds_every_match_across_row_breaks() -> None:
    data, across = _binary_with_needles()
    assert across >= 4  # the old row-by-row search missed these
    doc = Document()
    view = view_body(data, "application/octet-stream", limit_lines=None)
    assert view.name == "hex"
    doc.add("title")
    doc.add_lines(view.lines)
    found = find_matches(doc, "NEEDLE")
    assert len(found) == 30
    # a match across a row break highlights both rows, in the hex and the text columns
    split = next(m for m in found if len({p[0] for p in m[3]}) == 2)
    rows = sorted({p[0] for p in split[3]})
    assert rows[1] == rows[0] + 1
    texts = [doc.plain(line)[s:e] for line, s, e in split[3] if s >= 60]
    assert "".join(texts) == "needle"
    hexes = " ".join(doc.plain(line)[s:e] for line, s, e in split[3] if s < 60)
    assert bytes.fromhex(hexes.replace("  ", " ")) == b"needle"


def test_hex_search_by_bytes() -> None:
    data = b"\x00" * 14 + b"\xde\xad\xbe\xef" + b"\x00" * 30 + b"\xde\xad\xbe\xef"
    doc = Document()
    doc.add_lines(view_body(data, None, limit_lines=None).lines)
    assert len(find_matches(doc, "de ad be ef")) == 2
    assert len(find_matches(doc, "DEADBEEF")) == 2
    assert find_matches(doc, "beefcafe") == []


async def test_hex_search_count_in_the_detail() -> None:
    data, _ = _binary_with_needles()
    flow = make_flow(data, "application/octet-stream")
    app = DetailApp(flow)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = app.query_one(FlowDetail)
        await pilot.press("2", "slash", *"needle", "enter")
        await settle(pilot)
        assert "match 1/30" in detail.status_text
        for _ in range(29):
            await pilot.press("n")
        await pilot.pause()
        assert "match 30/30" in detail.status_text


# ------------------------------------------------------------------ next / previous flow


async def test_space_and_K_move_between_flows_on_the_detail_screen() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(pilot)
        await pilot.press("home", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        assert app.screen.flow.id == 101
        await pilot.press("2")  # the tab stays as the flow changes, as in mitmproxy
        await pilot.press("space")
        await until(pilot, lambda: app.screen.flow.id == 102, "the next flow")
        assert "/v1/orders" in screen_text(app).splitlines()[0]
        assert app.screen.query_one(FlowDetail).active_tab == "response"
        assert '"status": "created"' in seen(app.screen.query_one(FlowDetail).view())
        await pilot.press("J")
        await until(pilot, lambda: app.screen.flow.id == 103, "J: next")
        await pilot.press("K", "K")
        await until(pilot, lambda: app.screen.flow.id == 101, "K: previous")
        assert app.view.focus.id == 101 and not app.view.follow  # the table follows the detail
        await pilot.press("K")  # at the first flow: stays, says so
        await pilot.pause()
        assert app.screen.flow.id == 101
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen), "back to the list")
        assert app.view.focus.id == 101


async def test_next_flow_walks_the_filtered_list() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(pilot)
        await pilot.press("f", *"~m post", "enter")
        await until(pilot, lambda: len(app.view) == 2, "the filtered list")
        await pilot.press("home", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        assert app.screen.flow.id == 102
        await pilot.press("space")
        await until(pilot, lambda: app.screen.flow.id == 107, "the next POST (103-106 are hidden)")
        await pilot.press("space")  # the last one: stays
        await pilot.pause()
        assert app.screen.flow.id == 107


async def test_next_flow_in_the_wide_pane_moves_the_table_too() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await feed(pilot)
        await pilot.press("home", "enter")
        detail = app.screen.query_one(FlowDetail)
        await until(pilot, lambda: detail.has_focus_within and detail.flow.id == 101, "the pane focused")
        await pilot.press("space")
        await until(pilot, lambda: detail.flow is not None and detail.flow.id == 102, "the pane's next flow")
        assert app.view.focus.id == 102 and detail.has_focus_within
        await pilot.press("K")
        await until(pilot, lambda: detail.flow.id == 101, "the pane's previous flow")


# ------------------------------------------------------------------ query, cookies, certificates


def shift_timings(flow, start: float) -> None:
    t = flow.timings
    delta = start - t.start
    for name in t.__slots__:
        if getattr(t, name) is not None:
            setattr(t, name, getattr(t, name) + delta)


def cookie_flow():
    flow = make_flow()
    flow.request.target = "/v1/items?page=2&q=caf%C3%A9+au+lait&empty=&tag=a&tag=b"
    flow.request.headers.set("Cookie", "sid=abc123; theme=dark; consent=")
    flow.response.headers.fields.append((b"Set-Cookie", b"sid=xyz789; Domain=.example.com; Path=/; "
                                         b"Expires=Wed, 21 Oct 2037 07:28:00 GMT; Secure; HttpOnly; SameSite=Lax"))
    flow.response.headers.fields.append((b"Set-Cookie", b"theme=; Max-Age=0; Path=/settings"))
    return flow


async def test_query_and_cookie_tables_in_the_request_tab() -> None:
    app = DetailApp(cookie_flow())
    async with app.run_test(size=(100, 40)) as pilot:
        detail = app.query_one(FlowDetail)
        await pilot.pause()
        req = seen(detail.view("request"))
        assert "Query  5" in req
        assert "q      café au lait" in req  # decoded
        assert "empty  \n" not in req and "tag    a" in req and "tag    b" in req
        assert "Cookies  3" in req
        assert "sid      abc123" in req and "theme    dark" in req
        # the tables come before the body
        assert req.index("Cookies") < req.index("Body")
        # space types a space in the search box (it moves to the next flow only outside it)
        await pilot.press("slash", *"au", "space", *"lait")
        await pilot.pause()
        assert detail.query_one("#detail-search-input").value == "au lait"
        assert "match 1/1" in detail.status_text


async def test_set_cookie_table_in_the_response_tab() -> None:
    app = DetailApp(cookie_flow())
    async with app.run_test(size=(120, 40)) as pilot:
        detail = app.query_one(FlowDetail)
        await pilot.press("2")
        await pilot.pause()
        resp = seen(detail.view("response"))
        assert "Set-Cookie  2" in resp
        assert "sid    xyz789" in resp
        line = next(r for r in resp.splitlines() if "2037-10-21" in r)
        for part in ("expires 2037-10-21 07:28:00 UTC", "domain .example.com", "path /", "samesite Lax",
                     "Secure", "HttpOnly"):
            assert part in line, part
        assert "theme  (empty)" in resp
        assert "expires now (deleted) · path /settings" in resp


async def test_certificate_chain_in_the_timing_tab() -> None:
    flow = make_flow()
    flow.server_tls.cert_chain = CHAIN
    shift_timings(flow, 1767268800.0)  # 2026-01-01 12:00: the leaf was valid then
    app = DetailApp(flow)
    async with app.run_test(size=(120, 60)) as pilot:
        detail = app.query_one(FlowDetail)
        await pilot.press("3")
        await pilot.pause()
        text = seen(detail.view("timing"))
        assert "Certificate chain  2 as sent by the server" in text
        assert "[1] CN=api.example.com" in text
        assert "names    api.example.com, *.api.example.com, example.com" in text
        assert "valid    2025-10-01 → 2026-12-30  valid, 362 days left" in text
        assert "[2] CN=Example Issuing CA,O=Example Trust,C=US" in text
        assert "(self-signed)" in text and "RSA 2048 bits · CA" in text
        assert "SHA-256  " in text and "SHA-1    " in text
        shift_timings(flow, 1798761600.0)  # 2027-01-01: the leaf had expired
        detail.show_flow(None)
        detail.show_flow(flow)
        await pilot.pause()
        assert "2025-10-01 → 2026-12-30  expired" in seen(detail.view("timing"))
