"""HAR 1.2 from IR records (and back).

HAR is always derived from the canonical IR record (``proxycore.capture.record``), never from flows, so
redaction, body capping and binary placeholders are decided in exactly one place.

Mapping notes:
- Headers: one ``{name, value}`` per value (repeated headers stay repeated), names lower-case;
  a record imported from HAR keeps the list as written in ``headerList`` (case and order).
- Cookies: parsed from ``cookie`` / ``set-cookie`` (name and value only); none when redacted.
- Bodies: the text is the body as it went over the wire (after undoing Content-Encoding), byte
  for byte: a parsed JSON body is re-serialised only when the recorder found that gives the text
  back, else the record's ``bodyText`` is used. Base64 bodies keep their text with
  ``content.encoding = "base64"`` (request: ``postData._encoding``, HAR has no field for it);
  binary placeholders become an empty content with a ``comment``.
- Errors without a response: ``status 0``, ``statusText ""`` and ``response._error`` (as Chrome does).
- Timings: HAR wants send/wait/receive >= 0; when the record has none, ``wait`` carries the whole
  duration (``timings._unknown`` lists the made-up ones). Time before the connection is ``blocked``,
  so ``time`` equals ``durationMs``. HAR's ``connect`` includes ``ssl``.
- Extra facts ride in underscore fields (allowed by the spec): ``_id``, ``_clientAddress``,
  ``_serverAddress``, ``_tls``, ``_passthrough``, ``_bodyTruncated``, ``_isBinary``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from proxycore.capture.record import BINARY_PLACEHOLDER, REDACTED, add_multi, json_body
from proxycore.safefile import write_atomic

CREATOR_NAME = "OmniProxy TUI"
_EPOCH = "1970-01-01T00:00:00.000000+00:00"


# --- small helpers ----------------------------------------------------------------------------


def _values(v: Any) -> list[str]:
    """An IR header/query value (str or list of str) as a list."""
    if v is None:
        return []
    if isinstance(v, list):
        return [str(x) for x in v]
    return [str(v)]


def _pairs(mapping: dict | None) -> list[dict]:
    if not mapping:
        return []
    return [{"name": str(k), "value": v} for k, vals in mapping.items() for v in _values(vals)]


def _multimap(pairs: Iterable[tuple[str, str]], lower: bool) -> dict[str, str | list[str]]:
    """HAR name/value pairs back to the IR shape: str, or list[str] when repeated."""
    out: dict[str, str | list[str]] = {}
    for name, value in pairs:
        add_multi(out, name.lower() if lower else name, value)
    return out


def _header(headers: dict | None, name: str) -> str | None:
    vals = _values((headers or {}).get(name))
    return vals[0] if vals else None


def _body_text(msg: dict) -> str | None:
    """The IR message's body as the text that went over the wire; None when there is none.

    A str body is that text; a parsed JSON body is either its compact form (the recorder checked
    it is the text) or has the text beside it in bodyText.
    """
    body = msg.get("body")
    if body is None:
        return None
    if isinstance(body, str):
        return body
    text = msg.get("bodyText")
    if isinstance(text, str):
        return text
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _header_list(msg: dict) -> list[dict]:
    """HAR headers: the exact list when the record kept one (imported from HAR), else from the
    lower-cased multi-map."""
    raw = msg.get("headerList")
    if isinstance(raw, list) and all(isinstance(p, list) and len(p) == 2 for p in raw):
        return [{"name": str(n), "value": str(v)} for n, v in raw]
    return _pairs(msg.get("headers"))


def _request_cookies(headers: dict | None) -> list[dict]:
    cookies = []
    for line in _values((headers or {}).get("cookie")):
        if line == REDACTED:
            return []
        for part in line.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name:
                cookies.append({"name": name, "value": value})
    return cookies


def _response_cookies(headers: dict | None) -> list[dict]:
    cookies = []
    for line in _values((headers or {}).get("set-cookie")):
        if line == REDACTED:
            return []
        first = line.split(";", 1)[0].strip()
        name, sep, value = first.partition("=")
        if sep and name:
            cookies.append({"name": name, "value": value})
    return cookies


def reason_phrase(status: int, status_text: str | None) -> str:
    """ "200 OK" (IR) -> "OK" (HAR); also accepts "HTTP/1.1 200 OK" and a bare "OK"."""
    words = (status_text or "").split(" ")
    if words and words[0].upper().startswith("HTTP/"):
        words = words[1:]
    if words and words[0] == str(status):
        words = words[1:]
    return " ".join(words).strip()


def _ms(v: Any) -> float:
    """A timing from the record; -1 when absent or negative."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
        return float(v)
    return -1.0


def _server_ip(addr: Any) -> str | None:
    """serverIPAddress must be an IP: take it from "1.2.3.4:443", "[::1]:443" or ["::1", 443]."""
    if isinstance(addr, (list, tuple)) and addr:
        host = str(addr[0])
    elif isinstance(addr, str):
        host = addr
        if host.startswith("["):
            host = host[1:].split("]", 1)[0]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
    else:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


# --- records -> HAR ---------------------------------------------------------------------------


def _har_request(req: dict) -> dict:
    headers = req.get("headers") or {}
    query = req.get("query")
    if query:
        query_string = _pairs(query)
    else:
        qs = urlsplit(req.get("url") or "").query
        query_string = [{"name": k, "value": v} for k, v in parse_qsl(qs, keep_blank_values=True)]
    out: dict[str, Any] = {
        "method": req.get("method") or "",
        "url": req.get("url") or "",
        "httpVersion": req.get("httpVersion") or "HTTP/1.1",
        "cookies": _request_cookies(headers),
        "headers": _header_list(req),
        "queryString": query_string,
        "headersSize": -1,
    }
    text = _body_text(req)
    body_size = req.get("bodySize")
    if text is not None and text != "":
        post: dict[str, Any] = {"mimeType": req.get("contentType") or _header(headers, "content-type") or ""}
        if req.get("isBinary") and text == BINARY_PLACEHOLDER:
            post["text"] = ""
            post["comment"] = "binary content not captured"
            post["_isBinary"] = True
        else:
            post["text"] = text
        enc = req.get("bodyEncoding")
        if enc == "base64":
            post["_encoding"] = "base64"
        elif enc:
            post["_bodyEncoding"] = enc  # a Content-Encoding the recorder undid; the text is decoded
        if req.get("bodyTruncated"):
            post["_bodyTruncated"] = True
        out["postData"] = post
        if not isinstance(body_size, int):
            body_size = len(text.encode("utf-8", "surrogatepass"))
    out["bodySize"] = body_size if isinstance(body_size, int) and body_size >= 0 else 0
    return out


def _har_response(rec: dict) -> dict:
    resp = rec.get("response")
    req = rec.get("request") or {}
    if not resp:
        out: dict[str, Any] = {
            "status": 0,
            "statusText": "",
            "httpVersion": req.get("httpVersion") or "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        }
        if rec.get("error"):
            out["_error"] = str(rec["error"])
        return out
    headers = resp.get("headers") or {}
    status = int(resp.get("status") or 0)
    mime = resp.get("contentType") or _header(headers, "content-type") or ""
    text = _body_text(resp)
    # IR: "size" = body bytes on the wire, "bodySize" = after undoing Content-Encoding (only when
    # one was undone). HAR: response.bodySize = on the wire, content.size = decoded.
    size = resp.get("size")
    if not isinstance(size, int) or size < 0:
        size = len(text.encode("utf-8", "surrogatepass")) if text else 0
    decoded = resp.get("bodySize")
    content_size = decoded if isinstance(decoded, int) and decoded >= 0 else size
    content: dict[str, Any] = {"size": content_size, "mimeType": mime}
    if content_size != size:
        content["compression"] = content_size - size
    if resp.get("isBinary") and text == BINARY_PLACEHOLDER:
        content["comment"] = "binary content not captured"
        content["_isBinary"] = True
    elif text is not None:
        content["text"] = text
        enc = resp.get("bodyEncoding")
        if enc == "base64":
            content["encoding"] = "base64"
        elif enc:
            content["_bodyEncoding"] = enc  # a Content-Encoding the recorder undid; the text is decoded
    if resp.get("bodyTruncated"):
        content["_bodyTruncated"] = True
    out = {
        "status": status,
        "statusText": reason_phrase(status, resp.get("statusText")),
        "httpVersion": resp.get("httpVersion") or req.get("httpVersion") or "HTTP/1.1",
        "cookies": _response_cookies(headers),
        "headers": _header_list(resp),
        "content": content,
        "redirectURL": _header(headers, "location") or "",
        "headersSize": -1,
        "bodySize": size,
    }
    if rec.get("error"):
        out["_error"] = str(rec["error"])
    return out


def _har_timings(rec: dict) -> tuple[dict, float]:
    t = rec.get("timings") or {}
    connect, ssl = _ms(t.get("connectMs")), _ms(t.get("tlsMs"))
    send, wait, receive = _ms(t.get("sendMs")), _ms(t.get("waitMs")), _ms(t.get("receiveMs"))
    if ssl >= 0:
        # HAR 1.2: "ssl" time is also included in "connect" (HAR 1.1 compatibility).
        connect = max(connect, 0.0) + ssl
    duration = _ms(rec.get("durationMs"))
    if send < 0 and wait < 0 and receive < 0:
        # No phase timings: let wait carry the rest so that time == durationMs.
        wait = max(duration - max(connect, 0.0), 0.0) if duration >= 0 else 0.0
    # HAR has no "unknown" for these three; remember which ones we made up so the IR comes back.
    made_up = [name for name, v in (("send", _ms(t.get("sendMs"))), ("wait", _ms(t.get("waitMs"))),
                                    ("receive", _ms(t.get("receiveMs")))) if v < 0]
    send, wait, receive = max(send, 0.0), max(wait, 0.0), max(receive, 0.0)
    total = max(connect, 0.0) + send + wait + receive
    # Time before the connection (queueing, DNS) is not a phase in the record: call it "blocked",
    # so that time == durationMs and the phases still add up.
    blocked = round(duration - total, 3) if duration >= 0 else -1.0
    if blocked > 0:
        total += blocked
    else:
        blocked = -1.0
    timings: dict[str, Any] = {"blocked": blocked, "dns": -1, "connect": connect, "ssl": ssl, "send": send,
                               "wait": wait, "receive": receive}
    timings = {k: (int(v) if v == -1 else round(v, 3)) for k, v in timings.items()}
    if made_up:
        timings["_unknown"] = made_up
    return timings, round(total, 3)


def record_to_har_entry(rec: dict) -> dict:
    """One IR record as a HAR 1.2 entry."""
    timings, total = _har_timings(rec)
    entry: dict[str, Any] = {
        "startedDateTime": rec.get("startTime") or _EPOCH,
        "time": total,
        "request": _har_request(rec.get("request") or {}),
        "response": _har_response(rec),
        "cache": {},
        "timings": timings,
    }
    ip = _server_ip(rec.get("serverAddress"))
    if ip:
        entry["serverIPAddress"] = ip
    if "id" in rec:
        entry["_id"] = rec["id"]
    for key in ("clientAddress", "serverAddress", "tls", "passthrough", "grpc"):
        if rec.get(key) not in (None, "", False):
            entry["_" + key] = rec[key]
    ws = rec.get("websocket")
    if isinstance(ws, dict):
        # as Chrome DevTools exports a WebSocket: DevTools shows these in its Messages tab
        entry["_resourceType"] = "websocket"
        entry["_webSocketMessages"] = [_har_ws_message(m) for m in ws.get("messages") or ()]
        rest = {k: v for k, v in ws.items() if k != "messages"}
        if rest:
            entry["_webSocket"] = rest  # who closed, code, reason (ours; DevTools ignores it)
    return entry


def is_tcp_record(rec: dict) -> bool:
    """A raw TCP flow's record: HAR has no place for it and skips it, as mitmproxy's HAR export
    skips TCP flows."""
    return "tcpMessages" in rec


def _har_ws_message(m: dict) -> dict:
    """One message as Chrome writes it: type send/receive, time (epoch seconds), opcode 1 (text)
    or 2 (binary, data base64), data."""
    out = {"type": "send" if m.get("fromClient") else "receive", "time": m.get("time", 0),
           "opcode": 1 if m.get("type") == "text" else 2, "data": m.get("content", "")}
    for k in ("size", "truncated", "dropped", "injected"):  # ours, with a leading _
        if m.get(k):
            out["_" + k] = m[k]
    return out


def _record_ws(e: dict, where: str) -> dict | None:
    """A HAR entry's `_webSocketMessages` (Chrome's, or ours) as the record's "websocket"."""
    raw = e.get("_webSocketMessages")
    if not isinstance(raw, list):
        return None
    msgs = []
    for j, m in enumerate(raw):
        w = f"{where}._webSocketMessages[{j}]"
        m = _obj(m, w, required=True)
        binary = _num(m.get("opcode"), w + ".opcode", 1) == 2
        d: dict[str, Any] = {"type": "binary" if binary else "text", "fromClient": m.get("type") == "send",
                             "time": _num(m.get("time"), w + ".time"), "content": _str(m.get("data"), w + ".data")}
        if binary:
            d["encoding"] = "base64"
        for k in ("size", "truncated", "dropped", "injected"):
            if m.get("_" + k):
                d[k] = m["_" + k]
        msgs.append(d)
    out: dict[str, Any] = {"messages": msgs}
    extra = e.get("_webSocket")
    if isinstance(extra, dict):
        out.update({k: v for k, v in extra.items() if k != "messages"})
    return out


def records_to_har(records: Iterable[dict], creator_version: str) -> dict:
    """A whole HAR 1.2 document."""
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": CREATOR_NAME, "version": creator_version},
            "pages": [],
            "entries": [record_to_har_entry(r) for r in records if not is_tcp_record(r)],
        }
    }


# --- HAR -> records ---------------------------------------------------------------------------
#
# HAR files come from many tools (browsers, Charles, Fiddler, Insomnia ...), each with quirks; a
# shape we cannot use is a ValueError naming where it is ("entries[3].request: missing url"),
# never some other exception.


def _bad(where: str, what: str) -> ValueError:
    return ValueError(f"{where}: {what}")


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(type(v), type(v).__name__)


def _obj(v: Any, where: str, required: bool = False) -> dict:
    if v is None:
        if required:
            raise _bad(where, "missing")
        return {}
    if not isinstance(v, dict):
        raise _bad(where, f"expected an object, got {_kind(v)}")
    return v


def _str(v: Any, where: str) -> str:
    """A HAR string field; numbers are accepted (some tools write header values as numbers)."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise _bad(where, f"expected a string, got {_kind(v)}")


def _num(v: Any, where: str, default: float = 0) -> float:
    if v is None or v == "":
        return default
    if isinstance(v, str):
        with contextlib.suppress(ValueError):
            v = float(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return v
    raise _bad(where, f"expected a number, got {json.dumps(v)[:40]}")


def _har_pairs(v: Any, where: str) -> list[tuple[str, str]]:
    """A HAR headers/queryString list: {name, value} objects, or [name, value] pairs (some tools)."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise _bad(where, f"expected a list, got {_kind(v)}")
    out = []
    for j, x in enumerate(v):
        at = f"{where}[{j}]"
        if isinstance(x, dict):
            if "name" not in x:
                raise _bad(at, "missing name")
            out.append((_str(x["name"], at + ".name"), _str(x.get("value"), at + ".value")))
        elif isinstance(x, list) and len(x) == 2:
            out.append((_str(x[0], at + "[0]"), _str(x[1], at + "[1]")))
        else:
            raise _bad(at, f"expected {{name, value}} or [name, value], got {_kind(x)}")
    return out


def _header_fields(out: dict, pairs: list[tuple[str, str]]) -> None:
    """headers (the IR's lower-cased multi-map) and, when that would not give the same list back
    (names not lower-case, repeated names apart), headerList: the pairs exactly as written."""
    if not pairs:
        return
    headers = _multimap(pairs, True)
    out["headers"] = headers
    if [(d["name"], d["value"]) for d in _pairs(headers)] != pairs:
        out["headerList"] = [[n, v] for n, v in pairs]


def _record_request(h: dict, where: str) -> dict:
    if "url" not in h or h["url"] in (None, ""):
        raise _bad(where, "missing url")
    url = _str(h["url"], where + ".url")
    if "method" not in h or h["method"] in (None, ""):
        raise _bad(where, "missing method")
    method = _str(h["method"], where + ".method")
    try:
        u = urlsplit(url)
    except ValueError as e:
        raise _bad(where + ".url", f"not a URL ({e})") from None
    pairs = _har_pairs(h.get("headers"), where + ".headers")
    headers = _multimap(pairs, True)
    req: dict[str, Any] = {
        "method": method,
        "url": url,
        "host": _header(headers, "host") or u.netloc,
        "path": u.path or "/",
        "scheme": u.scheme or "http",
        "httpVersion": _str(h.get("httpVersion"), where + ".httpVersion") or "HTTP/1.1",
    }
    _header_fields(req, pairs)
    query = _multimap(_har_pairs(h.get("queryString"), where + ".queryString"), False)
    if query:  # the IR omits empty values
        req["query"] = query
    post = _obj(h.get("postData"), where + ".postData")
    if post:
        mime = _str(post.get("mimeType"), where + ".postData.mimeType")
        _ir_body(req, post, mime, post.get("_encoding") or post.get("encoding"), where + ".postData")
        if mime:
            req["contentType"] = mime
        if post.get("_bodyTruncated"):
            req["bodyTruncated"] = True
    if isinstance(h.get("bodySize"), int) and h["bodySize"] > 0:
        req["bodySize"] = h["bodySize"]  # the IR omits zero sizes
    return req


def _ir_body(out: dict, part: dict, mime: str, encoding: Any, where: str) -> None:
    """A HAR postData or content object -> the IR message's body, bodyText, isBinary, bodyEncoding.

    The text is kept exactly: parsed JSON only where that loses nothing, with bodyText holding
    the text when the parsed form would re-serialise differently (``record.json_body``).
    """
    if part.get("_isBinary"):
        out["body"], out["isBinary"] = BINARY_PLACEHOLDER, True
        return
    if part.get("text") is None:
        return
    text = _str(part.get("text"), where + ".text")
    if encoding == "base64":
        out["body"], out["bodyEncoding"] = text, "base64"
        return
    body, body_text = json_body(text, mime or None)
    out["body"] = body
    if body_text is not None:
        out["bodyText"] = body_text
    if part.get("_bodyEncoding"):
        out["bodyEncoding"] = part["_bodyEncoding"]


def _iso_plus_ms(start: str, ms: float) -> str:
    try:
        dt = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        return start
    try:
        return (dt + timedelta(milliseconds=ms)).isoformat(timespec="microseconds")
    except OverflowError:
        return start


def _record_response(h: dict, where: str) -> dict:
    pairs = _har_pairs(h.get("headers"), where + ".headers")
    content = _obj(h.get("content"), where + ".content")
    status = int(_num(h.get("status"), where + ".status"))
    reason = _str(h.get("statusText"), where + ".statusText")
    resp: dict[str, Any] = {
        "status": status,
        "statusText": f"{status} {reason}".strip(),
        "httpVersion": _str(h.get("httpVersion"), where + ".httpVersion") or "HTTP/1.1",
    }
    _header_fields(resp, pairs)
    mime = _str(content.get("mimeType"), where + ".content.mimeType")
    _ir_body(resp, content, mime, content.get("encoding"), where + ".content")
    csize, wire = content.get("size"), h.get("bodySize")
    if isinstance(wire, int) and wire > 0:
        resp["size"] = wire
        if isinstance(csize, int) and csize >= 0 and csize != wire:
            resp["bodySize"] = csize  # a Content-Encoding was undone
    elif isinstance(csize, int) and csize > 0:
        resp["size"] = csize
    if mime:
        resp["contentType"] = mime
    if content.get("_bodyTruncated"):
        resp["bodyTruncated"] = True
    return resp


def _record_timings(t: dict) -> dict:
    def get(k: str) -> float:
        v = t.get(k)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else -1.0

    connect, ssl = get("connect"), get("ssl")
    if connect >= 0 and ssl >= 0:
        connect = round(max(connect - ssl, 0.0), 3)  # IR keeps TCP connect and TLS apart
    unknown = t.get("_unknown")
    if not isinstance(unknown, list):
        unknown = []
    return {"connectMs": connect, "tlsMs": ssl,
            **{f"{k}Ms": (-1.0 if k in unknown else get(k)) for k in ("send", "wait", "receive")}}


def har_to_records(har: dict) -> list[dict]:
    """IR records from a HAR document (ours, or a browser's). Raises ValueError, naming the
    entry and field, if it is not HAR or an entry cannot be read."""
    log = har.get("log") if isinstance(har, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise ValueError("not a HAR document (no log.entries)")
    out = []
    for i, e in enumerate(log["entries"]):
        where = f"entries[{i}]"
        if not isinstance(e, dict):
            raise _bad(where, f"expected an object, got {_kind(e)}")
        request = _obj(e.get("request"), where + ".request", required=True)
        hresp = _obj(e.get("response"), where + ".response")
        error = hresp.get("_error") or e.get("_error")
        start = _str(e.get("startedDateTime"), where + ".startedDateTime") or _EPOCH
        duration = max(float(_num(e.get("time"), where + ".time")), 0.0)  # Charles writes -1 when unknown
        rec: dict[str, Any] = {"id": e.get("_id", i + 1), "request": _record_request(request, where + ".request")}
        if hresp and not (int(_num(hresp.get("status"), where + ".response.status")) == 0
                          and not hresp.get("headers")):
            rec["response"] = _record_response(hresp, where + ".response")
        rec["startTime"] = start
        rec["endTime"] = _iso_plus_ms(start, duration)
        rec["durationMs"] = duration
        if error:
            rec["error"] = str(error)
        for key in ("clientAddress", "serverAddress", "tls", "passthrough"):
            if "_" + key in e:
                rec[key] = e["_" + key]
        rec["timings"] = _record_timings(_obj(e.get("timings"), where + ".timings"))
        ws = _record_ws(e, where)
        if ws is not None:
            rec["websocket"] = ws
        out.append(rec)
    return out


# --- writing ----------------------------------------------------------------------------------


def dumps_har(har: dict) -> bytes:
    try:
        return json.dumps(har, ensure_ascii=False, indent=2).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates from undecodable bytes: escape them rather than fail the write.
        return json.dumps(har, ensure_ascii=True, indent=2).encode("ascii")


def write_har_atomic(path: str | os.PathLike[str], har: dict) -> None:
    """Write `har` to `path` by the rules of ``proxycore.safefile.write_atomic``: a regular file is
    replaced atomically (new ones 0600), a FIFO or character device written through, a symlink refused.
    """
    write_bytes_atomic(path, dumps_har(har))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    write_atomic(path, data)


# The streaming writer (``HarSink``): a head, one compact entry per line, and a tail that closes the
# document. The tail is written after every batch and overwritten by the next one.
HAR_TAIL = b"\n    ]\n  }\n}\n"


def har_head(creator_version: str) -> bytes:
    """Everything before the first entry of a streamed HAR (see ``HAR_TAIL``)."""
    creator = json.dumps({"name": CREATOR_NAME, "version": creator_version}, ensure_ascii=False)
    return (f'{{\n  "log": {{\n    "version": "1.2",\n    "creator": {creator},\n'
            f'    "pages": [],\n    "entries": [\n').encode()
