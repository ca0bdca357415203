"""proxycore.flows.serialize: flows survive dumps/loads and a file round trip exactly, slot by slot."""

from __future__ import annotations

import os
import stat
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxycore.flows.flow import (
    DONE,
    ERROR,
    INTERCEPTED,
    PENDING,
    Flow,
    Headers,
    Request,
    Response,
    Timings,
    TLSInfo,
)
from proxycore.flows.serialize import FlowFormatError, dumps_flow, loads_flow, read_flows, write_flows
from proxycore.flows.tcp import TCPMessage
from proxycore.flows.websocket import BINARY, TEXT, WebSocketData, WebSocketMessage

# ------------------------------------------------------------------ comparing every slot

_DERIVED = {"_url", "__weakref__"}  # a cache and the weakref slot: not state


def _slots(obj: object) -> list[str]:
    names: list[str] = []
    for cls in type(obj).__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s not in _DERIVED and s not in names:
                names.append(s)
    return names


def assert_same(a: Any, b: Any, path: str = "flow") -> None:
    """Equal value by value through every slot of the flow model (bodies compared as bytes, not as
    the chunks they happen to be held in)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, (Flow, Request, Response, Timings, TLSInfo, Headers, WebSocketData, WebSocketMessage)):
        for name in _slots(a):
            if name in ("_body", "_chunks"):
                continue
            assert_same(getattr(a, name), getattr(b, name), f"{path}.{name}")
        if isinstance(a, (Request, Response)):
            assert_same(a.body, b.body, f"{path}.body")
    elif isinstance(a, (list, tuple, deque)):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_the_comparison_sees_every_slot() -> None:
    """The helper must cover slots added later (e.g. original_request): a change anywhere fails it."""
    f = _flow()
    g = loads_flow(dumps_flow(f))
    for mutate in (lambda x: setattr(x, "original_request", Request("GET", "http", "h", 80, "/")),
                   lambda x: x.request.headers.fields.append((b"X", b"y")),
                   lambda x: setattr(x.timings, "tls_end", 1.5),
                   lambda x: setattr(x.request, "body", b"other"),
                   lambda x: setattr(x, "client_addr", ("::1", 1, 0, 0))):
        h = loads_flow(dumps_flow(g))
        mutate(h)
        with pytest.raises(AssertionError):
            assert_same(g, h)


# ------------------------------------------------------------------ random flows

_text = st.text(max_size=30)  # any unicode (hypothesis leaves out surrogates)
_opt_text = st.none() | _text
_bytes = st.binary(max_size=200)
_headers = st.lists(st.tuples(st.binary(min_size=0, max_size=20), _bytes), max_size=8).map(Headers)
_time = st.floats(min_value=0, max_value=4e9, allow_nan=False)
_addr = st.none() | st.tuples(_text, st.integers(0, 65535)) | \
    st.tuples(_text, st.integers(0, 65535), st.integers(0, 2**20), st.integers(0, 2**32 - 1))


@st.composite
def _request(draw: st.DrawFn) -> Request:
    r = Request(draw(st.sampled_from(["GET", "POST", "CONNECT", "PUT"]) | _text),
                draw(st.sampled_from(["http", "https"])), draw(_text), draw(st.integers(0, 65535)),
                draw(_text), draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]) | _text), draw(_headers),
                draw(_bytes), draw(_text))
    if draw(st.booleans()):  # held as chunks, as the proxy captures bodies
        r.set_body_chunks(draw(st.lists(_bytes, max_size=4)))
    r.body_size = draw(st.integers(0, 2**40))
    r.body_truncated = draw(st.booleans())
    r.stream = draw(st.booleans())
    r.trailers = draw(st.none() | _headers)
    return r


@st.composite
def _response(draw: st.DrawFn) -> Response:
    r = Response(draw(st.integers(100, 999)), draw(_text), draw(_text), draw(_headers), draw(_bytes))
    if draw(st.booleans()):
        r.set_body_chunks(draw(st.lists(_bytes, max_size=4)))
    r.body_size = draw(st.integers(0, 2**40))
    r.body_truncated = draw(st.booleans())
    r.stream = draw(st.booleans())
    r.trailers = draw(st.none() | _headers)
    return r


@st.composite
def _tls(draw: st.DrawFn) -> TLSInfo:
    t = TLSInfo()
    for k in ("sni", "alpn", "version", "cipher", "cert_subject", "cert_issuer", "cert_not_after"):
        setattr(t, k, draw(_opt_text))
    t.cert_sans = draw(st.lists(_text, max_size=4))
    return t


_tcp_message = st.builds(TCPMessage, st.booleans(), _bytes, _time, st.none() | st.integers(0, 2**40))


@st.composite
def flows(draw: st.DrawFn) -> Flow:
    req = draw(_request())
    if draw(st.booleans()):  # unicode in URLs
        req.target = "/" + draw(_text) + "?" + draw(_text)
        req.host = draw(_text)
    f = Flow(req, draw(_addr), assign_id=False)
    f.id = draw(st.integers(0, 2**53))
    f.server_addr = draw(_addr)
    f.response = draw(st.none() | _response())
    f.error = draw(_opt_text)
    t = Timings(draw(_time))
    for k in ("connect_start", "connect_end", "tls_end", "request_sent", "first_byte", "end"):
        setattr(t, k, draw(st.none() | _time))
    f.timings = t
    f.client_tls = draw(st.none() | _tls())
    f.server_tls = draw(st.none() | _tls())
    f.state = draw(st.sampled_from([PENDING, INTERCEPTED, DONE, ERROR]))
    f.marked = draw(st.booleans())
    f.comment = draw(_text)
    f.tags = draw(st.lists(_text, max_size=4))
    f.is_replay = draw(st.booleans())
    f.modified = draw(st.booleans())
    f.passthrough = draw(st.booleans())
    f.in_scope = draw(st.booleans())
    f.sampled = draw(st.booleans())
    f.killed = draw(st.booleans())
    f.original_request = draw(st.none() | _request())
    f.original_response = draw(st.none() | _response())
    f.websocket = draw(st.none() | _websocket())
    f.tcp_messages = draw(st.none() | st.lists(_tcp_message, max_size=4))
    return f


@st.composite
def _websocket(draw: st.DrawFn) -> WebSocketData:
    w = WebSocketData()
    for _ in range(draw(st.integers(0, 4))):
        m = WebSocketMessage(draw(st.sampled_from([TEXT, BINARY])), draw(st.booleans()), draw(_bytes),
                             draw(_time), draw(st.booleans()), draw(st.booleans()))
        m.size = draw(st.integers(0, 2**40))
        m.truncated = draw(st.booleans())
        w.messages.append(m)
    w.omitted = draw(st.integers(0, 2**20))
    w.closed_by_client = draw(st.none() | st.booleans())
    w.close_code = draw(st.none() | st.integers(1000, 4999))
    w.close_reason = draw(_text)
    w.timestamp_end = draw(st.none() | _time)
    return w


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows())
def test_dumps_loads_round_trips_every_field(flow: Flow) -> None:
    data = dumps_flow(flow)
    assert b"\n" not in data  # one line per flow in a file
    back = loads_flow(data)
    assert_same(flow, back)
    assert dumps_flow(back) == data


def _flow(n: int = 1) -> Flow:
    req = Request("POST", "https", "exämple.com", 8443, f"/p/{n}?q=ü",
                  headers=Headers([(b"Host", b"ex\xe4mple.com:8443"), (b"x-dup", b"1"), (b"X-Dup", b"2"),
                                   (b"Cookie", b"secret=\x00\xff")]), body=b"\x00\x01binary\xff")
    req.set_body_chunks([b"\x00\x01bin", b"ary\xff"])
    req.body_size = 10_000_000
    req.body_truncated = True
    f = Flow(req, ("127.0.0.1", 50000 + n))
    f.response = Response(200, "OK", headers=Headers([(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")]),
                          body=b"\x89PNG")
    f.timings.end = f.timings.start + 0.25
    f.client_tls = TLSInfo()
    f.client_tls.sni = "exämple.com"
    f.client_tls.cert_sans = ["a", "b"]
    f.state = DONE
    f.tags = ["t1", "t2"]
    f.comment = "a comment ✓"
    f.original_request = Request("GET", "https", "exämple.com", 8443, "/orig")
    return f


def test_a_file_of_flows_round_trips(tmp_path: Path) -> None:
    fs = [_flow(i) for i in range(5)]
    fs[2].response = None
    fs[3].state = PENDING
    path = tmp_path / "flows.omniflows"
    assert write_flows(path, fs) == 5
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # flows hold cookies and tokens
    back = read_flows(path)
    assert [f.id for f in back] == [f.id for f in fs]  # ids kept
    for a, b in zip(fs, back, strict=True):
        assert_same(a, b)
    # replacing an earlier file of flows is fine, and leaves no temp file behind
    assert write_flows(path, fs[:1]) == 1
    assert [f.id for f in read_flows(path)] == [fs[0].id]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.omniflows"]


def test_write_flows_never_replaces_a_non_regular_file(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(OSError):
        write_flows(d, [_flow()])
    assert d.is_dir()
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        write_flows(link, [_flow()])
    assert link.is_symlink() and target.read_text() == "keep"
    if hasattr(os, "mkfifo"):  # a FIFO is written through (like every capture file), never replaced
        import threading

        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
        reader.start()
        assert write_flows(fifo, [_flow(), _flow()]) == 2
        reader.join(10)
        assert got and got[0].count(b"\n") == 3  # the header line and two flows
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left


def test_bad_input_is_a_format_error(tmp_path: Path) -> None:
    for data in (b"", b"{", b"[]", b'{"v": 99}', b'{"v": 1}', dumps_flow(_flow()).replace(b'"body":"', b'"body":"!')):
        with pytest.raises(FlowFormatError):
            loads_flow(data)
    p = tmp_path / "x.json"
    p.write_text('{"something": "else"}\n')
    with pytest.raises(FlowFormatError):
        read_flows(p)
