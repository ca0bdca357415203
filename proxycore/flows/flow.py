"""The flow model: one HTTP exchange (or one tunnel) as the proxy saw it.

Flows are built on the hot path, so they hold raw bytes (header names and values exactly as
received) and plain floats; strings, dicts and JSON are derived lazily by the exporters, the
stores and the UI.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxycore.flows.spill import SpilledBody
    from proxycore.flows.tcp import TCPMessage
    from proxycore.flows.websocket import WebSocketData

_ids = itertools.count(1)

# Flow states
PENDING = "pending"
INTERCEPTED = "intercepted"
DONE = "done"
ERROR = "error"


def reserve_ids(highest: int) -> None:
    """Make every id handed out from now on greater than `highest` (flows loaded from a file keep
    their ids). Call it on the event loop's thread: flows are created there, and the counter is
    swapped, not locked."""
    global _ids
    nxt = next(_ids)
    _ids = itertools.count(max(nxt, highest + 1))


def next_id() -> int:
    """The id the next new flow will get (nothing is used up): loaders tell with it which ids
    this process has not handed out yet."""
    global _ids
    nxt = next(_ids)
    _ids = itertools.count(nxt)
    return nxt


def _s(b: bytes) -> str:
    return b.decode("latin-1")


class Headers:
    """An ordered multi-map of raw header fields.

    Names keep their original case on the wire; look-ups are case-insensitive. Repeated
    headers are kept as separate fields, never joined.
    """

    __slots__ = ("fields",)

    def __init__(self, fields: Iterable[tuple[bytes, bytes]] | None = None) -> None:
        self.fields: list[tuple[bytes, bytes]] = list(fields) if fields is not None else []

    @classmethod
    def adopt(cls, fields: list[tuple[bytes, bytes]]) -> Headers:
        """Headers holding `fields` itself (no copy): for a list nobody else holds."""
        h = cls.__new__(cls)
        h.fields = fields
        return h

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        return cls((k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs)

    def get(self, name: str, default: str | None = None) -> str | None:
        n = name.lower().encode("latin-1")
        ln = len(n)
        for k, v in self.fields:
            if len(k) == ln and k.lower() == n:  # the length first: most names differ in it
                return v.decode("latin-1")
        return default

    def get_all(self, name: str) -> list[str]:
        n = name.lower().encode("latin-1")
        return [_s(v) for k, v in self.fields if k.lower() == n]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> Iterator[tuple[str, str]]:
        """(name, value) as str, original case, in wire order."""
        for k, v in self.fields:
            yield _s(k), _s(v)

    def items_lower(self) -> Iterator[tuple[str, str]]:
        for k, v in self.fields:
            yield _s(k).lower(), _s(v)

    def set(self, name: str, value: str) -> None:
        """Replace every field called `name` with one field (appended if absent)."""
        n = name.lower().encode("latin-1")
        out: list[tuple[bytes, bytes]] = []
        placed = False
        for k, v in self.fields:
            if k.lower() == n:
                if not placed:
                    out.append((k, value.encode("latin-1")))
                    placed = True
            else:
                out.append((k, v))
        if not placed:
            out.append((name.encode("latin-1"), value.encode("latin-1")))
        self.fields = out

    def remove(self, name: str) -> None:
        n = name.lower().encode("latin-1")
        self.fields = [(k, v) for k, v in self.fields if k.lower() != n]

    def __len__(self) -> int:
        return len(self.fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self.items()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self.fields == other.fields

    def __repr__(self) -> str:
        return f"Headers({list(self.items())!r})"

    def copy(self) -> Headers:
        return Headers(self.fields)


_FIELDS = Headers.__dict__["fields"]
_NUL = b"\0"  # the slot: CompactHeaders shadows it with a property


class CompactHeaders(Headers):
    """The same fields held as one bytes object (``name NUL value NUL name ...``): what a finished
    flow kept by the UI's store holds (`compact_flow`), a fifth of the memory of a list of tuples
    of bytes. Everything of `Headers` works; `fields` is then a fresh tuple on each read (it
    cannot be changed in place: use `set`, `remove` or assign `fields`, which makes the headers
    plain again)."""

    __slots__ = ("_raw",)

    def __init__(self, fields: Iterable[tuple[bytes, bytes]] | None = None) -> None:
        # each pair joined, then the pairs: two C-level joins, no Python loop per field
        raw = b"\0".join(map(_NUL.join, fields or ()))
        self._raw: bytes | None = raw if raw else None
        _FIELDS.__set__(self, None)

    @classmethod
    def pack(cls, headers: Headers) -> Headers:
        """Compact headers with the fields of `headers`; `headers` itself when a name or value holds
        a NUL (never sent by a valid peer, but an edit may put one there)."""
        fields = headers.fields
        if not fields or headers.__class__ is not Headers:
            return headers
        h = cls(fields)
        if h._raw is not None and h._raw.count(b"\0") != 2 * len(fields) - 1:
            return headers
        return h

    def _pairs(self) -> tuple[tuple[bytes, bytes], ...]:
        plain = _FIELDS.__get__(self)
        if plain is not None:
            return tuple(plain)
        if self._raw is None:
            return ()
        it = iter(self._raw.split(b"\0"))
        return tuple(zip(it, it, strict=False))  # pairs (pack checked the count)

    @property  # type: ignore[override]
    def fields(self) -> tuple[tuple[bytes, bytes], ...]:  # read-only: see the class docstring
        return self._pairs()

    @fields.setter
    def fields(self, value: list[tuple[bytes, bytes]]) -> None:
        _FIELDS.__set__(self, value)  # plain from now on (an edit)
        self._raw = None

    def get(self, name: str, default: str | None = None) -> str | None:
        n = name.lower().encode("latin-1")
        ln = len(n)
        for k, v in self._pairs():
            if len(k) == ln and k.lower() == n:
                return v.decode("latin-1")
        return default

    def set(self, name: str, value: str) -> None:
        _FIELDS.__set__(self, list(self._pairs()))
        self._raw = None
        Headers.set(self, name, value)

    def remove(self, name: str) -> None:
        _FIELDS.__set__(self, list(self._pairs()))
        self._raw = None
        Headers.remove(self, name)

    def __len__(self) -> int:
        plain = _FIELDS.__get__(self)
        if plain is not None:
            return len(plain)
        return 0 if self._raw is None else (self._raw.count(b"\0") + 1) // 2

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and list(self._pairs()) == list(other.fields)

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> Headers:
        return Headers(self._pairs())

    def __reduce__(self) -> tuple:
        return (Headers, (list(self._pairs()),))  # a copy is plain, and may be changed in place

    def __deepcopy__(self, memo: dict) -> Headers:
        return Headers(list(self._pairs()))


class _Message:
    """Common body handling. The captured body may be held as the chunks it arrived in and joined
    only when somebody reads it: joining a 1 MiB body on the hot path costs a fresh allocation,
    and most captured binary bodies are never read whole. A body too big for memory is a
    `SpilledBody` (proxycore.flows.spill) held in place of the chunks, read back on each access."""

    # trailers: the trailer fields that came after the body (Headers; None when there were none),
    # as mitmproxy's Message.trailers: chunked HTTP/1.1 trailers, HTTP/2 trailers (gRPC's status)
    __slots__ = ("_body", "_chunks", "stream", "trailers")

    @property
    def body(self) -> bytes:
        chunks = self._chunks
        if chunks is not None:
            if chunks.__class__ is not list:  # spilled: read back, not kept (memory stays bounded)
                return chunks.read()
            self._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = None
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value
        self._chunks = None

    def set_body_chunks(self, chunks: list[bytes] | SpilledBody) -> None:
        """The captured body: the chunks it arrived in, or its spill file."""
        self._body = b""
        self._chunks = chunks or None

    def body_head(self, n: int) -> bytes:
        """The first n captured bytes, without joining (or reading back) the whole body."""
        chunks = self._chunks
        if chunks is not None:
            if chunks.__class__ is not list:
                return chunks.read(n)
            if len(chunks[0]) >= n:
                return chunks[0][:n]
        return self.body[:n]

    @property
    def spilled(self) -> SpilledBody | None:
        """The spill file holding the body, if it is in one."""
        chunks = self._chunks
        return chunks if chunks is not None and chunks.__class__ is not list else None

    @property
    def captured_size(self) -> int:
        """len(self.body), without joining or reading it back."""
        chunks = self._chunks
        if chunks is None:
            return len(self._body)
        if chunks.__class__ is not list:
            return chunks.size
        return sum(map(len, chunks))

    @property
    def body_token(self) -> tuple[int, int]:
        """Changes when the body is replaced: a cheap key for caches of views of it (reading
        `body` to take its id would read a spilled body back)."""
        chunks = self._chunks
        return (id(chunks), chunks.size) if chunks is not None and chunks.__class__ is not list \
            else (id(self.body), len(self._body))


def _url_part(slot: str, doc: str = "") -> property:
    """A Request attribute that is part of its URL: read straight from `slot` (a C-level getter,
    as fast as a plain attribute), and setting it drops the cached URL."""

    def set_part(self: Request, value: object) -> None:
        setattr(self, slot, value)
        self._url = None

    return property(attrgetter(slot), set_part, doc=doc)


class Request(_Message):
    __slots__ = (
        "_method", "_scheme", "_host", "_port", "_target", "_url", "http_version", "headers",
        "body_size", "body_truncated", "authority",
    )

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        target: str,
        http_version: str = "HTTP/1.1",
        headers: Headers | None = None,
        body: bytes = b"",
        authority: str = "",
    ) -> None:
        self._method = method
        self._scheme = scheme
        self._host = host
        self._port = port
        self._target = target
        self._url: str | None = None
        self.http_version = http_version
        self.headers = headers if headers is not None else Headers()
        self._chunks = None
        self._body = body  # captured body (at most max_body_size bytes), as sent on the wire
        self.body_size = len(body)  # bytes seen on the wire, whole body
        self.body_truncated = False
        self.authority = authority  # Host header value as sent (may carry a port)
        self.stream = True  # False (set at requestheaders): buffer the body whole for the request hook
        self.trailers: Headers | None = None

    @property
    def path(self) -> str:
        """Path without the query."""
        return self.target.split("?", 1)[0]

    @property
    def query_string(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""

    @property
    def host_header(self) -> str:
        return self.authority or self.netloc

    @property
    def netloc(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return h if self.port == default else f"{h}:{self.port}"

    @property
    def url(self) -> str:
        # Cached: filters and the sort read it for every flow on each re-filter. The properties
        # above drop it whenever a part of it changes.
        url = self._url
        if url is None:
            url = self._url = self._target if self._method == "CONNECT" else \
                f"{self._scheme}://{self.netloc}{self._target}"
        return url

    # The parts of the URL: plain attributes to read, but setting one forgets the cached URL.
    method = _url_part("_method")
    scheme = _url_part("_scheme")
    host = _url_part("_host", "Lower-case, no port, IPv6 without brackets.")
    port = _url_part("_port")
    target = _url_part("_target", 'Origin-form path with query ("/a?b=1"), or "host:port" for CONNECT.')


class Response(_Message):
    __slots__ = ("status", "reason", "http_version", "headers", "body_size", "body_truncated")

    def __init__(
        self,
        status: int,
        reason: str = "",
        http_version: str = "HTTP/1.1",
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.headers = headers if headers is not None else Headers()
        self._chunks = None
        self._body = body
        self.body_size = len(body)
        self.body_truncated = False
        self.stream = True  # False (set at responseheaders): buffer the body whole for the response hook
        self.trailers: Headers | None = None


class Timings:
    """Wall-clock timestamps (time.time()) of one exchange; None when a phase did not happen."""

    __slots__ = ("start", "connect_start", "connect_end", "tls_end", "request_sent", "first_byte", "end")

    def __init__(self, start: float | None = None) -> None:
        self.start = start if start is not None else time.time()
        self.connect_start: float | None = None
        self.connect_end: float | None = None
        self.tls_end: float | None = None
        self.request_sent: float | None = None
        self.first_byte: float | None = None
        self.end: float | None = None

    @property
    def duration_ms(self) -> float | None:
        if self.end is None:
            return None
        return round((self.end - self.start) * 1000.0, 3)


class TLSInfo:
    __slots__ = ("sni", "alpn", "version", "cipher", "cert_subject", "cert_issuer", "cert_not_after", "cert_sans",
                 "cert_chain")

    def __init__(self) -> None:
        self.sni: str | None = None
        self.alpn: str | None = None
        self.version: str | None = None
        self.cipher: str | None = None
        self.cert_subject: str | None = None
        self.cert_issuer: str | None = None
        self.cert_not_after: str | None = None
        self.cert_sans: list[str] = []
        # The peer's certificates as sent (leaf first), PEM text: kept as is, parsed only when shown
        # (proxycore.certinfo); text so every serialisation keeps it losslessly.
        self.cert_chain: str = ""

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k)}


class Peer:
    """One client connection, as the connection hooks see it."""

    __slots__ = ("address", "tls", "opened", "closed", "flows", "error")

    def __init__(self, address: tuple[str, int] | None) -> None:
        self.address = address
        self.tls: TLSInfo | None = None
        self.opened = time.time()
        self.closed: float | None = None
        self.flows = 0  # exchanges served on it
        self.error: str | None = None


class Flow:
    """One exchange. `id` is unique and increasing within the process."""

    __slots__ = (
        "id", "client_addr", "server_addr", "request", "response", "error", "timings",
        "client_tls", "server_tls", "state", "marked", "comment", "tags", "is_replay",
        "modified", "passthrough", "in_scope", "sampled", "killed", "original_request", "original_response",
        "rules_applied", "websocket", "tcp_messages", "stream", "__weakref__",
    )

    def __init__(self, request: Request, client_addr: tuple[str, int] | None = None,
                 assign_id: bool = True) -> None:
        # A CONNECT that gets intercepted is never shown: it takes an id only when published,
        # so the ids users see have no gaps.
        self.id = next(_ids) if assign_id else 0
        self.client_addr = client_addr
        self.server_addr: tuple[str, int] | None = None
        self.request = request
        self.response: Response | None = None
        self.error: str | None = None
        self.timings = Timings()
        self.client_tls: TLSInfo | None = None  # the client's TLS to us (MITM)
        self.server_tls: TLSInfo | None = None  # our TLS to the origin
        self.state = PENDING
        self.marked = False
        self.comment = ""
        self.tags: list[str] = []
        self.is_replay = False
        self.modified = False
        self.passthrough = False  # a tunnel relayed untouched (skip-host or --no-mitm)
        self.in_scope = True  # include/exclude filters
        self.sampled = True  # sampling decision for sinks
        # The messages as they were before the user edited them (None: never edited); the edit
        # features fill these so the unedited exchange can be shown and saved next to the edited one.
        self.original_request: Request | None = None
        self.original_response: Response | None = None
        self.killed = False
        # labels of the rewrite rules that changed this flow, in order (proxycore.addons.rules);
        # a tuple so an untouched flow shares the empty one
        self.rules_applied: tuple[str, ...] = ()
        # the messages after a 101 to WebSocket (proxycore.flows.websocket); None for other flows
        self.websocket: WebSocketData | None = None
        # A raw TCP flow's messages (proxycore.flows.tcp); None on every HTTP flow
        self.tcp_messages: list[TCPMessage] | None = None
        # (h2 connection id, stream id) for a flow that was one stream of a client's HTTP/2
        # connection (proxycore.proxy.http2); flows sharing the id shared the connection
        self.stream: tuple[int, int] | None = None

    def kill(self) -> None:
        """End the flow at once: the client connection is closed without a response (an
        addon's verdict; what the client sees is a reset connection)."""
        self.killed = True
        if self.error is None:
            self.error = "killed"

    @property
    def messages(self) -> list[TCPMessage] | None:
        """A TCP flow's messages under mitmproxy's name (TCPFlow.messages): `tcp_message` hooks
        written for mitmproxy read `flow.messages[-1]`. None on HTTP flows."""
        return self.tcp_messages

    def ensure_id(self) -> None:
        if not self.id:
            self.id = next(_ids)

    @property
    def is_finished(self) -> bool:
        """Done or failed: the proxy changes a finished flow no more."""
        return self.state == DONE or self.state == ERROR

    @property
    def is_tls(self) -> bool:
        return self.request.scheme == "https"

    def __repr__(self) -> str:
        status = self.response.status if self.response else (self.error or "-")
        return f"<Flow {self.id} {self.request.method} {self.request.url} {status}>"


def compact_flow(flow: Flow) -> None:
    """Hold a finished flow in less memory, for a store that keeps it long (the UI's): headers as
    one bytes object each (CompactHeaders), the body's chunks joined, and the strings many flows
    repeat (method, scheme, host, authority, version, reason) shared through interning. Nothing a
    reader sees changes. Called once per kept flow when it finishes, never on the headless path."""
    intern = sys.intern
    req = flow.request
    req.headers = CompactHeaders.pack(req.headers)
    if req._chunks is not None and req._chunks.__class__ is list:
        req.body  # noqa: B018 - joins the chunks
    req._method = intern(req._method)
    req._scheme = intern(req._scheme)
    req._host = intern(req._host)
    if req.authority:
        req.authority = intern(req.authority)
    req.http_version = intern(req.http_version)
    resp = flow.response
    if resp is not None:
        resp.headers = CompactHeaders.pack(resp.headers)
        if resp._chunks is not None and resp._chunks.__class__ is list:
            resp.body  # noqa: B018
        resp.reason = intern(resp.reason)
        resp.http_version = intern(resp.http_version)
