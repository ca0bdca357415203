"""HTTP/1.1 as a sans-io codec (RFC 9112): bytes in, events out; events in, bytes out.

`H1Server` parses requests from a client and serialises responses to it; `H1Client` serialises
requests to an origin and parses its responses. Neither touches a socket. httptools (llhttp)
parses heads and chunked bodies; Content-Length bodies bypass it once the head is parsed, so a
received buffer of body bytes becomes one `Data` event holding that same bytes object.

Framing (RFC 9112 section 6):
- `Transfer-Encoding` is a token list: only a final `chunked` frames the body. A request whose
  list does not end in `chunked`, that has `chunked` twice, that also has `Content-Length`, or
  that is HTTP/1.0 is rejected (400); an unknown coding before `chunked` is 501. A response with
  both drops Content-Length (TE wins); one whose list does not end in chunked is rejected (502).
- Conflicting or malformed `Content-Length` values are rejected (400 / 502).
- Responses to HEAD, 1xx, 204 and 304 carry no body; 2xx to CONNECT switches to a tunnel; a
  response with neither TE nor CL is delimited by the connection closing.
- The head (start line and header fields) is limited to `max_head_size` bytes however the bytes
  arrive: 431 for a request, 502 for a response.
- Trailer fields after a chunked body are kept (`EndOfMessage.trailers`) and re-emitted by `end()`.
"""

from __future__ import annotations

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

    __slots__ = ("status", "reason", "version", "headers", "framing", "content_length", "keep_alive")

    def __init__(self, status: int, reason: bytes, version: str, headers: Headers, framing: str,
                 content_length: int | None, keep_alive: bool) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.framing = framing  # NONE | LENGTH | CHUNKED | CLOSE
        self.content_length = content_length
        self.keep_alive = keep_alive


class Data(Event):
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
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


class H1Server:
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
        raise NotImplementedError

    def receive_data(self, data: bytes) -> list[Event]:
        raise NotImplementedError

    def receive_eof(self) -> list[Event]:
        raise NotImplementedError

    def resume(self) -> list[Event]:
        raise NotImplementedError

    def detach(self) -> bytes:
        raise NotImplementedError

    @property
    def in_message(self) -> bool:
        """True between the first byte of a request and its EndOfMessage."""
        raise NotImplementedError

    # --- serialising responses ------------------------------------------------------------
    def response_head(self, status: int, reason: bytes, version: str, headers: Headers,
                      framing: str) -> bytes:
        """b"HTTP/1.1 200 OK\\r\\n" + fields + b"\\r\\n". `framing` CHUNKED makes data()/end()
        chunk-encode; the caller's headers must already say so (Transfer-Encoding: chunked)."""
        raise NotImplementedError

    def data(self, data: bytes) -> bytes:
        """The body bytes framed as the current response's framing says (chunked: one chunk;
        b"" for an empty chunk, which would end a chunked body, gives b"")."""
        raise NotImplementedError

    def end(self, trailers: Headers | None = None) -> bytes:
        """The end of the current response body (b"0\\r\\n" + trailers + b"\\r\\n" when chunked)."""
        raise NotImplementedError


class H1Client:
    """The origin-facing side: serialises requests, parses responses.

    expect_response(method) must be called before the response's bytes are fed, so HEAD and
    CONNECT are framed right. receive_data -> ResponseHead (interim 1xx heads first), Data*,
    EndOfMessage; or Switched after 101 (and after a 2xx to CONNECT); or ProtocolError.
    receive_eof() -> [EndOfMessage] when the body was delimited by close, [ProtocolError] when
    the connection closed mid-message, else [].
    Bytes arriving while no response is expected are a ProtocolError (the origin misbehaves).
    """

    def __init__(self, max_head_size: int = 65536) -> None:
        raise NotImplementedError

    def expect_response(self, method: str) -> None:
        raise NotImplementedError

    def receive_data(self, data: bytes) -> list[Event]:
        raise NotImplementedError

    def receive_eof(self) -> list[Event]:
        raise NotImplementedError

    @property
    def in_message(self) -> bool:
        raise NotImplementedError

    def request_head(self, method: str, target: str, version: str, headers: Headers, framing: str) -> bytes:
        raise NotImplementedError

    def data(self, data: bytes) -> bytes:
        raise NotImplementedError

    def end(self, trailers: Headers | None = None) -> bytes:
        raise NotImplementedError


def transfer_codings(headers: Headers) -> list[bytes] | None:
    """The Transfer-Encoding token list, lower-case, from every TE field in order; None when absent."""
    raise NotImplementedError


def connection_tokens(headers: Headers) -> set[bytes]:
    """The lower-cased tokens of every Connection field (names of hop-by-hop fields, close, ...)."""
    raise NotImplementedError


def strip_hop_by_hop(headers: Headers, keep_upgrade: bool = False) -> Headers:
    """Headers to forward: without Keep-Alive, Proxy-Connection, Proxy-Authorization and the
    fields named in Connection; the framing fields (Transfer-Encoding, Content-Length), Host,
    TE and Connection itself stay (the proxy keeps the framing it received and forwards
    trailers). `keep_upgrade` keeps Upgrade for a request or 101 that switches protocols."""
    raise NotImplementedError
