"""FlowDetail and DetailScreen driven with Pilot: assertions on what a user sees."""

from __future__ import annotations

import json

from textual.app import App, ComposeResult
from textual.geometry import Offset
from textual.selection import Selection
from textual.widgets import TabbedContent

from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail
from omniproxy_tui.widgets.lineview import LineView
from proxycore.flows.flow import Flow, Headers, Request, Response, TLSInfo

MIB = 1024 * 1024
LONG_VALUE = "token-" + "abcdefghij" * 15


def make_flow(body: bytes | None = None, content_type: str = "application/json") -> Flow:
    req = Request(
        "POST", "https", "api.example.com", 443, "/v1/items?page=2",
        headers=Headers.from_pairs([
            ("Host", "api.example.com"), ("User-Agent", "curl/8.5"),
            ("Content-Type", "application/x-www-form-urlencoded"), ("X-Trace", LONG_VALUE),
        ]),
        body=b"name=Ada+Lovelace&lang=en",
    )
    flow = Flow(req, client_addr=("127.0.0.1", 50123))
    flow.server_addr = ("93.184.216.34", 443)
    if body is None:
        body = json.dumps({"id": 7, "name": "widget", "tags": ["a", "b"]}).encode()
    flow.response = Response(200, "OK", headers=Headers.from_pairs([
        ("Content-Type", content_type), ("Content-Length", str(len(body)))]), body=body)
    t = flow.timings
    t.connect_start, t.connect_end = t.start + 0.001, t.start + 0.012
    t.tls_end, t.request_sent = t.start + 0.040, t.start + 0.041
    t.first_byte, t.end = t.start + 0.120, t.start + 0.153
    server = TLSInfo()
    server.version, server.alpn, server.sni = "TLSv1.3", "h2", "api.example.com"
    server.cipher = "TLS_AES_256_GCM_SHA384"
    server.cert_subject, server.cert_issuer = "CN=api.example.com", "CN=Test CA"
    server.cert_not_after = "2030-01-01T00:00:00Z"
    flow.server_tls = server
    return flow


class DetailApp(App):
    """FlowDetail mounted as the app engineer would in the split pane."""

    def __init__(self, flow: Flow | None) -> None:
        super().__init__()
        self.flow = flow

    def compose(self) -> ComposeResult:
        yield FlowDetail(id="detail")

    def on_mount(self) -> None:
        self.query_one(FlowDetail).show_flow(self.flow)
        self.query_one(FlowDetail).focus()  # as the app does: focuses the visible tab's text


class ScreenApp(App):
    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def on_mount(self) -> None:
        self.push_screen(DetailScreen(self.flow))


def screen_text(app: App) -> str:
    """Every row of the screen as plain text (what the terminal would show)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def seen(view: LineView) -> str:
    return "\n".join(view.visible_text())


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_request_and_response_tabs_show_headers_and_pretty_body():
    app = DetailApp(make_flow())
    async with app.run_test(size=(100, 30)) as pilot:
        detail = app.query_one(FlowDetail)
        await pilot.pause()
        req = seen(detail.view("request"))
        assert "POST https://api.example.com/v1/items?page=2 HTTP/1.1" in req
        assert "User-Agent    curl/8.5" in req
        assert "Body  form" in req
        assert "name  Ada Lovelace" in req
        await pilot.press("2")
        await pilot.pause()
        assert detail.active_tab == "response"
        assert app.focused is detail.view("response")
        resp = seen(detail.view("response"))
        assert "HTTP/1.1 200 OK" in resp
        assert "Content-Type    application/json" in resp
        assert '  "name": "widget",' in resp
        assert '    "a",' in resp
        assert "JSON" in detail.status_text


async def test_search_finds_matches_and_n_N_move_between_them():
    items = [{"id": i, "needle": f"value-{i}"} for i in range(120)]  # 480 lines: under the cap
    app = DetailApp(make_flow(json.dumps(items).encode()))
    async with app.run_test(size=(80, 24)) as pilot:
        detail = app.query_one(FlowDetail)
        await pilot.press("2", "slash")
        await pilot.press(*"needle")
        await pilot.press("enter")
        await pilot.pause()
        view = detail.view("response")
        assert len(view.matches) == 120
        assert "match 1/120" in detail.status_text
        await pilot.press("n", "n")
        await pilot.pause()
        assert "match 3/120" in detail.status_text
        await pilot.press("N")
        await pilot.pause()
        assert "match 2/120" in detail.status_text
        # jump far down: the current match is scrolled into view
        for _ in range(30):
            await pilot.press("n")
        await pilot.pause()
        assert "match 32/120" in detail.status_text
        assert '"needle": "value-31"' in seen(view)
        # ...and highlighted differently from the other matches
        row = view.visible_text().index('    "needle": "value-31"')
        styles = {seg.text: seg.style for seg in view.render_line(row) if seg.text == "needle"}
        assert styles["needle"].bgcolor.name == "#ffd700"
        other = view.visible_text().index('    "needle": "value-30"')
        assert {seg.style.bgcolor.name for seg in view.render_line(other) if seg.text == "needle"} == {"#5f5f00"}
        assert "match 32/120" in screen_text(app)


async def test_escape_closes_search_before_leaving_the_screen():
    app = ScreenApp(make_flow())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("2", "slash", *"widget")
        await pilot.pause()
        detail = app.screen.query_one(FlowDetail)
        assert "match 1/1" in detail.status_text
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert detail.view().matches == []
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DetailScreen)


async def test_timing_tab_shows_phases_waterfall_and_tls():
    app = DetailApp(make_flow())
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert "total 153.0 ms" in app.query_one(FlowDetail).status_text
        text = seen(app.query_one(FlowDetail).view("timing"))
        for phase, ms in (("connect", "11.0 ms"), ("TLS", "28.0 ms"), ("wait", "79.0 ms"),
                          ("receive", "33.0 ms")):
            line = next(row for row in text.splitlines() if row.startswith(phase))
            assert ms in line and "█" in line
        assert "153.0 ms" in text
        assert "127.0.0.1:50123" in text and "93.184.216.34:443" in text
        assert "TLSv1.3" in text and "h2" in text and "CN=Test CA" in text
        assert "2030-01-01" in text


async def test_raw_tab_shows_heads_and_bodies_as_on_the_wire():
    app = DetailApp(make_flow())
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        text = seen(app.query_one(FlowDetail).view("raw"))
        assert "POST /v1/items?page=2 HTTP/1.1" in text
        assert "Host: api.example.com" in text
        assert "name=Ada+Lovelace&lang=en" in text
        assert "HTTP/1.1 200 OK" in text
        assert '{"id": 7, "name": "widget", "tags": ["a", "b"]}' in text


async def test_m_cycles_the_view_mode():
    app = DetailApp(make_flow())
    async with app.run_test(size=(100, 30)) as pilot:
        detail = app.query_one(FlowDetail)
        await pilot.press("2")
        seen_modes = []
        for _ in range(4):  # auto -> json -> xml -> text -> hex
            await pilot.press("m")
            await pilot.pause()
            seen_modes.append(detail.status_text.split(" ·")[0])
        assert seen_modes[-1] == "hex (view: hex)"
        assert "00000000  7b 22 69 64" in seen(detail.view("response"))


async def test_50_mib_body_opens_with_truncation_notice():
    item = b'{"id": 123456, "name": "abcdefghijklmnopqrstuvwxyz"}'
    body = b"[" + b",".join([item] * (50 * MIB // (len(item) + 1))) + b"]"
    app = ScreenApp(make_flow(body))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        detail = app.screen.query_one(FlowDetail)
        view = detail.view("response")
        assert '    "id": 123456,' in seen(view)
        assert "first 512 lines" in detail.status_text
        await pilot.press("end")
        await pilot.pause()
        assert "… first 512 lines shown (50M body) — press f for the whole body" in screen_text(app)


async def test_f_computes_the_whole_body_in_a_worker_and_keeps_the_scroll():
    body = json.dumps([{"id": i} for i in range(5000)]).encode()  # 15 002 lines pretty-printed
    app = ScreenApp(make_flow(body))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("2")
        detail = app.screen.query_one(FlowDetail)
        view = detail.view("response")
        view.scroll_to(y=100, animate=False, immediate=True)
        await pilot.press("f")
        await settle(pilot)
        assert len(view.doc) > 15_000
        assert "first 512" not in detail.status_text and "15,002 lines" in detail.status_text
        assert view.scroll_y == 100
        await pilot.press("end")
        await pilot.pause()
        assert seen(view).rstrip().endswith("]")


async def test_80x24_screen_nothing_cut_off():
    app = ScreenApp(make_flow())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        rows = text.splitlines()
        assert len(rows) == 24
        assert "POST https://api.example.com/v1/items?page=2" in rows[0]
        assert all(t in rows[1] for t in ("Request", "Response", "Timing", "Raw"))
        # the long header value wraps (hanging under the value column) instead of being cut
        joined = "".join(r.strip() for r in rows if "abcdefghij" in r)
        assert LONG_VALUE in joined.replace("X-Trace", "").replace(" ", "")
        assert "Esc" in rows[-1] or "esc" in rows[-1]
        for key in ("View", "Full", "Search"):
            assert key in rows[-1]


async def test_error_flow_shows_a_visible_error_line():
    flow = make_flow()
    flow.response = None
    flow.error = "connection refused by 10.0.0.1:443"
    app = DetailApp(flow)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        text = screen_text(app)
        assert "✖ connection refused by 10.0.0.1:443" in text
        assert "No response: connection refused" in text


async def test_refresh_keeps_tab_and_scroll_for_the_same_flow():
    items = [{"id": i} for i in range(100)]
    flow = make_flow(json.dumps(items).encode())
    app = DetailApp(flow)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = app.query_one(FlowDetail)
        await pilot.press("2")
        await pilot.pause()
        view = detail.view("response")
        view.scroll_to(y=40, animate=False, immediate=True)
        await pilot.pause()
        flow.response.headers.set("X-Added", "late")
        detail.refresh_flow()
        detail.show_flow(flow)  # the same flow again: also just a refresh
        await pilot.pause()
        assert detail.active_tab == "response"
        assert view.scroll_y == 40
        assert "X-Added" in view.doc.all_plain()[4]
        # another flow resets the scroll, keeps the tab
        detail.show_flow(make_flow())
        await pilot.pause()
        assert detail.active_tab == "response" and view.scroll_y == 0


async def test_no_flow_and_pending_flow():
    app = DetailApp(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "No flow selected" in screen_text(app)
        flow = make_flow()
        flow.response = None
        app.query_one(FlowDetail).show_flow(flow)
        await pilot.press("2")
        await pilot.pause()
        assert "Waiting for the response" in screen_text(app)


async def test_clicking_a_tab_and_selecting_text():
    app = DetailApp(make_flow())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#--content-tab-timing")
        await pilot.pause()
        detail = app.query_one(FlowDetail)
        assert app.query_one(TabbedContent).active == "timing"
        view = detail.view("request")
        # the first line, as selected with the mouse from column 5 to 24
        text, _ = view.get_selection(Selection(Offset(5, 0), Offset(24, 0)))
        assert text == "https://api.example"
        text, _ = view.get_selection(Selection(Offset(0, 2), Offset(4, 3)))
        assert text == "Host          api.example.com\nUser"


async def test_160x48_split_pane_size():
    app = DetailApp(make_flow())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        rows = screen_text(app).splitlines()
        # a wide terminal: the 170-column header row wraps once, under its value column
        wrapped = [r for r in rows if "abcdefghij" in r]
        assert len(wrapped) == 2
        assert wrapped[0].startswith("X-Trace       token-abcdefghij")
        assert wrapped[1].startswith(" " * 14) and not wrapped[1][14].isspace()
        assert "".join(r.strip() for r in wrapped) == "X-Trace       " + LONG_VALUE
