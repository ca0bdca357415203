"""The requests of a capture file, ready to replay (`omniproxy-tui replay FILE`).

Reads what `proxycore.capture.convert.read_records` reads (NDJSON/IR, JSON arrays, HAR from us or
a browser) and the lossless flow files of `proxycore.flows.serialize`. A record holds the body
as the capture kept it: text (in its charset), parsed JSON (re-serialised compactly, or the exact
`bodyText`), base64, or decoded from its Content-Encoding (then sent without that header). A
request whose body the capture did not keep whole (truncated, or a binary placeholder) is
returned with the reason it cannot be sent, never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from proxycore.capture.record import _JSON_COMPACT, BINARY_PLACEHOLDER, REDACTED, _charset
from proxycore.flows.flow import DONE, Flow, Headers, Request, Response
from proxycore.options import Options


@dataclass
class ReplayItem:
    """One request of a capture: the flow to filter on and replay, or why it cannot be sent."""

    flow: Flow
    problem: str | None = None
    redacted: tuple[str, ...] = ()  # header names the capture masked (sent as masked)


def _is_flow_file(path: str) -> bool:
    from proxycore.flows.serialize import FILE_FORMAT

    try:
        with open(path, "rb") as f:
            return FILE_FORMAT.encode() in f.readline(200)
    except OSError:
        return False


def read_replay_items(path: str | os.PathLike[str]) -> Iterator[ReplayItem]:
    """The requests of `path`, in file order. ValueError (one line naming the file) for a file
    that is not a capture."""
    p = str(path)
    if _is_flow_file(p):
        from proxycore.flows.serialize import iter_flows

        for flow in iter_flows(p):
            req = flow.request
            problem = None
            if req.method == "CONNECT" or flow.passthrough:
                problem = "a tunnel (CONNECT) cannot be replayed"
            elif req.body_truncated:
                problem = "the request body was not captured whole"
            flow.state = DONE
            yield ReplayItem(flow, problem)
        return
    from proxycore.capture.convert import read_records

    for n, rec in enumerate(read_records(p), 1):
        yield record_to_item(rec, f"{p}: record {n}")


def _header_pairs(headers: object) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(headers, dict):
        for k, v in headers.items():
            if not isinstance(k, str) or k.startswith(":"):  # HTTP/2 pseudo-headers (browser HARs)
                continue
            for value in v if isinstance(v, list) else [v]:
                out.append((k, str(value)))
    return out


def _wire(text: str) -> bytes:
    """A header name or value as bytes: latin-1 as HTTP/1.1 has it, UTF-8 for what latin-1 cannot hold."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _body(req: dict, content_type: str | None) -> tuple[bytes, str | None, bool]:
    """(body bytes, why it cannot be rebuilt, whether a Content-Encoding was undone)."""
    body = req.get("body")
    if body is None:
        return b"", None, False
    if req.get("bodyTruncated"):
        return b"", "the request body was not captured whole", False
    if req.get("isBinary") and body == BINARY_PLACEHOLDER:
        return b"", "the binary request body was not captured (captured with skip-binary)", False
    encoding = req.get("bodyEncoding")
    if encoding == "base64":
        try:
            return base64.b64decode(str(body), validate=False), None, False
        except (binascii.Error, ValueError):
            return b"", "the request body is not valid base64", False
    text = req.get("bodyText")
    if not isinstance(text, str):
        text = body if isinstance(body, str) else _JSON_COMPACT.encode(body)
    charset = _charset(content_type) if content_type else "utf-8"
    try:
        data = text.encode(charset)
    except (LookupError, UnicodeEncodeError):
        data = text.encode("utf-8")
    return data, None, bool(encoding)


def record_to_item(rec: dict, where: str) -> ReplayItem:
    """One IR record as a replayable request (a Flow with the response status, for --filter)."""
    req = rec.get("request")
    if not isinstance(req, dict) or not isinstance(req.get("url"), str):
        raise ValueError(f"{where}: no request URL")
    method = str(req.get("method") or "GET")
    url = req["url"]
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:
        host, port = "", None
    problem = None
    if method == "CONNECT" or rec.get("passthrough"):
        problem = "a tunnel (CONNECT) cannot be replayed"
    elif scheme not in ("http", "https") or not host:
        problem = f"not an http(s) URL: {url}"
    pairs = _header_pairs(req.get("headers"))
    headers = Headers((_wire(k), _wire(v)) for k, v in pairs)
    content_type = req.get("contentType") or headers.get("content-type")
    body, body_problem, decoded = _body(req, content_type if isinstance(content_type, str) else None)
    if decoded:
        headers.remove("content-encoding")  # the capture kept the decoded body: send it as is
    problem = problem or body_problem
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        request = Request(method, scheme or "http", host.lower(), port or (443 if scheme == "https" else 80),
                          target, headers=headers, body=body)
    except ValueError as exc:
        request = Request(method, "http", "", 0, "/")
        problem = problem or str(exc)
    flow = Flow(request, assign_id=False)
    flow.state = DONE
    resp = rec.get("response")
    if isinstance(resp, dict) and isinstance(resp.get("status"), int):
        flow.response = Response(resp["status"])
    redacted = tuple(k for k, v in pairs if v == REDACTED)
    return ReplayItem(flow, problem, redacted)


async def replay_requests(options: Options, requests: list[Request], concurrency: int,
                          report: Callable[[int, Flow], None]) -> None:
    """Replay `requests` through a proxy built from `options` that listens nowhere (only these
    requests go through it); `report(index, flow)` as each finishes. StartupError for bad options."""
    from proxycore.proxy.replay import replay_all
    from proxycore.proxy.server import Proxy

    # breakpoints from the config file would hold replays nobody can resume here (no UI)
    proxy = Proxy(dataclasses.replace(options, intercept=None) if options.intercept else options)
    await proxy.start(listen=False)
    try:
        await replay_all(proxy, requests, concurrency, report)
    finally:
        await proxy.stop()
