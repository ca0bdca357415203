"""Opening captures as flows: `omniproxy-tui -r FILE` and `L` in the UI.

Any file we write can be opened; the kind is told from the content, never only from the name:

- a flow file (`w` in the UI, ``proxycore.flows.serialize``): first line
  ``{"format": "omniproxy-flows", ...}``; lossless, ids, edits, marks and comments included;
- a SQLite database written by ``--db``: the file starts with ``SQLite format 3``; each row's
  ``record`` column is an IR record;
- NDJSON/IR, a JSON array of records, or HAR (ours or a browser's), through
  ``proxycore.capture.convert.read_records``.

Records (every format but the flow file) become flows through `record_to_flow`: what the record
kept (redacted headers stay ``[REDACTED]``, bodies cut at the capture cap stay cut, binary bodies
the capture skipped are empty) is what the flow holds.

Reading is plain blocking code meant for a worker thread: `iter_capture` yields flows in batches
so the caller can hand each batch to the event loop while the next one is parsed. Placing the
flows among the process's own (`IdAllocator`) happens on the event loop's thread. Every failure is
a `CaptureError`: one line naming the file, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sqlite3
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from proxycore.capture.har import reason_phrase
from proxycore.capture.record import BINARY_PLACEHOLDER
from proxycore.encoding import decode_body
from proxycore.flows.flow import DONE, ERROR, Flow, Headers, Request, Response, TLSInfo, next_id, reserve_ids
from proxycore.flows.websocket import BINARY, TEXT, WebSocketData, WebSocketMessage

SQLITE_MAGIC = b"SQLite format 3\x00"
BATCH = 500  # flows per hand-over to the event loop: ~5-20 ms of loop time each

# kinds detect_capture() returns, and how the UI names them
KIND_NAMES = {"flows": "flow file", "sqlite": "SQLite database", "har": "HAR", "json": "JSON",
              "ndjson": "NDJSON"}


class CaptureError(ValueError):
    """A capture that cannot be opened; `str()` is one line naming the file."""


# --------------------------------------------------------------------------- detection


def detect_capture(path: str | os.PathLike[str]) -> str:
    """"flows", "sqlite", "har", "json" or "ndjson", from the file's first bytes."""
    p = str(path)
    try:
        with open(p, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
            if head == SQLITE_MAGIC:
                return "sqlite"
            f.seek(0)
            first = f.readline(4096)
    except IsADirectoryError:
        raise CaptureError(f"{p}: is a directory, not a capture file") from None
    except OSError as e:
        raise CaptureError(f"cannot read {p}: {e.strerror or e}") from None
    if first.lstrip().startswith(b'{"format"'):
        try:
            header = json.loads(first)
        except ValueError:
            header = None
        if isinstance(header, dict) and header.get("format") == "omniproxy-flows":
            return "flows"
    from proxycore.capture.convert import detect_format

    try:
        return detect_format(p)
    except ValueError as e:
        raise CaptureError(str(e)) from None


# --------------------------------------------------------------------------- records -> flows


def _values(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def _bytes(text: str) -> bytes:
    # header text came from latin-1 or UTF-8 bytes (record._header_value): give back the same bytes
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _headers(msg: dict) -> Headers:
    raw = msg.get("headerList")
    if isinstance(raw, list) and all(isinstance(p, list) and len(p) == 2 for p in raw):
        pairs = [(str(n), str(v)) for n, v in raw]
    else:
        hd = msg.get("headers")
        pairs = [(str(k), v) for k, vals in hd.items() for v in _values(vals)] if isinstance(hd, dict) else []
    return Headers((_bytes(n), _bytes(v)) for n, v in pairs)


def _body(msg: dict, headers: Headers) -> bytes:
    """The body bytes the record kept. Bodies in records are decoded (Content-Encoding undone), so a
    Content-Encoding header that no longer describes them is dropped: the UI would try to undo it."""
    body = msg.get("body")
    enc = msg.get("bodyEncoding")
    decoded = bool(enc) and enc != "base64"
    if body is None:
        data = b""
    elif msg.get("isBinary") and body == BINARY_PLACEHOLDER:
        data = b""  # the capture skipped it (--skip-binary)
    elif enc == "base64" and isinstance(body, str):
        try:
            data = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError):
            raise ValueError("body: invalid base64") from None
        if data and "content-encoding" in headers:
            # browsers and our recorder store bodies decoded; only bytes that are not in the coding
            # the header names (not merely big or cut short) mean the header no longer applies
            _, err = decode_body(data, headers.get("content-encoding"), max_size=64)
            decoded = err is not None and err.startswith("cannot decode")
    elif isinstance(body, str):
        text = msg.get("bodyText") if isinstance(msg.get("bodyText"), str) else body
        data = text.encode("utf-8", "surrogatepass")
    else:  # parsed JSON: the exact text rides in bodyText when compact JSON would differ
        text = msg.get("bodyText")
        if not isinstance(text, str):
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        data = text.encode("utf-8", "surrogatepass")
    if decoded:
        headers.remove("content-encoding")
    return data


def _addr(text: Any) -> tuple[str, int] | None:
    if isinstance(text, (list, tuple)) and len(text) >= 2:
        return str(text[0]), int(text[1])
    if not isinstance(text, str) or not text:
        return None
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return host, int(port)
    except ValueError:
        return None


def _timestamp(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _ms(t: dict, key: str) -> float | None:
    v = t.get(key)
    return v / 1000.0 if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None


def _request(req: dict) -> Request:
    method = req.get("method")
    url = req.get("url")
    if not isinstance(method, str) or not method or not isinstance(url, str) or not url:
        raise ValueError("request: missing method or url")
    headers = _headers(req)
    body = _body(req, headers)
    version = req.get("httpVersion") or "HTTP/1.1"
    authority = req.get("host") if isinstance(req.get("host"), str) else ""
    if method == "CONNECT":
        host, _, port = url.rpartition(":")
        host = host.strip("[]")
        r = Request(method, "http", host.lower(), int(port) if port.isdigit() else 443, url, version,
                    headers, body, authority)
    else:
        u = urlsplit(url)
        scheme = u.scheme or "http"
        try:
            port = u.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"request: bad port in url {url!r}") from None
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        r = Request(method, scheme, (u.hostname or authority or "").lower(), port, target, version,
                    headers, body, authority)
    size = req.get("bodySize")
    r.body_size = size if isinstance(size, int) and size >= len(body) else len(body)
    r.body_truncated = bool(req.get("bodyTruncated"))
    return r


def _response(resp: dict) -> Response:
    status = resp.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        raise ValueError("response: missing status")
    headers = _headers(resp)
    body = _body(resp, headers)
    r = Response(status, reason_phrase(status, resp.get("statusText")), resp.get("httpVersion") or "HTTP/1.1",
                 headers, body)
    size = resp.get("size")
    r.body_size = size if isinstance(size, int) and size >= 0 else len(body)
    r.body_truncated = bool(resp.get("bodyTruncated"))
    return r


def _websocket(ws: dict) -> WebSocketData:
    """A record's "websocket" (see capture/record.py) as the flow's WebSocketData."""
    data = WebSocketData()
    for m in ws.get("messages") or ():
        if not isinstance(m, dict):
            raise ValueError("websocket.messages: expected objects")
        text = m.get("content") or ""
        if not isinstance(text, str):
            raise ValueError("websocket message content: expected text")
        try:
            content = base64.b64decode(text) if m.get("encoding") == "base64" else text.encode("utf-8")
        except (ValueError, TypeError, binascii.Error):
            raise ValueError("websocket message content: bad base64") from None
        ts = m.get("time")
        msg = WebSocketMessage(TEXT if m.get("type") == "text" else BINARY, bool(m.get("fromClient")), content,
                               float(ts) if isinstance(ts, (int, float)) else 0.0, bool(m.get("dropped")),
                               bool(m.get("injected")))
        size = m.get("size")
        if isinstance(size, int) and size >= len(content):
            msg.size = size
        msg.truncated = bool(m.get("truncated"))
        data.messages.append(msg)
    omitted = ws.get("omitted")
    data.omitted = omitted if isinstance(omitted, int) else 0
    cbc = ws.get("closedByClient")
    data.closed_by_client = cbc if isinstance(cbc, bool) else None
    code = ws.get("closeCode")
    data.close_code = code if isinstance(code, int) else None
    data.close_reason = str(ws.get("closeReason") or "")
    data.timestamp_end = _timestamp(ws.get("endTime"))
    return data


def record_to_flow(rec: dict) -> Flow:
    """A finished Flow from an IR record (NDJSON line, JSON item, HAR entry, SQLite row). Its id is
    the record's (0 when it has none): `IdAllocator` decides the final one. Raises ValueError."""
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    req = rec.get("request")
    if not isinstance(req, dict):
        raise ValueError("missing request")
    flow = Flow(_request(req), _addr(rec.get("clientAddress")), assign_id=False)
    rid = rec.get("id")
    flow.id = rid if isinstance(rid, int) and not isinstance(rid, bool) and rid > 0 else 0
    flow.server_addr = _addr(rec.get("serverAddress"))
    resp = rec.get("response")
    if isinstance(resp, dict):
        flow.response = _response(resp)
    if rec.get("error"):
        flow.error = str(rec["error"])
    t = flow.timings
    start = _timestamp(rec.get("startTime"))
    t.start = start if start is not None else 0.0
    dur = rec.get("durationMs")
    if isinstance(dur, (int, float)) and not isinstance(dur, bool) and dur >= 0:
        t.end = t.start + dur / 1000.0
    else:
        t.end = _timestamp(rec.get("endTime"))
    phases = rec.get("timings") if isinstance(rec.get("timings"), dict) else {}
    connect, tls, send, wait = (_ms(phases, k) for k in ("connectMs", "tlsMs", "sendMs", "waitMs"))
    # rebuild the timestamps from the phase durations, laid end to end from the start
    if connect is not None:
        t.connect_start, t.connect_end = t.start, t.start + connect
        if tls is not None:
            t.tls_end = t.connect_end + tls
    if send is not None:
        t.request_sent = (t.tls_end or t.connect_end or t.start) + send
        if wait is not None:
            t.first_byte = t.request_sent + wait
    info = rec.get("tls")
    if isinstance(info, dict):
        ti = TLSInfo()
        for k in ("sni", "alpn", "version", "cipher"):
            if isinstance(info.get(k), str):
                setattr(ti, k, info[k])
        flow.client_tls = ti
    flow.passthrough = bool(rec.get("passthrough"))
    ws = rec.get("websocket")
    if isinstance(ws, dict):
        flow.websocket = _websocket(ws)
    if "tcpMessages" in rec:  # a raw TCP flow
        from proxycore.flows.tcp import messages_from_records

        flow.tcp_messages = messages_from_records(rec["tcpMessages"])
        flow.request.target = ""  # the stand-in request of a TCP flow (proxycore.flows.tcp)
    flow.state = ERROR if flow.error else DONE  # loaded flows are finished: nothing changes them
    return flow


# --------------------------------------------------------------------------- reading in batches


def _batches(flows: Iterable[Flow], size: int) -> Iterator[list[Flow]]:
    batch: list[Flow] = []
    for f in flows:
        batch.append(f)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _records_as_flows(p: str, records: Iterable[dict]) -> Iterator[Flow]:
    for n, rec in enumerate(records, 1):
        try:
            yield record_to_flow(rec)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise CaptureError(f"{p}: record {n}: {e}") from None


def _sqlite_records(p: str) -> Iterator[dict]:
    try:
        # read-only, so opening a database another process is writing never changes it
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(p))}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise CaptureError(f"{p}: cannot open the database ({e})") from None
    try:
        try:
            cur = conn.execute("SELECT record FROM flows ORDER BY id")
        except sqlite3.Error as e:
            raise CaptureError(f"{p}: not a database written by --db ({e})") from None
        n = 0
        while True:
            try:
                rows = cur.fetchmany(BATCH)
            except sqlite3.Error as e:
                raise CaptureError(f"{p}: {e}") from None
            if not rows:
                return
            for (text,) in rows:
                n += 1
                try:
                    rec = json.loads(text)
                except (ValueError, TypeError):
                    raise CaptureError(f"{p}: row {n}: the record is not JSON") from None
                yield rec
    finally:
        conn.close()


def _lossless(p: str) -> Iterator[Flow]:
    from proxycore.flows.serialize import iter_flows

    try:
        yield from iter_flows(p)
    except OSError as e:
        raise CaptureError(f"cannot read {p}: {e.strerror or e}") from None
    except ValueError as e:
        raise CaptureError(" ".join(str(e).split())) from None


def iter_capture(path: str | os.PathLike[str], batch: int = BATCH) -> Iterator[list[Flow]]:
    """The flows of a capture file, `batch` at a time, in file order. Blocking: run it in a worker
    thread. Raises CaptureError (before or between batches) for a file it cannot read."""
    p = str(path)
    kind = detect_capture(p)
    if kind == "flows":
        flows: Iterable[Flow] = _lossless(p)
    elif kind == "sqlite":
        flows = _records_as_flows(p, _sqlite_records(p))
    else:
        from proxycore.capture.convert import read_records

        def records() -> Iterator[dict]:
            try:
                yield from read_records(p)
            except ValueError as e:
                raise CaptureError(" ".join(str(e).split())) from None

        flows = _records_as_flows(p, records())
    try:
        yield from _batches(flows, batch)
    except CaptureError:
        raise
    except (OSError, ValueError, RecursionError, MemoryError) as e:
        raise CaptureError(f"{p}: cannot be read ({type(e).__name__}: {e})") from None


def read_capture(path: str | os.PathLike[str]) -> list[Flow]:
    """Every flow of a capture file (tests, scripts); ids as in the file."""
    return [f for b in iter_capture(path) for f in b]


# --------------------------------------------------------------------------- placing loaded flows


class IdAllocator:
    """Gives loaded flows ids unique in this process, keeping the file's id whenever no flow of
    this process has had it (so a flow file opened at start-up keeps its ids, and `#12` still
    names the same flow). Use one per load, on the event loop's thread, where flows get ids.

    Kept: ids from the first id not yet handed out when the load began, not seen earlier in this
    load, and not handed out meanwhile to the proxy's new flows (the ranges between batches are
    recorded). Anything else gets a fresh id."""

    def __init__(self) -> None:
        self._floor = next_id()
        self._mark = self._floor  # the counter after our last batch
        # [start, end) ranges handed out by others between batches, in increasing order
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._seen: set[int] = set()

    def place(self, flows: list[Flow]) -> None:
        now = next_id()
        if now > self._mark:
            self._starts.append(self._mark)
            self._ends.append(now)
        top = 0
        fresh = []
        for f in flows:
            fid = f.id
            if fid >= self._floor and fid not in self._seen and not self._taken(fid):
                self._seen.add(fid)
                top = max(top, fid)
            else:
                f.id = 0
                fresh.append(f)
        if top:
            reserve_ids(top)  # the proxy's next flows come after the kept ids
        for f in fresh:
            f.ensure_id()
            self._seen.add(f.id)
        self._mark = next_id()

    def _taken(self, fid: int) -> bool:
        i = bisect_right(self._starts, fid) - 1
        return i >= 0 and fid < self._ends[i]


__all__ = ["BATCH", "KIND_NAMES", "CaptureError", "IdAllocator", "detect_capture", "iter_capture",
           "read_capture", "record_to_flow"]
