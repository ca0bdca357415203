"""A request or response as raw HTTP text for editing, and back.

The text is what a user edits in the breakpoint editor (or $EDITOR): the first line, the header
lines, a blank line, the body. The body is shown decoded (Content-Encoding undone) and re-encoded
with whatever Content-Encoding the edited headers name; Content-Length is fixed up to the body
sent. A header line that is not `Name: value` is refused with its line number, never sent.

Pure functions of a message: the UI, the commands and the tests share them.
"""

from __future__ import annotations

import copy
import re
import zlib
from urllib.parse import urlsplit

from proxycore.encoding import decode_body, parse_codings
from proxycore.flows.flow import Flow, Headers, Request, Response

# RFC 9110 token characters for field names
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_METHOD = _TOKEN
_VERSION = re.compile(r"^HTTP/\d(\.\d)?$")


class EditError(ValueError):
    """An edit that cannot be sent; `line` is the 1-based line of the text at fault (0: none)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.message = message
        self.line = line


def _text_codec(body: bytes) -> str:
    """UTF-8 when the body is UTF-8, else latin-1 (one char per byte: a binary body survives
    an edit of the head unchanged)."""
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "latin-1"


def _decoded(msg: Request | Response) -> bytes:
    body = msg.body
    ce = msg.headers.get("content-encoding")
    if not ce or not body:
        return body
    decoded, note = decode_body(body, ce)
    return body if note else decoded


def _body_text(msg: Request | Response) -> str:
    body = _decoded(msg)
    return body.decode(_text_codec(body))


def request_to_text(req: Request) -> str:
    head = [f"{req.method} {req.url} {req.http_version}"]
    head += [f"{k}: {v}" for k, v in req.headers.items()]
    return "\n".join(head) + "\n\n" + _body_text(req)


def response_to_text(resp: Response) -> str:
    head = [f"{resp.http_version} {resp.status} {resp.reason}".rstrip()]
    head += [f"{k}: {v}" for k, v in resp.headers.items()]
    return "\n".join(head) + "\n\n" + _body_text(resp)


def edit_part(flow: Flow, part: str | None = None) -> str:
    """Which message an edit of this flow changes: `part` when given, else the response once
    there is one, else the request."""
    if part in ("request", "response"):
        if part == "response" and flow.response is None:
            raise EditError("this flow has no response to edit")
        return part
    return "response" if flow.response is not None else "request"


def flow_to_text(flow: Flow, part: str | None = None) -> str:
    if edit_part(flow, part) == "response":
        assert flow.response is not None
        return response_to_text(flow.response)
    return request_to_text(flow.request)


# --------------------------------------------------------------------------- parsing


def _split(text: str) -> tuple[list[str], str]:
    """(head lines, body): the head ends at the first empty line. Line ends in the head may be
    \\n or \\r\\n; the body is kept exactly as typed."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.rstrip("\r") == "":
            if i == 0:
                raise EditError("the first line is empty (expected the request or status line)", 1)
            return [ln.rstrip("\r") for ln in lines[:i]], "\n".join(lines[i + 1:])
    return [ln.rstrip("\r") for ln in lines], ""


def _headers(lines: list[str]) -> Headers:
    fields: list[tuple[bytes, bytes]] = []
    for n, line in enumerate(lines, start=2):
        name, sep, value = line.partition(":")
        if not sep:
            raise EditError(f"broken header line {line[:40]!r}: expected 'Name: value'", n)
        if not _TOKEN.match(name):
            raise EditError(f"broken header line {line[:40]!r}: {name[:30]!r} is not a header name", n)
        value = value.strip()
        try:
            fields.append((name.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise EditError(f"header {name} has characters outside latin-1", n) from None
    return Headers(fields)


def _encode(body: bytes, headers: Headers) -> bytes:
    """Apply the Content-Encoding the headers name (the editor showed the body decoded)."""
    for c in parse_codings(headers.get("content-encoding")):
        if c in ("gzip", "x-gzip"):
            co = zlib.compressobj(wbits=31)
            body = co.compress(body) + co.flush()
        elif c == "deflate":
            body = zlib.compress(body)
        elif c == "br":
            try:
                import brotli  # type: ignore[import-not-found]
            except ImportError:
                raise EditError("cannot re-encode the body as br (brotli is not installed): "
                                "remove the Content-Encoding header") from None
            body = brotli.compress(body)
        elif c == "zstd":
            try:
                import zstandard  # type: ignore[import-not-found]
            except ImportError:
                raise EditError("cannot re-encode the body as zstd (zstandard is not installed): "
                                "remove the Content-Encoding header") from None
            body = zstandard.ZstdCompressor().compress(body)
        else:
            raise EditError(f"cannot re-encode the body as {c}: remove the Content-Encoding header")
    return body


def _body(body_text: str, before: Request | Response, headers: Headers) -> bytes:
    raw = body_text.encode(_text_codec(_decoded(before)), "surrogateescape") if body_text else b""
    return _encode(raw, headers) if raw else b""


def _fix_length(headers: Headers, body: bytes, had_length: bool) -> None:
    """The engine frames an edited body by Content-Length: say so in the headers too."""
    headers.remove("transfer-encoding")
    if body or had_length:
        headers.set("Content-Length", str(len(body)))


def parse_request(text: str, before: Request) -> Request:
    """The request the text describes; `before` supplies what an origin-form target leaves out."""
    head, body_text = _split(text)
    parts = head[0].split()
    if len(parts) not in (2, 3):
        raise EditError("expected 'METHOD URL HTTP/1.1' on the first line", 1)
    method, url = parts[0], parts[1]
    version = parts[2] if len(parts) == 3 else before.http_version
    if not _METHOD.match(method):
        raise EditError(f"{method[:20]!r} is not a method", 1)
    if not _VERSION.match(version):
        raise EditError(f"{version[:20]!r} is not an HTTP version", 1)
    scheme, host, port, target = before.scheme, before.host, before.port, url
    if not url.startswith("/"):
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise EditError(f"{url[:60]!r} is neither an http(s) URL nor a path", 1)
        try:
            port = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            raise EditError(f"bad port in {url[:60]!r}", 1) from None
        scheme, host = u.scheme, u.hostname.lower()
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    headers = _headers(head[1:])
    req = Request(method.upper(), scheme, host, port, target, version, headers)
    # a changed destination changes the Host header too (as mitmproxy's request.host does), unless
    # the user edited that header themselves
    if (scheme, host, port) != (before.scheme, before.host, before.port):
        if headers.get("host") == before.headers.get("host") and headers.get("host") is not None:
            headers.set("Host", req.netloc)
        req.authority = headers.get("host") or ""
    else:
        req.authority = before.authority
    body = _body(body_text, before, headers)
    _fix_length(headers, body, before.headers.get("content-length") is not None)
    req.body = body
    return req


def parse_response(text: str, before: Response) -> Response:
    head, body_text = _split(text)
    parts = head[0].split(None, 2)
    if len(parts) < 2 or not _VERSION.match(parts[0]):
        raise EditError("expected 'HTTP/1.1 STATUS REASON' on the first line", 1)
    try:
        status = int(parts[1])
    except ValueError:
        raise EditError(f"{parts[1][:10]!r} is not a status code", 1) from None
    if not 100 <= status <= 999:
        raise EditError(f"status {status} is out of range (100-999)", 1)
    headers = _headers(head[1:])
    resp = Response(status, parts[2] if len(parts) == 3 else "", parts[0], headers)
    body = _body(body_text, before, headers)
    _fix_length(headers, body, before.headers.get("content-length") is not None)
    resp.body = body
    return resp


def check_text(flow: Flow, text: str, part: str | None = None) -> None:
    """Raise EditError when `text` cannot be applied to that part of the flow."""
    if edit_part(flow, part) == "response":
        assert flow.response is not None
        parse_response(text, flow.response)
    else:
        parse_request(text, flow.request)


# --------------------------------------------------------------------------- applying


def _assign(dst: Request | Response, src: Request | Response) -> None:
    """Copy a message into the one the engine holds (the flow driver keeps references to it)."""
    for slot in type(src).__slots__:
        setattr(dst, slot, getattr(src, slot))
    dst.body = src.body
    dst.body_size = len(src.body)
    dst.body_truncated = False


def apply_text(flow: Flow, text: str, part: str | None = None) -> str:
    """Replace a message of the flow (see edit_part) with what `text` describes, keeping the
    unedited one in original_request/original_response. Returns which part changed; EditError
    when the text is broken (nothing changed then)."""
    part = edit_part(flow, part)
    if part == "response":
        assert flow.response is not None
        new: Request | Response = parse_response(text, flow.response)
        if flow.original_response is None:
            flow.original_response = copy.deepcopy(flow.response)
        _assign(flow.response, new)
    else:
        new = parse_request(text, flow.request)
        if flow.original_request is None:
            flow.original_request = copy.deepcopy(flow.request)
        new.stream = flow.request.stream
        _assign(flow.request, new)
    flow.modified = True
    return part


def revert(flow: Flow) -> bool:
    """Undo the edits: the original messages back in place. False when nothing was edited."""
    done = False
    if flow.original_request is not None:
        stream = flow.request.stream
        _assign(flow.request, flow.original_request)
        flow.request.stream = stream
        flow.original_request = None
        done = True
    if flow.original_response is not None and flow.response is not None:
        stream = flow.response.stream
        _assign(flow.response, flow.original_response)
        flow.response.stream = stream
        flow.original_response = None
        done = True
    flow.original_response = None
    flow.modified = False
    return done
