"""Captures that are faithful: HAR text is the body as it went over the wire, binary bodies go into
HAR as base64, HAR files from other tools import (BOM, [name, value] headers) and survive a round
trip through NDJSON, and malformed HAR is a one-line error naming the entry.

The CLI tests run the real `omniproxy-tui` (export, and --no-ui capture) in subprocesses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
from pathlib import Path

import pytest
from origin import pattern_bytes
from test_cli import LISTENING, Running, clean_env, cli, curl

from proxycore.capture import record
from proxycore.capture.har import har_to_records, records_to_har
from proxycore.flows.flow import Flow, Headers, Request, Response

DATA = Path(__file__).parent / "data" / "har"
TOOLS = ["chrome", "firefox", "safari", "charles", "fiddler", "insomnia"]


def _flow(ctype: str, body: bytes) -> Flow:
    f = Flow(Request("POST", "http", "example.com", 80, "/x",
                     headers=Headers.from_pairs([("Host", "example.com"), ("Content-Type", ctype)]), body=body))
    f.response = Response(200, "OK", headers=Headers.from_pairs([("Content-Type", ctype)]), body=body)
    f.timings.end = f.timings.start + 0.01
    return f


def _har_texts(rec: dict) -> tuple[str, str]:
    e = records_to_har([rec], "t")["log"]["entries"][0]
    return e["request"]["postData"]["text"], e["response"]["content"]["text"]


LOSSY = [
    ("application/json", '{"pi": 3.14159265358979323846}'),             # a float64 would round it
    ("application/json", '{"id": 1, "id": 2}'),                          # a dict keeps one
    ("application/json", '{"big": 1e400}'),                              # inf, written as null before
    ("application/json", '{"n": 9007199254740993}'),                     # beyond I-JSON's safe integers
    ("application/json; charset=utf-8", '[1, 2,\n 3]'),                  # spacing
    ("application/json", '{"u": "Zo\\u00eb"}'),                          # an escape
    ("text/plain", "[INFO] started"),                                    # not JSON at all
    ("text/plain", "[1, 2,   3]"),                                       # JSON-looking text/plain
    ("application/json", '"just a string"'),                             # a bare JSON string
    ("application/json", "null"),
]


@pytest.mark.parametrize(("ctype", "text"), LOSSY)
def test_har_text_is_the_body_byte_for_byte(ctype: str, text: str) -> None:
    rec = record.flow_to_record(_flow(ctype, text.encode()), record.RecordOptions())
    assert _har_texts(rec) == (text, text)
    # and again after the record went through NDJSON and back, and HAR -> records -> HAR
    again = json.loads(record.record_to_json_line(rec))
    assert _har_texts(again) == (text, text)
    back = har_to_records(json.loads(json.dumps(records_to_har([again], "t"))))[0]
    assert _har_texts(back) == (text, text)


def test_record_keeps_parsed_json_only_where_it_loses_nothing() -> None:
    ro = record.RecordOptions()
    compact = record.flow_to_record(_flow("application/json", b'{"a":[1,2.5,"x"]}'), ro)["response"]
    assert compact["body"] == {"a": [1, 2.5, "x"]} and "bodyText" not in compact
    pretty = record.flow_to_record(_flow("application/json", b'{\n  "a": 1.50\n}'), ro)["response"]
    assert pretty["body"] == {"a": 1.5} and pretty["bodyText"] == '{\n  "a": 1.50\n}'
    lossy = record.flow_to_record(_flow("application/json", b'{"a": 1, "a": 3.14159265358979323846}'), ro)
    assert lossy["response"]["body"] == '{"a": 1, "a": 3.14159265358979323846}'
    assert "bodyText" not in lossy["response"]
    plain = record.flow_to_record(_flow("text/plain", b"[1,2]"), ro)["response"]
    assert plain["body"] == "[1,2]"  # a non-JSON content type is never parsed
    untyped = Flow(Request("GET", "http", "e.com", 80, "/"))
    untyped.response = Response(200, "OK", headers=Headers.from_pairs([]), body=b'{"k":true}')
    assert record.flow_to_record(untyped, ro)["response"]["body"] == {"k": True}  # no type: sniffed


def test_binary_in_har_is_base64_and_skip_binary_only_affects_records() -> None:
    data = bytes(range(256)) * 3
    f = _flow("application/octet-stream", data)
    rec = record.flow_to_record(f, record.RecordOptions(skip_binary=True))
    assert rec["response"]["body"] == record.BINARY_PLACEHOLDER
    from proxycore.options import Options

    har_rec = record.flow_to_record(f, record.RecordOptions.from_options(Options(), for_har=True))
    content = records_to_har([har_rec], "t")["log"]["entries"][0]["response"]["content"]
    assert content["encoding"] == "base64" and base64.b64decode(content["text"]) == data


@pytest.mark.parametrize("no_redact", [False, True])
def test_export_har_commands_sanitized_and_with_sensitive_data(tmp_path: Path, no_redact: bool) -> None:
    from proxycore.control.commands import CommandContext, registry
    from proxycore.flows.view import FlowView
    from proxycore.options import Options

    f = Flow(Request("GET", "http", "example.com", 80, "/img",
                     headers=Headers.from_pairs([("Host", "example.com"), ("Cookie", "sid=s3cret")])))
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    f.response = Response(200, "OK", headers=Headers.from_pairs([("Content-Type", "image/png")]), body=png)
    f.timings.end = f.timings.start + 0.01
    view = FlowView()
    view.add_many([f])
    ctx = CommandContext(view=view, cwd=tmp_path, options=Options(redact=not no_redact, skip_binary=True))

    def export(name: str, path: str) -> tuple[dict, str]:
        msg = registry.execute(ctx, f"{name} {path}").fn()
        return json.loads((tmp_path / path).read_text())["log"]["entries"][0], msg

    entry, msg = export("export.har", "s.har")
    assert msg == f"wrote 1 flow to {tmp_path / 's.har'} (HAR, sanitized: secret headers masked)"
    assert {"name": "cookie", "value": "[REDACTED]"} in entry["request"]["headers"]  # even with --no-redact
    content = entry["response"]["content"]
    assert content["encoding"] == "base64" and base64.b64decode(content["text"]) == png  # despite skip-binary
    entry, msg = export("export.har.sensitive", "w.har")
    assert msg == f"wrote 1 flow to {tmp_path / 'w.har'} (HAR, with sensitive data)"
    assert {"name": "cookie", "value": "sid=s3cret"} in entry["request"]["headers"]


# ------------------------------------------------------------------ import via the real CLI


def _export(tmp: Path, src: Path, out: Path, fmt: str) -> subprocess.CompletedProcess[str]:
    return cli(tmp, "export", str(src), "-f", fmt, "-o", str(out))


def _essentials(har: dict) -> list[tuple]:
    """What must survive a round trip: method, URL, status, headers and body text, exactly."""
    out = []
    for e in har["log"]["entries"]:
        req, resp = e["request"], e["response"]
        content = resp.get("content") or {}
        out.append((
            req["method"], req["url"], resp.get("status"),
            [(h["name"], h["value"]) for h in req.get("headers") or []],
            [(h["name"], h["value"]) for h in resp.get("headers") or []],
            (req.get("postData") or {}).get("text") or "",
            content.get("text") or "", content.get("encoding"),
        ))
    return out


@pytest.mark.parametrize("tool", TOOLS)
def test_har_round_trip_through_ndjson_keeps_every_entry(tool: str, tmp_path: Path) -> None:
    src = DATA / f"{tool}.har"
    nd, har = tmp_path / "x.ndjson", tmp_path / "back.har"
    r = _export(tmp_path, src, nd, "ndjson")
    assert r.returncode == 0, r.stderr
    r = _export(tmp_path, nd, har, "har")
    assert r.returncode == 0, r.stderr
    original = json.loads(src.read_text(encoding="utf-8-sig"))
    assert _essentials(json.loads(har.read_text())) == _essentials(original)
    # the NDJSON in between still has JSON bodies parsed where that loses nothing
    recs = [json.loads(line) for line in nd.read_text().splitlines()]
    assert len(recs) == len(original["log"]["entries"])


def test_har_import_accepts_bom_and_pair_headers(tmp_path: Path) -> None:
    doc = {"log": {"entries": [{"request": {"method": "GET", "url": "http://a.test/", "headers": [["Host", "a.test"],
                                                                                               ["X-N", 3]]},
                                "response": {"status": 200, "headers": [["Content-Type", "text/plain"]],
                                             "content": {"mimeType": "text/plain", "text": "[ok]"}}}]}}
    src = tmp_path / "bom.har"
    src.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())
    out = tmp_path / "o.ndjson"
    r = _export(tmp_path, src, out, "ndjson")
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text())
    assert rec["request"]["headers"] == {"host": "a.test", "x-n": "3"}
    assert rec["response"]["body"] == "[ok]"


def _entry(**over: object) -> dict:
    e: dict = {"startedDateTime": "2026-01-01T00:00:00Z", "time": 1,
               "request": {"method": "GET", "url": "http://a.test/", "headers": []},
               "response": {"status": 200, "headers": [], "content": {"mimeType": "text/plain", "text": "x"}}}
    e.update(over)
    return e


MALFORMED = [
    ({"log": {"entries": [_entry(), _entry(request={"method": "GET"})]}}, "entries[1].request: missing url"),
    ({"log": {"entries": [_entry(request={"url": "http://a/"})]}}, "entries[0].request: missing method"),
    ({"log": {"entries": [_entry(), "nope"]}}, "entries[1]: expected an object, got a string"),
    ({"log": {"entries": [_entry(request=None)]}}, "entries[0].request: missing"),
    ({"log": {"entries": [_entry(request={"method": "GET", "url": "http://a/", "headers": {"a": "b"}})]}},
     "entries[0].request.headers: expected a list, got an object"),
    ({"log": {"entries": [_entry(request={"method": "GET", "url": "http://a/", "headers": [["a"]]})]}},
     "entries[0].request.headers[0]: expected {name, value} or [name, value], got a list"),
    ({"log": {"entries": [_entry(response={"status": "abc"})]}}, "entries[0].response.status: expected a number"),
    ({"log": {"entries": [_entry(response={"status": 200, "content": "x"})]}},
     "entries[0].response.content: expected an object, got a string"),
    ({"log": {"entries": [_entry(response={"status": 200, "content": {"text": ["x"]}})]}},
     "entries[0].response.content.text: expected a string, got a list"),
    ({"log": {"entries": [_entry(time="soon")]}}, "entries[0].time: expected a number"),
    ({"log": {"entries": [_entry(timings=[1, 2])]}}, "entries[0].timings: expected an object, got a list"),
    ({"log": {"entries": [_entry(request={"method": "GET", "url": "http://a/", "postData": "x=1"})]}},
     "entries[0].request.postData: expected an object, got a string"),
    ({"log": {"entries": {}}}, "not a HAR document"),
]


@pytest.mark.parametrize(("doc", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_har_is_one_line_naming_the_entry(doc: dict, message: str, tmp_path: Path) -> None:
    src = tmp_path / "bad.har"
    src.write_text(json.dumps(doc))
    r = _export(tmp_path, src, tmp_path / "o.ndjson", "ndjson")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert message in lines[0] and str(src) in lines[0], lines[0]
    assert not (tmp_path / "o.ndjson").exists()


def test_bad_ndjson_record_to_har_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.ndjson"
    src.write_text('{"request": {"method": "GET", "url": "http://a/"}}\n{"request": "GET /"}\n')
    r = _export(tmp_path, src, tmp_path / "o.har", "har")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "record 2: cannot be written as HAR" in r.stderr


# ------------------------------------------------------------------ headless capture, real CLI


async def test_headless_har_capture_keeps_binary_bodies_within_the_cap(origin, tmp_path: Path) -> None:
    """--no-ui trims binary bodies to what detection needs (records hold a placeholder); a HAR
    capture needs the bytes: base64, up to --max-body-size. NDJSON keeps the placeholder."""
    async def capture(out: Path, *extra: str) -> None:
        proxy = Running(["--no-ui", "-p", "0", "--no-mitm", "-o", str(out), *extra], clean_env(tmp_path), tmp_path)
        try:
            m = LISTENING.match(proxy.wait_line("err", LISTENING.match))
            assert m, proxy.seen
            for n in (3000, 70000):
                r = await asyncio.to_thread(curl, int(m.group(1)), origin.url(f"/bytes?n={n}"), "-o", "/dev/null")
                assert r.returncode == 0, r.stderr
            proxy.proc.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(proxy.proc.wait, 20) == 0
        finally:
            if proxy.proc.poll() is None:
                proxy.proc.kill()

    har_path = tmp_path / "cap.har"
    await capture(har_path, "--max-body-size", "65536")
    entries = json.loads(har_path.read_text())["log"]["entries"]
    contents = {e["request"]["url"].rsplit("=", 1)[1]: e["response"]["content"] for e in entries}
    assert contents["3000"]["encoding"] == "base64"
    assert base64.b64decode(contents["3000"]["text"]) == pattern_bytes(3000)
    assert base64.b64decode(contents["70000"]["text"]) == pattern_bytes(65536)  # the cap
    assert contents["70000"]["_bodyTruncated"] is True

    nd_path = tmp_path / "cap.ndjson"
    await capture(nd_path)
    recs = [json.loads(line) for line in nd_path.read_text().splitlines()]
    assert [r["response"]["body"] for r in recs] == [record.BINARY_PLACEHOLDER] * 2

