"""The filter language: every operator both ways, precedence, quoting, errors with positions."""

from __future__ import annotations

import gzip
import random
import re

import pytest

from proxycore.flows import filter as flowfilter
from proxycore.flows.filter import FilterError, help_text, parse
from proxycore.flows.flow import Flow, Headers, Request, Response


def make_flow(
    method: str = "GET",
    url_host: str = "api.example.com",
    target: str = "/v1/users?id=7",
    scheme: str = "https",
    port: int = 443,
    req_headers: list[tuple[str, str]] | None = None,
    req_body: bytes = b"",
    status: int | None = 200,
    resp_headers: list[tuple[str, str]] | None = None,
    resp_body: bytes = b"",
) -> Flow:
    req = Request(
        method, scheme, url_host, port, target,
        headers=Headers.from_pairs(req_headers if req_headers is not None else [("Host", url_host)]),
        body=req_body,
    )
    f = Flow(req, client_addr=("127.0.0.1", 51234))
    if status is not None:
        f.response = Response(
            status, "OK",
            headers=Headers.from_pairs(resp_headers if resp_headers is not None else []),
            body=resp_body,
        )
    return f


def m(expr: str, flow: Flow) -> bool:
    return parse(expr)(flow)


# --------------------------------------------------------------------------- flags

def test_q_s_e_flags() -> None:
    pending = make_flow(status=None)
    done = make_flow()
    failed = make_flow(status=None)
    failed.error = "connection refused"
    assert m("~q", pending) and not m("~q", done) and not m("~q", failed)
    assert m("~s", done) and not m("~s", pending) and not m("~s", failed)
    assert m("~e", failed) and not m("~e", done) and not m("~e", pending)


def test_asset_by_content_type_and_extension() -> None:
    css = make_flow(target="/style", resp_headers=[("Content-Type", "text/css; charset=utf-8")])
    js = make_flow(target="/x", resp_headers=[("content-type", "application/javascript")])
    img = make_flow(target="/logo", resp_headers=[("Content-Type", "image/png")])
    font = make_flow(target="/f", resp_headers=[("Content-Type", "font/woff2")])
    by_ext = make_flow(target="/static/app.JS?v=3", status=None)
    html = make_flow(target="/index.html", resp_headers=[("Content-Type", "text/html")])
    api = make_flow(target="/api/images", resp_headers=[("Content-Type", "application/json")])
    for f in (css, js, img, font, by_ext):
        assert m("~a", f), f
    assert not m("~a", html)
    assert not m("~a", api)


def test_marked_replay_all_http_websocket_tcp() -> None:
    f = make_flow()
    assert not m("~marked", f)
    f.marked = True
    assert m("~marked", f)
    assert not m("~replay", f)
    f.is_replay = True
    assert m("~replay", f)
    assert m("~all", f)
    assert m("~http", f) and not m("~tcp", f)
    f.passthrough = True
    assert m("~tcp", f) and not m("~http", f)
    assert not m("~websocket", f)


def test_websocket_flag_uses_websocket_attribute() -> None:
    class WSFlow:  # a future flow type carrying WebSocket messages
        websocket = ["hello"]

    assert parse("~websocket")(WSFlow())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- regex operators

def test_url_domain_method() -> None:
    f = make_flow(method="POST", url_host="api.example.com", target="/v1/users?id=7")
    assert m("~u example.com/v1", f) and not m("~u /v2/", f)
    assert m("~u ^https://api", f) and not m("~u ^http://", f)
    assert m(r"~u id=\d", f)
    assert m("~d ^api\\.example\\.com$", f) and not m("~d other.org", f)
    assert m("~m post", f) and m("~m ^POST$", f) and not m("~m get", f)


def test_domain_matches_authority() -> None:
    f = make_flow(url_host="10.0.0.1")
    f.request.authority = "internal.svc:8443"
    assert m("~d internal.svc", f) and m("~d 10.0.0", f) and not m("~d nope", f)


def test_header_ops_request_response_sides() -> None:
    f = make_flow(
        req_headers=[("Host", "api.example.com"), ("X-Trace", "abc123"), ("Authorization", "Bearer t")],
        resp_headers=[("Server", "nginx/1.25"), ("Set-Cookie", "sid=1")],
    )
    assert m("~h x-trace", f) and m("~h nginx", f)
    assert m("~hq 'x-trace: abc'", f) and not m("~hq nginx", f)
    assert m("~hs '^server: nginx'", f) and not m("~hs x-trace", f)
    # ^ and $ anchor on each header line
    assert m("~hq '^authorization: bearer t$'", f)
    assert not m("~h zzz", f)
    pending = make_flow(status=None)
    assert not m("~hs .", pending)


def test_body_ops_and_binary_bodies() -> None:
    f = make_flow(
        method="POST",
        req_body=b'{"user": "alice"}',
        resp_body=b"\x00\x01\xffPNGDATA\x00 needle",
    )
    assert m("~b alice", f) and m("~b needle", f)
    assert m("~bq ALICE", f) and not m("~bq needle", f)
    assert m("~bs needle", f) and not m("~bs alice", f)
    assert m(r"~bs '\x00\x01'", f)
    assert not m("~b bob", f)
    assert not m("~bs .", make_flow(status=None))


def test_body_non_ascii_pattern() -> None:
    f = make_flow(resp_body="grüße".encode())
    assert m("~bs grüße", f) and m("~bs GRÜ", f)


def test_body_is_decoded_with_content_encoding() -> None:
    flowfilter.clear_cache()
    f = make_flow(resp_headers=[("Content-Encoding", "gzip")], resp_body=gzip.compress(b"hello decoded"))
    assert m("~bs 'hello decoded'", f)
    assert m("~bs 'hello decoded'", f)  # second time from the cache
    assert not m("~bs 'hello raw'", f)
    cut = make_flow(resp_headers=[("Content-Encoding", "gzip")],
                    resp_body=gzip.compress(b"start of a long text " * 200)[:60])
    assert m("~bs 'start of a long'", cut)  # a cut-short stream still yields what decoded


def test_corrupt_encoded_body_falls_back_to_raw() -> None:
    f = make_flow(resp_headers=[("Content-Encoding", "gzip")], resp_body=b"not gzip at all")
    assert m("~bs 'not gzip'", f)


def test_content_type_ops() -> None:
    f = make_flow(
        method="POST",
        req_headers=[("Content-Type", "application/x-www-form-urlencoded")],
        resp_headers=[("Content-Type", "application/json")],
    )
    assert m("~t json", f) and m("~t form", f)
    assert m("~tq form", f) and not m("~tq json", f)
    assert m("~ts JSON", f) and not m("~ts form", f)
    no_ct = make_flow()
    assert not m("~t .", no_ct)


def test_src_dst_comment() -> None:
    f = make_flow()
    assert m("~src 127.0.0.1:51234", f) and not m("~src 10.", f)
    assert m("~dst api.example.com:443", f)  # not connected yet: the request's target
    f.server_addr = ("93.184.216.34", 443)
    assert m("~dst ^93\\.184", f) and not m("~dst api", f)
    f.server_addr = ("::1", 8080)
    assert m(r"~dst '^\[::1\]:8080$'", f)
    f.client_addr = None
    assert not m("~src .", f)
    assert not m("~comment .", f)
    f.comment = "Slow Login"
    assert m("~comment slow", f) and not m("~comment fast", f)


def test_status_code() -> None:
    f = make_flow(status=404)
    assert m("~c 404", f) and not m("~c 200", f)
    assert not m("~c 404", make_flow(status=None))


# --------------------------------------------------------------------------- combinators

def test_not_and_or_and_adjacency() -> None:
    ok = make_flow(status=200, method="GET")
    nf = make_flow(status=404, method="POST")
    assert m("!~c 404", ok) and not m("!~c 404", nf)
    assert m("~c 404 & ~m post", nf) and not m("~c 404 & ~m get", nf)
    assert m("~c 404 ~m post", nf) and not m("~c 404 ~m get", nf)  # adjacency = AND
    assert m("~c 200 | ~c 404", ok) and m("~c 200 | ~c 404", nf)
    assert not m("~c 201 | ~c 500", ok)
    assert m("!!~c 200", ok)


def test_precedence() -> None:
    f = make_flow(status=200, method="GET")
    # & binds tighter than |: (false & false) | true
    assert m("~c 500 & ~m post | ~m get", f)
    # true | (false & false) -> true ; (true | false) & false would be false
    assert m("~m get | ~c 500 & ~m post", f)
    assert not m("(~m get | ~c 500) & ~m post", f)
    # ! binds tighter than &: (!false) & true
    assert m("!~c 500 & ~m get", f)
    assert not m("!(~c 200 & ~m get)", f)
    # adjacency binds more loosely than | (as in mitmproxy): (~m get | ~c 500) & ~m post
    assert not m("~m get | ~c 500 ~m post", f)


def test_nested_parentheses() -> None:
    f = make_flow(status=302)
    assert m("((~c 302))", f)
    assert m("(~c 200 | (~c 302 & !~e)) & ~s", f)


# --------------------------------------------------------------------------- quoting and bare words

def test_bare_word_means_url() -> None:
    f = make_flow(target="/v1/users?id=7")
    assert m("users", f) and not m("orders", f)
    assert m("users ~c 200", f)
    assert m("!orders", f)
    assert m("v[12]/users", f)


def test_quoted_arguments() -> None:
    f = make_flow(
        req_headers=[("User-Agent", "Mozilla/5.0 (X11; Linux)")],
        resp_body=b'say "hi" (twice)',
    )
    assert m('~h "mozilla/5.0 \\(x11"', f)
    assert m("~h 'Mozilla/5.0 \\(X11; Linux\\)'", f)
    assert m('~bs "say \\"hi\\""', f)  # escaped quote inside the quotes
    assert m("~bs 'say \"hi\" \\(twice\\)'", f)
    assert m("'users\\?id'", make_flow())  # quoted bare word, regex escape kept
    assert m('~bs "\\(twice"', f)
    assert not m('~bs "\\(thrice"', f)


def test_word_ends_at_parenthesis() -> None:
    f = make_flow(status=404)
    assert m("(~c 404)", f)
    assert m("(~d example)", f)


def test_operators_without_spaces() -> None:
    f = make_flow(status=404, url_host="b.example")
    assert m("~c 200|~c 404", f) and not m("~c 200|~c 500", f)
    assert m("~d a.example|~d b.example", f)
    assert m("~c 404&!~d a.example", f) and not m("~c 404&~d a.example", f)
    assert m("~s&~c 404", f) and m("~q|~s", f)
    with pytest.raises(FilterError, match="missing argument for ~d"):
        parse("~d (a|b).example")  # a regex with parentheses must be quoted
    assert m("~d '(a|b).example'", f)
    assert m("~d a|b", f)  # | inside a word is regex alternation


def test_case_insensitive() -> None:
    f = make_flow(method="DELETE", url_host="API.Example.COM", target="/Path",
                  resp_headers=[("Content-Type", "Text/HTML")], resp_body=b"Hello World")
    for expr in ("~m delete", "~d example.com", "~u /path", "PATH", "~ts text/html", "~bs 'HELLO world'",
                 "~hs content-type"):
        assert m(expr, f), expr



def test_fast_case_insensitive_search_agrees_with_re_ignorecase() -> None:
    """URL, host and method regexes skip re.I where lower-casing gives the same answer; random
    patterns and texts (ASCII and not) must match exactly as re.I would."""
    rng = random.Random(7)
    atoms = ["a", "B", "k", "s", "i", "/", ".", "-", "0", "1", "x", "Q", ".*", "a|b", "(ab)", "[a-c]",
             "[0-_]", "\\d", "\\101", "^", "$", "?", "+", "{2}", "(?i:b)", "(?-i:B)", "é", "ß"]
    chars = "abkKsSiIxX01/.-_ABQqé\u212a\u017f\u0130ß?=&"
    checked = 0
    for _ in range(3000):
        pat = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 4)))
        try:
            want_rx = re.compile(pat, re.I)
        except re.error:
            continue
        got = flowfilter._str_rx(pat, re.I).search
        for _ in range(8):
            text = "".join(rng.choice(chars) for _ in range(rng.randint(0, 12)))
            assert bool(got(text)) == bool(want_rx.search(text)), (pat, text)
            checked += 1
    assert checked > 10000
    assert isinstance(flowfilter._str_rx("example.com", re.I), flowfilter._FoldedSearch)
    assert isinstance(flowfilter._str_rx("Small", re.I), flowfilter._FoldedSearch)
    assert not isinstance(flowfilter._str_rx("[A-Z]", re.I), flowfilter._FoldedSearch)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize(
    ("expr", "message", "pos"),
    [
        ("", "empty filter", 0),
        ("   ", "empty filter", 0),
        ("~s ~zz", "unknown operator ~zz", 3),
        ("~", "unknown operator ~", 0),
        ("(~s", "unbalanced parenthesis", 0),
        ("~s & (~e | (~q)", "unbalanced parenthesis", 5),
        ("~s)", "unbalanced parenthesis", 2),
        (")", "unbalanced parenthesis", 0),
        ("()", "empty parentheses", 0),
        ("~s & ()", "empty parentheses", 5),
        ("~c", "missing argument for ~c", 0),
        ("~s & ~u", "missing argument for ~u", 5),
        ("(~u )", "missing argument for ~u", 1),
        ("~u ~s", "missing argument for ~u", 0),
        ("~c abc", "~c needs a number", 3),
        ("~c 2x0", "~c needs a number", 3),
        ("~s |", "missing expression after |", 4),
        ("~s | | ~e", "missing expression after |", 5),
        ("~s &", "missing expression after &", 4),
        ("!", "missing expression after !", 1),
        ("& ~s", "unexpected &", 0),
        ("| ~s", "unexpected |", 0),
        ("( | ~s)", "unexpected |", 2),
        ("~u 'abc", "unterminated quote", 3),
        ('"abc', "unterminated quote", 0),
    ],
)
def test_errors_with_positions(expr: str, message: str, pos: int) -> None:
    with pytest.raises(FilterError) as ei:
        parse(expr)
    assert ei.value.message == message
    assert ei.value.position == pos
    assert str(ei.value) == f"{message} at {pos}"
    assert isinstance(ei.value, ValueError)


def test_invalid_regex_message_and_position() -> None:
    with pytest.raises(FilterError) as ei:
        parse("~s ~u abc[")
    assert ei.value.message.startswith("invalid regex for ~u: ")
    assert ei.value.position == 9  # the '[' inside the argument
    with pytest.raises(FilterError) as ei:
        parse("~b '(unclosed'")
    assert ei.value.message.startswith("invalid regex for ~b")
    with pytest.raises(FilterError, match="invalid regex for ~u"):
        parse("*.js")


# --------------------------------------------------------------------------- API surface

def test_filter_object() -> None:
    flt = parse("~c 200")
    assert flt.expr == "~c 200"
    assert "~c 200" in repr(flt)
    f = make_flow()
    assert flt(f) is True
    assert flt.predicate(f) is True


def test_compile_once_many_flows() -> None:
    flows = [make_flow(status=200 + (i % 3), target=f"/item/{i}") for i in range(3000)]
    flt = parse("~c 201 & !~u /item/1 | ~u /item/2999$")
    got = [f for f in flows if flt(f)]
    expected = [f for f in flows if (f.response.status == 201 and "/item/1" not in f.request.target)
                or f.request.target == "/item/2999"]
    assert got == expected and got


def test_help_text_covers_operators() -> None:
    rows = help_text()
    ops = " ".join(op for op, _ in rows)
    for name in ("~q", "~s", "~e", "~a", "~marked", "~u", "~d", "~m", "~h", "~hq", "~hs", "~b", "~bq",
                 "~bs", "~t", "~tq", "~ts", "~c", "~src", "~dst", "~comment", "!", "&", "|"):
        assert name in ops.split() or f"{name} " in ops, name
    assert all(isinstance(d, str) and d for _, d in rows)
