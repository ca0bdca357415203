"""Streaming pretty-printers and per-line highlighters for JSON and XML/HTML.

The printers tokenize with one regex and stop after `limit` lines, so they cost the same for a
1 KiB and a 50 MiB document; they keep the source's key order and number spelling. The
highlighters work on one printed line at a time (every printed line is self-contained), so a
view highlights only the lines on screen.
"""

from __future__ import annotations

import json
import re

from rich.text import Text

STYLE_KEY = "bold #61afef"
STYLE_STR = "#98c379"
STYLE_NUM = "#d19a66"
STYLE_LIT = "italic #c678dd"
STYLE_PUNCT = "dim"
STYLE_TAG = "#e06c75"
STYLE_ATTR = "#d19a66"
STYLE_COMMENT = "dim italic"
STYLE_META = "#c678dd"
STYLE_DIM = "dim"
STYLE_TITLE = "bold"


# --- JSON -------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(
    r'[ \t\r\n]*(?:("(?:[^"\\]|\\.)*")|([{}\[\],:])|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(true|false|null))',
    re.S,
)
_JSON_WS = re.compile(r"[ \t\r\n]*")


class Incomplete(Exception):
    """The text is a prefix that ended inside a token: retry with a longer prefix."""


def json_pretty(text: str, complete: bool, limit: int | None) -> tuple[list[str], bool]:
    """Pretty-print (2-space indent, source order and number spelling kept) up to `limit` lines.

    Returns (lines, more): `more` when output stopped at the limit or at the end of a prefix.
    Raises ValueError on invalid JSON and Incomplete when the prefix ends too early.
    """
    lines: list[str] = []
    cur: list[str] = []
    stack: list[str] = []
    pos, n = 0, len(text)
    expect = "value"  # value | key | colon | next (comma or close) | first (value or close)
    match = _JSON_TOKEN.match

    def flush() -> None:
        if cur:
            lines.append("".join(cur))
            cur.clear()

    def put(tok: str) -> None:
        if not cur:
            cur.append("  " * len(stack))
        cur.append(tok)

    while True:
        if limit is not None and len(lines) >= limit:
            rest = _JSON_WS.match(text, pos).end()
            done = complete and rest >= n and not stack and not cur and len(lines) == limit
            return lines[:limit], not done
        m = match(text, pos)
        if m is None:
            end = _JSON_WS.match(text, pos).end()
            if end >= n:
                if stack or expect != "next":
                    if not complete:
                        raise Incomplete
                    if not stack and expect == "value" and lines:
                        break  # whitespace after the last of several top-level values
                    raise ValueError("unexpected end of data")
                break
            if not complete and text.startswith('"', end):
                raise Incomplete
            raise ValueError(f"unexpected {text[end]!r} at offset {end}")
        if m.end() >= n and not complete and not m.group(2):
            raise Incomplete  # a number or string may continue past the prefix
        pos = m.end()
        s, p, num, lit = m.groups()
        tok = s or num or lit
        if p in ("}", "]"):
            if expect not in ("next", "first") or not stack or stack[-1] != p:
                raise ValueError(f"unexpected {p!r} at offset {pos - 1}")
            if expect == "first":  # empty container stays on its line: {}
                stack.pop()
                cur.append(p)
            else:
                flush()
                stack.pop()
                put(p)
            expect = "next"
        elif p == ",":
            if expect != "next" or not stack:
                raise ValueError(f"unexpected ',' at offset {pos - 1}")
            cur.append(",")
            flush()
            expect = "key" if stack[-1] == "}" else "value"
        elif p == ":":
            if expect != "colon":
                raise ValueError(f"unexpected ':' at offset {pos - 1}")
            cur.append(": ")
            expect = "value"
        elif expect == "key" or (expect == "first" and stack[-1] == "}"):
            if not s:
                raise ValueError(f"expected a key at offset {m.start()}")
            put(s)
            expect = "colon"
        elif expect in ("value", "first"):
            if p in ("{", "["):
                put(p)
                flush_after = True
                stack.append("}" if p == "{" else "]")
                expect = "first"
                # peek: an empty container is printed inline, anything else opens a new line
                m2 = match(text, pos)
                if m2 is not None and m2.group(2) == stack[-1]:
                    flush_after = False
                if flush_after:
                    flush()
                continue
            put(tok)
            expect = "next"
        else:
            raise ValueError(f"unexpected {(tok or p)!r} at offset {m.start()}")
        if not stack and expect == "next":
            flush()  # a complete top-level value; NDJSON may continue with another
            expect = "value"
    flush()
    return lines, False


class _Pairs(dict):
    """A JSON object that keeps duplicate keys and their order for json.dumps (Python encoder)."""

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def items(self):  # type: ignore[override]
        return self.pairs


def json_full(text: str) -> list[str] | None:
    """All of a document through the C parser: ~3x faster than the tokenizer for "full" views.

    Float spelling may change (1e5 -> 100000.0); None when it is not one valid document.
    """
    try:
        doc = json.loads(text, object_pairs_hook=_Pairs)
    except ValueError:
        return None
    return json.dumps(doc, indent=2, ensure_ascii=False).split("\n")


_JSON_HL = re.compile(
    r'("(?:[^"\\]|\\.)*"?)(\s*:)?|(-?\d[\d.eE+-]*)|(true|false|null)|([{}\[\],:])'
)


def hl_json(s: str) -> Text:
    t = Text(s)
    for m in _JSON_HL.finditer(s):
        if m.group(1):
            t.stylize(STYLE_KEY if m.group(2) else STYLE_STR, m.start(1), m.end(1))
        elif m.group(3):
            t.stylize(STYLE_NUM, m.start(), m.end())
        elif m.group(4):
            t.stylize(STYLE_LIT, m.start(), m.end())
        else:
            t.stylize(STYLE_PUNCT, m.start(), m.end())
    return t


# --- XML / HTML -------------------------------------------------------------------------------

_XML_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)|<\?.*?(?:\?>|\Z)|<![^>]*>?"
    r"|<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)|<[^>]*>?|[^<]+",
    re.S | re.I,
)
_TAG_NAME = re.compile(r"</?\s*([\w:.-]+)")
_VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr keygen command".split()
)


def xml_pretty(text: str, complete: bool, limit: int | None, html: bool) -> tuple[list[str], bool]:
    lines: list[str] = []
    depth = 0
    toks = [m.group(0) for m in _XML_TOKEN.finditer(text)]
    i, n = 0, len(toks)

    def emit(s: str) -> None:
        lines.append("  " * depth + s)

    while i < n:
        if limit is not None and len(lines) >= limit:
            return lines[:limit], True
        tok = toks[i]
        i += 1
        if not tok.startswith("<") or tok == "<":
            for part in tok.splitlines():
                part = part.strip()
                if part:
                    emit(part)
            continue
        if tok.startswith(("<!", "<?")):
            parts = [p.strip() for p in tok.strip().splitlines() if p.strip()]
            emit(parts[0])
            for extra in parts[1:]:
                emit("  " + extra)
            continue
        m = _TAG_NAME.match(tok)
        name = m.group(1).lower() if m else ""
        if tok.startswith("</"):
            depth = max(0, depth - 1)
            emit(tok)
            continue
        low = tok[:8].lower()
        if low.startswith(("<script", "<style")) and tok.lower().rstrip().endswith(("</script>", "</style>")):
            # raw text element: the opening tag, its content as written, the closing tag
            open_end = tok.index(">") + 1
            close_start = tok.lower().rindex("</")
            emit(tok[:open_end])
            depth += 1
            body = tok[open_end:close_start].strip("\n").splitlines()
            common = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
            for b in body:
                if b.strip():
                    emit(b[common:].rstrip())
            depth -= 1
            emit(tok[close_start:])
            continue
        self_closing = tok.endswith("/>") or (html and name in _VOID)
        # <a>text</a> stays on one line when short
        if (not self_closing and i + 1 < n and not toks[i].startswith("<")
                and toks[i + 1].startswith("</") and "\n" not in toks[i].strip()):
            m2 = _TAG_NAME.match(toks[i + 1])
            one = tok + toks[i].strip() + toks[i + 1]
            if m2 and m2.group(1).lower() == name and len(one) <= 120:
                emit(one)
                i += 2
                continue
        if not self_closing and i < n and toks[i].startswith("</"):
            m2 = _TAG_NAME.match(toks[i])
            if m2 and m2.group(1).lower() == name:  # <a></a>
                emit(tok + toks[i])
                i += 1
                continue
        emit(" ".join(tok.split()) if "\n" in tok else tok)
        if not self_closing:
            depth += 1
    return lines, not complete


_XML_HL = re.compile(
    r"(<!--.*?(?:-->|$))|(<[!?][^>]*>?)|(</?)([\w:.-]+)|([\w:.-]+)(=)(\"[^\"]*\"?|'[^']*'?)|(/?>)"
)


def hl_xml(s: str) -> Text:
    t = Text(s)
    for m in _XML_HL.finditer(s):
        if m.group(1):
            t.stylize(STYLE_COMMENT, m.start(), m.end())
        elif m.group(2):
            t.stylize(STYLE_META, m.start(), m.end())
        elif m.group(4):
            t.stylize(STYLE_PUNCT, m.start(3), m.end(3))
            t.stylize(STYLE_TAG, m.start(4), m.end(4))
        elif m.group(5):
            t.stylize(STYLE_ATTR, m.start(5), m.end(5))
            t.stylize(STYLE_STR, m.start(7), m.end(7))
        elif m.group(8):
            t.stylize(STYLE_PUNCT, m.start(), m.end())
    return t
