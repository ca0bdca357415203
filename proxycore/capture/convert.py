"""Read captures in any of our formats and convert between them (``omniproxy-tui export``).

``read_records`` detects the format from the content, not the file name:
- NDJSON / IR: one JSON object per line (blank lines skipped). An unterminated, unparseable last
  line — a write cut short by a crash — is skipped; any other bad line is an error with its number.
- JSON array: ``[ {...}, ... ]``; a missing closing ``]`` (the writer was killed) is tolerated.
- HAR: an object with ``log.entries`` (ours or a browser's), through ``har.har_to_records``.

A UTF-8 byte-order mark at the start is accepted (Fiddler writes one).

Errors are one-line ``ValueError`` messages naming the file (and the line for NDJSON, the entry
and field for HAR).
"""

from __future__ import annotations

import codecs
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from proxycore import __version__
from proxycore.capture.har import (
    dumps_har,
    har_to_records,
    is_tcp_record,
    record_to_har_entry,
    records_to_har,
    write_bytes_atomic,
)
from proxycore.capture.sinks import FORMATS, encode_record


def _open_error(path: str, e: OSError) -> ValueError:
    return ValueError(f"cannot read {path}: {e.strerror or e}")


def detect_format(path: str | os.PathLike[str]) -> str:
    """"ndjson", "json" or "har", from the first bytes of the file."""
    p = str(path)
    try:
        with open(p, "rb") as f:
            head = f.read(65536)
            # a UTF-8 byte-order mark (Fiddler writes one; mitmproxy and browsers accept it)
            first = head.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
            if first == b"[":
                return "json"
            if first != b"{":
                if not first:
                    return "ndjson"  # empty file: zero records
                raise ValueError(f"{p}: not a capture file (expected NDJSON, a JSON array or HAR)")
            f.seek(0)
            line = f.readline()
    except OSError as e:
        raise _open_error(p, e) from None
    try:
        obj = json.loads(line)
    except ValueError:
        return "har"  # a multi-line object: only HAR is written that way
    return "har" if isinstance(obj, dict) and "log" in obj else "ndjson"


def read_records(path: str | os.PathLike[str]) -> Iterator[dict]:
    """Yield IR records from an NDJSON/IR, JSON-array or HAR file."""
    p = str(path)
    fmt = detect_format(p)
    if fmt == "ndjson":
        yield from _read_ndjson(p)
    elif fmt == "json":
        yield from _read_json_array(p)
    else:
        yield from _read_har(p)


def _read_ndjson(p: str) -> Iterator[dict]:
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed by the with below, generator-friendly
    except OSError as e:
        raise _open_error(p, e) from None
    with f:
        count = 0
        cut_short: str | None = None
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except RecursionError:
                raise ValueError(f"{p}: line {n}: JSON nested too deeply") from None
            except ValueError as e:  # JSONDecodeError, or UnicodeDecodeError for non-UTF-8 bytes
                msg = f"{p}: line {n}: invalid JSON ({getattr(e, 'msg', None) or e})"
                if raw.endswith(b"\n"):
                    raise ValueError(msg) from None
                cut_short = msg  # unterminated last line: a write cut short by a crash
                continue
            if not isinstance(rec, dict):
                raise ValueError(f"{p}: line {n}: expected a JSON object, got {type(rec).__name__}")
            count += 1
            yield rec
        if cut_short and not count:
            raise ValueError(cut_short)  # nothing valid at all: garbage, not a cut-short capture


def _load_json(p: str) -> object:
    try:
        text = Path(p).read_text(encoding="utf-8-sig")  # a BOM, if any, is dropped
    except OSError as e:
        raise _open_error(p, e) from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{p}: JSON nested too deeply") from None
    except ValueError as e:
        first_error = e
    stripped = text.rstrip()
    if stripped.startswith("["):
        # A JSON sink killed before close: no closing bracket (maybe a dangling comma).
        try:
            return json.loads(stripped.rstrip(",") + "\n]")
        except ValueError:
            pass
    err = first_error
    if isinstance(err, json.JSONDecodeError):
        raise ValueError(f"{p}: line {err.lineno}: invalid JSON ({err.msg})") from None
    raise ValueError(f"{p}: invalid JSON ({err})") from None


def _read_json_array(p: str) -> Iterator[dict]:
    data = _load_json(p)
    if not isinstance(data, list):
        raise ValueError(f"{p}: expected a JSON array of records")
    for i, rec in enumerate(data, 1):
        if not isinstance(rec, dict):
            raise ValueError(f"{p}: item {i}: expected a JSON object, got {type(rec).__name__}")
        yield rec


def _read_har(p: str) -> Iterator[dict]:
    data = _load_json(p)
    try:
        yield from har_to_records(data)  # type: ignore[arg-type]
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


def _har_doc(records: Iterable[dict], creator_version: str) -> dict:
    """The HAR document; a hand-edited record of the wrong shape (a request that is not an
    object, headers that are not a map) is a one-line error naming it, not a traceback."""
    entries = []
    for i, rec in enumerate(records, 1):
        if isinstance(rec, dict) and is_tcp_record(rec):
            continue  # HAR has no TCP flows (as mitmproxy's HAR export)
        try:
            entries.append(record_to_har_entry(rec))
        except (AttributeError, TypeError, ValueError, KeyError) as e:
            raise ValueError(f"record {i}: cannot be written as HAR ({type(e).__name__}: {e})") from None
    doc = records_to_har((), creator_version)
    doc["log"]["entries"] = entries
    return doc


def render(records: Iterable[dict], fmt: str, creator_version: str = __version__) -> Iterator[bytes]:
    """The bytes of a capture file in `fmt`, in chunks (the same encoding the sinks use)."""
    if fmt in ("ndjson", "ir"):
        for rec in records:
            yield encode_record(rec) + b"\n"
    elif fmt == "json":
        yield b"[\n"
        first = True
        for rec in records:
            yield (b"" if first else b",\n") + encode_record(rec)
            first = False
        yield b"\n]\n"
    elif fmt == "har":
        yield dumps_har(_har_doc(records, creator_version))
    else:
        raise ValueError(f"unknown format '{fmt}' (use one of: {', '.join(FORMATS)})")


def convert(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str] | None, fmt: str) -> int:
    """Convert a capture file; `out_path` None or "-" writes to stdout. Returns the record count.

    The output file is replaced atomically, so converting a file onto itself is safe.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}' (use one of: {', '.join(FORMATS)})")
    records = list(read_records(in_path))  # read fully first: errors surface before any output
    try:
        data = b"".join(render(records, fmt))
    except ValueError as e:
        raise ValueError(f"{in_path}: {e}") from None
    if out_path is None or str(out_path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return len(records)
    try:
        write_bytes_atomic(out_path, data)
    except OSError as e:
        raise ValueError(f"cannot write {out_path}: {e.strerror or e}") from None
    return len(records)
