"""Content views beyond JSON/XML/text: msgpack, protobuf without a schema, GraphQL requests,
CSS and JavaScript beautified. Each turns bytes into plain lines (and a per-line highlighter);
each bounds its work: a capped view formats at most a prefix of the body, a "full" one at most
FULL_CAP bytes, and anything past that is said, not done.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from rich.text import Text

from omniproxy_tui.views.prettyprint import (
    STYLE_COMMENT,
    STYLE_DIM,
    STYLE_KEY,
    STYLE_LIT,
    STYLE_NUM,
    STYLE_STR,
)
from proxycore import grpc, protobuf


@functools.cache
def _module(name: str) -> Any:
    """An optional library, imported on first use (graphql-core alone costs ~55 ms at start-up):
    without msgpack, msgpack bodies show as hex; without the beautifiers, CSS and JavaScript as
    they came; without graphql-core, queries are indented by a small formatter of our own."""
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover
        return None

# jsbeautifier runs at ~120 KB/s: a capped view beautifies growing prefixes (BEAUTIFY_PREFIXES)
# (enough for hundreds of lines of minified code), the whole-body view up to FULL_CAP.
BEAUTIFY_PREFIXES = (16 * 1024, 64 * 1024)
FULL_CAP = 1024 * 1024
MSGPACK_CAP = 16 * 1024 * 1024
CAPPED_BINARY = 1024 * 1024  # a capped msgpack / protobuf view reads at most this much

Lines = tuple[list[str], bool, str | None]  # (lines, more left unformatted, error)


def take_lines(it: Iterator[str], limit: int | None) -> tuple[list[str], bool]:
    """Up to `limit` items and whether more were left (every content view's cap)."""
    out: list[str] = []
    for s in it:
        if limit is not None and len(out) >= limit:
            return out, True
        out.append(s)
    return out, False


# --- msgpack ------------------------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    """msgpack values as JSON can show them: bytes as hex, ext types named, map keys as text."""
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else json.dumps(_plain(k), ensure_ascii=False): _plain(v)
                for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, bytes | bytearray):
        return f"<bytes {bytes(obj[:64]).hex(' ')}{' …' if len(obj) > 64 else ''} ({len(obj):,} B)>"
    msgpack = _module("msgpack")
    if msgpack is not None and isinstance(obj, msgpack.ExtType):
        return f"<ext {obj.code}: {obj.data[:32].hex(' ')}>"
    if msgpack is not None and isinstance(obj, msgpack.Timestamp):
        return obj.to_datetime().isoformat()
    return obj


def msgpack_lines(data: bytes, limit: int | None) -> Lines:
    """Each value of a msgpack body (a stream of values is common) as indented JSON."""
    msgpack = _module("msgpack")
    if msgpack is None:
        raise ValueError("msgpack is not installed")
    cap = MSGPACK_CAP if limit is None else CAPPED_BINARY
    more = len(data) > cap
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=MSGPACK_CAP,
                                unicode_errors="surrogateescape", timestamp=3)
    unpacker.feed(data[:cap])
    out: list[str] = []
    values = 0
    try:
        for value in unpacker:
            values += 1
            if values > 1:
                out.append("")
            out.extend(json.dumps(_plain(value), indent=2, ensure_ascii=False, default=str).split("\n"))
            if limit is not None and len(out) >= limit:
                return out[:limit], True, None
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        if not values:
            raise ValueError(f"not valid msgpack ({e})") from None
        return out, more, f"msgpack cut short after {values} value{'s' if values > 1 else ''} ({e})"
    if not values:
        if more:
            raise ValueError(f"the first msgpack value is larger than {cap // 1024:,} KiB: f shows it whole")
        raise ValueError("not valid msgpack (no complete value)")
    fed = min(len(data), cap)
    error = None
    if more:
        error = f"the values in the first {cap // 1024:,} KiB shown: f shows them all"
    elif unpacker.tell() < fed:
        error = f"the body ends inside a msgpack value ({fed - unpacker.tell():,} bytes left over)"
    return out, more, error


# --- protobuf -----------------------------------------------------------------------------------


def protobuf_lines(data: bytes, mime: str, limit: int | None) -> Lines:
    """Wire-format fields; a gRPC body is split into its length-prefixed messages first. A capped
    view decodes at most CAPPED_BINARY bytes (a cut message shows the fields before the cut)."""
    whole = len(data)
    if limit is not None:
        data = data[:CAPPED_BINARY]
    proto = grpc.protocol_of(mime)
    if proto is not None:
        out: list[str] = []
        # the view has no headers: a compressed message is inflated when its bytes say gzip / zlib
        body = grpc.split_body(data, proto, None)
        for n, m in enumerate(body.messages, 1):
            out.append(f"── message {n}  ({m.size:,} B{', compressed' if m.compressed else ''})")
            msg = m.data  # as sent: without an encoding split_body leaves compressed bytes alone
            if m.compressed:
                enc = "gzip" if msg[:2] == b"\x1f\x8b" else "deflate" if msg[:1] == b"\x78" else None
                try:
                    msg = grpc.inflate(msg, enc) if enc else None
                except ValueError:
                    msg = None
                if msg is None:
                    out.append("  (compressed with the grpc-encoding: not decoded)")
                    continue
            try:
                out.extend("  " + s for s in protobuf.format_lines(protobuf.decode(msg)))
            except protobuf.DecodeError as e:
                out.append(f"  not a protobuf message ({e})")
            if limit is not None and len(out) >= limit:
                return out[:limit], True, None
        if body.trailers:
            out.append("── trailers")
            out.extend(f"  {k}: {v}" for k, v in body.trailers)
        if out:
            return out, False, None
        if proto == "grpc-web-text":
            raise ValueError("no gRPC-Web message in the body")
    try:
        fields, stopped = protobuf.decode_partial(data)
    except protobuf.DecodeError as e:
        raise ValueError(f"not a protobuf message ({e})") from None
    lines, more = take_lines(protobuf.format_lines(fields), limit)
    cut = len(data) < whole
    if stopped and not (cut and not more):
        note = f"decoding stopped: {stopped}"
    elif cut and not more:
        note = f"the first {CAPPED_BINARY // 1024:,} KiB decoded: f decodes it all"
    else:
        note = None
    return lines, more or cut, note


_PROTO_HL = re.compile(r'^(\s*)(\d+)(:| \{)|("(?:[^"\\]|\\.)*")|(<[^>]*>)|(\([^)]*\))$')


def hl_protobuf(s: str) -> Text:
    if s.startswith("── "):
        return Text(s, style="bold")
    return hl_fields(s, _PROTO_HL)


def hl_fields(s: str, pattern: re.Pattern[str]) -> Text:
    """A field line of a decoded message: `pattern`'s groups 2 (field name or number), 4 (string),
    5 (<type>) and 6 ((note)) styled."""
    t = Text(s)
    for m in pattern.finditer(s):
        if m.group(2):
            t.stylize(STYLE_KEY, m.start(2), m.end(2))
        elif m.group(4):
            t.stylize(STYLE_STR, m.start(4), m.end(4))
        elif m.group(5):
            t.stylize(STYLE_NUM, m.start(5), m.end(5))
        elif m.group(6):
            t.stylize(STYLE_DIM, m.start(6), m.end(6))
    return t


# --- GraphQL ------------------------------------------------------------------------------------

_GQL_START = re.compile(r"\s*(query|mutation|subscription|fragment|\{)")


def _gql_operations(doc: Any) -> list[dict] | None:
    ops = doc if isinstance(doc, list) else [doc]
    if not ops or not all(isinstance(o, dict) and isinstance(o.get("query"), str)
                          and _GQL_START.match(o["query"]) for o in ops):
        return None
    return ops


def looks_like_graphql(data: bytes) -> bool:
    """A JSON request body holding a GraphQL query ({"query": "...", "variables": {...}})."""
    head = data[:4096]
    return b'"query"' in head and head.lstrip()[:1] in (b"{", b"[") and len(data) <= FULL_CAP


def format_query(query: str) -> list[str]:
    """The query pretty-printed: graphql-core's printer when it parses, else indentation by braces."""
    graphql = _module("graphql")
    if graphql is not None:
        try:
            return graphql.print_ast(graphql.parse(query, no_location=True)).split("\n")
        except Exception:  # noqa: BLE001 - any syntax error: the simple formatter still helps
            pass
    out: list[str] = []
    depth = 0
    for raw in re.split(r"(?<=[{}])|(?=[{}])|\n", query):
        tok = raw.strip()
        if not tok:
            continue
        if tok == "}":
            depth = max(0, depth - 1)
            out.append("  " * depth + "}")
        elif tok == "{":
            if out:
                out[-1] += " {"
            else:
                out.append("{")
            depth += 1
        else:
            # outside braces: an operation's head ("query Q($id: ID!)") stays one line
            out.extend("  " * depth + part for part in (_fields(tok) if depth else [" ".join(tok.split())]))
    return out


def _fields(tok: str) -> list[str]:
    """Split a selection's text at spaces and commas outside parentheses: one field a line."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for c in tok:
        depth += (c == "(") - (c == ")")
        if depth == 0 and c in " ,\t" and cur and cur[-1] not in ":@":
            parts.append("".join(cur))
            cur = []
        elif not (depth == 0 and c in " ,\t"):
            cur.append(c)
    if cur:
        parts.append("".join(cur))
    # "alias: field" and "...on Type": glue a lone ":"-ended or "..." part to the next
    out: list[str] = []
    for part in parts:
        if out and (out[-1].endswith(":") or out[-1] in ("...", "... on", "on")):
            out[-1] += " " + part
        elif part == "on" and out and out[-1] == "...":
            out[-1] += " on"
        else:
            out.append(part)
    return out


def graphql_lines(text: str, limit: int | None) -> Lines:
    """Each operation: its name, the query pretty-printed, the variables as indented JSON."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ValueError(f"not a GraphQL request ({e})") from None
    ops = _gql_operations(doc)
    if ops is None:
        raise ValueError("not a GraphQL request (no query)")
    out: list[str] = []
    for n, op in enumerate(ops, 1):
        name = op.get("operationName")
        if len(ops) > 1 or name:
            out.append(f"── operation {n}" + (f": {name}" if name else ""))
        out.extend(format_query(op["query"]))
        variables = op.get("variables")
        if variables:
            out.append("")
            out.append("── variables")
            out.extend(json.dumps(variables, indent=2, ensure_ascii=False).split("\n"))
        extensions = op.get("extensions")
        if extensions:
            out.append("")
            out.append("── extensions")
            out.extend(json.dumps(extensions, indent=2, ensure_ascii=False).split("\n"))
        if n < len(ops):
            out.append("")
    lines, more = take_lines(iter(out), limit)
    return lines, more, None


_GQL_HL = re.compile(r'("(?:[^"\\]|\\.)*")|\b(query|mutation|subscription|fragment|on)\b|(\$\w+)|(#.*$)'
                     r'|(-?\d[\d.eE+-]*)|(\b\w+)(?=\s*:)')


def hl_graphql(s: str) -> Text:
    t = Text(s)
    if s.startswith("── "):
        t.stylize("bold")
        return t
    for m in _GQL_HL.finditer(s):
        style = (STYLE_STR, STYLE_LIT, STYLE_NUM, STYLE_COMMENT, STYLE_NUM, STYLE_KEY)[m.lastindex - 1]
        t.stylize(style, m.start(), m.end())
    return t


# --- CSS / JavaScript ---------------------------------------------------------------------------


def _beautify(kind: str, text: str) -> str:
    if kind == "css":
        cssbeautifier = _module("cssbeautifier")
        if cssbeautifier is None:
            raise ValueError("cssbeautifier is not installed")
        return cssbeautifier.beautify(text)
    jsbeautifier = _module("jsbeautifier")
    if jsbeautifier is None:
        raise ValueError("jsbeautifier is not installed")
    opts = jsbeautifier.default_options()
    opts.indent_size = 2
    return jsbeautifier.beautify(text, opts)


def beautify_lines(kind: str, data: bytes, decode: Callable[[bytes, bool], str], limit: int | None) -> Lines:
    """Beautified CSS or JavaScript; a capped view beautifies a prefix just long enough."""
    if limit is None:
        if len(data) > FULL_CAP:
            raise ValueError(f"{len(data):,} bytes: too big to beautify (over {FULL_CAP // 1024:,} KiB)")
        return _beautify(kind, decode(data, True)).split("\n"), False, None
    for size in BEAUTIFY_PREFIXES:
        whole = size >= len(data)
        lines = _beautify(kind, decode(data[:size], whole)).split("\n")
        if whole:
            if len(lines) > limit:
                return lines[:limit], True, None
            return lines, False, None
        if len(lines) > limit:
            return lines[:limit], True, None
    # a prefix of the largest size was not enough lines: show what it gave, the rest on f
    return lines, True, None


_CODE_HL = re.compile(r"(/\*.*?(?:\*/|$)|//.*$)|(\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?|`[^`]*`?)"
                      r"|\b(function|return|var|let|const|if|else|for|while|new|class|import|export|from|"
                      r"async|await|true|false|null|undefined|this|typeof|of|in)\b|(-?\b\d[\d.]*\w*)")


def hl_code(s: str) -> Text:
    t = Text(s)
    for m in _CODE_HL.finditer(s):
        style = (STYLE_COMMENT, STYLE_STR, STYLE_LIT, STYLE_NUM)[m.lastindex - 1]
        t.stylize(style, m.start(), m.end())
    return t


_CSS_HL = re.compile(r"(/\*.*?(?:\*/|$))|(\"[^\"]*\"?|'[^']*'?)|^(\s+)([\w-]+)(?=\s*:)|(#[0-9a-fA-F]{3,8}\b|"
                     r"-?\b\d[\d.]*(?:px|em|rem|%|vh|vw|s|ms|deg)?\b)|^(\S[^{]*)(?=\{)|(@[\w-]+)")


def hl_css(s: str) -> Text:
    t = Text(s)
    for m in _CSS_HL.finditer(s):
        i = m.lastindex
        if i == 1:
            t.stylize(STYLE_COMMENT, m.start(1), m.end(1))
        elif i == 2:
            t.stylize(STYLE_STR, m.start(2), m.end(2))
        elif i == 4:
            t.stylize(STYLE_KEY, m.start(4), m.end(4))
        elif i == 5:
            t.stylize(STYLE_NUM, m.start(5), m.end(5))
        elif i in (6, 7):
            t.stylize(STYLE_LIT, m.start(i), m.end(i))
    return t
