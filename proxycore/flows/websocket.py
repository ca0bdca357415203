"""The WebSocket part of a flow: the messages of an upgraded connection (mitmproxy's names).

`flow.websocket` is None for every flow but one whose 101 response switched to WebSocket; then it
is a `WebSocketData` holding each message the proxy relayed (or dropped, or injected) in order,
and, once the connection ended, who closed it with which code.

Bounds: a flow keeps at most `MAX_MESSAGES` messages (the oldest go first; `omitted` counts them),
and a message keeps at most the proxy's capture limit of its payload (`size` is the whole payload,
`truncated` says it was cut) once it has been forwarded: the message forwarded is always whole.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxycore.flows.flow import Headers

TEXT = 1  # the RFC 6455 opcodes, as mitmproxy's WebSocketMessage.type and HAR's "opcode"
BINARY = 2
MAX_MESSAGES = 10_000


class WebSocketMessage:
    """One message (all of its frames). `content` is bytes for both types (text as UTF-8)."""

    __slots__ = ("type", "from_client", "content", "timestamp", "dropped", "injected", "size", "truncated")

    def __init__(self, type: int, from_client: bool, content: bytes, timestamp: float | None = None,
                 dropped: bool = False, injected: bool = False) -> None:
        self.type = type
        self.from_client = from_client
        self.content = content
        self.timestamp = time.time() if timestamp is None else timestamp
        self.dropped = dropped
        self.injected = injected
        self.size = len(content)  # the whole payload, even when `content` was cut
        self.truncated = False

    @property
    def is_text(self) -> bool:
        return self.type == TEXT

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def drop(self) -> None:
        """Do not forward this message (a websocket_message hook's verdict)."""
        self.dropped = True

    def cap(self, limit: int | None) -> None:
        """Keep at most `limit` bytes of the payload (after it was forwarded)."""
        if limit is not None and len(self.content) > limit:
            self.content = self.content[:limit]
            self.truncated = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebSocketMessage) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        arrow = "->" if self.from_client else "<-"
        return f"<WebSocketMessage {arrow} {'text' if self.is_text else 'binary'} {self.size} B>"


class WebSocketData:
    """The messages of one WebSocket connection and how it ended."""

    __slots__ = ("messages", "omitted", "closed_by_client", "close_code", "close_reason", "timestamp_end")

    def __init__(self) -> None:
        self.messages: deque[WebSocketMessage] = deque(maxlen=MAX_MESSAGES)
        self.omitted = 0  # messages dropped from the front to keep MAX_MESSAGES
        self.closed_by_client: bool | None = None  # None: not closed (yet), or no close frame
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.timestamp_end: float | None = None

    def add(self, message: WebSocketMessage) -> None:
        if len(self.messages) == MAX_MESSAGES:
            self.omitted += 1
        self.messages.append(message)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebSocketData) and all(
            (list(getattr(self, k)) if k == "messages" else getattr(self, k)) ==
            (list(getattr(other, k)) if k == "messages" else getattr(other, k)) for k in self.__slots__)

    def __repr__(self) -> str:
        return f"<WebSocketData {len(self.messages)} messages, close {self.close_code}>"


def is_websocket_upgrade(req_headers: Headers, resp_headers: Headers) -> bool:
    """A 101 that switched to WebSocket (RFC 6455 version 13), as mitmproxy decides it."""
    return (resp_headers.get("upgrade") or "").strip().lower() == "websocket" and \
        (req_headers.get("sec-websocket-version") or "").strip() == "13"


__all__ = ["BINARY", "MAX_MESSAGES", "TEXT", "WebSocketData", "WebSocketMessage", "is_websocket_upgrade"]
