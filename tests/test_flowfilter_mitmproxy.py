"""The filter language against mitmproxy's semantics: cases ported from mitmproxy's own
test_flowfilter.py (precedence of adjacency, multi-line bodies and comments, the Host header's
name for ~d/~u, the digits of ~c), plus the deliberate differences we keep."""

from __future__ import annotations

import pytest

from proxycore.flows.filter import FilterError, help_text, parse
from proxycore.flows.flow import Flow, Headers, Request, Response


def tflow(resp: bool = True, host: str = "address", port: int = 22, authority: str = "") -> Flow:
    """mitmproxy's tflow.tflow(): GET http://address:22/path, header: qvalue, body "content"."""
    req = Request("GET", "http", host, port, "/path", headers=Headers.from_pairs(
        [("header", "qvalue"), ("content-length", "7")]), body=b"content", authority=authority)
    f = Flow(req, client_addr=("127.0.0.1", 22))
    if resp:
        f.response = Response(200, "OK", headers=Headers.from_pairs(
            [("header-response", "svalue"), ("content-length", "7")]), body=b"message")
    return f


def q(expr: str, flow: Flow) -> bool:
    return parse(expr)(flow)


# ------------------------------------------------------------------ mitmproxy's own cases

def test_ported_and_or_not() -> None:
    s = tflow()
    assert q("~c 200 & ~h head", s)
    assert not q("~c 200 & ~h nohead", s)
    assert q("(~c 200 & ~h head) & ~b content", s)
    assert not q("(~c 200 & ~h head) & ~b nonexistent", s)
    assert not q("(~c 200 & ~h nohead) & ~b content", s)
    assert q("~c 200 | ~h nohead", s)
    assert q("~c 201 | ~h head", s)
    assert not q("~c 201 | ~h nohead", s)
    assert q("(~c 201 | ~h nohead) | ~s", s)
    assert not q("! ~c 200", s)
    assert q("! ~c 201", s)
    assert q("!~c 201 !~c 202", s)
    assert not q("!~c 201 !~c 200", s)


def test_ported_parsing() -> None:
    for expr in ("~q", "~c 10", "~m foobar", "~u foobar", "~q ~c 10", "~replay", "~replayq", "~replays",
                 "~comment .", "~s шгн", "foobar ~h rex", "~u 'foo ~u bar' ~u voing",
                 "(~u foobar & ~h voing)", "!(~u test & ~h bar)", "~hq 'header: qvalue'"):
        parse(expr)
    for bad in ("", "~b", "~h ["):
        with pytest.raises(FilterError):
            parse(bad)


def test_ported_url_domain_code() -> None:
    f = tflow()
    assert q("~u address", f) and q("~u ADDRESS", f) and q("~u address:22/path", f)
    assert not q("~u moo/path", f)
    assert q("~d address", f) and q("~d ADDRESS", f) and not q("~d none", f)
    assert q("~c 200", f) and not q("~c 201", f) and not q("~c 200", tflow(resp=False))


def test_ported_src() -> None:
    f = tflow()
    assert q("~src 127.0.0.1", f) and q("~src :22", f) and q("~src 127.0.0.1:22", f)
    assert not q("~src foobar", f) and not q("~src :99", f)


# ------------------------------------------------------------------ the four fixes

def test_adjacency_binds_more_loosely_than_or() -> None:
    get200 = tflow()
    # mitmproxy: OneOrMore(infix) -> FAnd([FOr(~m get, ~c 500), ~m post]) -> false for a GET 200
    assert not q("~m get | ~c 500 ~m post", get200)
    assert q("~m get | ~c 500 ~m get", get200)
    assert q("~c 500 | ~m get ~s", get200)
    assert not q("~c 500 | ~m get ~q", get200)
    # & still binds more tightly than |
    assert q("~m get | ~c 500 & ~m post", get200)
    # side by side inside parentheses: the same looser binding (mitmproxy rejects it there)
    assert not q("(~m get | ~c 500 ~m post)", get200)
    assert q("(~m get ~s) | ~e", get200)


def test_body_regex_matches_across_lines() -> None:
    f = tflow()
    f.response.body = b"first line\nsecond line"
    assert q("~bs 'first.*second'", f)  # "." crosses the newline (DOTALL, as mitmproxy)
    assert q("~b 'line.second'", f)
    f.request.body = b"a=1\r\nb=2"
    assert q("~bq 'a=1..b=2'", f)
    assert not q("~bq '^b=2'", f)  # no MULTILINE on bodies, as mitmproxy


def test_comment_is_multiline() -> None:
    f = tflow()
    f.comment = "first note\nslow login"
    assert q("~comment ^slow", f)  # ^ anchors on each line (MULTILINE, as mitmproxy)
    assert q("~comment 'note$'", f)
    assert not q("~comment ^login", f)
    assert q("~comment 'Slow Login'", f)  # case-insensitive here (see the differences)
    assert not q("~comment .", tflow())


def test_domain_and_url_match_the_host_header_name() -> None:
    # a flow addressed by IP (transparent mode): mitmproxy's pretty_host / pretty_url
    f = tflow(host="10.0.0.7", port=80, authority="api.example.com")
    assert q("~d api.example.com", f) and q("~d ^10\\.0\\.0\\.7$", f)
    assert q("~u ^http://api\\.example\\.com/path$", f)
    assert q("~u 10.0.0.7/path", f)
    assert q("example.com/path", f)  # a bare word is ~u
    assert not q("~d other.org", f) and not q("~u other.org", f)
    # the Host header's port is not part of its name
    g = tflow(host="10.0.0.7", port=8443, authority="svc.internal:8443")
    assert q("~d ^svc\\.internal$", g)
    assert q("~u ^http://svc\\.internal:8443/path", g)
    # no authority recorded: the Host header itself
    h = tflow(host="10.0.0.7", port=80)
    h.request.headers.set("Host", "named.example")
    assert q("~d named.example", h)
    v6 = tflow(host="::1", port=80, authority="[fe80::1]:80")
    assert q("~d fe80::1", v6)


def test_code_takes_the_digits_only() -> None:
    notfound = tflow()
    notfound.response.status = 404
    ok = tflow()
    # mitmproxy: "~c 404|foo" = ~c 404 | ~u foo ; "~c 200&path" = ~c 200 & ~u path
    assert q("~c 404|foo", notfound) and not q("~c 404|foo", ok)
    assert q("~c 200|address", ok)
    assert q("~c 200&path", ok) and not q("~c 200&nopath", ok) and not q("~c 200&path", notfound)
    assert q("(~c 404)", notfound) and q("~c 404!~q", notfound)
    # letters glued to the number stay an error (mitmproxy would read "~c 2 & x0")
    with pytest.raises(FilterError, match="~c needs a number"):
        parse("~c 2x0")


def test_help_lists_the_differences() -> None:
    text = " ".join(f"{a} {b}" for a, b in help_text())
    assert "differences from mitmproxy" in text.lower()
    assert "case" in text.lower()
