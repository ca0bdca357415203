"""Copy-a-flow exports: curl, HTTPie, raw HTTP/1 text and a Python httpx script.

Each exporter is a pure function of a Flow. These are for the clipboard and the terminal, so they
reproduce the request as captured and do NOT redact headers: a user copying a curl command wants
it runnable, Authorization and Cookie included. (Capture files and stores apply redaction; this
module is not a capture sink.) The one exception is Proxy-Authorization/Proxy-Connection, which
belong to the hop to the proxy and would leak the proxy's credentials to the origin if replayed.

Bodies are the captured wire bytes (`request.body`); when capture cut them short
(`body_truncated`), the command gets a warning comment because it will send only the captured part.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from proxycore.flows.flow import Flow, Request

# Headers the replaying client computes itself, or that only concern the hop to the proxy.
_SKIP = frozenset({"content-length", "transfer-encoding", "proxy-connection", "proxy-authorization"})
_DECODABLE = ("gzip", "deflate", "br", "zstd")
# Linux caps a single exec() argument at 128 KiB, so big bodies go through a pipe instead.
_MAX_ARG_BODY = 64 * 1024


def _check_exportable(flow: Flow) -> Request:
    req = flow.request
    if req.method == "CONNECT":
        raise ValueError("a CONNECT tunnel has no HTTP request to export")
    if flow.tcp_messages is not None:
        raise ValueError("a TCP flow has no HTTP request to export")
    return req


def _is_text(body: bytes) -> bool:
    """UTF-8 with nothing but printable characters, tabs and newlines: safe to show quoted."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.translate({9: None, 10: None, 13: None}).isprintable()


def _default_host(req: Request) -> bool:
    """True when the Host header says what the URL already says (the client will send it)."""
    value = req.headers.get("host")
    if value is None:
        return True
    value = value.strip().lower()
    netloc = req.netloc.lower()
    return value == netloc or value == f"{netloc}:{req.port}"


def _export_headers(req: Request, drop_accept_encoding: bool) -> list[tuple[str, str]]:
    keep_host = not _default_host(req)
    out: list[tuple[str, str]] = []
    for name, value in req.headers.items():
        low = name.lower()
        if low in _SKIP or low.startswith(":"):
            continue
        if low == "host" and not keep_host:
            continue
        if low == "accept-encoding" and drop_accept_encoding:
            continue
        out.append((name, value))
    return out


def _wants_compressed(req: Request) -> bool:
    ae = req.headers.get("accept-encoding")
    return ae is not None and any(tok in ae.lower() for tok in _DECODABLE)


def _has_body(req: Request) -> bool:
    # An empty body still counts when the client declared one (POST with Content-Length: 0).
    return bool(req.body) or (req.method not in ("GET", "HEAD") and "content-length" in req.headers)


def _printf_pipe(body: bytes) -> str:
    """A POSIX `printf` that writes `body` exactly (NUL bytes included) into the next command."""
    parts: list[str] = []
    for b in body:
        if b == 0x25:  # %
            parts.append("%%")
        elif b == 0x5C:  # backslash
            parts.append("\\\\")
        elif 0x20 <= b < 0x7F:
            parts.append(chr(b))
        else:
            parts.append(f"\\{b:03o}")  # always 3 digits, so a following digit is not swallowed
    return f"printf {shlex.quote(''.join(parts))} | "


def _truncation_note(req: Request) -> str:
    if not req.body_truncated:
        return ""
    return (
        f"# WARNING: the request body was truncated at capture ({len(req.body)} of {req.body_size} bytes);"
        " this sends only the captured part.\n"
    )


def to_curl(flow: Flow) -> str:
    """A one-line curl command reproducing the request (POSIX shell quoting)."""
    req = _check_exportable(flow)
    compressed = _wants_compressed(req)
    args = ["curl"]
    has_body = _has_body(req)
    if req.method == "HEAD":
        args.append("--head")
    elif not ((req.method == "GET" and not has_body) or (req.method == "POST" and has_body)):
        args += ["-X", req.method]
    url = req.url
    if any(c in url for c in "[]{}"):
        args.append("--globoff")  # curl would read brackets/braces (and IPv6 literals) as globs
    path = req.path
    if "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        args.append("--path-as-is")
    args.append(url)
    if compressed:
        args.append("--compressed")
    for name, value in _export_headers(req, drop_accept_encoding=compressed):
        # "Name:" would make curl remove the header; "Name;" sends it empty.
        args += ["-H", f"{name}: {value}" if value else f"{name};"]
    prefix = ""
    if has_body:
        if _is_text(req.body) and len(req.body) <= _MAX_ARG_BODY:
            args += ["--data-binary", req.body.decode("utf-8")]
        else:
            prefix = _printf_pipe(req.body)
            args += ["--data-binary", "@-"]
    return _truncation_note(req) + prefix + " ".join(shlex.quote(a) for a in args)


def _httpie_item(name: str, value: str) -> str:
    if not value:
        return f"{name};"  # HTTPie's syntax for an empty header
    if value[0] in "=@":
        value = "\\" + value  # would otherwise read as ":=" (JSON field) or ":@"
    return f"{name}:{value}"


def to_httpie(flow: Flow) -> str:
    """An HTTPie (`http`) command reproducing the request."""
    req = _check_exportable(flow)
    args = ["http", req.method, req.url]
    for name, value in _export_headers(req, drop_accept_encoding=True):
        args.append(_httpie_item(name, value))
    prefix = ""
    if req.body:
        if _is_text(req.body) and len(req.body) <= _MAX_ARG_BODY:
            args += ["--raw", req.body.decode("utf-8")]
        else:
            prefix = _printf_pipe(req.body)  # HTTPie reads the body from stdin
    return _truncation_note(req) + prefix + " ".join(shlex.quote(a) for a in args)


def to_raw_request(flow: Flow) -> bytes:
    """The request as HTTP/1 text: request line, header fields as captured, blank line, body."""
    req = flow.request
    lines = [f"{req.method} {req.target} {req.http_version}".encode("latin-1")]
    fields = [(k, v) for k, v in req.headers.fields if not k.startswith(b":")]
    if req.http_version.startswith("HTTP/2") and not any(k.lower() == b"host" for k, _ in fields):
        fields.insert(0, (b"Host", req.host_header.encode("latin-1")))  # HTTP/2 carried :authority
    lines += [k + b": " + v for k, v in fields]
    return b"\r\n".join(lines) + b"\r\n\r\n" + req.body


def to_raw_response(flow: Flow) -> bytes:
    """The response as HTTP/1 text. Raises ValueError when the flow has no response yet."""
    resp = flow.response
    if resp is None:
        raise ValueError("the flow has no response to export")
    status = f"{resp.http_version} {resp.status} {resp.reason}".rstrip()
    lines = [status.encode("latin-1")]
    lines += [k + b": " + v for k, v in resp.headers.fields if not k.startswith(b":")]
    return b"\r\n".join(lines) + b"\r\n\r\n" + resp.body


def _py_str(value: str) -> str:
    # httpx encodes str header values as ASCII; anything else goes as bytes, as captured.
    return repr(value) if value.isascii() else repr(value.encode("latin-1"))


def to_python_httpx(flow: Flow) -> str:
    """A runnable Python script sending the request with httpx and printing the response."""
    req = _check_exportable(flow)
    # httpx advertises (and decodes) the encodings it supports, so its own Accept-Encoding is kept.
    headers = _export_headers(req, drop_accept_encoding=True)
    out = [f"# {req.method} {req.url}\n"]
    note = _truncation_note(req)
    if note:
        out.append(note)
    out.append("import httpx\n\n")
    out.append("response = httpx.request(\n")
    out.append(f"    {req.method!r},\n")
    out.append(f"    {req.url!r},\n")
    if headers:
        out.append("    headers=[\n")
        for name, value in headers:
            out.append(f"        ({_py_str(name)}, {_py_str(value)}),\n")
        out.append("    ],\n")
    if _has_body(req):
        body = req.body
        literal = repr(body.decode("utf-8")) if _is_text(body) else repr(body)
        out.append(f"    content={literal},\n")
    out.append("    timeout=30.0,\n")
    out.append(")\n")
    out.append("print(response.status_code, response.reason_phrase)\n")
    out.append("print(response.text)\n")
    return "".join(out)


def _clip(data: bytes) -> str:
    # For the clipboard: readable text beats byte-exactness; undecodable bytes become U+FFFD.
    return data.decode("utf-8", errors="replace")


EXPORT_FORMATS: dict[str, Callable[[Flow], str]] = {
    "curl": to_curl,
    "httpie": to_httpie,
    "raw_request": lambda flow: _clip(to_raw_request(flow)),
    "raw_response": lambda flow: _clip(to_raw_response(flow)),
    "python": to_python_httpx,
}
