"""Flow detail: Request, Response, Timing and Raw tabs (and Messages for a WebSocket flow), as a
widget and as a full screen.

Each tab is one LineView document (first line, headers, body through a content view), so
scrolling, wrapping, text selection and `/` search work the same everywhere. Bodies are capped
content views; `f` computes the whole body in a worker thread, `m` cycles the view mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Label, Static, TabbedContent, TabPane

from omniproxy_tui.textual_fixes import focus_now
from omniproxy_tui.views.contentviews import CYCLE_MODES, ContentView, clean_line, human_size, view_body
from omniproxy_tui.widgets.bars import KeyBar
from omniproxy_tui.widgets.bodyfile import PathPrompt, decoded_body, default_name, write_body
from omniproxy_tui.widgets.detail_grpc import add_grpc, call_of
from omniproxy_tui.widgets.detail_sections import (
    add_cert_chain,
    add_query,
    add_request_cookies,
    add_set_cookies,
)
from omniproxy_tui.widgets.lineview import Document, LineView
from omniproxy_tui.widgets.messages import MessagesPane, has_messages
from omniproxy_tui.widgets.tcpdetail import tcp_document
from proxycore.flows.flow import ERROR, INTERCEPTED, Flow, Headers, Request, Response, Timings, TLSInfo
from proxycore.safefile import SafeFileError

TABS = ("request", "response", "timing", "raw")  # the text tabs (a LineView each)
TAB_TITLES = {"request": "Request", "response": "Response", "timing": "Timing", "raw": "Raw"}
WS_TAB = "messages"  # a WebSocket or TCP flow's messages (omniproxy_tui/widgets/messages.py), shown for those only
BAR_WIDTH = 40
_PHASES = (("connect", "yellow"), ("TLS", "magenta"), ("wait", "cyan"), ("receive", "green"))
S_TITLE = "bold"
S_NAME = "bold #61afef"
S_WARN = "bold #e5c07b"
S_ERROR = "bold #e06c75"
S_DIM = "dim"


_BODY_ACTIONS = frozenset(("search", "next_match", "prev_match", "cycle_mode", "full_body", "save_body", "pager"))


# --- documents (pure functions of a flow) -------------------------------------------------------


def _status_style(status: int) -> str:
    return {2: "bold green", 3: "bold cyan", 4: "bold yellow", 5: "bold red"}.get(status // 100, "bold")


def _add_headers(doc: Document, headers: Headers) -> None:
    if not len(headers):
        doc.add(Text("(no headers)", S_DIM))
        return
    width = min(max(len(k) for k, _ in headers.items()), 28)
    for name, value in headers.items():
        line = Text.assemble((f"{clean_line(name):<{width}}  ", S_NAME))  # a span: the value stays plain
        line.append(clean_line(value))
        doc.add(line, hang=width + 2)


def _add_body(doc: Document, view: ContentView | None, msg: Request | Response, ctype: str | None,
              pending_full: bool, grpc_shown: bool = False) -> None:
    doc.add("")
    if not msg.captured_size and not msg.body_size:
        doc.add(Text("(no body)", S_DIM))
        return
    assert view is not None
    head = Text.assemble(("Body  ", S_TITLE))
    if grpc_shown and view.mode == "auto":  # the gRPC section above is the body, decoded
        head.append(f"{human_size(msg.body_size)} · the gRPC messages above · m: other views", S_DIM)
        doc.add(head)
        return
    facts = [view.name, human_size(msg.body_size)]
    if ctype:
        facts.append(ctype.split(";", 1)[0].strip())
    ce = msg.headers.get("content-encoding")
    if ce and view.name != "raw":
        facts.append(f"{ce} → {human_size(view.body_size)}")
    head.append(" · ".join(facts), S_DIM)
    doc.add(head)
    if msg.body_truncated or msg.body_size > msg.captured_size:
        doc.add(Text(f"⚠ body captured partially: {human_size(msg.captured_size)} of "
                     f"{human_size(msg.body_size)} on the wire", S_WARN))
    if view.error:
        doc.add(Text(f"⚠ {view.error}", S_WARN))
    doc.add_lines(view.lines, view.hang)
    if view.truncated:
        note = "computing the whole body…" if pending_full else "press f for the whole body"
        doc.add(Text(f"… first {len(view.lines):,} lines shown ({human_size(view.body_size)} body) — {note}",
                     S_WARN))


def request_document(flow: Flow, view: ContentView | None, pending_full: bool = False,
                     note: Text | None = None) -> Document:
    req = flow.request
    doc = Document()
    if note is not None:  # an edited flow: which version this is
        doc.add(note)
        doc.add("")
    first = Text()
    first.append(req.method, "bold")
    first.append(f" {clean_line(req.url)} ")
    first.append(req.http_version, S_DIM)
    doc.add(first)
    _add_rules(doc, flow)
    if flow.comment:  # set with ; in the flow list
        doc.add(Text.assemble(("¶ comment ", S_NAME), clean_line(flow.comment)), hang=10)
    doc.add("")
    _add_headers(doc, req.headers)
    add_query(doc, req)
    add_request_cookies(doc, req)
    shown = add_grpc(doc, flow, request=True)
    _add_body(doc, view, req, req.headers.get("content-type"), pending_full, shown)
    return doc


def _add_rules(doc: Document, flow: Flow) -> None:
    """The rewrite rules that changed the flow (proxycore.addons.rules), one per line."""
    for label in flow.rules_applied:
        doc.add(Text.assemble(("changed by rule: ", S_WARN), clean_line(label)), hang=4)


def response_document(flow: Flow, view: ContentView | None, pending_full: bool = False,
                      note: Text | None = None) -> Document:
    doc = Document()
    resp = flow.response
    if note is not None:
        doc.add(note)
        doc.add("")
    if resp is None:
        if flow.error:
            doc.add(Text(f"No response: {flow.error}", S_ERROR))
        elif flow.passthrough:
            doc.add(Text("TLS passthrough: the tunnel was relayed without interception", S_DIM))
        elif flow.state == INTERCEPTED:
            doc.add(Text("Request intercepted: the response comes after it is resumed", S_WARN))
        else:
            doc.add(Text("Waiting for the response…", S_DIM))
        return doc
    first = Text()
    first.append(f"{resp.http_version} ", S_DIM)
    first.append(f"{resp.status} {resp.reason}", _status_style(resp.status))
    doc.add(first)
    doc.add("")
    _add_headers(doc, resp.headers)
    add_set_cookies(doc, resp)
    shown = add_grpc(doc, flow, request=False)
    _add_body(doc, view, resp, resp.headers.get("content-type"), pending_full, shown)
    return doc


EDIT_VIEWS = ("edited", "original", "diff")


def edit_note(mode: str) -> Text:
    t = Text("✎ edited · showing ", S_WARN)
    t.append(mode, "bold reverse")
    t.append(" · u: edited / original / diff · V reverts", S_DIM)
    return t


def diff_document(before: str, after: str, note: Text) -> Document:
    """The original and the edited message as raw HTTP text, unified-diff style."""
    import difflib

    doc = Document()
    doc.add(note)
    doc.add("")
    lines = list(difflib.unified_diff(before.split("\n"), after.split("\n"), "original", "edited",
                                      lineterm="", n=3))
    if not lines:
        doc.add(Text("(no difference)", S_DIM))
    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else \
            "cyan" if line.startswith("@@") else ""
        doc.add(Text(clean_line(line), style))
    return doc


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def timing_phases(t: Timings) -> list[tuple[str, float, float]]:
    """(phase, start, end) for each phase that happened, in order."""
    out: list[tuple[str, float, float]] = []
    if t.connect_start is not None and t.connect_end is not None:
        out.append(("connect", t.connect_start, t.connect_end))
    if t.connect_end is not None and t.tls_end is not None:
        out.append(("TLS", t.connect_end, t.tls_end))
    if t.first_byte is not None:
        sent = t.request_sent or t.tls_end or t.connect_end or t.start
        out.append(("wait", sent, t.first_byte))
        if t.end is not None:
            out.append(("receive", t.first_byte, t.end))
    return out


def _no_phases(flow: Flow) -> Text:
    """What the Timing tab says when no phase completed: a failed flow says what it got to."""
    t = flow.timings
    if not (flow.error or flow.state == ERROR or t.end is not None):
        return Text("No timings yet: the flow is in flight", S_DIM)
    if t.connect_start is not None and t.connect_end is None:
        reached = "connecting to the server did not complete"
    elif t.connect_end is not None:
        reached = "connected; no response arrived"
    elif flow.passthrough:
        reached = "tunnelled without interception: no HTTP phases"
    else:
        reached = "no connection to the server was made"
    after = f" after {_ms(t.end - t.start)}" if t.end is not None else ""
    return Text(f"Failed{after}: {reached}" if flow.error or flow.state == ERROR
                else f"Ended{after}: {reached}", S_WARN)


def _add_tls(doc: Document, title: str, tls: TLSInfo | None, with_cert: bool) -> None:
    doc.add(Text(title, S_TITLE))
    if tls is None:
        doc.add(Text("  none", S_DIM))
        return
    rows = [("version", tls.version), ("ALPN", tls.alpn), ("SNI", tls.sni), ("cipher", tls.cipher)]
    if with_cert:
        rows += [("subject", tls.cert_subject), ("issuer", tls.cert_issuer),
                 ("expires", tls.cert_not_after), ("names", ", ".join(tls.cert_sans) or None)]
    for name, value in rows:
        line = Text.assemble((f"  {name:<9} ", S_NAME))
        line.append(value or "—", "" if value else S_DIM)
        doc.add(line, hang=12)


def _addr(addr: tuple[str, int] | None) -> str:
    if not addr:
        return "—"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def timing_document(flow: Flow) -> Document:
    t = flow.timings
    doc = Document()
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.start)) + f".{int(t.start % 1 * 1000):03d}"
    doc.add(Text.assemble(("Started  ", S_TITLE), started))
    doc.add("")
    phases = timing_phases(t)
    end = t.end or max((e for _, _, e in phases), default=t.start)
    total = max(end - t.start, 1e-9)
    if not phases:
        doc.add(_no_phases(flow))
    styles = dict(_PHASES)
    for name, s, e in phases:
        x0 = min(BAR_WIDTH - 1, int((s - t.start) / total * BAR_WIDTH))
        x1 = max(x0 + 1, min(BAR_WIDTH, round((e - t.start) / total * BAR_WIDTH)))
        line = Text(f"{name:<8}{_ms(e - s):>12}  ")
        line.append("│", S_DIM)
        line.append(" " * x0 + "█" * (x1 - x0), styles[name])
        line.append(" " * (BAR_WIDTH - x1) + "│", S_DIM)
        doc.add(line)
    if t.end is not None:
        doc.add(Text.assemble(("total   ", S_TITLE), (f"{_ms(t.end - t.start):>12}", S_TITLE)))
    if flow.error:
        doc.add(Text(f"error: {flow.error}", S_ERROR), hang=7)
    doc.add("")
    doc.add(Text("Connection", S_TITLE))
    rows = [("client", _addr(flow.client_addr)), ("server", _addr(flow.server_addr)),
            ("HTTP", flow.request.http_version)]
    if flow.stream is not None:
        resp = flow.response
        if resp is not None and resp.http_version != flow.request.http_version:
            rows.append(("origin", resp.http_version))  # translated from HTTP/1.1
        # flows with the same connection number were streams of one client HTTP/2 connection
        rows.append(("h2 stream", f"{flow.stream[1]} on client connection #{flow.stream[0]}"))
    for name, value in rows:
        doc.add(Text.assemble((f"  {name:<9} ", S_NAME), value))
    if flow.passthrough:
        doc.add(Text("  TLS passthrough: relayed without interception", S_WARN))
    doc.add("")
    _add_tls(doc, "Client TLS (client ↔ proxy)", flow.client_tls, False)
    doc.add("")
    _add_tls(doc, "Server TLS (proxy ↔ server)", flow.server_tls, True)
    add_cert_chain(doc, flow.server_tls, t.start)
    return doc


def _raw_head(doc: Document, first: str, headers: Headers) -> None:
    doc.add(Text(first, "bold"))
    for name, value in headers.items():
        doc.add(Text.assemble((clean_line(name), S_NAME), f": {clean_line(value)}"), hang=4)


def raw_document(flow: Flow, req_view: ContentView | None, resp_view: ContentView | None,
                 pending_full: bool = False) -> Document:
    """Heads and bodies as on the wire (bodies undecoded, capped)."""
    doc = Document()
    req = flow.request
    _raw_head(doc, clean_line(f"{req.method} {req.target} {req.http_version}"), req.headers)
    for msg, view in ((req, req_view), (flow.response, resp_view)):
        if msg is None:
            break
        if msg is flow.response:
            doc.add("")
            doc.add(Text("─" * 40, S_DIM))
            _raw_head(doc, f"{msg.http_version} {msg.status} {msg.reason}", msg.headers)
        doc.add("")
        if view is not None and len(view.lines):
            doc.add_lines(view.lines)
            if view.truncated:
                note = "computing…" if pending_full else "press f for all of it"
                doc.add(Text(f"… first {len(view.lines):,} lines of {human_size(msg.captured_size)} — {note}",
                             S_WARN))
    if flow.error:
        doc.add("")
        doc.add(Text(f"error: {flow.error}", S_ERROR))
    return doc


def flow_summary(flow: Flow) -> Text:
    """One line: method URL → status, size, duration (the DetailScreen title)."""
    req = flow.request
    t = Text()
    t.append(f"#{flow.id} ", S_DIM)
    t.append(f"{req.method} ", "bold")
    t.append(req.url)
    if flow.response is not None:
        t.append("  → ", S_DIM)
        t.append(str(flow.response.status), _status_style(flow.response.status))
        t.append(f"  {human_size(flow.response.body_size)}", S_DIM)
    elif flow.error:
        t.append("  → err", S_ERROR)
    elif flow.tcp_messages is not None:
        t.append(f"  {human_size(sum(m.size for m in flow.tcp_messages))}", S_DIM)
    if flow.timings.duration_ms is not None:
        t.append(f"  {flow.timings.duration_ms:,.0f} ms", S_DIM)
    if flow.comment:
        t.append(f"  ¶ {clean_line(flow.comment)}", S_NAME)
    return t


def _signature(flow: Flow) -> tuple:
    """Cheap change detector so refresh_flow at 10 Hz rebuilds only when something changed."""
    r, q, t = flow.response, flow.request, flow.timings
    # body_token, not id(body): a spilled body would be read back from its file on every look
    resp = None if r is None else (r.status, len(r.headers), r.body_token, r.body_size)
    return (flow.state, flow.error, flow.modified, flow.comment, flow.original_request is None,
            flow.original_response is None, q.method, q.target, id(q.headers), id(r.headers) if r is not None else None,
            len(q.headers), q.body_token, q.body_size,
            resp, t.connect_end, t.tls_end, t.first_byte, t.end, flow.server_tls is None,
            flow.client_tls is None, flow.server_addr, len(flow.rules_applied),
            None if flow.websocket is None else (len(flow.websocket.messages), flow.websocket.omitted,
                                                 flow.websocket.close_code),
            flow.tcp_messages is not None and len(flow.tcp_messages))


def _tcp_no_response() -> Document:
    doc = Document()
    doc.add(Text("A TCP flow has no response: both directions are in the Messages tab", S_DIM))
    return doc


# --- the widget ---------------------------------------------------------------------------------


class FlowDetail(Widget):
    """Tabs for one flow. The app calls show_flow(flow) and refresh_flow() (when it changes)."""

    DEFAULT_CSS = """
    FlowDetail { height: 1fr; layout: vertical; }
    FlowDetail #detail-error { display: none; color: $error; text-style: bold; padding: 0 1; }
    FlowDetail.-error #detail-error { display: block; }
    FlowDetail TabbedContent { height: 1fr; }
    FlowDetail TabPane { padding: 0; height: 1fr; }
    FlowDetail ContentSwitcher { height: 1fr; }
    FlowDetail #detail-search { display: none; height: 1; }
    FlowDetail.-searching #detail-search { display: block; }
    FlowDetail #detail-search Label { width: auto; padding: 0 1; color: $accent; }
    FlowDetail #detail-search Input { border: none; height: 1; padding: 0; width: 1fr; }
    FlowDetail #detail-status { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    """

    BINDINGS = [
        Binding("m", "cycle_mode", "View", id="detail.view_mode", tooltip="Cycle the body view"),
        Binding("f", "full_body", "Full", id="detail.full_body", tooltip="Show the whole body"),
        Binding("slash", "search", "Search", id="detail.search", tooltip="Search in this tab"),
        Binding("n", "next_match", "Next", id="detail.next_match", tooltip="Next match"),
        Binding("N", "prev_match", "Prev", id="detail.prev_match", tooltip="Previous match"),
        Binding("1", "show_tab('request')", "Request", show=False),
        Binding("2", "show_tab('response')", "Response", show=False),
        Binding("3", "show_tab('timing')", "Timing", show=False),
        Binding("4", "show_tab('raw')", "Raw", show=False),
        Binding("5", "show_tab('messages')", "Messages", show=False),
        Binding("escape", "close_search", "Close search", show=False),
        # mitmproxy's flow view: space = next flow (its p = previous is another feature's key here,
        # so K; J is next too). space is no longer page down in the detail: PgDn and ctrl+f are.
        Binding("space,J", "step_flow(1)", "Next flow", show=False, id="detail.next_flow",
                tooltip="Next flow of the list (as filtered)"),
        Binding("K", "step_flow(-1)", "Prev flow", show=False, id="detail.prev_flow",
                tooltip="Previous flow of the list (as filtered)"),
        # breakpoints (see omniproxy_tui/widgets/breakpoints.py)
        Binding("e", "edit", "Edit", show=False, id="detail.edit"),
        Binding("E", "edit_external", "$EDITOR", show=False, id="detail.edit_external"),
        Binding("u", "cycle_edit_view", "Edited/original/diff", show=False, id="detail.edit_view"),
        Binding("a", "flow_command('flow.resume')", "Resume", show=False, id="detail.resume"),
        Binding("X", "flow_command('flow.kill')", "Kill", show=False, id="detail.kill"),
        Binding("V", "flow_command('flow.revert')", "Revert", show=False, id="detail.revert"),
        Binding("b", "save_body", "Save body", show=False, id="detail.save_body",
                tooltip="Save the body shown (decoded, whole) to a file"),
        Binding("v", "pager", "Pager", show=False, id="detail.pager",
                tooltip="Open the body shown (decoded, whole) in $PAGER"),
    ]

    class StepFlow(Message):
        """Show the next (delta 1) or previous (-1) flow of the list; the app moves its focus."""

        def __init__(self, current: Flow | None, delta: int) -> None:
            super().__init__()
            self.current = current
            self.delta = delta

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.flow: Flow | None = None
        self._sig: tuple | None = None
        self._modes: dict[int, str] = {}  # flow id -> view mode (per flow, as in mitmproxy)
        self._full: set[tuple[int, str]] = set()  # (flow id, part) shown whole
        self._pending: set[tuple[int, str]] = set()  # (flow id, part) being computed in a worker
        self._views: dict[tuple, ContentView] = {}
        self._stale: set[str] = set()  # tabs whose document is out of date (built when shown)
        self._built_for: dict[str, int] = {}  # tab -> id of the flow its document shows
        self.status_text = ""
        self._error_text = ""
        self._edit_views: dict[int, str] = {}  # flow id -> "edited" | "original" | "diff"

    def compose(self) -> ComposeResult:
        yield Static(id="detail-error")
        with TabbedContent(id="detail-tabs", initial="request"):
            for tab in TABS:
                with TabPane(TAB_TITLES[tab], id=tab):
                    yield LineView(id=f"view-{tab}")
            with TabPane("Messages", id=WS_TAB):
                yield MessagesPane(id="ws-pane")
        with Horizontal(id="detail-search"):
            yield Label("/")
            yield Input(placeholder="search (Enter: keep, Esc: clear)", id="detail-search-input")
        yield Static(id="detail-status")

    def on_mount(self) -> None:
        self.query_one(TabbedContent).hide_tab(WS_TAB)
        self._rebuild(keep_scroll=False)

    # --- public API ------------------------------------------------------------------------

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active or "request"

    def focus(self, scroll_visible: bool = True) -> FlowDetail:
        """Focusing the detail focuses the visible tab's text (the widget itself takes no keys)."""
        if self.is_mounted:
            focus_now(self.query_one("#ws-list") if self.active_tab == WS_TAB else self.view())
        return self

    def view(self, tab: str | None = None) -> LineView:
        tab = tab or self.active_tab
        if tab == WS_TAB:  # no text view there (body actions are off in it: check_action)
            tab = "request"
        return self.query_one(f"#view-{tab}", LineView)

    def tabs(self) -> tuple[str, ...]:
        """The tabs this flow has, in order."""
        return TABS + (WS_TAB,) if has_messages(self.flow) else TABS

    def show_flow(self, flow: Flow | None) -> None:
        """Show `flow` (None: an empty detail). The same flow again only refreshes it."""
        if flow is not None and self.flow is not None and flow.id == self.flow.id:
            self.flow = flow
            self.refresh_flow()
            return
        self.flow = flow
        self._views.clear()
        self._sig = None
        if self.is_mounted:
            self._rebuild(keep_scroll=False)

    def refresh_flow(self, force: bool = False) -> None:
        """Re-read the current flow (it changed); keeps the tab and scroll positions."""
        if self.flow is None or not self.is_mounted:
            return
        if not force and _signature(self.flow) == self._sig:
            return
        self._rebuild(keep_scroll=True)

    # --- building --------------------------------------------------------------------------

    def _mode(self) -> str:
        return self._modes.get(self.flow.id, "auto") if self.flow else "auto"

    def _content(self, part: str, msg: Request | Response | None, mode: str) -> ContentView | None:
        """The (cached) content view of a body; whole if `f` was pressed for that part."""
        if msg is None or (not msg.captured_size and not msg.body_size):
            return None
        assert self.flow is not None
        full = (self.flow.id, part) in self._full
        ct, ce = msg.headers.get("content-type"), msg.headers.get("content-encoding")
        token = msg.body_token
        key = (part, mode, full, token, ct, ce)
        view = self._views.get(key)
        if view is None and full:
            full = False  # still computing: show the capped view meanwhile
            key = (part, mode, False, token, ct, ce)
            view = self._views.get(key)
        if view is None:
            view = view_body(msg.body, ct, ce, mode=mode)
            self._views[key] = view
        return view

    def _rebuild(self, keep_scroll: bool) -> None:
        """Rebuild the visible tab now and the others when they are shown (cursor moves stay cheap)."""
        flow = self.flow
        if flow is None:
            for tab in TABS:
                doc = Document()
                doc.add(Text("No flow selected", S_DIM))
                self.view(tab).set_document(doc)
            self._stale.clear()
            self._built_for.clear()
            self._ws_tab(None)
            self.set_class(False, "-error")
            self._sig = None
            self._update_status()
            return
        self._sig = _signature(flow)
        self._stale = set(TABS)
        self._ws_tab(flow)
        if self.active_tab != WS_TAB:
            self._build_tab(self.active_tab, keep_scroll)
        self.set_class(bool(flow.error), "-error")
        error = f"✖ {clean_line(flow.error)}" if flow.error else ""
        if self._error_text != error:  # each of these updates re-lays out the screen: only on change
            self._error_text = error
            self.query_one("#detail-error", Static).update(Text(error) if error else "")
        tabs = self.query_one(TabbedContent)
        paused = flow.state == INTERCEPTED
        labels = {"request": "Stream" if flow.tcp_messages is not None else
                  "Request ⏸" if paused and flow.response is None else "Request",
                  "response": "Response ⏸" if paused and flow.response is not None else "Response"}
        for tab_id, label in labels.items():
            tab = tabs.get_tab(tab_id)
            if str(tab.label) != label:
                tab.label = label
        self._update_status()

    def _ws_tab(self, flow: Flow | None) -> None:
        """The Messages tab: shown (and brought up to date) for a WebSocket or TCP flow only."""
        tabs = self.query_one(TabbedContent)
        pane = self.query_one(MessagesPane)
        if not has_messages(flow):
            if pane.flow is not None:
                if self.active_tab == WS_TAB:
                    tabs.active = "request"
                tabs.hide_tab(WS_TAB)
                pane.show(None)
            return
        if pane.flow is None:
            tabs.show_tab(WS_TAB)
        assert flow is not None
        pane.show(flow)
        ws = flow.websocket
        count = len(ws.messages) + ws.omitted if ws is not None else len(flow.tcp_messages or ())
        label = "Messages ⏸" if flow.state == INTERCEPTED and pane._paused_message() is not None else \
            f"Messages {count:,}"
        tab = tabs.get_tab(WS_TAB)
        if str(tab.label) != label:
            tab.label = label

    def _build_tab(self, tab: str, keep_scroll: bool) -> None:
        flow = self.flow
        assert flow is not None
        self._stale.discard(tab)
        fid, mode = flow.id, self._mode()
        pending = (fid, tab) in self._pending
        original = flow.original_request if tab == "request" else \
            flow.original_response if tab == "response" else None
        if flow.tcp_messages is not None and tab != "timing":  # a raw TCP flow: its messages
            doc = tcp_document(flow) if tab != "response" else _tcp_no_response()
        elif original is not None:
            doc = self._edited_document(tab, original, mode, pending)
        elif tab == "request":
            doc = request_document(flow, self._content("request", flow.request, mode), pending)
        elif tab == "response":
            doc = response_document(flow, self._content("response", flow.response, mode), pending)
        elif tab == "timing":
            doc = timing_document(flow)
        else:
            doc = raw_document(flow, self._content("raw", flow.request, "raw"),
                               self._content("raw-response", flow.response, "raw"), pending)
        # the scroll position is kept only for the flow it belongs to
        self.view(tab).set_document(doc, keep_scroll and self._built_for.get(tab) == fid)
        self._built_for[tab] = fid

    def _edited_document(self, tab: str, original: Request | Response, mode: str, pending: bool) -> Document:
        """An edited message: as edited, as it was, or the difference (u cycles)."""
        import copy

        from proxycore.flows.rawedit import request_to_text, response_to_text

        flow = self.flow
        assert flow is not None
        shown = self._edit_views.get(flow.id, "edited")
        note = edit_note(shown)
        if shown == "diff":
            if tab == "request":
                return diff_document(request_to_text(original), request_to_text(flow.request), note)
            assert flow.response is not None and isinstance(original, Response)
            return diff_document(response_to_text(original), response_to_text(flow.response), note)
        if shown == "original":
            old = copy.copy(flow)
            if tab == "request":
                old.request = original  # type: ignore[assignment]
                return request_document(old, self._content("request-original", original, mode), pending, note)
            old.response = original  # type: ignore[assignment]
            return response_document(old, self._content("response-original", original, mode), pending, note)
        if tab == "request":
            return request_document(flow, self._content("request", flow.request, mode), pending, note)
        return response_document(flow, self._content("response", flow.response, mode), pending, note)

    def action_cycle_edit_view(self) -> None:
        flow = self.flow
        if flow is None or (flow.original_request is None and flow.original_response is None):
            self.notify("This flow was not edited", timeout=2)
            return
        shown = self._edit_views.get(flow.id, "edited")
        self._edit_views[flow.id] = EDIT_VIEWS[(EDIT_VIEWS.index(shown) + 1) % len(EDIT_VIEWS)]
        if flow.original_request is None and self.active_tab == "request":
            self.action_show_tab("response")
        elif flow.original_response is None and self.active_tab == "response":
            self.action_show_tab("request")
        self._rebuild(keep_scroll=False)

    def action_edit(self) -> None:
        if self.flow is not None:
            self.app.edit_flow(self.flow)  # type: ignore[attr-defined]

    async def action_edit_external(self) -> None:
        if self.flow is not None:
            await self.app.edit_flow_external(self.flow)  # type: ignore[attr-defined]

    def action_flow_command(self, name: str) -> None:
        if self.flow is not None:
            self.app.run_command(name, str(self.flow.id), quiet=False)  # type: ignore[attr-defined]

    def _update_status(self) -> None:
        flow, tab = self.flow, self.active_tab
        parts: list[str] = []
        if tab == WS_TAB:
            parts.append("⏎ view · > send to server · < send to client")
        elif flow is not None and flow.tcp_messages is not None and tab != "timing":
            if tab != "response":  # the stream has no body of its own: its messages are the content
                n = len(flow.tcp_messages)
                parts.append(f"{n:,} message{'' if n == 1 else 's'} in order · 5: one a row (open, send, edit)")
        elif flow is not None and tab in ("request", "response", "raw"):
            msg = flow.request if tab == "request" else flow.response
            if tab == "raw":
                parts.append("raw")
            elif msg is not None:
                view = self._content(tab, msg, self._mode())
                if view is not None and self._mode() == "auto" and call_of(flow) is not None:
                    parts.append("gRPC (view: auto) · m: the body's own views")  # the section stands for it
                elif view is not None:
                    parts.append(f"{view.name} (view: {self._mode()})")
                    n = len(view.lines)
                    if view.truncated:
                        parts.append(f"first {n:,} lines, f: all")
                    else:
                        parts.append(f"{n:,} line{'' if n == 1 else 's'}")
        if flow is not None and tab == "timing" and flow.timings.duration_ms is not None:
            parts.append(f"total {flow.timings.duration_ms:,.1f} ms")
        if flow is not None and tab not in ("timing", WS_TAB):
            if any(p[0] == flow.id for p in self._pending):
                parts.append("computing full body…")
        status = self.view(tab).match_status if tab != WS_TAB else ""
        if status:
            parts.append(f"/{self.view(tab).query_text}: {status}")
        text = " · ".join(parts)
        if text != self.status_text:
            self.status_text = text
            self.query_one("#detail-status", Static).update(text, layout=False)  # one fixed row

    # --- events and actions ----------------------------------------------------------------

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        event.stop()
        if self.active_tab == WS_TAB:
            if self.has_focus_within:
                focus_now(self.query_one("#ws-list"))
            self._update_status()
            return
        if self.flow is not None and self.active_tab in self._stale:
            self._build_tab(self.active_tab, keep_scroll=True)
        view = self.view()
        query = self.query_one("#detail-search-input", Input).value
        if query != view.query_text:
            view.search(query)
        if self.has_focus_within and not self.query_one("#detail-search-input", Input).has_focus:
            view.focus()
        self._update_status()

    @on(LineView.MatchesChanged)
    def _matches_changed(self, event: LineView.MatchesChanged) -> None:
        event.stop()
        self._update_status()

    def action_show_tab(self, tab: str) -> None:
        if tab in self.tabs():
            self.query_one(TabbedContent).active = tab

    def action_next_tab(self, step: int = 1) -> None:
        tabs = self.tabs()
        i = tabs.index(self.active_tab) if self.active_tab in tabs else 0
        self.action_show_tab(tabs[(i + step) % len(tabs)])

    def action_step_flow(self, delta: int) -> None:
        self.post_message(self.StepFlow(self.flow, delta))

    def action_cycle_mode(self) -> None:
        if self.flow is None:
            return
        mode = CYCLE_MODES[(CYCLE_MODES.index(self._mode()) + 1) % len(CYCLE_MODES)]
        self._modes[self.flow.id] = mode
        self._rebuild(keep_scroll=False)
        self.notify(f"Body view: {mode}", timeout=1.5)

    def action_full_body(self) -> None:
        flow, tab = self.flow, self.active_tab
        if flow is None or tab == "timing":
            return
        parts = {"request": [("request", flow.request)], "response": [("response", flow.response)],
                 "raw": [("raw", flow.request), ("raw-response", flow.response)]}[tab]
        mode = "raw" if tab == "raw" else self._mode()
        todo = [(p, m) for p, m in parts if (v := self._content(p, m, mode)) is not None and v.truncated]
        if not todo:
            self.notify("The whole body is already shown", timeout=2)
            return
        self._full.add((flow.id, tab))
        self._pending.add((flow.id, tab))
        self._rebuild(keep_scroll=True)
        # the messages, not their bodies: a spilled body is read back in the thread
        jobs = [(p, m, m.body_token, m.headers.get("content-type"), m.headers.get("content-encoding"))
                for p, m in todo]
        done = self._full_done
        fid = flow.id

        def work() -> None:
            views = [(p, token, ct, ce, view_body(m.body, ct, ce, mode=mode, limit_lines=None))
                     for p, m, token, ct, ce in jobs]
            self.app.call_from_thread(done, fid, tab, mode, views)

        self.run_worker(work, thread=True, group="detail-full", description="full body view")

    def _full_done(self, fid: int, tab: str, mode: str, views: list) -> None:
        self._pending.discard((fid, tab))
        if self.flow is None or self.flow.id != fid:
            return
        for part, token, ct, ce, view in views:
            self._views[(part, mode, True, token, ct, ce)] = view
        self._full.update((fid, p) for p, *_ in views)
        self._rebuild(keep_scroll=True)

    # --- the body out of the app: b saves it, v pages it (omniproxy_tui/widgets/bodyfile.py) ---

    def _focused_body(self) -> tuple[str, Request | Response] | None:
        """The body the user is looking at: the request's on the Request tab, else the response's
        (the request's when there is no response)."""
        flow = self.flow
        if flow is None:
            return None
        if self.active_tab == "request" or flow.response is None:
            return "request", flow.request
        return "response", flow.response

    def action_save_body(self) -> None:
        focused = self._focused_body()
        if focused is None or not (focused[1].captured_size or focused[1].body_size):
            self.notify("There is no body to save", timeout=2)
            return
        part, msg = focused
        flow = self.flow
        assert flow is not None
        note = f"#{flow.id} {part} body · {human_size(msg.body_size)} · decoded, whole"

        def answer(path: str | None) -> None:
            if path:
                self._save_body(msg, Path(path).expanduser())

        self.app.push_screen(PathPrompt(f"Save the {part} body to", default_name(flow, msg), note), answer)

    def _save_body(self, msg: Request | Response, path: Path) -> None:
        app = self.app

        def work() -> None:
            data, why = decoded_body(msg)
            try:
                write_body(path, data)
            except OSError as exc:
                reason = exc.why if isinstance(exc, SafeFileError) else (exc.strerror or str(exc))
                app.call_from_thread(app.notify, f"Cannot save {path}: {reason}", severity="error")
                return
            extra = f" (as received: {why})" if why else ""
            app.call_from_thread(app.notify, f"Saved {human_size(len(data))} to {path}{extra}", timeout=4)

        self.run_worker(work, thread=True, group="detail-save", description="save body", exit_on_error=False)

    async def action_pager(self) -> None:
        focused = self._focused_body()
        if focused is None or not (focused[1].captured_size or focused[1].body_size):
            self.notify("There is no body to show", timeout=2)
            return
        part, msg = focused
        flow = self.flow
        assert flow is not None
        pager = os.environ.get("PAGER") or "less"
        try:
            argv = shlex.split(pager)
        except ValueError as exc:
            self.notify(f"Cannot run $PAGER ({pager!r}): {exc}", severity="error")
            return
        tmpdir = Path(tempfile.mkdtemp(prefix="omniproxy-body-"))  # 0700: only we read the body
        try:
            path = tmpdir / default_name(flow, msg, tmpdir)
            data, _ = await asyncio.to_thread(decoded_body, msg)
            await asyncio.to_thread(write_body, path, data)
            path.chmod(0o400)  # a view, not an edit (as mitmproxy's external viewer)
            try:
                await run_suspended(self.app, [*argv, str(path)])
            except OSError as exc:
                self.notify(f"Cannot run $PAGER ({argv[0] if argv else pager!r}): {exc.strerror or exc}",
                            severity="error")
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        self.focus()

    def action_search(self) -> None:
        self.add_class("-searching")
        focus_now(self.query_one("#detail-search-input", Input))

    @on(Input.Changed, "#detail-search-input")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.view().search(event.value)

    @on(Input.Submitted, "#detail-search-input")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.remove_class("-searching")
        focus_now(self.view())

    def action_next_match(self) -> None:
        self.view().next_match(1)

    def action_prev_match(self) -> None:
        self.view().next_match(-1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_search":  # otherwise Esc goes on to the screen (back)
            return self.has_class("-searching") or bool(self.view().query_text)
        if action in _BODY_ACTIONS and self.is_mounted and self.active_tab == WS_TAB:
            return False  # the Messages tab has no body: ⏎ opens a message, whose view has these
        return True

    def action_close_search(self) -> None:
        box = self.query_one("#detail-search-input", Input)
        box.value = ""
        self.view().search("")
        self.remove_class("-searching")
        focus_now(self.view())


async def run_suspended(app: App, argv: list[str]) -> int:
    """Run `argv` on the terminal with the app suspended, and come back. The program is awaited,
    not waited for: the proxy shares this event loop and goes on serving meanwhile, while nothing
    is painted (batch_update). No timeout: the user decides when the pager ends. Where the app
    cannot suspend (headless, tests) the program just runs."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(app.batch_update())
        try:
            stack.enter_context(app.suspend())
        except (SuspendNotSupported, RuntimeError):  # RuntimeError: no driver at all
            pass
        proc = await asyncio.create_subprocess_exec(*argv)
        return await proc.wait()


class DetailScreen(Screen):
    """Full-screen detail of one flow (narrow terminals): Esc/q back, Tab/1-4 switch tabs."""

    DEFAULT_CSS = """
    /* a long URL wraps (up to 3 lines) rather than pushing the status and size out of sight */
    DetailScreen #detail-title { height: auto; max-height: 3; padding: 0 1; background: $boost;
                                 text-overflow: ellipsis; }
    """
    BINDINGS = [
        Binding("escape,q", "back", "Back", id="detail.back"),
        Binding("tab", "next_tab", "Next tab", priority=True, id="detail.next_tab"),
        Binding("shift+tab", "prev_tab", "Prev tab", priority=True, show=False, id="detail.prev_tab"),
    ]

    def __init__(self, flow: Flow, on_close: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.flow = flow
        self._on_close = on_close

    def compose(self) -> ComposeResult:
        yield Static(flow_summary(self.flow), id="detail-title")
        yield FlowDetail(id="flow-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        detail = self.query_one(FlowDetail)
        detail.show_flow(self.flow)
        detail.focus()

    @property
    def detail(self) -> FlowDetail:
        return self.query_one(FlowDetail)

    def refresh_flow(self) -> None:
        # pushed and not composed yet, or being torn down (a live WebSocket updates often)
        titles = self.query("#detail-title").results(Static)
        title = next(titles, None)
        if title is None or not self.is_mounted:
            return
        title.update(flow_summary(self.flow))
        self.detail.refresh_flow()

    def show_flow(self, flow: Flow) -> None:
        self.flow = flow
        self.query_one("#detail-title", Static).update(flow_summary(flow))
        self.detail.show_flow(flow)

    def action_next_tab(self) -> None:
        self.detail.action_next_tab(1)

    def action_prev_tab(self) -> None:
        self.detail.action_next_tab(-1)

    def action_back(self) -> None:
        if self._on_close:
            self._on_close()
        self.dismiss()
