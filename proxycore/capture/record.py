"""The canonical IR record: one Flow as a JSON-ready dict (what an NDJSON/IR line holds).

JSON, HAR and SQLite exports derive from this dict, so its shape is the contract:

    {"id", "request": {...}, "response": {...}?, "startTime", "endTime"?, "durationMs"?,
     "error"?, "clientAddress"?, "serverAddress"?, "tls"?, "passthrough"?, "grpc"?, "timings": {...},
     "websocket"?: {"messages": [{"type": "text"|"binary", "fromClient", "time" (epoch seconds),
                    "size", "content"?, "encoding"? ("base64": binary), "truncated"?, "dropped"?,
                    "injected"?}], "closedByClient"?, "closeCode"?, "closeReason"?, "endTime"?,
                    "omitted"?}}

`grpc` (gRPC and gRPC-Web calls only) holds the call's messages decoded: proxycore.grpc.call_record.

Keys are camelCase and omitted when empty, false or zero, as in the original OmniProxy, except
request.method/url/host/path/scheme and response.status, which are always present.

This runs in the batched writer for every flow, off the proxy's hot path but still thousands of
times a second: options are resolved once (`RecordOptions`), header names are decoded through a
small cache, and content detection only ever looks at the first 512 bytes.
"""

from __future__ import annotations

import base64
import codecs
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from proxycore import grpc
from proxycore.contentdetect import CHECK_BYTES, detect
from proxycore.encoding import DEFAULT_MAX_SIZE, decode_body, parse_codings
from proxycore.options import DEFAULT_REDACT

if TYPE_CHECKING:
    from proxycore.flows.flow import Flow, Headers, Request, Response, Timings, TLSInfo
    from proxycore.flows.websocket import WebSocketData
    from proxycore.options import Options

REDACTED = "[REDACTED]"
BINARY_PLACEHOLDER = "[binary content]"


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """What goes into a record; built once per capture session, not per flow."""

    redact_headers: frozenset[str] = frozenset(DEFAULT_REDACT)  # lower-case names
    max_body_size: int = 1048576
    skip_binary: bool = True
    include_headers: bool = True
    include_body: bool = True

    @classmethod
    def from_options(cls, opts: Options, *, for_har: bool = False, redact: bool | None = None) -> RecordOptions:
        """`for_har`: binary bodies are kept (base64, within the cap) whatever --skip-binary says,
        as browsers export them; the placeholder is for NDJSON/IR records only.
        `redact`: None follows --redact/--no-redact; True masks the secret headers (and
        --filter-header ones) even under --no-redact (a "sanitized" HAR); False masks none."""
        if redact is None:
            redact_headers = opts.redacted_headers  # empty when redaction is off (--no-redact)
        elif redact:
            redact_headers = frozenset(h.lower() for h in (*DEFAULT_REDACT, *opts.filter_headers))
        else:
            redact_headers = frozenset()
        return cls(
            redact_headers=redact_headers,
            max_body_size=opts.max_body_size,
            skip_binary=opts.skip_binary and not for_har,
            include_headers=opts.include_headers,
            include_body=opts.include_body,
        )


# --- small helpers ---------------------------------------------------------------------------

_name_cache: dict[bytes, str] = {}


def _header_name(raw: bytes) -> str:
    # Header names repeat across flows (a few dozen in practice); cache their decoded form.
    name = _name_cache.get(raw)
    if name is None:
        name = raw.decode("latin-1").lower()
        if len(_name_cache) < 4096:  # bounded: odd clients must not grow it forever
            _name_cache[raw] = name
    return name


def _header_value(raw: bytes) -> str:
    if raw.isascii():
        return raw.decode("ascii")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # obsolete HTTP text encoding; never fails


def _scan_headers(
    headers: Headers, redact: frozenset[str], want_dict: bool
) -> tuple[dict[str, str | list[str]] | None, str | None, str | None]:
    """One pass over the fields: (headers dict or None, Content-Type, Content-Encoding).

    In the dict, names are lower-cased and a repeated header becomes a list of all its values.
    Redacted headers are masked, not dropped: someone debugging should still see that, say,
    an Authorization header was sent, just not its secret.
    """
    out: dict[str, str | list[str]] | None = {} if want_dict else None
    ctype: str | None = None
    cenc: str | None = None
    for k, v in headers.fields:
        name = _header_name(k)
        if name == "content-type":
            if ctype is None:
                ctype = _header_value(v)
        elif name == "content-encoding":
            cenc = _header_value(v) if cenc is None else f"{cenc}, {_header_value(v)}"
        if out is None:
            continue
        add_multi(out, name, REDACTED if name in redact else _header_value(v))
    return out, ctype, cenc


def add_multi(out: dict[str, str | list[str]], name: str, value: str) -> None:
    """The IR's multi-map: a name holds a str, or a list[str] once it repeats."""
    prev = out.get(name)
    if prev is None:
        out[name] = value
    elif isinstance(prev, list):
        prev.append(value)
    else:
        out[name] = [prev, value]


def headers_dict(headers: Headers, redact: frozenset[str]) -> dict[str, str | list[str]]:
    """Lower-cased name -> value (a list when repeated); redacted values masked."""
    return _scan_headers(headers, redact, True)[0] or {}


def query_dict(query_string: str) -> dict[str, str | list[str]]:
    """Name -> value, a list when the name repeats; blank values kept."""
    out: dict[str, str | list[str]] = {}
    if not query_string:
        return out
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        add_multi(out, name, value)
    return out


@lru_cache(maxsize=256)
def _charset(content_type: str) -> str:
    """The codec named by `charset=` if Python knows it, else utf-8."""
    for param in content_type.split(";")[1:]:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            name = val.strip().strip('"').strip("'")
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


_JSON_START = re.compile(r"\s*[{\[]").match  # no copy of a big body just to look at its start


class _Lossy(ValueError):
    """The body is JSON but its parsed form would not say the same thing: keep the text."""


_MAX_SAFE_INT = 2**53 - 1  # I-JSON (RFC 7493): beyond this, other JSON readers round integers


def _reject_constant(name: str) -> Any:
    raise _Lossy(name)  # NaN/Infinity are not JSON; keep such bodies as text


def _exact_float(s: str) -> float:
    f = float(s)
    # repr(f) == s is the common case (0.5, 3.25); else compare values exactly: "1.50" is fine,
    # 3.14159265358979323846 (rounded) and 1e400 (inf) are not
    if repr(f) != s and (not math.isfinite(f) or Decimal(s) != Decimal(repr(f))):
        raise _Lossy(s)
    return f


def _exact_int(s: str) -> int:
    n = int(s)
    if -_MAX_SAFE_INT <= n <= _MAX_SAFE_INT:
        return n
    raise _Lossy(s)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _Lossy("duplicate key")  # a dict keeps only the last one
    return d


def _is_json_type(content_type: str) -> bool:
    # application/json, application/problem+json, text/json, ...; not text/plain that looks like JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media.endswith("json")


# Made once: json.loads/json.dumps with any argument build a new decoder/encoder per call, which
# cost more than parsing a small body.
_JSON_DECODER = json.JSONDecoder(parse_constant=lambda name: _reject_constant(name))
_JSON_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_body(text: str, content_type: str | None) -> tuple[Any, str | None]:
    """(body, bodyText) for a record: the parsed JSON object/array when that loses nothing, else
    the text itself (and None).

    Parsed only when the content type says JSON (or there is none and the text starts with { or
    [), and kept only with no duplicate key, no number that a float64 reader would change and no
    non-finite number. bodyText is the exact text when re-serialising compactly would not give it
    back (spacing, key order kept, escapes): HAR is written from records and must carry the body
    as it was, byte for byte.
    """
    if content_type:
        if not _is_json_type(content_type):
            return text, None
    elif not _JSON_START(text):
        return text, None
    try:
        parsed = _JSON_DECODER.decode(text)  # the C parser, no callbacks
    except (ValueError, RecursionError):  # not JSON, or cut short by the capture
        return text, None
    if parsed is None or isinstance(parsed, str):
        return text, None  # a str body is the text itself: "abc" would read back as abc
    if _JSON_COMPACT.encode(parsed) == text:
        # the common case (servers send compact JSON): a dropped duplicate, a rounded number or
        # an inf would have re-serialised differently, so nothing was lost
        return parsed, None
    try:  # spacing, escapes ... or a loss: the careful (slower) parse tells which
        json.loads(text, parse_constant=_reject_constant, parse_float=_exact_float, parse_int=_exact_int,
                   object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        return text, None
    return parsed, text


def _body_fields(
    out: dict[str, Any],
    msg: Request | Response,
    truncated: bool,
    content_type: str | None,
    content_encoding: str | None,
    ropts: RecordOptions,
) -> int | None:
    """Fill body, isBinary, bodyEncoding and bodyTruncated into `out`.

    Returns the decoded size when a Content-Encoding was undone, else None.
    """
    # a few bytes past the window tell the detector that a character cut at its end goes on
    head = msg.body_head(CHECK_BYTES + 8) if ropts.include_body else b""
    if not head:
        if truncated:
            out["bodyTruncated"] = True
        return None
    if ropts.skip_binary and not content_encoding:
        # decide on the first bytes: a binary body is never joined or copied just to be dropped
        det = detect(content_type, head)
        if det.is_binary:
            if truncated:
                out["bodyTruncated"] = True
            out["isBinary"] = True
            out["body"] = BINARY_PLACEHOLDER
            return None
    if msg.captured_size > ropts.max_body_size:
        # the UI's proxy keeps bodies whole (big ones in spill files): records keep the capped part
        data = msg.body_head(ropts.max_body_size)
        truncated = True
        if not data:
            out["bodyTruncated"] = True
            return None
    else:
        data = msg.body
    decoded_size: int | None = None
    if content_encoding:
        codings = parse_codings(content_encoding)
        if codings:
            # the decoded body is what the capture keeps, so the capture cap applies to it too
            cap = ropts.max_body_size if ropts.max_body_size > 0 else DEFAULT_MAX_SIZE
            decoded, err = decode_body(data, content_encoding, max_size=cap, allow_truncated=truncated)
            if decoded is not data:  # decoded, fully or the part the capture kept
                out["bodyEncoding"] = ", ".join(codings)
                decoded_size = len(decoded)
                if err is not None:
                    truncated = True
                data = decoded
    if truncated:
        out["bodyTruncated"] = True
    det = detect(content_type, data)  # looks at 512 bytes at most
    if det.is_binary:
        out["isBinary"] = True
        if ropts.skip_binary:
            out["body"] = BINARY_PLACEHOLDER
        else:
            out["body"] = base64.b64encode(data).decode("ascii")
            out["bodyEncoding"] = "base64"
        return decoded_size
    text = data.decode(_charset(content_type) if content_type else "utf-8", errors="replace")
    body, body_text = json_body(text, content_type)
    out["body"] = body
    if body_text is not None:
        out["bodyText"] = body_text  # the exact text where the parsed form would re-serialise differently
    return decoded_size


# --- the record ------------------------------------------------------------------------------


def _addr(addr: tuple[str, int] | None) -> str | None:
    if not addr:
        return None
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"




def _micros(ts: float) -> int:
    """``ts`` in whole microseconds, rounded as _rfc3339 writes it."""
    frac, whole = math.modf(ts)
    return int(whole) * 1000000 + round(frac * 1e6)


def _rfc3339(ts: float) -> str:
    # local time with its offset and microseconds, e.g. 2026-11-25T13:00:00.123456+01:00.
    # The flows of one second share everything but the microseconds: format the rest once per
    # second (looking up the local zone costs more than formatting). Microseconds are rounded
    # as datetime.fromtimestamp rounds them.
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    sec = int(whole)
    if us >= 1000000:
        sec += 1
        us -= 1000000
    elif us < 0:
        sec -= 1
        us += 1000000
    parts = _sec_cache.get(sec)
    if parts is None:
        if len(_sec_cache) > 256:
            _sec_cache.clear()
        text = datetime.fromtimestamp(sec).astimezone().isoformat(timespec="seconds")
        parts = _sec_cache[sec] = (text[:19], text[19:])
    return f"{parts[0]}.{us:06d}{parts[1]}"


_sec_cache: dict[int, tuple[str, str]] = {}


def _ms(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return -1
    return round(max(b - a, 0.0) * 1000.0, 3)


def timings_dict(t: Timings) -> dict[str, float]:
    """Phase durations in ms (µs precision); -1 for a phase that did not happen."""
    send_start = t.tls_end or t.connect_end or t.start
    return {
        "connectMs": _ms(t.connect_start, t.connect_end),
        "tlsMs": _ms(t.connect_end, t.tls_end),
        "sendMs": _ms(send_start, t.request_sent),
        "waitMs": _ms(t.request_sent, t.first_byte),
        "receiveMs": _ms(t.first_byte, t.end),
    }


def _tls_dict(tls: TLSInfo | None) -> dict[str, str] | None:
    if tls is None:
        return None
    d = {k: v for k, v in (("sni", tls.sni), ("alpn", tls.alpn), ("version", tls.version),
                           ("cipher", tls.cipher)) if v}
    return d or None


def status_text(status: int, reason: str) -> str:
    """The full status line as the original recorded it: "200 OK" (HTTP/2 has no reason)."""
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            return str(status)
    return f"{status} {reason}"


def _request_dict(req: Request, ropts: RecordOptions) -> dict[str, Any]:
    connect = req.method == "CONNECT"
    out: dict[str, Any] = {
        "method": req.method,
        "url": req.url,
        "host": req.host_header,
        "path": "" if connect else req.path,
        "scheme": req.scheme,
    }
    if req.http_version:
        out["httpVersion"] = req.http_version
    hdict, ct, ce = _scan_headers(req.headers, ropts.redact_headers, ropts.include_headers)
    if hdict:
        out["headers"] = hdict
    if not connect:
        q = req.query_string
        if q:
            query = query_dict(q)
            if query:
                out["query"] = query
    if req.body_size:
        out["bodySize"] = req.body_size  # whole body on the wire, even when capture cut it
    _body_fields(out, req, req.body_truncated, ct, ce, ropts)
    if ct:
        out["contentType"] = ct
    return out


def _response_dict(resp: Response, ropts: RecordOptions) -> dict[str, Any]:
    out: dict[str, Any] = {"status": resp.status, "statusText": status_text(resp.status, resp.reason)}
    if resp.http_version:
        out["httpVersion"] = resp.http_version
    hdict, ct, ce = _scan_headers(resp.headers, ropts.redact_headers, ropts.include_headers)
    if hdict:
        out["headers"] = hdict
    decoded_size = _body_fields(out, resp, resp.body_truncated, ct, ce, ropts)
    if decoded_size is not None:
        out["bodySize"] = decoded_size  # after undoing Content-Encoding (HAR content.size)
    if resp.body_size:
        out["size"] = resp.body_size  # body bytes on the wire, before decoding
    if ct:
        out["contentType"] = ct
    return out


def _websocket_dict(ws: WebSocketData, ropts: RecordOptions) -> dict[str, Any]:
    """The messages of a WebSocket flow: text as text, binary as base64, each payload cut at the
    capture's body cap (`size` is the whole payload)."""
    cap = ropts.max_body_size
    msgs = []
    for m in ws.messages:
        d: dict[str, Any] = {"type": "text" if m.type == 1 else "binary", "fromClient": m.from_client,
                             "time": m.timestamp, "size": m.size}
        if ropts.include_body:
            data = m.content[:cap] if cap >= 0 and len(m.content) > cap else m.content
            if m.type == 1:
                d["content"] = data.decode("utf-8", "replace")
            else:
                d["content"] = base64.b64encode(data).decode("ascii")
                d["encoding"] = "base64"
            if len(data) < m.size:
                d["truncated"] = True
        if m.dropped:
            d["dropped"] = True
        if m.injected:
            d["injected"] = True
        msgs.append(d)
    out: dict[str, Any] = {"messages": msgs}
    if ws.omitted:
        out["omitted"] = ws.omitted  # the oldest messages the flow no longer held
    if ws.closed_by_client is not None:
        out["closedByClient"] = ws.closed_by_client
    if ws.close_code is not None:
        out["closeCode"] = ws.close_code
    if ws.close_reason:
        out["closeReason"] = ws.close_reason
    if ws.timestamp_end is not None:
        out["endTime"] = _rfc3339(ws.timestamp_end)
    return out


def flow_to_record(flow: Flow, opts: RecordOptions) -> dict[str, Any]:
    """The canonical record of one flow (see the module docstring for the shape)."""
    rec: dict[str, Any] = {"id": flow.id, "request": _request_dict(flow.request, opts)}
    ct = rec["request"].get("contentType")
    if ct is not None and ct.startswith("application/grpc"):  # the one test a non-gRPC flow pays
        call = grpc.read_call(flow, limit=opts.max_body_size if opts.include_body else 0)
        if call is not None:
            rec["grpc"] = grpc.call_record(call)
    if flow.response is not None:
        rec["response"] = _response_dict(flow.response, opts)
    t = flow.timings
    rec["startTime"] = _rfc3339(t.start)
    if t.end is not None:
        rec["endTime"] = _rfc3339(t.end)
        # from the two times as written (each rounded to a microsecond), so start + duration is
        # exactly the end a reader (HAR has only start and duration) gets back
        rec["durationMs"] = (_micros(t.end) - _micros(t.start)) / 1000
    if flow.error:
        rec["error"] = flow.error
    client = _addr(flow.client_addr)
    if client:
        rec["clientAddress"] = client
    server = _addr(flow.server_addr)
    if server:
        rec["serverAddress"] = server
    # what the client negotiated with us (MITM), else our side towards the origin
    tls = _tls_dict(flow.client_tls) or _tls_dict(flow.server_tls)
    if tls:
        rec["tls"] = tls
    if flow.passthrough:
        rec["passthrough"] = True
    if flow.tcp_messages is not None:  # a raw TCP flow (WireGuard mode): its messages, capped
        from proxycore.flows.tcp import messages_to_records

        rec["tcpMessages"] = messages_to_records(flow.tcp_messages, opts.include_body, opts.max_body_size)
    if flow.rules_applied:
        rec["rules"] = list(flow.rules_applied)  # the rewrite rules that changed it
    if flow.websocket is not None:
        rec["websocket"] = _websocket_dict(flow.websocket, opts)
    if flow.stream is not None:  # one stream of a client's HTTP/2 connection
        rec["http2"] = {"connection": flow.stream[0], "stream": flow.stream[1]}
    rec["timings"] = timings_dict(t)
    return rec


def record_to_json_line(record: dict[str, Any]) -> bytes:
    """One compact UTF-8 JSON line, newline-terminated (NDJSON / IR)."""
    from proxycore.capture.sinks import encode_record

    return encode_record(record) + b"\n"
