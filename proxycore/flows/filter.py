"""A mitmproxy-compatible flow filter language, compiled to closures.

    ~d example.com & (~c 404 | ~e) & !~a
    "api/v[12]" ~m post

One language for the UI's view filter, breakpoints and rewrite rules. `parse()` compiles an
expression once into a tree of closures; calling the result on a flow does no parsing and no
dispatch on node types, because the UI re-filters tens of thousands of flows on every keystroke.

Grammar (precedence ! > & > | > adjacency; two terms side by side mean "and", binding more
loosely than | as in mitmproxy, so "~m get | ~c 500 ~m post" is "(~m get | ~c 500) & ~m post"):

    seq   := or (or)*                                   (adjacent terms: all must match)
    or    := and ("|" and)*
    and   := not ("&" not)*
    not   := "!" not | atom
    atom  := "(" seq ")" | ~flag | ~op ARG | ~c DIGITS | WORD   (a bare WORD means ~u WORD)

ARG and WORD are either quoted ('...' or "...", a backslash escapes the next character; only
escaped quotes lose their backslash so regex escapes like \\d survive) or a run of characters
up to whitespace, a parenthesis, or an & or | directly followed by ~ ! or ( ("~c 200|~c 404").
A bare WORD cannot start with one of ~ ! & | ( ). Inside a word, | is regex alternation.
~c takes the digits only, so "~c 404|foo" is "~c 404 | foo" and "~c 200&path" is "~c 200 & path".
Regexes are case-insensitive. Bodies, headers and content types are searched as bytes; in a
body "." matches a newline too, and ^ $ anchor on each line of a header block or a comment.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable

from proxycore.flows.flow import Flow

Predicate = Callable[[Flow], bool]


class FilterError(ValueError):
    """A syntax error in a filter expression; `position` is the 0-based column of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at {position}")
        self.message = message
        self.position = position


class Filter:
    """A compiled filter: call it with a Flow. `expr` is the source text."""

    __slots__ = ("expr", "_fn")

    def __init__(self, expr: str, fn: Predicate) -> None:
        self.expr = expr
        self._fn = fn

    def __call__(self, flow: Flow) -> bool:
        return self._fn(flow)

    @property
    def predicate(self) -> Predicate:
        """The bare closure, for hot loops that want to skip one call level."""
        return self._fn

    def __repr__(self) -> str:
        return f"Filter({self.expr!r})"


# --------------------------------------------------------------------------- field accessors

_ASSET_CT = re.compile(rb"javascript|ecmascript|text/css|^\s*image/|^\s*font/|application/(x-)?font", re.I)
_ASSET_EXT = (
    ".js", ".mjs", ".css", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".ico", ".bmp",
    ".woff", ".woff2", ".ttf", ".otf", ".eot", ".map",
)


def _content_type(msg: object) -> bytes | None:
    for k, v in msg.headers.fields:  # type: ignore[attr-defined]
        if k.lower() == b"content-type":
            return v
    return None


def _header_blob(msg: object) -> bytes:
    # One "name: value" per line so ^ and $ (re.M) anchor on header lines.
    return b"\n".join(k + b": " + v for k, v in msg.headers.fields)  # type: ignore[attr-defined]


_decode_body: Callable | None | bool = None  # None = not looked up yet, False = unavailable


def _get_decoder() -> Callable | None:
    """proxycore.encoding.decode_body if that module exists (imported lazily, looked up once)."""
    global _decode_body
    if _decode_body is None:
        try:
            from proxycore.encoding import decode_body  # type: ignore[import-not-found]
        except ImportError:
            decode_body = False
        _decode_body = decode_body
    return _decode_body or None


# Decoded bodies, most recently used last. Bounded by bytes, not entries: one decoded body can
# be tens of MiB. The UI re-filters the same flows on every keystroke, and bytes cache their hash,
# so a hit costs one dict look-up.
_CACHE_BUDGET = 64 * 1024 * 1024
_cache: OrderedDict[tuple[bytes, str], bytes] = OrderedDict()
_cache_bytes = 0


def _decoded(body: bytes, encoding: str) -> bytes:
    global _cache_bytes
    key = (body, encoding)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    decode = _get_decoder()
    if decode is None:
        return body
    try:
        # Partial output of a cut-short stream is still worth searching.
        out = decode(body, encoding, allow_truncated=True)
    except Exception:  # noqa: BLE001 - a corrupt body must not break filtering; fall back to raw
        return body
    if isinstance(out, tuple):  # (decoded, error-or-None)
        out = out[0]
    if not isinstance(out, bytes):
        return body
    if len(out) <= _CACHE_BUDGET // 4:
        _cache[key] = out
        _cache_bytes += len(out)
        while _cache_bytes > _CACHE_BUDGET:
            _, old = _cache.popitem(last=False)
            _cache_bytes -= len(old)
    return out


def clear_cache() -> None:
    """Drop cached decoded bodies (e.g. when the UI clears its flows)."""
    global _cache_bytes
    _cache.clear()
    _cache_bytes = 0


def _body(msg: object) -> bytes:
    body: bytes = msg.body  # type: ignore[attr-defined]
    if not body:
        return body
    enc = None
    for k, v in msg.headers.fields:  # type: ignore[attr-defined]
        if k.lower() == b"content-encoding":
            enc = v
    if enc is None or enc.strip().lower() in (b"", b"identity"):
        return body
    return _decoded(body, enc.decode("latin-1").strip().lower())


def _fmt_addr(addr: tuple[str, int] | None) -> str:
    if not addr:
        return ""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dst(flow: Flow) -> str:
    if flow.server_addr:
        return _fmt_addr(flow.server_addr)
    r = flow.request
    return _fmt_addr((r.host, r.port))


# --------------------------------------------------------------------------- operator builders

def _flag_asset(f: Flow) -> bool:
    resp = f.response
    if resp is not None:
        ct = _content_type(resp)
        if ct is not None and _ASSET_CT.search(ct):
            return True
    return f.request.path.lower().endswith(_ASSET_EXT)


_FLAGS: dict[str, tuple[Predicate, str]] = {
    # an HTTP flow only, as mitmproxy's: an intercept filter ~q must not pause every TCP message
    "q": (lambda f: f.response is None and f.error is None and f.tcp_messages is None,
          "request without a response or error (pending; HTTP flows only)"),
    "s": (lambda f: f.response is not None, "has a response"),
    "e": (lambda f: f.error is not None, "has an error"),
    "a": (_flag_asset, "asset: CSS, JavaScript, image or font (content type or path extension)"),
    "marked": (lambda f: bool(f.marked), "marked flow"),
    "replay": (lambda f: bool(f.is_replay), "replayed flow"),
    "replayq": (lambda f: bool(f.is_replay), "replayed request (same as ~replay)"),
    "replays": (lambda f: False, "server-replayed response (never, for mitmproxy compatibility)"),
    "all": (lambda f: True, "every flow"),
    # as mitmproxy: a blind tunnel and a raw TCP stream are TCP flows, everything else is HTTP
    "http": (lambda f: not f.passthrough and f.tcp_messages is None, "HTTP flow (not TCP)"),
    "websocket": (lambda f: getattr(f, "websocket", None) is not None, "WebSocket flow (a 101 to WebSocket)"),
    "tcp": (lambda f: f.passthrough or f.tcp_messages is not None,
            "TCP flow: a raw stream (WireGuard mode) or a tunnel relayed untouched"),
    "udp": (lambda f: False, "UDP flow (never; for mitmproxy compatibility)"),
    "dns": (lambda f: False, "DNS flow (never; for mitmproxy compatibility)"),
}


def _host_header_name(r: object) -> str | None:
    """The Host header's (or :authority's) name without its port, when it differs from the host
    the request went to (a flow addressed by IP, transparent or reverse mode); else None."""
    a: str = r.authority  # type: ignore[attr-defined]
    if not a:
        a = r.headers.get("host") or ""  # type: ignore[attr-defined]
        if not a:
            return None
    host: str = r.host  # type: ignore[attr-defined]
    if a == host:
        return None
    if a.startswith("["):  # [v6]:port
        name = a[1:a.find("]")] if "]" in a else a
    else:
        name = a.rsplit(":", 1)[0] if a.count(":") == 1 else a
    name = name.lower()
    return None if name == host or not name else name


def _pretty_url(r: object, name: str) -> str:
    """The URL with the Host header's name as its host (mitmproxy's pretty_url)."""
    h = f"[{name}]" if ":" in name else name
    port: int = r.port  # type: ignore[attr-defined]
    scheme: str = r.scheme  # type: ignore[attr-defined]
    default = 443 if scheme == "https" else 80
    netloc = h if port == default else f"{h}:{port}"
    return f"{scheme}://{netloc}{r.target}"  # type: ignore[attr-defined]


def _op_url(rx: re.Pattern) -> Predicate:
    s = rx.search

    def pred(f: Flow) -> bool:
        r = f.request
        if s(r.url):
            return True
        # The usual case, checked inline (the UI re-filters every flow per keystroke): the Host
        # header names the host the request went to, with or without a port.
        a, h = r.authority, r.host
        if a == h or (a.startswith(h) and a[len(h):len(h) + 1] == ":"):
            return False
        name = _host_header_name(r)
        return name is not None and r.method != "CONNECT" and bool(s(_pretty_url(r, name)))

    return pred


def _op_domain(rx: re.Pattern) -> Predicate:
    s = rx.search

    def pred(f: Flow) -> bool:
        r = f.request
        h = r.host
        if s(h):
            return True
        a = r.authority
        if a == h or (a.startswith(h) and a[len(h):len(h) + 1] == ":"):
            return False
        name = _host_header_name(r)
        return name is not None and bool(s(name))

    return pred


def _op_method(rx: re.Pattern) -> Predicate:
    s = rx.search
    return lambda f: bool(s(f.request.method))


def _sided(get: Callable[[object], object], rx: re.Pattern, side: str) -> Predicate:
    """Apply rx.search to get(message) for the request, the response or either."""
    s = rx.search
    if side == "q":
        return lambda f: bool(s(get(f.request)))
    if side == "s":
        return lambda f: f.response is not None and bool(s(get(f.response)))
    return lambda f: bool(s(get(f.request))) or (
        f.response is not None and bool(s(get(f.response)))
    )


def _op_body(rx: re.Pattern, side: str) -> Predicate:
    """The bodies, then (as mitmproxy's ~b ~bq ~bs) the WebSocket or TCP messages: all of them,
    those from the client, those from the server."""
    bodies = _sided(_body, rx, side)
    s = rx.search
    want = None if not side else side == "q"  # from_client wanted

    def pred(f: Flow) -> bool:
        if bodies(f):
            return True
        ws = getattr(f, "websocket", None)
        msgs = ws.messages if ws is not None else f.tcp_messages
        if msgs is None:
            return False
        for m in msgs:
            if (want is None or m.from_client is want) and s(m.content):
                return True
        return False

    return pred


def _op_ct(rx: re.Pattern, side: str) -> Predicate:
    s = rx.search

    def one(msg: object) -> bool:
        ct = _content_type(msg)
        return ct is not None and bool(s(ct))

    if side == "q":
        return lambda f: one(f.request)
    if side == "s":
        return lambda f: f.response is not None and one(f.response)
    return lambda f: one(f.request) or (f.response is not None and one(f.response))


def _op_src(rx: re.Pattern) -> Predicate:
    s = rx.search
    return lambda f: f.client_addr is not None and bool(s(_fmt_addr(f.client_addr)))


def _op_dst(rx: re.Pattern) -> Predicate:
    s = rx.search
    return lambda f: bool(s(_dst(f)))


def _op_comment(rx: re.Pattern) -> Predicate:
    s = rx.search
    return lambda f: bool(f.comment) and bool(s(f.comment))


# name -> (kind, builder, description); kind "str" compiles a str regex, "bytes" a bytes regex.
_REGEX_OPS: dict[str, tuple[str, Callable[[re.Pattern], Predicate], str]] = {
    "u": ("str", _op_url, "URL matches regex (also with the Host header's name as host)"),
    "d": ("str", _op_domain, "domain: the host or the Host header's name matches regex"),
    "m": ("str", _op_method, "method matches regex"),
    "h": ("hdr", lambda rx: _sided(_header_blob, rx, ""), "request or response header line 'name: value'"),
    "hq": ("hdr", lambda rx: _sided(_header_blob, rx, "q"), "request header line 'name: value'"),
    "hs": ("hdr", lambda rx: _sided(_header_blob, rx, "s"), "response header line 'name: value'"),
    "b": ("bytes", lambda rx: _op_body(rx, ""), "request or response body, or a WebSocket message"),
    "bq": ("bytes", lambda rx: _op_body(rx, "q"), "request body, or a WebSocket message from the client"),
    "bs": ("bytes", lambda rx: _op_body(rx, "s"), "response body, or a WebSocket message from the server"),
    "t": ("bytes", lambda rx: _op_ct(rx, ""), "request or response Content-Type"),
    "tq": ("bytes", lambda rx: _op_ct(rx, "q"), "request Content-Type"),
    "ts": ("bytes", lambda rx: _op_ct(rx, "s"), "response Content-Type"),
    "src": ("str", _op_src, "client address 'host:port'"),
    "dst": ("str", _op_dst, "server address 'host:port'"),
    "comment": ("text", _op_comment, "flow comment (^ and $ anchor on each line)"),
}

_INT_OPS: dict[str, str] = {"c": "response status code equals"}


def _op_code(code: int) -> Predicate:
    return lambda f: f.response is not None and f.response.status == code


# --------------------------------------------------------------------------- tokenizer

_SPACE = " \t\r\n\f\v"
_WORD_END = _SPACE + "()"
_OPNAME = re.compile(r"[A-Za-z]*")


class _Tok:
    __slots__ = ("kind", "pos", "name", "arg", "argpos")

    def __init__(self, kind: str, pos: int, name: str = "", arg: str | None = None, argpos: int = 0) -> None:
        self.kind = kind  # "(", ")", "!", "&", "|", "flag", "op", "word"
        self.pos = pos
        self.name = name
        self.arg = arg
        self.argpos = argpos


def _read_quoted(s: str, i: int) -> tuple[str, int]:
    """Read a quoted string starting at s[i] (the quote). Returns (text, index after it)."""
    q = s[i]
    j = i + 1
    out: list[str] = []
    n = len(s)
    while j < n:
        c = s[j]
        if c == "\\" and j + 1 < n:
            nxt = s[j + 1]
            # An escaped quote loses its backslash; other escapes stay for the regex engine.
            out.append(nxt if nxt == q else c + nxt)
            j += 2
            continue
        if c == q:
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise FilterError("unterminated quote", i)


def _read_word(s: str, i: int) -> tuple[str, int]:
    if s[i] in "'\"":
        return _read_quoted(s, i)
    j = i
    n = len(s)
    while j < n and s[j] not in _WORD_END:
        # "~c 200|~c 404": an & or | right before another term ends the word; as a regex
        # "200|~c" would be a surprise, and "|~", "&!" etc. hardly occur in real patterns.
        if s[j] in "&|" and j + 1 < n and s[j + 1] in "~!(":
            break
        j += 1
    return s[i:j], j


def _tokenize(s: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in _SPACE:
            i += 1
            continue
        if c in "()!&|":
            toks.append(_Tok(c, i))
            i += 1
            continue
        if c == "~":
            m = _OPNAME.match(s, i + 1)
            name = m.group(0)
            end = m.end()
            if name in _FLAGS:
                toks.append(_Tok("flag", i, name))
                i = end
                continue
            if name not in _REGEX_OPS and name not in _INT_OPS:
                raise FilterError(f"unknown operator ~{name}", i)
            j = end
            while j < n and s[j] in _SPACE:
                j += 1
            if j >= n or s[j] in "()~":
                raise FilterError(f"missing argument for ~{name}", i)
            if name in _INT_OPS and s[j] not in "'\"":
                # As mitmproxy: the number is the digits, so "~c 404|foo" is "~c 404 | foo" and
                # "~c 200&path" is "~c 200 & path". Letters glued to the digits ("~c 2x0") stay an
                # error rather than becoming "~c 2 & x0" as there: that is a typo.
                k = j
                while k < n and s[k].isdigit():
                    k += 1
                if k == j or (k < n and s[k] not in _WORD_END and s[k] not in "&|!~"):
                    while k < n and s[k] not in _WORD_END:
                        k += 1
                toks.append(_Tok("op", i, name, s[j:k], j))
                i = k
                continue
            arg, k = _read_word(s, j)
            toks.append(_Tok("op", i, name, arg, j))
            i = k
            continue
        word, k = _read_word(s, i)
        toks.append(_Tok("word", i, arg=word, argpos=i))
        i = k
    return toks


# --------------------------------------------------------------------------- parser

class _DecodingSearch:
    """A str regex searching bytes: bytes regexes ignore case for ASCII only, so a pattern
    with non-ASCII letters (rare) pays for decoding the text it searches."""

    __slots__ = ("search",)

    def __init__(self, rx: re.Pattern) -> None:
        s = rx.search
        self.search = lambda b: s(b.decode("utf-8", "replace"))


class _LiteralSearch:
    """Case-insensitive search for a plain word in bytes: `in` over a lower-cased copy is ~6x
    faster than an re.I search, and ~b/~h scan whole bodies for every flow on every keystroke."""

    __slots__ = ("search",)

    def __init__(self, word: str) -> None:
        needle = word.lower().encode("ascii")
        self.search = lambda b: needle in b.lower()


_META = re.compile(r"[.^$*+?{}\[\]\\|()]")
# Patterns that mean the same when lower-cased: no escapes (\101 is "A"), no classes ([0-_] holds
# upper-case letters only), no (?...) groups. Only letters change, and they are all literals.
_FOLDABLE = re.compile(r"[^\\\[]*")


class _FoldedSearch:
    """Case-insensitive search of ASCII text for an ASCII pattern, 3-6x faster than re.I (which
    has no fast literal scan): a plain word is `in` the lower-cased text, any other foldable
    pattern a case-sensitive regex of its lower-cased self. Non-ASCII text, where Unicode case
    folding differs from lower(), goes to the re.I regex."""

    __slots__ = ("search",)

    def __init__(self, rx: re.Pattern) -> None:
        folded = rx.pattern.lower()
        slow = rx.search
        if not _META.search(folded):
            self.search = lambda t: (folded in t.lower()) if t.isascii() else slow(t)
        else:
            fast = re.compile(folded, rx.flags & ~re.I).search
            self.search = lambda t: fast(t.lower()) if t.isascii() else slow(t)


def _str_rx(arg: str, flags: int) -> re.Pattern:
    rx = re.compile(arg, flags)
    if arg.isascii() and "(?" not in arg and _FOLDABLE.fullmatch(arg):
        return _FoldedSearch(rx)  # type: ignore[return-value]
    return rx


def _compile_rx(op: str, arg: str, pos: int, kind: str) -> re.Pattern:
    # As mitmproxy: header blocks and comments are multi-line (^ $ per line), bodies are searched
    # with DOTALL ("." crosses newlines).
    flags = re.I | (re.M if kind in ("hdr", "text") else 0) | (re.S if kind == "bytes" else 0)
    try:
        if kind in ("str", "text"):
            return _str_rx(arg, flags)
        if not arg.isascii():
            return _DecodingSearch(re.compile(arg, flags))  # type: ignore[return-value]
        if arg and not _META.search(arg):
            return _LiteralSearch(arg)  # type: ignore[return-value]
        return re.compile(arg.encode("utf-8"), flags)
    except re.error as e:
        raise FilterError(f"invalid regex for ~{op}: {e.msg}", pos + (e.pos or 0)) from None


def _and(a: Predicate, b: Predicate) -> Predicate:
    return lambda f: a(f) and b(f)


def _or(a: Predicate, b: Predicate) -> Predicate:
    return lambda f: a(f) or b(f)


def _not(a: Predicate) -> Predicate:
    return lambda f: not a(f)


class _Parser:
    def __init__(self, text: str, toks: list[_Tok]) -> None:
        self.text = text
        self.toks = toks
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> Predicate:
        pred = self.parse_seq()
        tok = self.peek()
        if tok is not None:
            if tok.kind == ")":
                raise FilterError("unbalanced parenthesis", tok.pos)
            raise FilterError(f"unexpected {tok.kind}", tok.pos)  # pragma: no cover - defensive
        return pred

    def parse_seq(self) -> Predicate:
        """Terms side by side: all must match. Looser than | as in mitmproxy (its OneOrMore
        around the operator grammar), so "~m get | ~c 500 ~m post" needs a POST."""
        pred = self.parse_or()
        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind in ("|", "&"):  # pragma: no cover - parse_or/parse_and consumed them
                raise FilterError(f"unexpected {tok.kind}", tok.pos)
            pred = _and(pred, self.parse_or())
        return pred

    def parse_or(self) -> Predicate:
        pred = self.parse_and()
        while (tok := self.peek()) is not None and tok.kind == "|":
            self.i += 1
            self.expect_operand(tok)
            pred = _or(pred, self.parse_and())
        return pred

    def parse_and(self) -> Predicate:
        pred = self.parse_not()
        while (tok := self.peek()) is not None and tok.kind == "&":
            self.i += 1
            self.expect_operand(tok)
            pred = _and(pred, self.parse_not())
        return pred

    def parse_not(self) -> Predicate:
        tok = self.peek()
        if tok is not None and tok.kind == "!":
            self.i += 1
            self.expect_operand(tok)
            return _not(self.parse_not())
        return self.parse_atom()

    def expect_operand(self, after: _Tok) -> None:
        nxt = self.peek()
        if nxt is None or nxt.kind in ("|", "&", ")"):
            where = nxt.pos if nxt is not None else len(self.text.rstrip())
            raise FilterError(f"missing expression after {after.kind}", where)

    def parse_atom(self) -> Predicate:
        tok = self.peek()
        if tok is None:  # pragma: no cover - callers check with expect_operand
            raise FilterError("missing expression", len(self.text))
        self.i += 1
        if tok.kind == "(":
            nxt = self.peek()
            if nxt is None:
                raise FilterError("unbalanced parenthesis", tok.pos)
            if nxt.kind == ")":
                raise FilterError("empty parentheses", tok.pos)
            if nxt.kind in ("|", "&"):
                raise FilterError(f"unexpected {nxt.kind}", nxt.pos)
            pred = self.parse_seq()  # mitmproxy rejects "(~a ~b)"; here it means "(~a & ~b)"
            close = self.peek()
            if close is None or close.kind != ")":
                raise FilterError("unbalanced parenthesis", tok.pos)
            self.i += 1
            return pred
        if tok.kind == ")":
            raise FilterError("unbalanced parenthesis", tok.pos)
        if tok.kind in ("&", "|"):
            raise FilterError(f"unexpected {tok.kind}", tok.pos)
        if tok.kind == "flag":
            return _FLAGS[tok.name][0]
        if tok.kind == "word":
            return _op_url(_compile_rx("u", tok.arg or "", tok.argpos, "str"))
        # "op"
        name, arg = tok.name, tok.arg or ""
        if name in _INT_OPS:
            try:
                return _op_code(int(arg.strip(), 10))
            except ValueError:
                raise FilterError(f"~{name} needs a number", tok.argpos) from None
        kind, build, _ = _REGEX_OPS[name]
        return build(_compile_rx(name, arg, tok.argpos, kind))


def parse(expr: str) -> Filter:
    """Compile a filter expression. Raises FilterError (a ValueError) with message and position."""
    if not expr or not expr.strip():
        raise FilterError("empty filter", 0)
    toks = _tokenize(expr)
    return Filter(expr, _Parser(expr, toks).parse())


def help_text() -> list[tuple[str, str]]:
    """(operator, description) rows for the UI's filter help."""
    rows: list[tuple[str, str]] = []
    for name in ("q", "s", "e", "a", "marked", "replay", "all", "http", "websocket", "tcp"):
        rows.append((f"~{name}", _FLAGS[name][1]))
    for name, (_, _, desc) in _REGEX_OPS.items():
        rows.append((f"~{name} regex", desc))
    for name, desc in _INT_OPS.items():
        rows.append((f"~{name} int", desc))
    rows += [
        ("regex", "bare word: URL matches regex (same as ~u)"),
        ("!", "not"),
        ("&", "and"),
        ("|", "or"),
        ("a b", "side by side: a and b, binding more loosely than | (a | b c is (a | b) & c)"),
        ("( )", "grouping; precedence is ! then & then | then side by side"),
        ("'...' \"...\"", "quote arguments with spaces or parentheses"),
        (". ^ $", "in bodies . matches a newline; in headers and comments ^ $ anchor on each line"),
    ]
    rows += [(k, v) for k, v in DIFFERENCES]
    return rows


# Deliberate differences from mitmproxy, shown in the help (and in the README).
DIFFERENCES: tuple[tuple[str, str], ...] = (
    ("≠ mitmproxy", "differences from mitmproxy, on purpose:"),
    ("  case", "every regex ignores case (mitmproxy: only ~d ~m ~u)"),
    ("  ~a", "also matches by path extension (.js .css .png .woff ...) before a response arrives"),
    ("  ~u", "matches the URL as sent and with the Host header's name (mitmproxy: only the latter)"),
    ("  ( a b )", "terms side by side work inside parentheses too (mitmproxy: a syntax error)"),
    ("  a|~c 1", "an & or | right before ~ ! ( ends a word: ~c 200|~c 404 is an or"),
    ("  ~c 2x0", "letters glued to the number are an error (mitmproxy: ~c 2 & x0)"),
    ("  errors", "a syntax error says what and at which column"),
)
