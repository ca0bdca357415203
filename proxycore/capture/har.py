"""HAR 1.2 from IR records (and back).

HAR is always derived from the canonical IR record (``proxycore.capture.record``), never from flows, so
redaction, body capping and binary placeholders are decided in exactly one place.

Mapping notes:
- Headers: one ``{name, value}`` per value (repeated headers stay repeated), names lower-case.
- Cookies: parsed from ``cookie`` / ``set-cookie`` (name and value only); none when redacted.
- Bodies: JSON bodies are re-serialised compactly; base64 bodies keep their text with
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

import ipaddress
import json
import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from proxycore.capture.record import BINARY_PLACEHOLDER, REDACTED, add_multi
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


def _body_text(body: Any) -> str | None:
    """The IR body (JSON value or str) as text; None when there is none."""
    if body is None:
        return None
    if isinstance(body, str):
        return body
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


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
        "headers": _pairs(headers),
        "queryString": query_string,
        "headersSize": -1,
    }
    text = _body_text(req.get("body"))
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
    text = _body_text(resp.get("body"))
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
        "headers": _pairs(headers),
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
    for key in ("clientAddress", "serverAddress", "tls", "passthrough"):
        if rec.get(key) not in (None, "", False):
            entry["_" + key] = rec[key]
    return entry


def records_to_har(records: Iterable[dict], creator_version: str) -> dict:
    """A whole HAR 1.2 document."""
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": CREATOR_NAME, "version": creator_version},
            "pages": [],
            "entries": [record_to_har_entry(r) for r in records],
        }
    }


# --- HAR -> records ---------------------------------------------------------------------------


def _parse_body(text: str | None, mime: str, encoding: str | None) -> tuple[Any, str | None]:
    """HAR text back to an IR body: JSON stays JSON (as the recorder does)."""
    if text is None:
        return None, None
    if encoding == "base64":
        return text, "base64"
    stripped = text.lstrip()
    if "json" in mime.lower() or stripped[:1] in ("{", "["):
        try:
            return json.loads(text), None
        except ValueError:
            pass
    return text, None


def _iso_plus_ms(start: str, ms: float) -> str:
    try:
        dt = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        return start
    return (dt + timedelta(milliseconds=ms)).isoformat(timespec="microseconds")


def _record_request(h: dict) -> dict:
    url = str(h.get("url") or "")
    u = urlsplit(url)
    headers = _multimap(((x.get("name", ""), x.get("value", "")) for x in h.get("headers") or []), True)
    req: dict[str, Any] = {
        "method": h.get("method") or "",
        "url": url,
        "host": _header(headers, "host") or u.netloc,
        "path": u.path or "/",
        "scheme": u.scheme or "http",
        "httpVersion": h.get("httpVersion") or "HTTP/1.1",
    }
    if headers:
        req["headers"] = headers
    query = _multimap(((x.get("name", ""), x.get("value", "")) for x in h.get("queryString") or []), False)
    if query:  # the IR omits empty values
        req["query"] = query
    post = h.get("postData")
    if post:
        mime = post.get("mimeType") or ""
        _ir_body(req, post, mime, post.get("_encoding"))
        if mime:
            req["contentType"] = mime
        if post.get("_bodyTruncated"):
            req["bodyTruncated"] = True
    if isinstance(h.get("bodySize"), int) and h["bodySize"] > 0:
        req["bodySize"] = h["bodySize"]  # the IR omits zero sizes
    return req


def _ir_body(out: dict, part: dict, mime: str, encoding: str | None) -> None:
    """A HAR postData or content object -> the IR message's body, isBinary and bodyEncoding."""
    if part.get("_isBinary"):
        out["body"], out["isBinary"] = BINARY_PLACEHOLDER, True
        return
    body, enc = _parse_body(part.get("text"), mime, encoding)
    if body is not None:
        out["body"] = body
    if enc or part.get("_bodyEncoding"):
        out["bodyEncoding"] = enc or part["_bodyEncoding"]


def _record_response(h: dict) -> dict:
    headers = _multimap(((x.get("name", ""), x.get("value", "")) for x in h.get("headers") or []), True)
    content = h.get("content") or {}
    status = int(h.get("status") or 0)
    reason = h.get("statusText") or ""
    resp: dict[str, Any] = {
        "status": status,
        "statusText": f"{status} {reason}".strip(),
        "httpVersion": h.get("httpVersion") or "HTTP/1.1",
    }
    if headers:
        resp["headers"] = headers
    mime = content.get("mimeType") or ""
    _ir_body(resp, content, mime, content.get("encoding"))
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
        return float(v) if isinstance(v, (int, float)) and v >= 0 else -1.0

    connect, ssl = get("connect"), get("ssl")
    if connect >= 0 and ssl >= 0:
        connect = round(max(connect - ssl, 0.0), 3)  # IR keeps TCP connect and TLS apart
    unknown = t.get("_unknown") or []
    return {"connectMs": connect, "tlsMs": ssl,
            **{f"{k}Ms": (-1.0 if k in unknown else get(k)) for k in ("send", "wait", "receive")}}


def har_to_records(har: dict) -> list[dict]:
    """IR records from a HAR document (ours, or a browser's). Raises ValueError if it is not HAR."""
    log = har.get("log") if isinstance(har, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise ValueError("not a HAR document (no log.entries)")
    out = []
    for i, e in enumerate(log["entries"], 1):
        if not isinstance(e, dict) or not isinstance(e.get("request"), dict):
            raise ValueError(f"HAR entry {i} has no request")
        hresp = e.get("response") or {}
        error = hresp.get("_error") or e.get("_error")
        start = e.get("startedDateTime") or _EPOCH
        duration = float(e.get("time") or 0)
        rec: dict[str, Any] = {"id": e.get("_id", i), "request": _record_request(e["request"])}
        if hresp and not (int(hresp.get("status") or 0) == 0 and not hresp.get("headers")):
            rec["response"] = _record_response(hresp)
        rec["startTime"] = start
        rec["endTime"] = _iso_plus_ms(start, duration)
        rec["durationMs"] = duration
        if error:
            rec["error"] = error
        for key in ("clientAddress", "serverAddress", "tls", "passthrough"):
            if "_" + key in e:
                rec[key] = e["_" + key]
        rec["timings"] = _record_timings(e.get("timings") or {})
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
