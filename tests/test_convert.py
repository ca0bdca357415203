"""Reading captures in every format and converting between them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from proxycore.capture.convert import convert, detect_format, read_records
from proxycore.capture.har import records_to_har

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())


def records() -> list[dict]:
    return [
        {"id": 1,
         "request": {"method": "GET", "url": "https://a.test/x?k=1&k=2", "host": "a.test", "path": "/x",
                     "scheme": "https", "httpVersion": "HTTP/1.1",
                     "headers": {"host": "a.test", "accept": ["a/b", "c/d"]}, "query": {"k": ["1", "2"]}},
         "response": {"status": 200, "statusText": "200 OK", "httpVersion": "HTTP/1.1",
                      "headers": {"content-type": "application/json"}, "body": {"ok": True, "n": "ü"},
                      "size": 20, "contentType": "application/json"},
         "startTime": "2026-01-02T10:00:00.000001+01:00", "endTime": "2026-01-02T10:00:00.010001+01:00",
         "durationMs": 10.0,
         "timings": {"connectMs": 1.0, "tlsMs": 2.0, "sendMs": 0.5, "waitMs": 5.0, "receiveMs": 1.5}},
        {"id": 2,
         "request": {"method": "POST", "url": "http://b.test/form", "host": "b.test", "path": "/form",
                     "scheme": "http", "httpVersion": "HTTP/1.1",
                     "headers": {"host": "b.test", "content-type": "text/plain"}, "body": "hello world",
                     "bodySize": 11, "contentType": "text/plain"},
         "response": {"status": 302, "statusText": "302 Found", "httpVersion": "HTTP/1.1",
                      "headers": {"location": "/next"}},
         "startTime": "2026-01-02T10:00:01.000001+01:00", "endTime": "2026-01-02T10:00:01.003001+01:00",
         "durationMs": 3.0,
         "timings": {"connectMs": -1, "tlsMs": -1, "sendMs": 1.0, "waitMs": 1.0, "receiveMs": 1.0}},
        {"id": 3,
         "request": {"method": "GET", "url": "http://c.test:81/", "host": "c.test:81", "path": "/",
                     "scheme": "http", "httpVersion": "HTTP/1.1", "headers": {"host": "c.test:81"}},
         "startTime": "2026-01-02T10:00:02.000001+01:00", "endTime": "2026-01-02T10:00:02.001001+01:00",
         "durationMs": 1.0, "error": "connection refused",
         "timings": {"connectMs": -1, "tlsMs": -1, "sendMs": -1, "waitMs": 1.0, "receiveMs": -1}},
    ]


def write_ndjson(path: Path, recs: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")


def test_ndjson_har_ndjson_round_trip(tmp_path: Path) -> None:
    src, har, back = tmp_path / "in.ndjson", tmp_path / "out.har", tmp_path / "back.ndjson"
    write_ndjson(src, records())
    assert convert(src, har, "har") == 3
    doc = json.loads(har.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert [e["request"]["url"] for e in doc["log"]["entries"]] == [r["request"]["url"] for r in records()]
    assert convert(har, back, "ndjson") == 3
    got = list(read_records(back))
    # everything the IR holds survives the trip through HAR
    assert got == records()
    assert sorted(os.listdir(tmp_path)) == ["back.ndjson", "in.ndjson", "out.har"]  # no temp files


@pytest.mark.parametrize("fmt", ["ndjson", "ir", "json", "har"])
def test_every_format_written_and_read_back(tmp_path: Path, fmt: str) -> None:
    src, out = tmp_path / "in.ndjson", tmp_path / f"out.{fmt}"
    write_ndjson(src, records())
    assert convert(src, out, fmt) == 3
    assert detect_format(out) == ("ndjson" if fmt == "ir" else fmt)
    assert list(read_records(out)) == records()
    if fmt == "json":
        assert json.loads(out.read_text()) == records()
    if fmt == "har":
        jsonschema.validate(json.loads(out.read_text()), SCHEMA)


def test_compact_har_and_browser_style_har(tmp_path: Path) -> None:
    p = tmp_path / "compact.har"
    p.write_text(json.dumps(records_to_har(records(), "1")))  # one line
    assert detect_format(p) == "har"
    assert [r["id"] for r in read_records(p)] == [1, 2, 3]
    # a minimal third-party HAR: no underscore fields, no timings details
    browser = {"log": {"version": "1.2", "creator": {"name": "x", "version": "1"}, "entries": [{
        "startedDateTime": "2026-01-02T10:00:00.000Z", "time": 12.5,
        "request": {"method": "GET", "url": "https://site.test/p?q=1", "httpVersion": "h2", "cookies": [],
                    "headers": [{"name": "User-Agent", "value": "b"}], "queryString": [{"name": "q", "value": "1"}],
                    "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "", "httpVersion": "h2", "cookies": [], "headers": [],
                     "content": {"size": 2, "mimeType": "text/plain", "text": "hi"}, "redirectURL": "",
                     "headersSize": -1, "bodySize": 2},
        "cache": {}, "timings": {"send": 0, "wait": 12.5, "receive": 0}}]}}
    p2 = tmp_path / "browser.har"
    p2.write_text(json.dumps(browser, indent=2))
    (r,) = list(read_records(p2))
    assert r["request"]["host"] == "site.test" and r["request"]["path"] == "/p"
    assert r["request"]["headers"] == {"user-agent": "b"} and r["request"]["query"] == {"q": "1"}
    assert r["response"]["body"] == "hi" and r["response"]["statusText"] == "200"
    assert r["endTime"] == "2026-01-02T10:00:00.012500+00:00"


@pytest.mark.parametrize("tail", ["", ",", ",\n", "\n"])
def test_json_array_without_closing_bracket(tmp_path: Path, tail: str) -> None:
    """What a JSON sink killed with -9 leaves behind."""
    p = tmp_path / "cut.json"
    p.write_text("[\n" + ",\n".join(json.dumps(r) for r in records()) + tail)
    assert [r["id"] for r in read_records(p)] == [1, 2, 3]
    p.write_text("[\n")
    assert list(read_records(p)) == []


def test_ndjson_bad_line_names_path_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.ndjson"
    p.write_text(json.dumps(records()[0]) + "\n\n" + '{"id": 2, oops}\n' + json.dumps(records()[1]) + "\n")
    with pytest.raises(ValueError) as exc:
        list(read_records(p))
    msg = str(exc.value)
    assert str(p) in msg and "line 3" in msg and "\n" not in msg
    p.write_text(json.dumps(records()[0]) + "\n[1, 2]\n")
    with pytest.raises(ValueError, match="line 2: expected a JSON object"):
        list(read_records(p))
    p.write_bytes(json.dumps(records()[0]).encode() + b"\n{\"a\": \"\xff\xfe\"}\n")
    with pytest.raises(ValueError, match="line 2"):
        list(read_records(p))


def test_ndjson_cut_short_last_line_is_skipped(tmp_path: Path) -> None:
    p = tmp_path / "crash.ndjson"
    p.write_text(json.dumps(records()[0]) + "\n" + json.dumps(records()[1])[:40])
    assert [r["id"] for r in read_records(p)] == [1]
    p.write_text('{"only": garbage')
    with pytest.raises(ValueError, match="line 1"):
        list(read_records(p))


@pytest.mark.parametrize("content,message", [
    (b"\x00\x01\x02binary", "not a capture file"),
    (b"hello world\n", "not a capture file"),
    (b'{\n  "not": "har"\n}\n', "not a HAR document"),
    (b'[\n{"id": 1},\n{"id": 2, \n', "invalid JSON"),
    (b"[1, 2]", "item 1: expected a JSON object"),
])
def test_garbage_files_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "garbage.bin"
    p.write_bytes(content)
    with pytest.raises(ValueError) as exc:
        list(read_records(p))
    assert message in str(exc.value) and str(p) in str(exc.value) and "\n" not in str(exc.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read .*nope.ndjson"):
        list(read_records(tmp_path / "nope.ndjson"))
    (tmp_path / "empty.ndjson").write_text("")
    assert list(read_records(tmp_path / "empty.ndjson")) == []
    assert convert(tmp_path / "empty.ndjson", tmp_path / "e.json", "json") == 0
    assert json.loads((tmp_path / "e.json").read_text()) == []
    assert convert(tmp_path / "empty.ndjson", tmp_path / "e.har", "har") == 0
    jsonschema.validate(json.loads((tmp_path / "e.har").read_text()), SCHEMA)


def test_convert_in_place_and_errors(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    p = tmp_path / "cap.ndjson"
    write_ndjson(p, records())
    assert convert(p, p, "json") == 3  # onto itself: read fully, then replaced atomically
    assert json.loads(p.read_text()) == records()
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        convert(p, tmp_path / "x.xml", "xml")
    with pytest.raises(ValueError, match="cannot write"):
        convert(p, tmp_path / "no" / "dir" / "x.ndjson", "ndjson")
    assert convert(p, "-", "ndjson") == 3
    out = capsysbinary.readouterr().out
    assert [json.loads(line) for line in out.splitlines()] == records()
