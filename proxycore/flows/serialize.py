"""Lossless serialisation of flows: what a flow file saves and loads, and what an engine served
over a socket would send.

Unlike the capture record (proxycore.capture.record), which redacts secrets, caps bodies and decodes text
for people and databases, this keeps everything a Flow holds: header bytes in their order, case
and repetition, bodies as the bytes captured (with their wire size and whether they were cut), the
state, marks, comments, tags, addresses, TLS and timings, and the unedited originals of edited
messages. `loads_flow(dumps_flow(f))` equals `f` slot by slot, id included.

Format, version 1: one JSON object per flow, on one line (ASCII only: lone surrogates and any
other character survive as JSON escapes). Bytes are base64 strings; headers are lists of
[name, value] pairs. A file of flows starts with a header line `{"format": "omniproxy-flows",
"version": 1}` followed by one flow per line, so it can be written and read as a stream.
"""

from __future__ import annotations

import json
import os
from base64 import b64decode, b64encode
from collections.abc import Iterable, Iterator
from typing import Any

from proxycore.flows.flow import Flow, Headers, Request, Response, Timings, TLSInfo
from proxycore.flows.tcp import messages_from_list, messages_to_list
from proxycore.flows.websocket import WebSocketData, WebSocketMessage
from proxycore.safefile import write_atomic

VERSION = 1
FILE_FORMAT = "omniproxy-flows"
_TIMING_FIELDS = Timings.__slots__
_TLS_FIELDS = TLSInfo.__slots__


class FlowFormatError(ValueError):
    """Data that is not a flow of a version this code reads."""


def _b(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def _unb(text: Any) -> bytes:
    if not isinstance(text, str):
        raise FlowFormatError(f"expected base64 text, got {type(text).__name__}")
    return b64decode(text.encode("ascii"), validate=True)


def _headers(h: Headers) -> list[list[str]]:
    return [[_b(k), _b(v)] for k, v in h.fields]


def _unheaders(data: list) -> Headers:
    return Headers((_unb(k), _unb(v)) for k, v in data)


def _request(r: Request) -> dict[str, Any]:
    return {
        "method": r.method, "scheme": r.scheme, "host": r.host, "port": r.port, "target": r.target,
        "http_version": r.http_version, "authority": r.authority, "headers": _headers(r.headers),
        "body": _b(r.body), "body_size": r.body_size, "body_truncated": r.body_truncated, "stream": r.stream,
        "trailers": _opt(_headers, r.trailers),
    }


def _unrequest(d: dict[str, Any]) -> Request:
    r = Request(d["method"], d["scheme"], d["host"], d["port"], d["target"], d["http_version"],
                _unheaders(d["headers"]), _unb(d["body"]), d["authority"])
    r.body_size = d["body_size"]
    r.body_truncated = d["body_truncated"]
    r.stream = d.get("stream", True)
    r.trailers = _opt(_unheaders, d.get("trailers"))  # absent from older files
    return r


def _response(r: Response) -> dict[str, Any]:
    return {
        "status": r.status, "reason": r.reason, "http_version": r.http_version, "headers": _headers(r.headers),
        "body": _b(r.body), "body_size": r.body_size, "body_truncated": r.body_truncated, "stream": r.stream,
        "trailers": _opt(_headers, r.trailers),
    }


def _unresponse(d: dict[str, Any]) -> Response:
    r = Response(d["status"], d["reason"], d["http_version"], _unheaders(d["headers"]), _unb(d["body"]))
    r.body_size = d["body_size"]
    r.body_truncated = d["body_truncated"]
    r.stream = d.get("stream", True)
    r.trailers = _opt(_unheaders, d.get("trailers"))  # absent from older files
    return r


def _tls(t: TLSInfo) -> dict[str, Any]:
    return {k: getattr(t, k) for k in _TLS_FIELDS}


def _untls(d: dict[str, Any]) -> TLSInfo:
    t = TLSInfo()
    for k in _TLS_FIELDS:
        if k in d:  # fields added later (cert_chain) are absent from older files
            setattr(t, k, d[k])
    t.cert_sans = list(t.cert_sans)
    return t


def _websocket(w: WebSocketData) -> dict[str, Any]:
    # messages as compact lists: a chatty socket has thousands
    return {
        "messages": [[m.type, m.from_client, _b(m.content), m.timestamp, m.dropped, m.injected, m.size,
                      m.truncated] for m in w.messages],
        "omitted": w.omitted, "closed_by_client": w.closed_by_client, "close_code": w.close_code,
        "close_reason": w.close_reason, "timestamp_end": w.timestamp_end,
    }


def _unwebsocket(d: dict[str, Any]) -> WebSocketData:
    w = WebSocketData()
    for typ, from_client, content, ts, dropped, injected, size, truncated in d["messages"]:
        m = WebSocketMessage(int(typ), bool(from_client), _unb(content), float(ts), bool(dropped), bool(injected))
        m.size = int(size)
        m.truncated = bool(truncated)
        w.messages.append(m)
    w.omitted = int(d.get("omitted", 0))
    w.closed_by_client = d["closed_by_client"]
    w.close_code = d["close_code"]
    w.close_reason = d["close_reason"]
    w.timestamp_end = d["timestamp_end"]
    return w


def _opt(fn: Any, value: Any) -> Any:
    return None if value is None else fn(value)


def _addr(a: tuple | None) -> list | None:
    return None if a is None else list(a)


def _unaddr(a: list | None) -> tuple | None:
    return None if a is None else tuple(a)


def flow_to_dict(flow: Flow) -> dict[str, Any]:
    """The JSON-ready form of `flow` (see the module docstring)."""
    t = flow.timings
    return {
        "v": VERSION,
        "id": flow.id,
        "state": flow.state,
        "client_addr": _addr(flow.client_addr),
        "server_addr": _addr(flow.server_addr),
        "request": _request(flow.request),
        "response": _opt(_response, flow.response),
        "error": flow.error,
        "timings": {k: getattr(t, k) for k in _TIMING_FIELDS},
        "client_tls": _opt(_tls, flow.client_tls),
        "server_tls": _opt(_tls, flow.server_tls),
        "marked": flow.marked,
        "comment": flow.comment,
        "tags": list(flow.tags),
        "is_replay": flow.is_replay,
        "modified": flow.modified,
        "passthrough": flow.passthrough,
        "in_scope": flow.in_scope,
        "sampled": flow.sampled,
        "killed": flow.killed,
        "original_request": _opt(_request, flow.original_request),
        "original_response": _opt(_response, flow.original_response),
        "rules_applied": list(flow.rules_applied),
        "websocket": _opt(_websocket, flow.websocket),
        "tcp_messages": None if flow.tcp_messages is None else messages_to_list(flow.tcp_messages),
        "stream": list(flow.stream) if flow.stream is not None else None,
    }


def flow_from_dict(d: dict[str, Any]) -> Flow:
    """The Flow `flow_to_dict` described, with its id. Raises FlowFormatError on anything else."""
    if not isinstance(d, dict):
        raise FlowFormatError("a flow must be a JSON object")
    if d.get("v") != VERSION:
        raise FlowFormatError(f"unsupported flow version {d.get('v')!r} (this reads version {VERSION})")
    try:
        flow = Flow(_unrequest(d["request"]), _unaddr(d["client_addr"]), assign_id=False)
        flow.id = d["id"]
        flow.state = d["state"]
        flow.server_addr = _unaddr(d["server_addr"])
        flow.response = _opt(_unresponse, d["response"])
        flow.error = d["error"]
        t = flow.timings
        for k in _TIMING_FIELDS:
            setattr(t, k, d["timings"][k])
        flow.client_tls = _opt(_untls, d["client_tls"])
        flow.server_tls = _opt(_untls, d["server_tls"])
        flow.marked = d["marked"]
        flow.comment = d["comment"]
        flow.tags = list(d["tags"])
        flow.is_replay = d["is_replay"]
        flow.modified = d["modified"]
        flow.passthrough = d["passthrough"]
        flow.in_scope = d["in_scope"]
        flow.sampled = d["sampled"]
        flow.killed = d.get("killed", False)
        flow.original_request = _opt(_unrequest, d["original_request"])
        flow.original_response = _opt(_unresponse, d["original_response"])
        flow.rules_applied = tuple(str(x) for x in d.get("rules_applied") or ())
        flow.websocket = _opt(_unwebsocket, d.get("websocket"))
        if d.get("tcp_messages") is not None:
            flow.tcp_messages = messages_from_list(d["tcp_messages"])
        stream = d.get("stream")
        flow.stream = (int(stream[0]), int(stream[1])) if stream else None
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FlowFormatError):
            raise
        raise FlowFormatError(f"malformed flow: {exc!r}") from None
    return flow


def dumps_flow(flow: Flow) -> bytes:
    """One flow as one line of JSON (no newline), ASCII."""
    return json.dumps(flow_to_dict(flow), ensure_ascii=True, separators=(",", ":")).encode("ascii")


def loads_flow(data: bytes | str) -> Flow:
    """The flow `dumps_flow` wrote, with its id (see proxycore.flows.flow.reserve_ids before mixing loaded
    flows with new ones in one process)."""
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FlowFormatError(f"not a serialised flow: {exc}") from None
    return flow_from_dict(d)


def _header_line() -> bytes:
    return json.dumps({"format": FILE_FORMAT, "version": VERSION}).encode("ascii")


def write_flows(path: str | os.PathLike[str], flows: Iterable[Flow]) -> int:
    """Write `flows` to `path` through proxycore.safefile (a regular file is replaced atomically
    by a 0600 temp file: flows hold cookies and tokens; a FIFO or device is written through; a
    symlink is refused). Returns how many flows were written."""
    count = 0

    def lines() -> Iterator[bytes]:
        nonlocal count
        yield _header_line() + b"\n"
        for flow in flows:
            yield dumps_flow(flow) + b"\n"
            count += 1

    write_atomic(path, lines())
    return count


def iter_flows(path: str | os.PathLike[str]) -> Iterator[Flow]:
    """The flows of a file `write_flows` wrote, one at a time."""
    with open(path, "rb") as f:
        first = f.readline()
        try:
            header = json.loads(first)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
            raise FlowFormatError(f"{path} is not an OmniProxy flow file")
        if header.get("version") != VERSION:
            raise FlowFormatError(f"{path}: unsupported flow file version {header.get('version')!r}")
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue
            try:
                yield loads_flow(line)
            except FlowFormatError as exc:
                raise FlowFormatError(f"{path}, line {lineno}: {exc}") from None


def read_flows(path: str | os.PathLike[str]) -> list[Flow]:
    """Every flow of a file `write_flows` wrote, in file order, ids kept."""
    return list(iter_flows(path))


__all__ = ["FILE_FORMAT", "VERSION", "FlowFormatError", "dumps_flow", "flow_from_dict", "flow_to_dict",
           "iter_flows", "loads_flow", "read_flows", "write_flows"]
