"""Raw TCP flows: a stream that was neither TLS nor HTTP, relayed and recorded as messages.

Close to mitmproxy's TCPFlow / TCPMessage: a TCP flow is a `Flow` whose `tcp_messages` is a list
(None on every HTTP flow), and each message is one read from one side, with its direction and
time. Its `request` is a stand-in naming the destination (method "TCP", scheme "tcp", target
""), so the table, filters on addresses, the store and the captures need nothing new; it has no
response. Content is kept up to a cap per flow (the capture limit); past it a message keeps its
size and an empty content, and the flow says it was cut (`request.body_truncated`). A message is
cut only after it was forwarded: `tcp_message` hooks (and a breakpoint) see it whole, as sent.

`flow.messages` is `tcp_messages` (mitmproxy's TCPFlow.messages): during a `tcp_message` hook the
current message is `flow.messages[-1]`; a hook may change its `content` (what is sent on) or
`drop()` it (nothing is sent; mitmproxy's way is content = b"", which works too).
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxycore.flows.flow import Flow

METHOD = "TCP"
SCHEME = "tcp"


class TCPMessage:
    """One read from one side of a TCP stream."""

    __slots__ = ("from_client", "content", "size", "timestamp", "dropped", "injected")

    def __init__(self, from_client: bool, content: bytes, timestamp: float | None = None,
                 size: int | None = None, dropped: bool = False, injected: bool = False) -> None:
        self.from_client = from_client
        self.content = content  # possibly cut (see the module docstring); `size` is the whole read
        self.size = len(content) if size is None else size
        self.timestamp = time.time() if timestamp is None else timestamp
        self.dropped = dropped  # not sent on (a hook's or the user's verdict)
        self.injected = injected  # made by the user (inject.tcp), not read from a side

    @property
    def truncated(self) -> bool:
        return len(self.content) < self.size

    def drop(self) -> None:
        """Do not send this message on (a tcp_message hook's or a breakpoint's verdict)."""
        self.dropped = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TCPMessage) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        arrow = "->" if self.from_client else "<-"
        return f"<TCPMessage {arrow} {self.size} bytes>"


def new_tcp_flow(host: str, port: int, client_addr: tuple[str, int] | None) -> Flow:
    """A TCP flow to host:port (the stand-in request: see the module docstring)."""
    from proxycore.flows.flow import Flow, Request

    flow = Flow(Request(METHOD, SCHEME, host, port, ""), client_addr)
    flow.tcp_messages = []
    flow.server_addr = (host, port)
    return flow


def is_tcp(flow: Flow) -> bool:
    return flow.tcp_messages is not None


def add_message(flow: Flow, from_client: bool, data: bytes, room: int | None) -> int:
    """Record one read, keeping at most `room` bytes of its content (None: all); the caller
    tracks what is left of the flow's cap. Returns how many bytes were kept."""
    msg = TCPMessage(from_client, bytes(data))
    append(flow, msg)
    return cap(flow, msg, room)


def append(flow: Flow, msg: TCPMessage) -> None:
    """Record a message whole (the hooks see it so); `cap` it once it was sent on."""
    msgs = flow.tcp_messages
    assert msgs is not None
    msgs.append(msg)


def cap(flow: Flow, msg: TCPMessage, room: int | None) -> int:
    """A message was sent on (or dropped): keep at most `room` bytes of it (None: all), count
    client bytes on the stand-in request. Returns how many bytes were kept."""
    n = len(msg.content)
    msg.size = n  # what went (or would have gone) on the wire, after any edit
    if room is not None and room < n:
        msg.content = msg.content[:max(0, room)]
        flow.request.body_truncated = True
    if msg.from_client:
        flow.request.body_size += n
    return len(msg.content)


def sizes(flow: Flow) -> tuple[int, int]:
    """(bytes from the client, bytes from the server) on the wire."""
    up = down = 0
    for m in flow.tcp_messages or ():
        if m.from_client:
            up += m.size
        else:
            down += m.size
    return up, down


# --- lossless serialisation (flows/serialize.py) and capture records (capture/record.py) ----------

def messages_to_list(msgs: list[TCPMessage]) -> list[list[Any]]:
    """[from_client, base64 content, timestamp, size] per message, + [dropped, injected] when
    either is set."""
    out: list[list[Any]] = []
    for m in msgs:
        item = [m.from_client, base64.b64encode(m.content).decode("ascii"), m.timestamp, m.size]
        if m.dropped or m.injected:
            item += [m.dropped, m.injected]
        out.append(item)
    return out


def messages_from_list(items: Any) -> list[TCPMessage]:
    if not isinstance(items, list):
        raise ValueError("tcp messages must be a list")
    out = []
    for it in items:
        if not isinstance(it, list) or len(it) not in (4, 6):
            raise ValueError("a tcp message must be [from_client, content, timestamp, size(, dropped, injected)]")
        from_client, content, ts, size = it[:4]
        flags = it[4:] or [False, False]
        if not all(isinstance(x, bool) for x in flags):
            raise ValueError("malformed tcp message")
        if not isinstance(from_client, bool) or not isinstance(content, str):
            raise ValueError("malformed tcp message")
        if not isinstance(ts, int | float) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("malformed tcp message")
        out.append(TCPMessage(from_client, base64.b64decode(content, validate=True), float(ts), size,
                              flags[0], flags[1]))
    return out


def messages_to_records(msgs: list[TCPMessage], include_body: bool, limit: int | None) -> list[dict[str, Any]]:
    """The capture record's `tcpMessages`: direction, time, size and (when bodies are recorded)
    the content as text if it is UTF-8, else base64; capped at `limit` bytes in all."""
    out: list[dict[str, Any]] = []
    budget = limit
    for m in msgs:
        rec: dict[str, Any] = {"fromClient": m.from_client, "timestamp": m.timestamp, "size": m.size}
        if m.dropped:
            rec["dropped"] = True
        if m.injected:
            rec["injected"] = True
        if include_body:
            content = m.content
            if budget is not None:
                content = content[:max(0, budget)]
                budget -= len(content)
            try:
                rec["text"] = content.decode("utf-8")
            except UnicodeDecodeError:
                rec["base64"] = base64.b64encode(content).decode("ascii")
            if len(content) < m.size:
                rec["truncated"] = True
        out.append(rec)
    return out


def messages_from_records(items: Any) -> list[TCPMessage]:
    if not isinstance(items, list):
        raise ValueError("tcpMessages must be a list")
    out = []
    for n, it in enumerate(items):
        if not isinstance(it, dict):
            raise ValueError(f"tcpMessages[{n}] is not an object")
        if isinstance(it.get("text"), str):
            content = it["text"].encode("utf-8")
        elif isinstance(it.get("base64"), str):
            content = base64.b64decode(it["base64"])
        else:
            content = b""
        ts = it.get("timestamp")
        size = it.get("size")
        out.append(TCPMessage(bool(it.get("fromClient")), content,
                              float(ts) if isinstance(ts, int | float) else 0.0,
                              size if isinstance(size, int) and not isinstance(size, bool) else len(content),
                              it.get("dropped") is True, it.get("injected") is True))
    return out
