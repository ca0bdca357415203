"""The gRPC section of the Request and Response tabs: the call's service and method, every
length-prefixed message (index, size, compression, fields named by the schema or numbered), and on
the response side grpc-status / grpc-message and the trailers. A streaming call lists all its
messages, in order, one after the other (as a Messages list would).

A section, not a tab: at 80×24 it sits where the body would be (the body's own views stay a key
away: m cycles them), and the flows that are not gRPC get nothing new.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.text import Text

from omniproxy_tui.views.contentviews import clean_line, human_size
from omniproxy_tui.views.extraviews import hl_fields
from omniproxy_tui.views.prettyprint import STYLE_KEY
from omniproxy_tui.widgets.lineview import Document
from proxycore import grpc, protobuf
from proxycore.flows.flow import Flow

S_TITLE = "bold"
S_NAME = "bold #61afef"
S_DIM = "dim"
S_WARN = "bold #e5c07b"
S_OK = "bold green"
S_ERROR = "bold #e06c75"
READ_CAP = 1024 * 1024  # body bytes decoded for the section; m shows the rest as protobuf / hex
MAX_LINES = 2000  # lines of one section; a long stream says how many messages are left

_cache: dict[tuple, grpc.Call | None] = {}


def call_of(flow: Flow) -> grpc.Call | None:
    """The flow's gRPC call, decoded once per state of its bodies (both tabs share it)."""
    if grpc.protocol_of(flow.request.headers.get("content-type")) is None:
        return None
    resp = flow.response
    key = (flow.id, flow.request.body_token, resp.body_token if resp is not None else None,
           len(resp.headers) if resp is not None else -1, id(grpc.active_schema()),
           id(resp.trailers) if resp is not None else None)
    if key not in _cache:
        if len(_cache) >= 8:
            _cache.clear()
        _cache[key] = grpc.read_call(flow, limit=READ_CAP)
    return _cache[key]


def _scalar(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


def named_lines(d: dict[str, Any], indent: int = 0) -> list[str]:
    """Named fields (json_format's dict) in the text-proto style of the wire view: `name: value`,
    `name {` ... `}`, a repeated field once per value."""
    pad = "  " * indent
    out: list[str] = []
    for k, v in d.items():
        for item in v if isinstance(v, list) else [v]:
            if isinstance(item, dict):
                out.append(f"{pad}{k} {{")
                out.extend(named_lines(item, indent + 1))
                out.append(f"{pad}}}")
            else:
                out.append(f"{pad}{k}: {_scalar(item)}")
    return out


_HL = re.compile(r'^(\s*)([\w.]+)(:| \{)|("(?:[^"\\]|\\.)*")|(<[^>]*>)|(\([^)]*\))$')


def _hl(s: str) -> Text:
    return hl_fields(s, _HL)


def _message_lines(msg: grpc.Message) -> list[str]:
    if msg.type_name is not None and isinstance(msg.decoded, dict):
        return named_lines(msg.decoded, 1) or ["  (empty message)"]
    if msg.fields is not None:
        return ["  " + s for s in protobuf.format_lines(msg.fields)] or ["  (empty message)"]
    return []


def _add_messages(doc: Document, body: grpc.Body, encoding: str | None) -> None:
    used = 0
    for i, msg in enumerate(body.messages):
        head = Text.assemble((f"#{msg.index}", S_NAME), (f"  {human_size(msg.size)}", S_DIM))
        if msg.compressed:
            inflated = f" → {human_size(len(msg.data))}" if msg.data is not None else ""
            head.append(f"  {encoding or 'compressed'}{inflated}", S_DIM)
        if msg.type_name:
            head.append(f"  {msg.type_name}", STYLE_KEY)
        doc.add(head)
        if msg.error:
            doc.add(Text(f"  ⚠ {clean_line(msg.error)}", S_WARN), hang=4)
        lines = _message_lines(msg)
        if used + len(lines) > MAX_LINES:
            left = len(body.messages) - i
            doc.add(Text(f"… {left:,} more message{'s' if left > 1 else ''}: m shows the body "
                         "in other views", S_WARN))
            return
        used += len(lines) + 1
        for line in lines:
            doc.add(_hl(clean_line(line)), hang=4)
    if body.more:
        doc.add(Text(f"… more than {grpc.MAX_MESSAGES:,} messages: the rest are not decoded", S_WARN))
    if body.leftover:
        doc.add(Text(f"… {body.leftover:,} bytes of a message cut short (the body was captured "
                     f"partially, or only its first {READ_CAP // 1024:,} KiB decoded)", S_DIM))


def _section_head(call: grpc.Call, body: grpc.Body, request: bool) -> Text:
    n = len(body.messages)
    head = Text.assemble(("gRPC", S_TITLE))
    if request:
        name = f"{call.service} / {call.method}" if call.service else "(no service/method in the path)"
        head.append(f"  {name}", S_NAME)
    facts = [call.protocol, f"{n:,} message{'' if n == 1 else 's'}"]
    head.append("  " + " · ".join(facts), S_DIM)
    return head


def add_grpc(doc: Document, flow: Flow, request: bool) -> bool:
    """The gRPC section of the Request (request=True) or Response tab; False when the flow is
    not a gRPC call (nothing added)."""
    call = call_of(flow)
    if call is None:
        return False
    body = call.request if request else call.response
    if body is None:
        return False
    doc.add("")
    if not request:
        if call.status is not None:
            style = S_OK if call.status == 0 else S_ERROR
            line = Text.assemble(("grpc-status  ", S_NAME), (call.status_text or "", style))
            if call.message:
                line.append("  ")
                line.append(clean_line(call.message))
            doc.add(line, hang=13)
        elif flow.is_finished:
            doc.add(Text("no grpc-status (no trailers were seen)", S_WARN))
    doc.add(_section_head(call, body, request))
    if body.error:
        doc.add(Text(f"⚠ {clean_line(body.error)}", S_WARN))
    msg_headers = flow.request.headers if request else flow.response.headers  # type: ignore[union-attr]
    _add_messages(doc, body, msg_headers.get("grpc-encoding"))
    if not request and call.trailers:
        doc.add("")
        doc.add(Text.assemble(("Trailers", S_TITLE), (f"  {len(call.trailers)}", S_DIM)))
        width = min(max(len(k) for k, _ in call.trailers), 28)
        for k, v in call.trailers:
            doc.add(Text.assemble((f"{clean_line(k):<{width}}  ", S_NAME), clean_line(v)), hang=width + 2)
    return True
