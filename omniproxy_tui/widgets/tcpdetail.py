"""The Stream tab of a raw TCP flow (WireGuard mode): its messages one after the other, each with
direction, time, size and marks (dropped, injected), the content through the content views (text
as text, binary as a hex dump), capped. The Messages tab (widgets/messages.py) lists them one a
row, where they can be opened, sent, edited and dropped."""

from __future__ import annotations

import time

from rich.text import Text

from omniproxy_tui.views.contentviews import clean_line, human_size, view_body
from omniproxy_tui.widgets.lineview import Document
from proxycore.flows.flow import Flow
from proxycore.flows.tcp import sizes

MAX_MESSAGES = 500  # shown in the detail; the rest are counted
LINES_PER_MESSAGE = 200

S_DIM = "dim"
S_CLIENT = "bold #61afef"
S_SERVER = "bold #98c379"
S_WARN = "bold #e5c07b"


def _addr(a: tuple[str, int] | None) -> str:
    if not a:
        return "?"
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


def tcp_document(flow: Flow) -> Document:
    msgs = flow.tcp_messages or []
    req = flow.request
    doc = Document()
    head = Text()
    head.append("TCP ", "bold")
    head.append(f"{_addr(flow.client_addr)} → {_addr((req.host, req.port))}")
    doc.add(head)
    up, down = sizes(flow)
    n = len(msgs)
    doc.add(Text(f"{n:,} message{'' if n == 1 else 's'} · {human_size(up)} from the client · "
                 f"{human_size(down)} from the server", S_DIM))
    if req.body_truncated:
        doc.add(Text("content kept up to the capture limit (--max-body-size / --spill-threshold): "
                     "later messages show their size only", S_WARN))
    if flow.error:
        doc.add(Text(f"error: {clean_line(flow.error)}", "bold #e06c75"))
    start = flow.timings.start
    for m in msgs[:MAX_MESSAGES]:
        doc.add("")
        line = Text()
        if m.from_client:
            line.append("→ client", S_CLIENT)
        else:
            line.append("← server", S_SERVER)
        clock = time.strftime("%H:%M:%S", time.localtime(m.timestamp)) + f".{int(m.timestamp * 1000) % 1000:03d}"
        line.append(f"  {clock}  +{max(0.0, m.timestamp - start) * 1000:,.0f} ms  {human_size(m.size)}", S_DIM)
        if len(m.content) < m.size:
            line.append(f"  ({human_size(len(m.content))} kept)", S_WARN)
        if m.dropped:
            line.append("  ✕ dropped (not sent on)", S_WARN)
        if m.injected:
            line.append("  ✚ injected", S_WARN)
        doc.add(line)
        if m.content:
            view = view_body(m.content, None, None, mode="auto", limit_lines=LINES_PER_MESSAGE)
            doc.add_lines(view.lines)
            if view.truncated:
                doc.add(Text(f"… first {len(view.lines):,} lines of this message", S_WARN))
    if n > MAX_MESSAGES:
        doc.add("")
        doc.add(Text(f"… {n - MAX_MESSAGES:,} more messages (save the flow to see them all)", S_WARN))
    if not msgs:
        doc.add("")
        doc.add(Text("No data yet.", S_DIM))
    return doc
