"""The sans-io HTTP/1.1 codec (proxycore.layers.http1).

Every parsing case is fed (a) in one buffer, (b) split in two at every byte boundary and (c) one
byte at a time; the event sequences must be the same (consecutive Data merged, events compared by
their attributes).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxycore.layers.http1 import (
    CHUNKED,
    CLOSE,
    LENGTH,
    NONE,
    Data,
    EndOfMessage,
    H1Client,
    H1Server,
    ProtocolError,
    RequestHead,
    Switched,
    connection_tokens,
    strip_hop_by_hop,
    transfer_codings,
)


def norm(events: list) -> list[tuple]:
    """Events as comparable tuples, consecutive Data merged."""
    out: list[tuple] = []
    for ev in events:
        if isinstance(ev, Data):
            assert ev.data, "empty Data event"
            if out and out[-1][0] == "Data":
                out[-1] = ("Data", out[-1][1] + ev.data)
                continue
            out.append(("Data", bytes(ev.data)))
        else:
            # `raw` (a head's bytes when it came in one piece) depends on the split by design
            out.append((type(ev).__name__, *(getattr(ev, k) for k in type(ev).__slots__ if k != "raw")))
    return out


def feed(codec, pieces: list[bytes], eof: bool = False) -> list:
    """Feed pieces as a connection would: after Switched the caller relays the bytes itself."""
    events: list = []
    switched: Switched | None = None
    for piece in pieces:
        if switched is not None:
            switched.rest += piece
            continue
        evs = codec.receive_data(piece)
        for ev in evs:
            if isinstance(ev, Switched):
                switched = ev
        events += evs
    if eof:
        events += codec.receive_eof()
    return events


def splits(raw: bytes):
    yield [raw]
    for i in range(1, len(raw)):
        yield [raw[:i], raw[i:]]
    yield [raw[i:i + 1] for i in range(len(raw))]


def run(make: Callable, raw: bytes, eof: bool = False, then: Callable | None = None) -> list[tuple]:
    """The normalised events for `raw` however it is split; all splits must agree."""
    first = None
    for pieces in splits(raw):
        codec = make()
        events = feed(codec, pieces, eof)
        if then is not None:
            events += then(codec)
        got = norm(events)
        if first is None:
            first = got
        else:
            assert got == first, f"split {[len(p) for p in pieces][:3]} differs"
    return first


def server(**kw) -> Callable[[], H1Server]:
    return lambda: H1Server(**kw)


def client(*methods: str, **kw) -> Callable[[], H1Client]:
    def make() -> H1Client:
        c = H1Client(**kw)
        for m in methods:
            c.expect_response(m)
        return c
    return make


def req(method, target, headers, framing=NONE, length=None, keep_alive=True, upgrade=False, version="1.1"):
    return ("RequestHead", method, target, version, headers, framing, length, keep_alive, upgrade)


def resp(status, reason, headers, framing, length=None, keep_alive=True, version="1.1"):
    return ("ResponseHead", status, reason, version, headers, framing, length, keep_alive)


EOM = ("EndOfMessage", None)


# --- requests ------------------------------------------------------------------------------------

def test_simple_get():
    raw = b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
    assert run(server(), raw) == [req("GET", "/a?b", [(b"Host", b"example.com"), (b"Accept", b"*/*")]), EOM]
    # exactly two events, no empty Data
    evs = H1Server().receive_data(raw)
    assert [type(e) for e in evs] == [RequestHead, EndOfMessage]


def test_pipelined_gets_in_one_buffer():
    raw = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET http://h/2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    assert run(server(), raw) == [
        req("GET", "/1", [(b"Host", b"h")]), EOM,
        req("GET", "http://h/2", [(b"Host", b"h"), (b"Connection", b"close")], keep_alive=False), EOM,
    ]


def test_blank_lines_before_a_request_are_skipped():
    raw = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    assert run(server(), raw) == [req("GET", "/", []), EOM]


def test_http10_keep_alive():
    raw = b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
    assert run(server(), raw) == [
        req("GET", "/", [], keep_alive=False, version="1.0"), EOM,
        req("GET", "/", [(b"Connection", b"Keep-Alive")], version="1.0"), EOM,
    ]


def test_post_content_length_then_pipelined():
    raw = b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /n HTTP/1.1\r\n\r\n"
    assert run(server(), raw) == [
        req("POST", "/p", [(b"Content-Length", b"5")], LENGTH, 5), ("Data", b"hello"), EOM,
        req("GET", "/n", []), EOM,
    ]


def test_body_only_buffer_is_the_same_object():
    s = H1Server()
    evs = s.receive_data(b"POST / HTTP/1.1\r\nContent-Length: 20000\r\n\r\n")
    assert [type(e) for e in evs] == [RequestHead]
    assert s.in_message
    buf = bytes(range(256)) * 40  # 10240 bytes
    evs = s.receive_data(buf)
    assert len(evs) == 1 and evs[0].data is buf
    rest = b"x" * (20000 - len(buf))
    evs = s.receive_data(rest + b"GET / HTTP/1.1\r\n\r\n")
    assert norm(evs) == [("Data", rest), EOM, req("GET", "/", []), EOM]
    assert not s.in_message
    # a buffer that is exactly the rest of the body is passed on as is too
    s = H1Server()
    s.receive_data(b"PUT / HTTP/1.1\r\nContent-Length: 4\r\n\r\n")
    buf = b"abcd"
    evs = s.receive_data(buf)
    assert evs[0].data is buf and isinstance(evs[1], EndOfMessage)


def test_content_length_repeats_and_lists():
    raw = b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\nContent-Length: 3, 3\r\n\r\nabc"
    headers = [(b"Content-Length", b"3"), (b"content-length", b"3"), (b"Content-Length", b"3, 3")]
    assert run(server(), raw) == [req("POST", "/", headers, LENGTH, 3), ("Data", b"abc"), EOM]


def test_content_length_zero():
    raw = b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    assert run(server(), raw) == [
        req("POST", "/", [(b"Content-Length", b"0")], LENGTH, 0), EOM, req("GET", "/", []), EOM]


def test_chunked_with_extensions():
    raw = (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value\r\nhello\r\n6 ; a=\"b c\";x\r\n world\r\nA\r\n0123456789\r\n0;end\r\n\r\n"
           b"GET / HTTP/1.1\r\n\r\n")
    assert run(server(), raw) == [
        req("POST", "/", [(b"Transfer-Encoding", b"chunked")], CHUNKED),
        ("Data", b"hello world0123456789"), EOM, req("GET", "/", []), EOM,
    ]


def test_chunked_with_trailers():
    raw = (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
           b"3\r\nabc\r\n0\r\nX-Sum: 42\r\nX-Other:  v \r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert run(server(), raw) == [
        req("POST", "/", [(b"Transfer-Encoding", b"chunked"), (b"Trailer", b"X-Sum")], CHUNKED),
        ("Data", b"abc"), ("EndOfMessage", [(b"X-Sum", b"42"), (b"X-Other", b"v ")]),
        req("GET", "/", []), EOM,
    ]


def test_gzip_chunked():
    raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n"
    assert run(server(), raw) == [
        req("POST", "/", [(b"Transfer-Encoding", b"gzip, chunked")], CHUNKED), ("Data", b"\x1f\x8b"), EOM]


def test_te_fields_are_one_list():
    raw = (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip;q=1 ,, \r\nTransfer-Encoding: CHUNKED\r\n\r\n"
           b"0\r\n\r\n")
    assert run(server(), raw)[0][5] == CHUNKED


@pytest.mark.parametrize(("head", "status", "message"), [
    (b"Transfer-Encoding: xchunked", 400, "malformed request: Transfer-Encoding must end with chunked"),
    (b"Transfer-Encoding: chunked, gzip", 400, "malformed request: Transfer-Encoding must end with chunked"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip", 400,
     "malformed request: Transfer-Encoding must end with chunked"),
    (b"Transfer-Encoding: chunked, chunked", 400, "malformed request: chunked applied more than once"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 400,
     "malformed request: chunked applied more than once"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 3", 400,
     "malformed request: both Transfer-Encoding and Content-Length"),
    (b"Content-Length: 3\r\nTransfer-Encoding: chunked", 400,
     "malformed request: both Transfer-Encoding and Content-Length"),
    (b"Transfer-Encoding: foo, chunked", 501, "unsupported transfer coding: foo"),
    (b"Content-Length: 3\r\nContent-Length: 4", 400, "malformed request: conflicting Content-Length values"),
    (b"Content-Length: 1,2", 400, "malformed request: conflicting Content-Length values"),
    (b"Content-Length: -1", 400, "malformed request: invalid Content-Length"),
    (b"Content-Length: 0x10", 400, "malformed request: invalid Content-Length"),
    (b"Content-Length: ", 400, "malformed request: invalid Content-Length"),
])
def test_request_rejections(head, status, message):
    raw = b"POST / HTTP/1.1\r\nHost: h\r\n" + head + b"\r\n\r\n0\r\n\r\n"
    assert run(server(), raw) == [("ProtocolError", status, message)]


def test_te_on_http10_rejected():
    raw = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert run(server(), raw) == [
        ("ProtocolError", 400, "malformed request: Transfer-Encoding in an HTTP/1.0 request")]


def test_malformed_start_line_and_nothing_after_error():
    s = H1Server()
    evs = s.receive_data(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # TLS to the plain port
    assert len(evs) == 1 and isinstance(evs[0], ProtocolError) and evs[0].status == 400
    assert evs[0].message.startswith("malformed request: ") and "\n" not in evs[0].message
    assert s.receive_data(b"GET / HTTP/1.1\r\n\r\n") == []
    assert s.receive_eof() == []


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.1\r\nA : b\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
])
def test_malformed_heads(raw):
    got = run(server(), raw)
    assert len(got) == 1 and got[0][0] == "ProtocolError" and got[0][1] == 400


@pytest.mark.parametrize("raw", [
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
])
def test_malformed_chunked(raw):
    got = run(server(), raw)
    assert got[-1][0] == "ProtocolError" and got[-1][1] == 400


def test_head_limit_431():
    head = b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 40 + b"\r\n\r\n"
    n = len(head)
    # exactly at the limit: fine, one byte under: 431, however the bytes arrive
    assert run(server(max_head_size=n), head + b"GET / HTTP/1.1\r\n\r\n")[0][0] == "RequestHead"
    assert run(server(max_head_size=n - 1), head) == [("ProtocolError", 431, "request header block too large")]
    # a head that never ends
    assert run(server(max_head_size=n - 1), head[:-4] + b"b" * 30) == [
        ("ProtocolError", 431, "request header block too large")]
    # a huge head arriving in one write and byte by byte
    big = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20000 + b"\r\n"
    one = norm(H1Server().receive_data(big))
    s = H1Server()
    bytewise = norm(feed(s, [big[i:i + 1] for i in range(70000)]))
    assert one == bytewise == [("ProtocolError", 431, "request header block too large")]


def test_head_limit_does_not_count_the_body():
    raw = b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"b" * 100
    got = run(server(max_head_size=40), raw)
    assert got[0][0] == "RequestHead" and got[1] == ("Data", b"b" * 100)


def test_trailer_limit():
    raw = (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
           + b"X-T: " + b"t" * 80 + b"\r\n\r\n")
    assert run(server(max_head_size=60), raw)[-1] == ("ProtocolError", 431, "request trailer section too large")
    assert run(server(max_head_size=100), raw)[-1] == ("EndOfMessage", [(b"X-T", b"t" * 80)])


def test_receive_eof_mid_body():
    raw = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"
    assert run(server(), raw, eof=True) == [
        req("POST", "/", [(b"Content-Length", b"10")], LENGTH, 10), ("Data", b"abc"),
        ("ProtocolError", 400, "malformed request: connection closed mid-message")]
    assert run(server(), b"GET / HT", eof=True) == [
        ("ProtocolError", 400, "malformed request: connection closed mid-message")]
    assert run(server(), b"GET / HTTP/1.1\r\n\r\n", eof=True) == [req("GET", "/", []), EOM]


def test_in_message():
    s = H1Server()
    assert not s.in_message
    s.receive_data(b"\r\n")
    assert not s.in_message
    s.receive_data(b"G")
    assert s.in_message
    s.receive_data(b"ET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n")
    assert s.in_message
    s.receive_data(b"0\r\n\r\n")
    assert not s.in_message


CLIENT_HELLO = bytes.fromhex("16030100f8010000f40303") + bytes(range(256))[:200] + b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"


def test_connect_pauses_and_detach_returns_the_client_hello():
    raw = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" + CLIENT_HELLO
    got = run(server(), raw, then=lambda s: [Data(s.detach())])
    assert got == [
        req("CONNECT", "example.com:443", [(b"Host", b"example.com:443")], upgrade=True), EOM,
        ("Data", CLIENT_HELLO)]
    s = H1Server()
    s.receive_data(raw)
    s.receive_data(b"more")
    assert s.detach() == CLIENT_HELLO + b"more"
    assert s.receive_data(b"x") == [] and s.receive_eof() == []


def test_upgrade_refused_then_resume_parses_the_next_request():
    raw = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
           b"GET /next HTTP/1.1\r\n\r\n")
    head = req("GET", "/ws", [(b"Host", b"h"), (b"Connection", b"keep-alive, Upgrade"),
                              (b"Upgrade", b"websocket")], upgrade=True)
    assert run(server(), raw) == [head, EOM]
    assert run(server(), raw, then=lambda s: s.resume()) == [head, EOM, req("GET", "/next", []), EOM]
    # an Upgrade field without the Connection token is no upgrade
    raw2 = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /n HTTP/1.1\r\n\r\n"
    assert [e[0] for e in run(server(), raw2)] == ["RequestHead", "EndOfMessage"] * 2


def test_resume_with_nothing_kept():
    s = H1Server()
    s.receive_data(b"CONNECT h:443 HTTP/1.1\r\n\r\n")
    assert s.resume() == []
    assert norm(s.receive_data(b"GET / HTTP/1.1\r\n\r\n")) == [req("GET", "/", []), EOM]


# --- responses -----------------------------------------------------------------------------------

def test_response_content_length_and_pipelined():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    assert run(client("GET", "GET"), raw) == [
        resp(200, b"OK", [(b"Content-Length", b"3")], LENGTH, 3), ("Data", b"abc"), EOM,
        resp(404, b"Not Found", [(b"Content-Length", b"0")], LENGTH, 0), EOM]


def test_response_chunked_with_trailers():
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\nGrpc-Status: 0\r\n\r\n"
    assert run(client("POST"), raw) == [
        resp(200, b"OK", [(b"Transfer-Encoding", b"chunked")], CHUNKED), ("Data", b"wiki"),
        ("EndOfMessage", [(b"Grpc-Status", b"0")])]


def test_response_head_limit_502():
    raw = b"HTTP/1.1 200 OK\r\nX: " + b"v" * 100 + b"\r\nContent-Length: 0\r\n\r\n"
    assert run(client("GET", max_head_size=100), raw) == [("ProtocolError", 502, "upstream response head too large")]
    assert run(client("GET", max_head_size=len(raw)), raw)[0][0] == "ResponseHead"


def test_response_te_and_cl_te_wins():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    assert run(client("GET"), raw) == [
        resp(200, b"OK", [(b"Content-Length", b"100"), (b"Transfer-Encoding", b"chunked")], CHUNKED, None),
        ("Data", b"hi"), EOM]


@pytest.mark.parametrize(("head", "message"), [
    (b"Transfer-Encoding: chunked, gzip", "malformed response: Transfer-Encoding must end with chunked"),
    (b"Transfer-Encoding: gzip", "malformed response: Transfer-Encoding must end with chunked"),
    (b"Transfer-Encoding: xchunked", "malformed response: Transfer-Encoding must end with chunked"),
    (b"Transfer-Encoding: br, chunked", "malformed response: unknown transfer coding br"),
    (b"Content-Length: 1,2", "malformed response: conflicting Content-Length values"),
    (b"Content-Length: 2\r\nContent-Length: 3", "malformed response: conflicting Content-Length values"),
    (b"Content-Length: abc", "malformed response: invalid Content-Length"),
])
def test_response_rejections(head, message):
    raw = b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\nabc"
    assert run(client("GET"), raw) == [("ProtocolError", 502, message)]


def test_response_close_delimited():
    raw = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nsome body HTTP/1.1 200 OK\r\n\r\n"
    assert run(client("GET"), raw, eof=True) == [
        resp(200, b"OK", [(b"Server", b"x")], CLOSE, keep_alive=False, version="1.0"),
        ("Data", b"some body HTTP/1.1 200 OK\r\n\r\n"), EOM]


def test_response_to_head_has_no_body():
    raw = (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert run(client("HEAD", "GET"), raw) == [
        resp(200, b"OK", [(b"Content-Length", b"10")], NONE, 10), EOM,
        resp(200, b"OK", [(b"Content-Length", b"2")], LENGTH, 2), ("Data", b"ok"), EOM]
    # a HEAD response without Content-Length is not close-delimited
    assert run(client("HEAD"), b"HTTP/1.1 200 OK\r\n\r\n") == [resp(200, b"OK", [], NONE), EOM]


@pytest.mark.parametrize("status", [204, 304])
def test_204_304_have_no_body(status):
    raw = (b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % status) + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert run(client("GET", "GET"), raw) == [
        resp(status, b"X", [(b"Content-Length", b"5")], NONE, 5), EOM,
        resp(200, b"OK", [(b"Content-Length", b"0")], LENGTH, 0), EOM]


def test_100_continue_then_200():
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    assert run(client("POST"), raw) == [
        resp(100, b"Continue", [], NONE), resp(103, b"Early Hints", [(b"Link", b"</a>")], NONE),
        resp(200, b"OK", [(b"Content-Length", b"1")], LENGTH, 1), ("Data", b"x"), EOM]
    c = H1Client()
    c.expect_response("POST")
    c.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert c.in_message
    assert norm(c.receive_eof()) == [("ProtocolError", 502, "upstream closed the connection mid-response")]


def test_101_switched_with_rest():
    raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello"
    assert run(client("GET"), raw) == [
        resp(101, b"Switching Protocols", [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")], NONE,
             keep_alive=False),
        ("Switched", b"\x81\x05hello")]
    c = H1Client()
    c.expect_response("GET")
    evs = c.receive_data(raw)
    assert isinstance(evs[-1], Switched) and c.receive_data(b"more") == [] and c.receive_eof() == []


def test_connect_2xx_switches_other_status_does_not():
    raw = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03"
    assert run(client("CONNECT"), raw) == [
        resp(200, b"Connection established", [], NONE, keep_alive=False), ("Switched", b"\x16\x03\x03")]
    raw = b"HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\nno"
    assert run(client("CONNECT"), raw) == [
        resp(407, b"Auth", [(b"Content-Length", b"2")], LENGTH, 2), ("Data", b"no"), EOM]


def test_bytes_without_expected_response():
    assert run(client(), b"HTTP/1.1 200 OK\r\n\r\n") == [
        ("ProtocolError", 502, "unexpected data from upstream: no response pending")]
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy"
    assert run(client("GET"), raw)[-2:] == [
        EOM, ("ProtocolError", 502, "unexpected data from upstream: no response pending")]


def test_response_eof():
    assert run(client("GET"), b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", eof=True)[-1] == (
        "ProtocolError", 502, "upstream closed the connection mid-response")
    assert run(client("GET"), b"", eof=True) == []
    assert run(client("GET"), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", eof=True)[-1] == EOM


# --- serialising -----------------------------------------------------------------------------------

def test_request_round_trip():
    c = H1Client()
    headers = [(b"Host", b"h"), (b"transfer-encoding", b"chunked"), (b"X-Mixed-Case", b"V")]
    wire = c.request_head("POST", "/up?x=1", "1.1", headers, CHUNKED)
    wire += c.data(b"hello") + c.data(b"") + c.data(b" world" * 10) + c.end([(b"X-Sum", b"1")])
    wire += c.request_head("GET", "/2", "1.1", [(b"Content-Length", b"2")], LENGTH) + c.data(b"ab") + c.end()
    assert run(server(), wire) == [
        req("POST", "/up?x=1", headers, CHUNKED), ("Data", b"hello" + b" world" * 10),
        ("EndOfMessage", [(b"X-Sum", b"1")]),
        req("GET", "/2", [(b"Content-Length", b"2")], LENGTH, 2), ("Data", b"ab"), EOM]


def test_response_round_trip():
    s = H1Server()
    wire = s.response_head(100, b"Continue", "1.1", [], NONE) + s.end()
    wire += s.response_head(200, b"OK", "1.1", [(b"Transfer-Encoding", b"chunked")], CHUNKED)
    wire += s.data(b"x" * 300) + s.end()
    wire += s.response_head(200, b"OK", "1.1", [(b"content-length", b"3")], LENGTH) + s.data(b"abc") + s.end()
    assert s.data(b"raw") == b"raw"  # after end(): no framing
    assert run(client("POST", "GET"), wire) == [
        resp(100, b"Continue", [], NONE),
        resp(200, b"OK", [(b"Transfer-Encoding", b"chunked")], CHUNKED), ("Data", b"x" * 300), EOM,
        resp(200, b"OK", [(b"content-length", b"3")], LENGTH, 3), ("Data", b"abc"), EOM]


def test_serialisation_bytes():
    s = H1Server()
    assert s.response_head(404, b"Not Found", "1.1", [(b"a", b"B")], CHUNKED) == b"HTTP/1.1 404 Not Found\r\na: B\r\n\r\n"
    assert s.data(b"0123456789abcdef!") == b"11\r\n0123456789abcdef!\r\n"
    assert s.data(b"") == b""
    assert s.end([(b"T", b"1"), (b"U", b"2")]) == b"0\r\nT: 1\r\nU: 2\r\n\r\n"
    s.response_head(200, b"OK", "1.0", [], CLOSE)
    assert s.data(b"x") == b"x" and s.end([(b"T", b"1")]) == b""
    c = H1Client()
    assert c.request_head("CONNECT", "h:443", "1.1", [(b"Host", b"h:443")], NONE) == (
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n")
    assert c.end() == b""


# --- helpers -----------------------------------------------------------------------------------

def test_transfer_codings():
    assert transfer_codings([(b"Host", b"h")]) is None
    assert transfer_codings([(b"Transfer-Encoding", b"")]) == []
    assert transfer_codings([(b"Transfer-Encoding", b" GZip;q=1 , ,x-gzip"), (b"TRANSFER-ENCODING", b"Chunked")]) == [
        b"gzip", b"x-gzip", b"chunked"]
    assert transfer_codings([(b"Transfer-Encoding", b"xchunked")]) == [b"xchunked"]


def test_connection_tokens():
    assert connection_tokens([(b"Connection", b"Keep-Alive, X-Foo ,"), (b"connection", b"close")]) == {
        b"keep-alive", b"x-foo", b"close"}
    assert connection_tokens([]) == set()


def test_strip_hop_by_hop():
    headers = [(b"Host", b"h"), (b"Connection", b"X-Foo, Upgrade, Content-Length, TE"), (b"X-Foo", b"1"),
               (b"Keep-Alive", b"timeout=5"), (b"Proxy-Connection", b"keep-alive"),
               (b"Proxy-Authorization", b"Basic x"), (b"Upgrade", b"websocket"), (b"TE", b"trailers"),
               (b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked"), (b"X-Bar", b"2")]
    assert strip_hop_by_hop(headers) == [
        (b"Host", b"h"), (b"Connection", b"X-Foo, Upgrade, Content-Length, TE"), (b"TE", b"trailers"),
        (b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked"), (b"X-Bar", b"2")]
    kept = strip_hop_by_hop(headers, keep_upgrade=True)
    assert (b"Upgrade", b"websocket") in kept and (b"X-Foo", b"1") not in kept


# --- random splits -------------------------------------------------------------------------------

STREAM = (b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
          b"POST /b HTTP/1.1\r\nContent-Length: 7\r\n\r\npayload"
          b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n"
          b"\r\nGET /d HTTP/1.0\r\n\r\n"
          b"CONNECT h:443 HTTP/1.1\r\n\r\n\x16\x03\x01tls")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_random_splits(cuts):
    cuts = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True) if b > a]
    s = H1Server()
    got = norm(feed(s, pieces)) + [("rest", s.detach())]
    s1 = H1Server()
    assert got == norm(s1.receive_data(STREAM)) + [("rest", s1.detach())]
    assert got[-1] == ("rest", b"\x16\x03\x01tls")
    assert [e[0] for e in got].count("RequestHead") == 5


def test_response_head_raw_is_the_head_as_received_when_whole() -> None:
    from proxycore.layers.http1 import H1Client

    head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\n"
    c = H1Client()
    c.expect_response("GET")
    ev = c.receive_data(head + b"abc")[0]
    assert ev.raw == head
    c.expect_response("GET")
    assert c.receive_data(head[:10])[0:] == []
    ev = c.receive_data(head[10:] + b"abc")[0]
    assert ev.raw == b""  # in pieces: the caller serialises the head from the fields


def test_a_large_body_after_a_head_in_one_read_is_a_view_not_a_copy():
    """Body bytes that arrive with the head (up to 256 KiB per read) are passed on as a view of the
    received buffer; small pieces stay bytes. The bytes are the same either way."""
    body = bytes(range(256)) * 256  # 64 KiB
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(body) + 10)
    c = H1Client()
    c.expect_response("GET")
    buf = head + body
    events = c.receive_data(buf)
    data = [e for e in events if isinstance(e, Data)]
    assert len(data) == 1 and isinstance(data[0].data, memoryview) and data[0].data.obj is buf
    assert bytes(data[0].data) == body
    tail = c.receive_data(b"0123456789")
    assert isinstance(tail[0], Data) and tail[0].data == b"0123456789" and isinstance(tail[1], EndOfMessage)

    small = H1Client()
    small.expect_response("GET")
    ev = small.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert type(ev[1].data) is bytes and ev[1].data == b"hello"


def test_skip_body_counts_spliced_bytes_and_never_the_last():
    """Bytes relayed past the codec (splice) are skipped; the last one still ends the message."""
    c = H1Client()
    c.expect_response("GET")
    c.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    assert c.body_left() == 8
    with pytest.raises(ValueError):
        c.skip_body(8)  # the last byte must come through the codec
    c.skip_body(7)
    assert c.body_left() == 1
    assert norm(c.receive_data(b"z")) == [("Data", b"z"), EOM]
    assert c.body_left() == 0
