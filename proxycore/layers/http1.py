"""HTTP/1.1 as a sans-io codec (RFC 9112): bytes in, events out; events in, bytes out.

`H1Server` parses requests from a client and serialises responses to it; `H1Client` serialises
requests to an origin and parses its responses. Neither touches a socket. httptools (llhttp)
parses heads (start line and fields) and trailer sections. The codec finds where a head ends
itself (the empty line) and feeds llhttp exactly the head's bytes, never body bytes: so it always
knows the offset where the body (or the next pipelined message) starts, the head limit counts
exactly the head's bytes, and llhttp's own framing rules never decide anything. Content-Length
bodies are counted, so a received buffer of body bytes becomes one `Data` event holding that same
bytes object; chunked bodies are de-framed here (a `bytes.find` per chunk line, no per-byte loop),
which yields the exact end of the message for pipelining and the exact size of a trailer section.

Framing (RFC 9112 section 6):
- `Transfer-Encoding` is a token list: only a final `chunked` frames the body. A request whose
  list does not end in `chunked`, that has `chunked` twice, that also has `Content-Length`, or
  that is HTTP/1.0 is rejected (400); an unknown coding before `chunked` is 501. A response with
  both drops Content-Length (TE wins); one whose list does not end in chunked is rejected (502).
- Conflicting or malformed `Content-Length` values are rejected (400 / 502).
- Responses to HEAD, 1xx, 204 and 304 carry no body; 2xx to CONNECT switches to a tunnel; a
  response with neither TE nor CL is delimited by the connection closing.
- The head (start line and header fields) is limited to `max_head_size` bytes however the bytes
  arrive: 431 for a request, 502 for a response. Blank lines before a request line are skipped
  and not counted. A chunk-size line and a trailer section are held to the same limit.
- Trailer fields after a chunked body are kept (`EndOfMessage.trailers`) and re-emitted by `end()`.
- Only HTTP/1.0 and HTTP/1.1 are accepted (400 / 502 otherwise).
- Chunk extensions are accepted and dropped.
"""

from __future__ import annotations

import re
from collections import deque

import httptools

Headers = list[tuple[bytes, bytes]]

# body framing of a head
NONE, LENGTH, CHUNKED, CLOSE = "none", "length", "chunked", "close"


class Event:
    __slots__ = ()


class RequestHead(Event):
    """A request's start line and header fields. `target` is decoded as latin-1, as received.
    `upgrade` is true for CONNECT and for requests with `Connection: upgrade` + `Upgrade`:
    after such a request the parser pauses (see `H1Server.resume` / `H1Server.detach`)."""

    __slots__ = ("method", "target", "version", "headers", "framing", "content_length", "keep_alive", "upgrade")

    def __init__(self, method: str, target: str, version: str, headers: Headers, framing: str,
                 content_length: int | None, keep_alive: bool, upgrade: bool) -> None:
        self.method = method  # "GET"
        self.target = target  # "/a?b" or "http://h/a" or "h:443"
        self.version = version  # "1.1" / "1.0"
        self.headers = headers  # raw fields as received, original case, wire order
        self.framing = framing  # NONE | LENGTH | CHUNKED
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.upgrade = upgrade


class ResponseHead(Event):
    """A response head. An interim 1xx (not 101) comes as a ResponseHead with no EndOfMessage;
    the final head follows."""

    __slots__ = ("status", "reason", "version", "headers", "framing", "content_length", "keep_alive", "raw")

    def __init__(self, status: int, reason: bytes, version: str, headers: Headers, framing: str,
                 content_length: int | None, keep_alive: bool, raw: bytes = b"") -> None:
        self.raw = raw  # the head as received, when it came in one piece (b"" otherwise)
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.framing = framing  # NONE | LENGTH | CHUNKED | CLOSE
        self.content_length = content_length
        self.keep_alive = keep_alive


class Data(Event):
    """Body bytes: bytes, or a memoryview of a received buffer for a large piece that followed a
    head in the same read (write it, join it, or copy what you keep)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data


class EndOfMessage(Event):
    __slots__ = ("trailers",)

    def __init__(self, trailers: Headers | None = None) -> None:
        self.trailers = trailers


class ProtocolError(Event):
    """The peer sent something that is not valid HTTP/1.1. `status` is what to answer a client
    with (400, 431, 501) or 502 for an origin. The codec parses nothing after it."""

    __slots__ = ("status", "message")

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


class Switched(Event):
    """After 101 (H1Client) the connection speaks another protocol: `rest` is what followed the
    head in the same buffer; the codec parses nothing after it."""

    __slots__ = ("rest",)

    def __init__(self, rest: bytes) -> None:
        self.rest = rest



# --- internals -------------------------------------------------------------------------------

_KNOWN_CODINGS = frozenset((b"gzip", b"x-gzip", b"deflate", b"compress", b"x-compress"))
_HEX = b"0123456789abcdefABCDEF"
_EMPTY: frozenset[bytes] = frozenset()
# a Content-Length field name at the start of a line (see _H1Parser._reparse_hiding_cl)
_CL_NAME = re.compile(rb"\r\n([Cc])(?=ontent-length[ \t]*:)", re.IGNORECASE)
_HIDDEN_CL = b"~ontent-length"
_ODD_METHODS = frozenset(("HEAD", "CONNECT"))  # responses to these are framed specially
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH", "TRACE")}

# receiving states
_IDLE, _HEAD, _LENGTH, _CHUNKED, _CLOSE, _PAUSED, _DONE = range(7)
_STOP = 1 << 62  # an offset past any buffer: receive_data stops
# Content-Length (14), Transfer-Encoding (17), Connection (10), Upgrade (7): fields whose name has
# one of these lengths are looked at again after the head; the others never are.
_FRAMING_LENGTHS = frozenset((14, 17, 10, 7))

# inside a chunked body
_C_SIZE, _C_DATA, _C_CRLF, _C_TRAILER = range(4)


class _Sink:
    """httptools' protocol object. Kept apart from the codec so that codec -> parser -> callbacks
    is not a reference cycle (the UI freezes long-lived objects; cycles would outlive their use)."""

    __slots__ = ("url", "headers", "head_done", "complete", "framing")

    def __init__(self) -> None:
        self.url = b""  # request target, or a response's reason phrase
        self.headers: Headers = []
        self.framing: Headers = []  # the fields that may decide framing (by name length, see _framing_fields)
        self.head_done = False  # llhttp saw the whole head
        self.complete = False  # llhttp finished the message (so its parser can be reused)

    def on_url(self, url: bytes) -> None:
        self.url += url

    on_status = on_url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(name) in _FRAMING_LENGTHS:
            self.framing.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_message_complete(self) -> None:
        self.complete = True


def _lenient(parser):
    # llhttp must not judge Transfer-Encoding / Content-Length combinations: the codec does.
    parser.set_dangerous_leniencies(lenient_chunked_length=True, lenient_transfer_encoding=True)
    return parser


def _parse_fields(section: bytes) -> Headers:
    """Field lines ending in an empty line (a trailer section), parsed by llhttp."""
    sink = _Sink()
    parser = _lenient(httptools.HttpResponseParser(sink))
    try:
        parser.feed_data(b"HTTP/1.1 200 OK\r\n" + section)
    except httptools.HttpParserUpgrade:
        pass
    return sink.headers


def _content_length(values: list[bytes]) -> int:
    """One length from every Content-Length field (each possibly a comma list); ValueError if
    any item is not a decimal number or two items differ."""
    if len(values) == 1:
        v = values[0]
        if v.isdigit():
            return int(v)
    result = None
    for v in values:
        for item in v.split(b","):
            item = item.strip(b" \t")
            if not item.isdigit():
                raise ValueError("invalid Content-Length")
            n = int(item)
            if result is not None and n != result:
                raise ValueError("conflicting Content-Length values")
            result = n
    if result is None:
        raise ValueError("invalid Content-Length")
    return result


def _chunk_size(line: bytes) -> int:
    """The size from a chunk-size line (ending in CRLF, extensions ignored), -1 if malformed."""
    if line[-2:] != b"\r\n":
        return -1
    size, _, ext = line[:-2].partition(b";")
    size = size.rstrip(b" \t")
    if not size or len(size) > 16 or size.translate(None, _HEX) or b"\r" in ext:
        return -1
    return int(size, 16)


def _keep_alive(version: str, tokens: frozenset[bytes] | set[bytes]) -> bool:
    if b"close" in tokens:
        return False
    return version == "1.1" or b"keep-alive" in tokens


_VIEW_MIN = 16384  # body bytes after a head in the same buffer: from this size a view, not a copy


def _tail(data: bytes, start: int, end: int) -> bytes | memoryview:
    """data[start:end] for a Data event. The body that follows a head in one read (up to 256 KiB
    from the socket) is passed on as a view: copying it cost ~40 us per response of 1 MiB. The
    consumers write it or join it; what keeps it (a capture) copies the part it keeps."""
    if end - start >= _VIEW_MIN:
        return memoryview(data)[start:end]
    return data[start:end]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


class _H1Parser:
    """What H1Server and H1Client share: finding heads, bodies, trailers; serialising."""

    _request = True
    _parser_class = httptools.HttpRequestParser
    _bad_status = 400
    _prefix = "malformed request: "
    _too_big = (431, "request header block too large")
    _trailers_too_big = (431, "request trailer section too large")

    def __init__(self, max_head_size: int = 65536) -> None:
        self.max_head_size = max_head_size
        self._sink = _Sink()
        self._parser = _lenient(self._parser_class(self._sink))
        self._state = _IDLE
        self.in_message = False  # between the first byte of a message and its end
        self._head_len = 0  # bytes of the head (or trailer section) so far
        self._parts: list[bytes] = []  # its pieces from earlier buffers
        self._tail = b""  # its last (up to) 3 bytes, to find an empty line split across buffers
        self._cl_retry = False  # llhttp refused a Content-Length: decide after the whole head
        self._hidden_cl: list[bytes] | None = None
        self._remaining = 0  # body bytes (LENGTH) or chunk bytes (CHUNKED) still to come
        self._cstate = _C_SIZE
        self._line = b""  # an incomplete chunk-size line
        self._out_framing = NONE
        self._head_start = -1


    # --- receiving ---------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        st = self._state
        if st >= _PAUSED or not data:
            if st == _PAUSED and data:
                self._kept.append(data)
            return []
        events: list[Event] = []
        pos = 0
        n = len(data)
        while pos < n:
            st = self._state
            if st == _LENGTH:
                rem = self._remaining
                avail = n - pos
                if avail < rem:
                    events.append(Data(data if pos == 0 else _tail(data, pos, n)))
                    self._remaining = rem - avail
                    return events
                events.append(Data(data if pos == 0 and avail == rem else _tail(data, pos, pos + rem)))
                pos += rem
                self._remaining = 0
                self._end_message(events, None)
            elif st == _CHUNKED:
                pos = self._receive_chunked(data, pos, events)
            elif st == _CLOSE:
                events.append(Data(data if pos == 0 else _tail(data, pos, n)))
                return events
            elif st == _PAUSED:
                self._kept.append(data[pos:])
                return events
            elif st == _DONE:
                break
            else:
                pos = self._receive_head(data, pos, events)
        return events

    def take_body(self, data: bytes) -> bool:
        """The fast path through a Content-Length body: True when every byte of `data` belongs
        to the body and is not its end (counted as received: the caller treats `data` as one
        Data event); False when receive_data must look at it."""
        if self._state == _LENGTH and len(data) < self._remaining:
            self._remaining -= len(data)
            return True
        return False

    def body_left(self) -> int:
        """Bytes of a Content-Length body still to come (0 when not in one)."""
        return self._remaining if self._state == _LENGTH else 0

    def skip_body(self, n: int) -> None:
        """`n` bytes of the Content-Length body went past the codec (spliced), never its last."""
        if self._state != _LENGTH or not 0 < n < self._remaining:
            raise ValueError(f"cannot skip {n} of {self.body_left()} body bytes")
        self._remaining -= n

    def _fail(self, events: list[Event], status: int, message: str) -> int:
        events.append(ProtocolError(status, message))
        self._state = _DONE
        self.in_message = False
        return _STOP

    def _body_framing(self, codings: list[bytes] | None, cl: list[bytes] | None, events: list[Event],
                      otherwise: str) -> tuple[str, int | None] | None:
        """(framing, Content-Length) from a head's framing fields, or None after a ProtocolError.
        Only a final chunked frames a body; codings before it must be known ones."""
        prefix = self._prefix
        if codings is not None:
            if not codings or codings[-1] != b"chunked":
                self._fail(events, self._bad_status, prefix + "Transfer-Encoding must end with chunked")
                return None
            if b"chunked" in codings[:-1]:
                self._fail(events, self._bad_status, prefix + "chunked applied more than once")
                return None
            for coding in codings[:-1]:
                if coding not in _KNOWN_CODINGS:
                    self._fail(events, *self._unknown_coding(coding.decode("latin-1")))
                    return None
            return CHUNKED, None
        if cl is not None:
            try:
                return LENGTH, _content_length(cl)
            except ValueError as exc:
                self._fail(events, self._bad_status, f"{prefix}{exc}")
                return None
        return otherwise, None

    def _unknown_coding(self, name: str) -> tuple[int, str]:
        return 501, f"unsupported transfer coding: {name}"

    def _start_head(self) -> None:
        self._state = _HEAD
        self._head_start = -1  # the head spans buffers: no raw copy of it
        self.in_message = True
        self._head_len = 0
        self._parts = []
        self._tail = b""
        self._cl_retry = False
        self._hidden_cl = None
        sink = self._sink
        sink.url = b""
        sink.headers = []
        sink.framing = []
        sink.head_done = sink.complete = False

    def _find_end(self, data: bytes, pos: int) -> int:
        """The offset just past the empty line ending a head / trailer section, or -1."""
        tail = self._tail
        if tail:
            i = (tail + data[pos:pos + 3]).find(b"\r\n\r\n")
            if i >= 0:
                return pos + i + 4 - len(tail)
        i = data.find(b"\r\n\r\n", pos)
        return i + 4 if i >= 0 else -1

    def _keep_piece(self, data: bytes, pos: int) -> None:
        piece = data if pos == 0 else data[pos:]
        self._parts.append(piece)
        self._head_len += len(piece)
        self._tail = (self._tail + piece[-3:])[-3:]

    def _feed(self, chunk: bytes | memoryview) -> str | None:
        """Head bytes to llhttp: None when it took them, else its reason for refusing them."""
        try:
            self._parser.feed_data(chunk)
        except httptools.HttpParserUpgrade:
            pass  # CONNECT / 101: the codec decides what follows
        except httptools.HttpParserError as exc:
            return str(exc) or type(exc).__name__
        return None

    def _receive_head(self, data: bytes, pos: int, events: list[Event]) -> int:
        n = len(data)
        if self._state == _IDLE:
            if not self._request and not self._expected:  # type: ignore[attr-defined]
                return self._fail(events, 502, "unexpected data from upstream: no response pending")
            if self._request and data[pos] in b"\r\n":
                pos = n - len(data[pos:].lstrip(b"\r\n"))  # blank lines before a request line
                if pos == n:
                    return n
            end = data.find(b"\r\n\r\n", pos) + 4
            if 4 <= end - pos <= self.max_head_size:
                # The whole head is in this buffer (nearly always): no pieces to keep.
                sink = self._sink
                sink.url = b""
                sink.headers = []
                sink.framing = []
                sink.head_done = sink.complete = False
                self.in_message = True
                self._head_len = end - pos
                self._head_start = pos
                self._hidden_cl = None
                try:
                    self._parser.feed_data(data if pos == 0 and end == n else memoryview(data)[pos:end])
                except httptools.HttpParserUpgrade:
                    pass  # CONNECT / 101: the codec decides what follows
                except httptools.HttpParserError as exc:
                    reason = str(exc) or type(exc).__name__
                    if "Content-Length" not in reason:
                        return self._fail(events, self._bad_status, self._prefix + _lower_first(reason))
                    err = self._reparse_hiding_cl(data[pos:end])
                    if err is not None:
                        return self._fail(events, self._bad_status, self._prefix + _lower_first(err))
                    self._state = _HEAD
                    return self._finish_head(data, end, events)
                if not sink.head_done:
                    return self._fail(events, self._bad_status, self._prefix + "unparsable head")
                self._state = _HEAD
                return self._quick_head(data, end, events)
            self._start_head()
        end = self._find_end(data, pos)
        stop = end if end >= 0 else n
        room = self.max_head_size - self._head_len
        over = stop - pos > room
        if over:
            stop = pos + room  # llhttp's verdict on the bytes within the limit comes first
        if stop > pos and not self._cl_retry:
            reason = self._feed(data if pos == 0 and stop == n else memoryview(data)[pos:stop])
            if reason is not None:
                if "Content-Length" not in reason:
                    return self._fail(events, self._bad_status, self._prefix + _lower_first(reason))
                self._cl_retry = True
        if over:
            return self._fail(events, *self._too_big)
        if end < 0:
            self._keep_piece(data, pos)
            return n
        self._head_len += end - pos
        if self._cl_retry:
            err = self._reparse_hiding_cl(b"".join(self._parts) + data[pos:end])
            if err is not None:
                return self._fail(events, self._bad_status, self._prefix + _lower_first(err))
        self._parts = []
        if not self._sink.head_done:  # cannot happen: llhttp must agree where the head ends
            return self._fail(events, self._bad_status, self._prefix + "unparsable head")
        return self._finish_head(data, end, events)

    def _reparse_hiding_cl(self, head: bytes) -> str | None:
        """llhttp rejects every repeated Content-Length (and reports bad ones in its own words):
        parse the head again with those fields renamed, so the codec's rules decide (identical
        repeats are fine). The names are restored in `_take_headers`."""
        firsts: list[bytes] = []

        def hide(m: re.Match) -> bytes:
            firsts.append(m.group(1))
            return b"\r\n~"

        sink = self._sink
        sink.url = b""
        sink.headers = []
        sink.framing = []
        sink.head_done = sink.complete = False
        self._parser = _lenient(self._parser_class(sink))
        try:
            self._parser.feed_data(_CL_NAME.sub(hide, head))
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as exc:
            return str(exc) or type(exc).__name__
        self._hidden_cl = firsts
        sink.complete = False  # llhttp saw no length: its parser is not where ours is
        return None

    def _take_headers(self) -> Headers:
        headers = self._sink.headers
        firsts = self._hidden_cl
        if firsts:
            it = iter(firsts)
            headers = [(next(it) + k[1:], v) if k[:1] == b"~" and k.lower() == _HIDDEN_CL else (k, v)
                       for k, v in headers]
        return headers

    def _next_parser(self, keep_alive: bool) -> None:
        """After a head: llhttp's parser goes on only if it finished the message as we did and
        expects another one (after a message that ends the connection it ignores all input)."""
        if not (self._sink.complete and keep_alive):
            self._parser = _lenient(self._parser_class(self._sink))

    def _simple_framing(self) -> tuple[bytes | None, frozenset[bytes]] | None:
        """The framing fields of a head parsed in one piece when they are the usual ones: (the
        single all-digit Content-Length or None, Connection tokens). None when anything needs
        the general rules (Transfer-Encoding, Upgrade, a repeated or odd field)."""
        cl = None
        tokens = _EMPTY
        for name, value in self._sink.framing:
            lname = name.lower()
            if lname == b"content-length":
                if cl is not None or not value.isdigit():
                    return None
                cl = value
            elif lname == b"connection":
                t = _COMMON_CONNECTION.get(value)
                if t is None or tokens is not _EMPTY or b"upgrade" in t:
                    return None
                tokens = t
            elif lname == b"transfer-encoding" or lname == b"upgrade":
                return None
        return cl, tokens

    def _quick_head(self, data: bytes, end: int, events: list[Event]) -> int:
        return self._finish_head(data, end, events)  # type: ignore[attr-defined]

    def _start_body(self, framing: str, length: int | None, events: list[Event], end: int) -> int:
        """After a head: the state that reads its body (or the message's end when it has none)."""
        if framing == CHUNKED:
            self._state = _CHUNKED
            self._cstate = _C_SIZE
            self._line = b""
        elif framing == CLOSE:
            self._state = _CLOSE
        elif framing == LENGTH and length:
            self._state = _LENGTH
            self._remaining = length
        else:
            self._end_message(events, None)
        return end

    def _framing_fields(self, headers: Headers):
        """(TE codings or None, Content-Length values or None, Connection tokens, has Upgrade)."""
        # The sink kept the few fields whose name length could make them framing fields; with
        # Content-Length names hidden for a re-parse (see _reparse_hiding_cl) look at them all.
        fields = headers if self._hidden_cl else self._sink.framing
        if not fields:
            return None, None, _EMPTY, False
        te = cl = conn = None
        upgrade = False
        for name, value in fields:
            lname = name.lower()
            if lname == b"content-length":
                cl = [value] if cl is None else cl + [value]
            elif lname == b"connection":
                conn = value if conn is None else conn + b"," + value
            elif lname == b"transfer-encoding":
                te = True
            elif lname == b"upgrade":
                upgrade = True
        codings = transfer_codings(fields) if te else None
        if conn is None:
            tokens = _EMPTY
        else:
            tokens = _COMMON_CONNECTION.get(conn) or connection_tokens([(b"connection", conn)])
        return codings, cl, tokens, upgrade

    def _receive_chunked(self, data: bytes, pos: int, events: list[Event]) -> int:
        n = len(data)
        while pos < n:
            cs = self._cstate
            if cs == _C_DATA:
                rem = self._remaining
                avail = n - pos
                if avail <= rem:
                    events.append(Data(data if pos == 0 else data[pos:]))
                    self._remaining = rem - avail
                    if avail == rem:
                        self._cstate = _C_CRLF
                    return n
                events.append(Data(data[pos:pos + rem]))
                pos += rem
                self._remaining = 0
                self._cstate = _C_CRLF
            elif cs == _C_TRAILER:
                return self._receive_trailers(data, pos, events)
            else:
                if cs == _C_CRLF and not self._line and data.startswith(b"\r\n", pos):
                    pos += 2
                    self._cstate = _C_SIZE
                    continue
                i = data.find(b"\n", pos)
                if i < 0:
                    self._line += data[pos:]
                    if len(self._line) > self.max_head_size:
                        return self._fail(events, self._bad_status, self._prefix + "chunk size line too long")
                    return n
                line = self._line + data[pos:i + 1] if self._line else data[pos:i + 1]
                self._line = b""
                pos = i + 1
                if cs == _C_CRLF:
                    if line != b"\r\n":
                        return self._fail(events, self._bad_status,
                                          self._prefix + "chunk data not followed by CRLF")
                    self._cstate = _C_SIZE
                    continue
                if len(line) > self.max_head_size:
                    return self._fail(events, self._bad_status, self._prefix + "chunk size line too long")
                size = _chunk_size(line)
                if size < 0:
                    return self._fail(events, self._bad_status, self._prefix + "invalid chunk size line")
                if size:
                    self._remaining = size
                    self._cstate = _C_DATA
                else:
                    self._cstate = _C_TRAILER
                    self._head_len = 0
                    self._parts = []
                    self._tail = b"\r\n"  # the last chunk's CRLF: an empty section ends at once
        return pos

    def _receive_trailers(self, data: bytes, pos: int, events: list[Event]) -> int:
        end = self._find_end(data, pos)
        stop = end if end >= 0 else len(data)
        if stop - pos > self.max_head_size - self._head_len:
            return self._fail(events, *self._trailers_too_big)
        if end < 0:
            self._keep_piece(data, pos)
            return stop
        section = b"".join(self._parts) + data[pos:end] if self._parts else data[pos:end]
        self._parts = []
        trailers = None
        if section != b"\r\n":
            try:
                trailers = _parse_fields(section)
            except httptools.HttpParserError as exc:
                reason = str(exc) or type(exc).__name__
                return self._fail(events, self._bad_status, f"{self._prefix}invalid trailer section: {reason}")
        self._end_message(events, trailers)
        return end

    # --- serialising ---------------------------------------------------------------------------
    def _head(self, line: bytes, headers: Headers, framing: str) -> bytes:
        self._out_framing = framing
        return line + b"".join([k + b": " + v + b"\r\n" for k, v in headers]) + b"\r\n"

    def use_framing(self, framing: str) -> None:
        """The caller wrote a head itself (forwarded as received): frame the body by `framing`."""
        self._out_framing = framing

    def data(self, data: bytes) -> bytes:
        """The body bytes framed as the current message's framing says (chunked: one chunk;
        b"" for an empty chunk, which would end a chunked body, gives b"")."""
        if self._out_framing == CHUNKED:
            return b"%x\r\n%b\r\n" % (len(data), data) if data else b""
        return data

    def end(self, trailers: Headers | None = None) -> bytes:
        """The end of the current message body (b"0\\r\\n" + trailers + b"\\r\\n" when chunked;
        b"" otherwise: without chunked framing there is nowhere to put trailers, they are dropped)."""
        framing, self._out_framing = self._out_framing, NONE
        if framing != CHUNKED:
            return b""
        if not trailers:
            return b"0\r\n\r\n"
        return self._head(b"0\r\n", trailers, NONE)


class H1Server(_H1Parser):
    """The client-facing side: parses requests, serialises responses.

    receive_data(data) -> list of events: RequestHead, Data*, EndOfMessage, for each request in
    order (pipelined requests come out in one call), or a ProtocolError (then nothing more).
    After a RequestHead with `upgrade` and its EndOfMessage (a CONNECT has no body), the parser
    pauses: further bytes are kept, unparsed, until `resume()` (the request was refused or
    answered without switching: the kept bytes are parsed and their events returned) or
    `detach()` (the connection switched protocol: the kept raw bytes are returned and the codec
    is done).
    receive_eof() -> [ProtocolError] when the peer closed mid-message, else [].
    """

    def __init__(self, max_head_size: int = 65536) -> None:
        super().__init__(max_head_size)
        self._upgrade = False
        self._kept: list[bytes] = []
        # Complete requests to parse before holding (pausing as after an upgrade request) until
        # resume(): how a connection bounds the requests it reads ahead, even within one buffer.
        self.budget = 1 << 62
        self.held = False  # paused because the budget ran out (not because of an upgrade request)


    def _quick_head(self, data: bytes, end: int, events: list[Event]) -> int:
        """_finish_head for the common request: HTTP/1.x, no Transfer-Encoding or Upgrade, at
        most one plain Content-Length (the rules are the same; only the general case is slower)."""
        simple = self._simple_framing()
        p = self._parser
        version = p.get_http_version()
        raw_method = p.get_method()
        method = _METHODS.get(raw_method)
        if simple is None or method is None or method == "CONNECT" or (version != "1.1" and version != "1.0"):
            return self._finish_head(data, end, events)
        cl, tokens = simple
        if b"close" in tokens:
            keep_alive = False
        else:
            keep_alive = version == "1.1" or b"keep-alive" in tokens
        sink = self._sink
        length = int(cl) if cl is not None else None
        events.append(RequestHead(method, sink.url.decode("latin-1"), version, sink.headers,
                                  LENGTH if cl is not None else NONE, length, keep_alive, False))
        self._upgrade = False
        if not (sink.complete and keep_alive):
            self._parser = _lenient(self._parser_class(sink))
        if length:
            self._state = _LENGTH
            self._remaining = length
            return end
        # _end_message, inline
        events.append(EndOfMessage(None))
        self.in_message = False
        self.budget -= 1
        if self.budget <= 0:
            self._state = _PAUSED
            self.held = True
        else:
            self._state = _IDLE
        return end

    def _finish_head(self, data: bytes, end: int, events: list[Event]) -> int:
        p = self._parser
        raw_method = p.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        version = p.get_http_version()
        headers = self._take_headers()
        if version != "1.1" and version != "1.0":
            return self._fail(events, 400, f"malformed request: unsupported HTTP version {version}")
        codings, cl, tokens, has_upgrade = self._framing_fields(headers)
        length = None
        if codings is not None:
            if version == "1.0":
                return self._fail(events, 400, "malformed request: Transfer-Encoding in an HTTP/1.0 request")
            if cl is not None:
                return self._fail(events, 400, "malformed request: both Transfer-Encoding and Content-Length")
        framed = self._body_framing(codings, cl, events, NONE)
        if framed is None:
            return _STOP
        framing, length = framed
        upgrade = method == "CONNECT" or (has_upgrade and b"upgrade" in tokens)
        self._upgrade = upgrade
        # llhttp's should_keep_alive() is only right inside on_headers_complete (llhttp clears its
        # flags when it completes a message); for a request it is exactly this rule.
        keep_alive = _keep_alive(version, tokens)
        events.append(RequestHead(method, self._sink.url.decode("latin-1"), version, headers, framing,
                                  length, keep_alive, upgrade))
        self._next_parser(keep_alive and not upgrade)
        return self._start_body(framing, length, events, end)

    def _end_message(self, events: list[Event], trailers: Headers | None) -> None:
        events.append(EndOfMessage(trailers))
        self.in_message = False
        self.budget -= 1
        if self._upgrade:
            self._state = _PAUSED
        elif self.budget <= 0:
            self._state = _PAUSED
            self.held = True
        else:
            self._state = _IDLE

    def receive_eof(self) -> list[Event]:
        st = self._state
        if st == _PAUSED or st == _DONE:
            return []
        self._state = _DONE
        if self.in_message:
            self.in_message = False
            return [ProtocolError(400, "malformed request: connection closed mid-message")]
        return []

    def resume(self) -> list[Event]:
        """Parse the bytes kept since an `upgrade` request (the switch did not happen)."""
        if self._state != _PAUSED:
            return []
        self._state = _IDLE
        self._upgrade = self.held = False
        kept, self._kept = self._kept, []
        if not kept:
            return []
        return self.receive_data(kept[0] if len(kept) == 1 else b"".join(kept))

    def detach(self) -> bytes:
        """The raw bytes kept since an `upgrade` request; the codec is done after this."""
        self._state = _DONE
        self.in_message = False
        kept, self._kept = self._kept, []
        return b"".join(kept)

    # --- serialising responses ------------------------------------------------------------
    def response_head(self, status: int, reason: bytes, version: str, headers: Headers,
                      framing: str) -> bytes:
        """b"HTTP/1.1 200 OK\\r\\n" + fields + b"\\r\\n". `framing` CHUNKED makes data()/end()
        chunk-encode; the caller's headers must already say so (Transfer-Encoding: chunked)."""
        return self._head(b"HTTP/%s %d %s\r\n" % (version.encode("ascii"), status, reason), headers, framing)


class H1Client(_H1Parser):
    """The origin-facing side: serialises requests, parses responses.

    expect_response(method) must be called before the response's bytes are fed, so HEAD and
    CONNECT are framed right (request_head() does not call it). Several may be outstanding
    (pipelining): responses are matched in order. receive_data -> ResponseHead (interim 1xx heads
    first), Data*, EndOfMessage; or Switched after 101 (and after a 2xx to CONNECT); or
    ProtocolError. `in_message` stays true from the first byte of an interim 1xx to the final
    response's EndOfMessage.
    receive_eof() -> [EndOfMessage] when the body was delimited by close, [ProtocolError] when
    the connection closed mid-message, else [].
    Bytes arriving while no response is expected are a ProtocolError (the origin misbehaves).
    ResponseHead.content_length is the (valid) Content-Length field even when the response has
    no body (HEAD, 204, 304); None with Transfer-Encoding.
    """

    _request = False
    _parser_class = httptools.HttpResponseParser
    _bad_status = 502
    _prefix = "malformed response: "

    def _unknown_coding(self, name: str) -> tuple[int, str]:
        return 502, f"malformed response: unknown transfer coding {name}"
    _too_big = (502, "upstream response head too large")
    _trailers_too_big = (502, "upstream response trailers too large")

    def __init__(self, max_head_size: int = 65536) -> None:
        super().__init__(max_head_size)
        self._expected: deque[str] = deque()

    def expect_response(self, method: str) -> None:
        self._expected.append(method.upper())

    def _quick_head(self, data: bytes, end: int, events: list[Event]) -> int:
        """_finish_head for the common final response: HTTP/1.x, no Transfer-Encoding, at most one
        plain Content-Length, to a request that is not HEAD or CONNECT."""
        simple = self._simple_framing()
        p = self._parser
        status = p.get_status_code()
        version = p.get_http_version()
        if simple is None or status < 200 or status == 204 or status == 304 or \
                (version != "1.1" and version != "1.0") or self._expected[0] in _ODD_METHODS:
            return self._finish_head(data, end, events)
        cl, tokens = simple
        sink = self._sink
        if cl is None:
            framing, length, keep_alive = CLOSE, None, False
        else:
            framing, length = LENGTH, int(cl)
            if b"close" in tokens:
                keep_alive = False
            else:
                keep_alive = version == "1.1" or b"keep-alive" in tokens
        events.append(ResponseHead(status, sink.url, version, sink.headers, framing, length, keep_alive,
                                   data[self._head_start:end]))
        if length and keep_alive and len(data) - end >= length:
            # The whole body is here too (a small response): llhttp goes through it as well, so
            # it finishes the message and its parser serves the next response (making a new
            # parser costs more than skipping a few bytes in C).
            try:
                self._parser.feed_data(memoryview(data)[end:end + length])
            except httptools.HttpParserError:
                pass
        if not (sink.complete and keep_alive):
            self._parser = _lenient(self._parser_class(sink))
        return self._start_body(framing, length, events, end)

    def _finish_head(self, data: bytes, end: int, events: list[Event]) -> int:
        p = self._parser
        status = p.get_status_code()
        version = p.get_http_version()
        headers = self._take_headers()
        reason = self._sink.url
        if version != "1.1" and version != "1.0":
            return self._fail(events, 502, f"malformed response: unsupported HTTP version {version}")
        if status < 200:
            if status == 101:
                events.append(ResponseHead(status, reason, version, headers, NONE, None, False))
                return self._switch(data, end, events)
            events.append(ResponseHead(status, reason, version, headers, NONE, None, True))
            self._next_parser(True)
            self._state = _IDLE  # the final response follows; in_message stays true
            return end
        codings, cl, tokens, _ = self._framing_fields(headers)
        framed = self._body_framing(codings, cl, events, CLOSE)
        if framed is None:
            return _STOP
        framing, length = framed
        method = self._expected[0]
        if method == "CONNECT" and status < 300:
            events.append(ResponseHead(status, reason, version, headers, NONE, length, False))
            return self._switch(data, end, events)
        if method == "HEAD" or status == 204 or status == 304:
            framing = NONE
        keep_alive = framing != CLOSE and _keep_alive(version, tokens)
        start = self._head_start
        events.append(ResponseHead(status, reason, version, headers, framing, length, keep_alive,
                                   data[start:end] if start >= 0 else b""))
        self._next_parser(keep_alive)
        return self._start_body(framing, length, events, end)

    def _switch(self, data: bytes, end: int, events: list[Event]) -> int:
        events.append(Switched(data[end:]))
        self._expected.popleft()
        self._state = _DONE
        self.in_message = False
        return len(data)

    def _end_message(self, events: list[Event], trailers: Headers | None) -> None:
        events.append(EndOfMessage(trailers))
        self.in_message = False
        self._state = _IDLE
        self._expected.popleft()

    def receive_eof(self) -> list[Event]:
        st = self._state
        if st == _DONE:
            return []
        self._state = _DONE
        if st == _CLOSE:
            self.in_message = False
            self._expected.popleft()
            return [EndOfMessage()]
        if self.in_message:
            self.in_message = False
            return [ProtocolError(502, "upstream closed the connection mid-response")]
        return []

    def request_head(self, method: str, target: str, version: str, headers: Headers, framing: str) -> bytes:
        """b"GET /a HTTP/1.1\\r\\n" + fields + b"\\r\\n" (the fields as given). `framing` CHUNKED
        makes data()/end() chunk-encode. Does not call expect_response()."""
        line = b"%s %s HTTP/%s\r\n" % (method.encode("ascii"), target.encode("latin-1"), version.encode("ascii"))
        return self._head(line, headers, framing)


def transfer_codings(headers: Headers) -> list[bytes] | None:
    """The Transfer-Encoding token list, lower-case, from every TE field in order; None when absent.
    Items are trimmed of OWS, empty items are skipped, parameters dropped (b"gzip;q=1" -> b"gzip")."""
    codings = None
    for name, value in headers:
        if len(name) == 17 and name.lower() == b"transfer-encoding":
            if codings is None:
                codings = []
            for item in value.split(b","):
                item = item.split(b";", 1)[0].strip(b" \t")
                if item:
                    codings.append(item.lower())
    return codings


def connection_tokens(headers: Headers) -> set[bytes]:
    """The lower-cased tokens of every Connection field (names of hop-by-hop fields, close, ...)."""
    tokens = set()
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            for item in value.split(b","):
                item = item.strip(b" \t")
                if item:
                    tokens.add(item.lower())
    return tokens


# Connection values seen on nearly every message, and their tokens, without splitting
_COMMON_CONNECTION = {v: frozenset((v.lower(),)) for v in (b"keep-alive", b"Keep-Alive", b"close", b"Close",
                                                             b"upgrade", b"Upgrade")}
_HOP_BY_HOP = frozenset((b"keep-alive", b"proxy-connection", b"proxy-authorization", b"upgrade"))
# Connection and Keep-Alive (10), Proxy-Connection (16), Proxy-Authorization (19), Upgrade (7)
_HOP_LENGTHS = frozenset((10, 16, 19, 7))
_HOP_NAMES = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"upgrade"))
_NEVER_STRIPPED = frozenset((b"transfer-encoding", b"content-length", b"host", b"te", b"connection"))


def strip_hop_by_hop(headers: Headers, keep_upgrade: bool = False) -> Headers:
    """Headers to forward (`headers` itself when nothing is to be stripped: copy before changing): without Keep-Alive, Proxy-Connection, Proxy-Authorization and the
    fields named in Connection; the framing fields (Transfer-Encoding, Content-Length), Host,
    TE and Connection itself stay (the proxy keeps the framing it received and forwards
    trailers). `keep_upgrade` keeps Upgrade for a request or 101 that switches protocols; without
    it Upgrade goes whether or not Connection names it."""
    for k, _ in headers:
        if len(k) in _HOP_LENGTHS and k.lower() in _HOP_NAMES:
            break
    else:
        return headers  # no field that could be hop-by-hop (the common case): nothing to copy
    drop = (_HOP_BY_HOP | connection_tokens(headers)) - _NEVER_STRIPPED
    if keep_upgrade:
        drop = drop - {b"upgrade"}
    return [(k, v) for k, v in headers if k.lower() not in drop]
