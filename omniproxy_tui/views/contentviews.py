"""Content views: a message body turned into displayable, highlighted lines.

Views are lazy and capped so any body opens at once: only a prefix of the body is decoded and
formatted until `limit_lines` lines exist (JSON and XML are pretty-printed by a streaming
tokenizer, never by parsing the whole document), and lines are highlighted only when they are
looked at. `limit_lines=None` (or mode "full") formats everything; callers run that in a worker.
Pure functions of (body, headers, mode): no Textual here, only rich.text.Text.
"""

from __future__ import annotations

import codecs
import re
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rich.text import Text

from omniproxy_tui.views import extraviews, imageinfo
from omniproxy_tui.views.extraviews import take_lines
from omniproxy_tui.views.prettyprint import (
    STYLE_DIM,
    STYLE_KEY,
    STYLE_STR,
    STYLE_TITLE,
    Incomplete,
    hl_json,
    hl_xml,
    json_full,
    json_pretty,
    xml_pretty,
)
from proxycore.humanize import human_size  # one way to write sizes everywhere (README: Sizes)

try:  # written by the engine team; the views still work (undecoded) without it
    from proxycore.encoding import decode_body as _decode_body
except ImportError:  # pragma: no cover
    _decode_body = None
try:
    from proxycore.contentdetect import detect as _detect
except ImportError:  # pragma: no cover
    _detect = None

# the cycle of the `m` key, as in mitmproxy's view list
CYCLE_MODES = ("auto", "json", "xml", "text", "hex", "raw", "msgpack", "protobuf", "graphql", "css", "javascript")
MODES = (*CYCLE_MODES, "form", "multipart", "image", "full")
DEFAULT_LIMIT = 512
MAX_LINE_CHARS = 8192  # longer lines are split: one minified 50 MiB line must not become one Text
_FIRST_PREFIX = 64 * 1024
_MAX_PREFIX = 16 * 1024 * 1024  # a capped view never decodes or formats more than this
_TEXT_CACHE = 2048


class StyledLines(Sequence[Text]):
    """Plain lines plus a per-line highlighter applied on access (with a small cache)."""

    def __init__(self, plain: Sequence[str], highlight: Callable[[str], Text] | None = None) -> None:
        self.plain = plain
        self._highlight = highlight
        self._cache: dict[int, Text] = {}

    def __len__(self) -> int:
        return len(self.plain)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        hit = self._cache.get(i)
        if hit is None:
            s = self.plain[i]
            hit = self._highlight(s) if self._highlight else Text(s)
            if len(self._cache) >= _TEXT_CACHE:
                self._cache.clear()
            self._cache[i] = hit
        return hit


@dataclass
class ContentView:
    name: str  # "JSON", "XML/HTML", "form", "multipart", "image", "hex", "text", "raw"
    lines: StyledLines
    total_lines: int | None  # None while the view is cut short (the rest was not formatted)
    truncated: bool
    error: str | None = None  # why the view fell back (bad JSON, undecodable encoding...)
    body_size: int = 0  # decoded size in bytes (as far as decoded)
    hang: int = 0  # extra indent for wrapped continuation rows (form keys)
    mode: str = "auto"

    @property
    def plain(self) -> Sequence[str]:
        return self.lines.plain


# --- helpers ----------------------------------------------------------------------------------

_SANITIZE = {c: 0x2400 + c for c in range(32) if c != 9}  # control pictures: one cell, copyable
_SANITIZE.update({0x7F: 0x2421, 0x85: 0xFFFD, 0x2028: 0xFFFD, 0x2029: 0xFFFD})
_SANITIZE.update({c: 0xFFFD for c in range(0x80, 0xA0)})


def clean_line(s: str) -> str:
    """Make a line safe for one terminal row (and for str.splitlines in selections)."""
    s = s.translate(_SANITIZE)
    return s.expandtabs(4) if "\t" in s else s


_DIRTY = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _finish(lines: list[str]) -> list[str]:
    """clean_line and split long lines, skipped (two C-speed scans) when nothing needs it."""
    if lines and (_DIRTY.search("\n".join(lines)) or max(map(len, lines)) > MAX_LINE_CHARS):
        return [clean_line(s) for s in _split_long(lines)]
    return lines


def _split_long(lines: Iterator[str] | list[str]) -> Iterator[str]:
    for s in lines:
        if len(s) <= MAX_LINE_CHARS:
            yield s
        else:
            for i in range(0, len(s), MAX_LINE_CHARS):
                yield s[i:i + MAX_LINE_CHARS]


def mime_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset_of(content_type: str | None, default: str = "utf-8") -> str:
    m = re.search(r";\s*charset\s*=\s*\"?([\w.:-]+)", content_type or "", re.I)
    if m:
        try:
            return codecs.lookup(m.group(1)).name
        except LookupError:
            pass
    return default


def _decode_text(data: bytes, charset: str, final: bool) -> str:
    # incremental decoding drops a multi-byte character cut by the prefix instead of a U+FFFD
    return codecs.getincrementaldecoder(charset)(errors="replace").decode(data, final=final)


def _prefixes(data: bytes, capped: bool) -> Iterator[tuple[bytes, bool]]:
    """Growing prefixes of `data` (64 KiB, x4, ...) flagged with whether it is the whole body."""
    if not capped:
        yield data, True
        return
    size = _FIRST_PREFIX
    while size < len(data) and size < _MAX_PREFIX:
        yield data[:size], False
        size *= 4
    yield (data, True) if len(data) <= _MAX_PREFIX else (data[:_MAX_PREFIX], False)


# --- hex --------------------------------------------------------------------------------------

_PRINTABLE = "".join(chr(c) if 32 <= c < 127 else "." for c in range(256))


class HexLines(Sequence[str]):
    """A hex dump computed line by line on access: the full dump of 50 MiB costs nothing."""

    def __init__(self, data: bytes, limit: int | None = None) -> None:
        self.data = data
        count = (len(data) + 15) // 16
        self.count = count if limit is None else min(count, limit)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += self.count
        if not 0 <= i < self.count:
            raise IndexError(i)
        chunk = self.data[i * 16:i * 16 + 16]
        h = chunk.hex(" ")
        return f"{i * 16:08x}  {h[:23]:<23}  {h[24:]:<23}  {''.join(_PRINTABLE[b] for b in chunk)}"


def _hl_hex(s: str) -> Text:
    t = Text(s)
    t.stylize(STYLE_DIM, 0, 8)
    t.stylize(STYLE_STR, 60)
    return t


# --- form / multipart -------------------------------------------------------------------------


def _form_lines(text: str, limit: int | None) -> tuple[list[str], bool, int]:
    pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
    width = min(max((len(k) for k, _ in pairs), default=0), 24)
    it = (clean_line(f"{k:<{width}}  {v}") for k, v in pairs)
    lines, more = take_lines(_split_long(it), limit)
    return lines, more, width + 2


def _hl_form(width: int) -> Callable[[str], Text]:
    def hl(s: str) -> Text:
        t = Text(s)
        t.stylize(STYLE_KEY, 0, max(0, width - 2))
        return t
    return hl


def _multipart_lines(data: bytes, content_type: str, part_cap: int) -> Iterator[str]:
    """Each part: a title (name, filename, type, size), its headers, then its text or a summary."""
    m = re.search(r'boundary\s*=\s*"?([^";]+)"?', content_type, re.I)
    if not m:
        raise ValueError("multipart body without a boundary parameter")
    delim = b"--" + m.group(1).strip().encode("latin-1")
    pos = data.find(delim)
    if pos < 0:
        raise ValueError("multipart boundary not found in the body")
    index = 0
    while True:
        start = pos + len(delim)
        if data.startswith(b"--", start):
            return
        nxt = data.find(delim, start)
        end = nxt if nxt >= 0 else len(data)
        index += 1
        head_end = data.find(b"\r\n\r\n", start, end)
        sep = 4
        if head_end < 0:
            head_end, sep = data.find(b"\n\n", start, end), 2
        if head_end < 0:
            head_end, sep = end, 0
        head = data[start:head_end].decode("latin-1").strip()
        body = memoryview(data)[head_end + sep:end]
        if bytes(body[-2:]) == b"\r\n":
            body = body[:-2]
        elif bytes(body[-1:]) == b"\n":
            body = body[:-1]
        headers = [h.strip() for h in head.splitlines() if h.strip()]
        disp = next((h for h in headers if h.lower().startswith("content-disposition")), "")
        ctype = next((h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("content-type")), "")
        name = re.search(r'\bname="([^"]*)"', disp)
        fname = re.search(r'filename="([^"]*)"', disp)
        title = [f"── part {index}"]
        if name:
            title.append(f'name="{name.group(1)}"')
        if fname:
            title.append(f'filename="{fname.group(1)}"')
        title.append(f"({ctype or 'text/plain'}, {human_size(len(body))})")
        yield clean_line("  ".join(title))
        for h in headers:
            yield clean_line("  " + h)
        chunk = bytes(body[:_FIRST_PREFIX])
        info = imageinfo.describe(chunk)
        if info:
            yield f"  {info}"
        elif _is_binary("", chunk):
            # the bytes decide, not the part's type: curl -F and browsers label any file they do
            # not know (a .pem, a .log) application/octet-stream
            yield f"  <binary, {human_size(len(body))}>"
        else:
            text = _decode_text(bytes(body[:part_cap]), charset_of(ctype), len(body) <= part_cap)
            for line in text.split("\n"):
                yield clean_line("  " + line.rstrip("\r"))
        if nxt < 0:
            return
        pos = nxt


def _hl_multipart(s: str) -> Text:
    t = Text(s)
    if s.startswith("── part"):
        t.stylize(STYLE_TITLE)
    elif re.match(r"  [\w-]+: ", s):
        colon = s.index(":")
        t.stylize(STYLE_KEY, 2, colon)
    return t


# --- text -------------------------------------------------------------------------------------


def _text_prefix(data: bytes, limit: int | None, sep: bytes = b"\n") -> tuple[bytes, bool]:
    """The bytes holding the first `limit` lines (found with bytes.find: no decoding)."""
    if limit is None:
        return data, True
    # long lines are split at MAX_LINE_CHARS, so `limit` lines never need more than this
    window = min(len(data), limit * MAX_LINE_CHARS)
    pos = 0
    for _ in range(limit):
        nl = data.find(sep, pos, window)
        if nl < 0:
            pos = window
            break
        pos = nl + 1
    return data[:pos], pos >= len(data)


def _text_lines(text: str, limit: int | None, raw: bool = False) -> tuple[list[str], bool]:
    if text.endswith("\n"):
        text = text[:-1]
    parts = text.split("\n") if text else []
    if not raw and "\r" in text:  # CRLF is a line ending; raw shows the CR (as a control picture)
        parts = [p[:-1] if p.endswith("\r") else p for p in parts]
    parts = _finish(parts)
    if limit is not None and len(parts) > limit:
        return parts[:limit], True
    return parts, False


def _is_binary(content_type: str, data: bytes) -> bool:
    if _detect is not None:
        return _detect(content_type or None, data).is_binary
    sample = data[:512]
    return b"\x00" in sample  # pragma: no cover


# --- dispatch ---------------------------------------------------------------------------------


_MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
_PROTOBUF_TYPES = ("application/protobuf", "application/x-protobuf", "application/vnd.google.protobuf",
                   "application/x-google-protobuf", "application/grpc", "application/grpc+proto",
                   "application/grpc-web", "application/grpc-web+proto")


def _auto_name(data: bytes, mime: str) -> str:
    """Content type first, then sniffing the first bytes."""
    if mime in _MSGPACK_TYPES:
        return "msgpack"
    if mime in _PROTOBUF_TYPES:
        return "protobuf"
    if mime == "application/graphql":
        return "graphql-text"
    if "json" in mime:
        return "graphql" if extraviews.looks_like_graphql(data) else "json"
    if mime in ("image/svg+xml",) or "xml" in mime or "html" in mime:
        return "xml"
    if mime == "application/x-www-form-urlencoded":
        return "form"
    if mime.startswith("multipart/"):
        return "multipart"
    if mime.startswith("image/"):
        return "image"
    if mime == "text/css":
        return "css"
    if "javascript" in mime or "ecmascript" in mime:
        return "javascript"
    if mime.startswith("text/"):
        return "text"
    if not data:
        return "text"
    if imageinfo.describe(data[:_FIRST_PREFIX]):
        return "image"
    if _is_binary("", data):  # the type did not decide: sniff the bytes alone
        return "hex"
    head = data[:64].lstrip()
    if head[:1] in (b"{", b"["):
        return "graphql" if extraviews.looks_like_graphql(data) else "json"
    if head[:1] == b"<":
        return "xml"
    return "text"


_NAMES = {"json": "JSON", "xml": "XML/HTML", "form": "form", "multipart": "multipart",
          "image": "image", "hex": "hex", "text": "text", "raw": "raw", "msgpack": "msgpack",
          "protobuf": "protobuf", "graphql": "GraphQL", "css": "CSS", "javascript": "JavaScript"}


def view_body(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    mode: str = "auto",
    limit_lines: int | None = DEFAULT_LIMIT,
) -> ContentView:
    """Format `body` for display. Never raises on bad data: falls back to text/hex with `error`."""
    if mode not in MODES:
        raise ValueError(f"unknown view mode {mode!r} (one of {', '.join(MODES)})")
    if mode == "full":
        mode, limit_lines = "auto", None
    if limit_lines is not None and limit_lines < 1:
        limit_lines = None
    ct = content_type or ""
    mime = mime_of(ct)
    error: str | None = None
    data = body
    if mode != "raw" and content_encoding and _decode_body is not None:
        # a capped view decodes only a bounded prefix: a 50 MiB gzip bomb stays cheap
        cap = _MAX_PREFIX if limit_lines is not None else 64 * 1024 * 1024
        data, note = _decode_body(body, content_encoding, max_size=cap, allow_truncated=True)
        if note and not (limit_lines is not None and note.startswith("decoded body larger")):
            error = note
    if not data:
        return ContentView("text", StyledLines([]), 0, False, error, mode=mode)
    kind = _auto_name(data, mime) if mode == "auto" else mode
    view = _build(kind, data, ct, mime, limit_lines, mode, error)
    view.mode = mode
    view.body_size = len(data)
    return view


def _build_extra(kind: str, data: bytes, ct: str, mime: str, limit: int | None,
                 error: str | None) -> ContentView | str:
    """The views of extraviews, or why the body is not what its type (or the mode) says."""
    charset = charset_of(ct)

    def decode(b: bytes, final: bool) -> str:
        return _decode_text(b, charset, final)

    try:
        if kind == "msgpack":
            lines, more, note = extraviews.msgpack_lines(data, limit)
            hl = hl_json
        elif kind == "protobuf":
            lines, more, note = extraviews.protobuf_lines(data, mime, limit)
            hl = extraviews.hl_protobuf
        elif kind == "graphql":
            lines, more, note = extraviews.graphql_lines(decode(data, True), limit)
            hl = extraviews.hl_graphql
        elif kind == "graphql-text":  # application/graphql: the query alone
            text = decode(data[:extraviews.FULL_CAP], True)
            lines, more = take_lines(iter(extraviews.format_query(text)), limit)
            more, note, hl, kind = more or len(data) > extraviews.FULL_CAP, None, extraviews.hl_graphql, "graphql"
        else:
            lines, more, note = extraviews.beautify_lines(kind, data, decode, limit)
            hl = extraviews.hl_css if kind == "css" else extraviews.hl_code
    except Exception as e:  # noqa: BLE001 - a malformed body (unhashable msgpack keys, a
        # beautifier's bad day) must give a one-line reason and a fallback view, never a traceback
        return str(e) or type(e).__name__
    lines = _finish(lines)
    if limit is not None and len(lines) > limit:
        lines, more = lines[:limit], True
    return ContentView(_NAMES[kind], StyledLines(lines, hl), None if more else len(lines), more,
                       error or note)


def _build(kind: str, data: bytes, ct: str, mime: str, limit: int | None, mode: str,
           error: str | None) -> ContentView:
    def done(name: str, plain: Sequence[str], more: bool, hl=None, hang: int = 0) -> ContentView:
        return ContentView(_NAMES[name], StyledLines(plain, hl), None if more else len(plain), more,
                           error, hang=hang)

    if kind in ("msgpack", "protobuf", "graphql", "graphql-text", "css", "javascript"):
        view = _build_extra(kind, data, ct, mime, limit, error)
        if isinstance(view, ContentView):
            return view
        # not what the type or the mode said: show it as the bytes allow, and say why (a JSON body
        # with a "query" that is not GraphQL is just JSON: nothing to say unless asked for GraphQL)
        binary = _is_binary("", data[:_FIRST_PREFIX])
        quiet = kind == "graphql" and mode == "auto"
        kind = "hex" if binary else ("json" if kind == "graphql" else "text")
        if not quiet:
            error = f"{view}; shown as {kind}"
    if kind == "hex":
        lines = HexLines(data, limit)
        return done("hex", lines, len(lines) * 16 < len(data), _hl_hex)
    if kind == "image":
        info = imageinfo.describe(data[:_FIRST_PREFIX])
        if info is None:
            if mode == "image":
                error = error or "not a recognised image (PNG, GIF, JPEG, WebP, BMP, ICO)"
            lines = HexLines(data, limit)
            return done("hex", lines, len(lines) * 16 < len(data), _hl_hex)
        return done("image", [info, f"{human_size(len(data))} ({len(data):,} bytes)"], False,
                    lambda s: Text(s, STYLE_TITLE if "×" in s else ""))
    if kind in ("json", "xml"):
        charset = charset_of(ct)
        html = "html" in mime or data[:200].lstrip()[:15].lower() in (b"<!doctype html", b"<html")
        result: tuple[list[str], bool, bool] | None = None
        for prefix, complete in _prefixes(data, limit is not None):
            text = _decode_text(prefix, charset, complete)
            try:
                full = json_full(text) if kind == "json" and limit is None else None
                if full is not None:
                    lines, more = full, False
                elif kind == "json":
                    lines, more = json_pretty(text, complete, limit)
                else:
                    lines, more = xml_pretty(text, complete, limit, html)
            except Incomplete:
                continue  # the prefix ended inside a token: try a longer one
            except ValueError as e:
                error = f"not valid {'JSON' if kind == 'json' else 'XML'} ({e}); shown as text"
                result, kind = None, "text"
                break
            result = (lines, more, complete)
            if limit is None or len(lines) >= limit or complete:
                break
        if result is not None:
            lines, more, complete = result
            lines = _finish(lines)
            if limit is not None and len(lines) > limit:
                lines, more = lines[:limit], True
            return done(kind, lines, more or not complete, hl_json if kind == "json" else hl_xml)
        kind = "text"  # one token longer than the prefix cap: show the text
    if kind == "form":
        prefix = _text_prefix(data, limit, b"&")[0]  # parse only the pairs that are shown
        lines, more, hang = _form_lines(_decode_text(prefix, charset_of(ct), True), limit)
        return done("form", lines, more or len(prefix) < len(data), _hl_form(hang), hang=hang)
    if kind == "multipart":
        try:
            lines, more = take_lines(_split_long(_multipart_lines(data, ct, len(data) if limit is None else limit * 256)), limit)
            return done("multipart", lines, more, _hl_multipart)
        except ValueError as e:
            error = f"{e}; shown as text"
    raw = kind == "raw"
    prefix, complete = _text_prefix(data, limit)
    if raw:  # bytes as on the wire: undecoded, invalid UTF-8 shown as \xNN escapes
        text = prefix.decode("utf-8", "backslashreplace")
    else:
        text = _decode_text(prefix, charset_of(ct), complete)
    lines, more = _text_lines(text, limit, raw)
    return done("raw" if raw else "text", lines, more or not complete, None)
