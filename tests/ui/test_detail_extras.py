"""The detail view's additions: hex search across rows, next/previous flow, the query, cookie and
certificate tables. Pilot tests assert on what a user sees."""

from __future__ import annotations

import random

from test_detail import DetailApp, make_flow, settle

from omniproxy_tui.views.contentviews import view_body
from omniproxy_tui.widgets.detail import FlowDetail
from omniproxy_tui.widgets.lineview import Document, find_matches
from proxycore.flows.flow import Headers, Response


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


def _unused() -> None:  # keep imports used by later tests
    Headers, Response  # noqa: B018
