"""HAR 1.2 from IR records: schema-valid, faithful, reversible, written atomically."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import jsonschema
import pytest

from proxycore.capture import record
from proxycore.capture.har import (
    har_to_records,
    reason_phrase,
    record_to_har_entry,
    records_to_har,
    write_har_atomic,
)
from proxycore.flows.flow import Flow, Headers, Request, Response

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def validate(har: dict) -> None:
    errors = sorted(VALIDATOR.iter_errors(har), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


T = {"connectMs": 1.5, "tlsMs": 2.25, "sendMs": 0.5, "waitMs": 10.0, "receiveMs": 3.0}

GET_JSON = {
    "id": 1,
    "request": {
        "method": "GET", "url": "https://api.example.com/users?limit=10&tag=a&tag=b",
        "host": "api.example.com", "path": "/users", "scheme": "https", "httpVersion": "HTTP/1.1",
        "headers": {"host": "api.example.com", "accept": ["application/json", "text/plain"],
                    "cookie": "sid=abc; theme=dark"},
        "query": {"limit": "10", "tag": ["a", "b"]},
    },
    "response": {
        "status": 200, "statusText": "200 OK", "httpVersion": "HTTP/1.1",
        "headers": {"content-type": "application/json", "set-cookie": ["a=1; Path=/; HttpOnly", "b=2"],
                    "x-dup": ["1", "2"]},
        "body": {"users": [{"id": 1, "name": "Zoë"}]}, "size": 36, "contentType": "application/json",
    },
    "startTime": "2026-01-02T10:00:00.123456+01:00", "endTime": "2026-01-02T10:00:00.140706+01:00",
    "durationMs": 17.25, "clientAddress": "127.0.0.1:50000", "serverAddress": "10.0.0.5:443",
    "tls": {"sni": "api.example.com", "alpn": "http/1.1", "version": "TLSv1.3"},
    "timings": T,
}

POST_JSON = {
    "id": 2,
    "request": {
        "method": "POST", "url": "http://example.com/api/items", "host": "example.com",
        "path": "/api/items", "scheme": "http",
        "headers": {"content-type": "application/json", "authorization": "[REDACTED]", "cookie": "[REDACTED]"},
        "body": {"name": "widget", "qty": 3}, "bodySize": 26, "contentType": "application/json",
    },
    "response": {"status": 201, "statusText": "201 Created", "headers": {"location": "/api/items/7"},
                 "body": "", "size": 0},
    "startTime": "2026-01-02T09:00:00.000001Z", "durationMs": 5.0,
    "timings": {"connectMs": -1, "tlsMs": -1, "sendMs": -1, "waitMs": -1, "receiveMs": -1},
}

BINARY = {
    "id": 3,
    "request": {"method": "GET", "url": "http://img.test/a.png", "host": "img.test", "path": "/a.png",
                "scheme": "http"},
    "response": {"status": 200, "statusText": "200 OK", "headers": {"content-type": "image/png"},
                 "body": "[binary content]", "isBinary": True, "size": 1234, "contentType": "image/png"},
    "startTime": "2026-01-02T09:00:01.000000+00:00", "durationMs": 2.0,
}

BASE64 = {
    "id": 4,
    "request": {"method": "PUT", "url": "http://x.test/blob", "host": "x.test", "path": "/blob",
                "scheme": "http", "body": "AAECAw==", "bodyEncoding": "base64", "isBinary": True,
                "bodySize": 4, "contentType": "application/octet-stream"},
    "response": {"status": 204, "statusText": "204 No Content", "body": "AAEC", "bodyEncoding": "base64",
                 "isBinary": True, "size": 3, "contentType": "application/octet-stream"},
    "startTime": "2026-01-02T09:00:02.000000+00:00",
}

ERROR = {
    "id": 5,
    "request": {"method": "GET", "url": "http://down.test:81/", "host": "down.test:81", "path": "/",
                "scheme": "http"},
    "startTime": "2026-01-02T09:00:03.000000-05:00", "endTime": "2026-01-02T09:00:03.001000-05:00",
    "durationMs": 1.0, "error": "connection refused by down.test:81",
    "timings": {"connectMs": -1, "tlsMs": -1, "sendMs": -1, "waitMs": -1, "receiveMs": -1},
}

MINIMAL = {"request": {"method": "GET", "url": "http://m.test/", "host": "m.test", "path": "/", "scheme": "http"},
           "response": {"status": 200}}

ALL = [GET_JSON, POST_JSON, BINARY, BASE64, ERROR, MINIMAL]


def test_all_records_validate_against_har_schema() -> None:
    har = records_to_har(ALL, "9.9.9")
    validate(har)
    assert har["log"]["version"] == "1.2"
    assert har["log"]["creator"] == {"name": "OmniProxy TUI", "version": "9.9.9"}
    assert len(har["log"]["entries"]) == len(ALL)
    # and it survives a JSON round trip (no non-JSON values)
    validate(json.loads(json.dumps(har)))


def test_schema_rejects_what_har_forbids() -> None:
    """The schema must be able to fail: a missing required field, a negative wait, a stray key."""
    entry = record_to_har_entry(GET_JSON)
    bad = [copy.deepcopy(entry) for _ in range(4)]
    del bad[0]["response"]["content"]["mimeType"]
    bad[1]["timings"]["wait"] = -1
    bad[2]["request"]["bogus"] = 1
    bad[3]["startedDateTime"] = "yesterday"
    for e in bad:
        har = {"log": {"version": "1.2", "creator": {"name": "x", "version": "1"}, "entries": [e]}}
        assert list(VALIDATOR.iter_errors(har)), e


def test_get_entry_fields() -> None:
    e = record_to_har_entry(GET_JSON)
    req, resp = e["request"], e["response"]
    assert e["startedDateTime"] == GET_JSON["startTime"]
    assert req["method"] == "GET" and req["url"] == GET_JSON["request"]["url"]
    assert req["headersSize"] == -1 and req["bodySize"] == 0 and "postData" not in req
    # repeated headers: one entry per value, in order
    assert [h for h in req["headers"] if h["name"] == "accept"] == [
        {"name": "accept", "value": "application/json"}, {"name": "accept", "value": "text/plain"}]
    assert {"name": "x-dup", "value": "1"} in resp["headers"] and {"name": "x-dup", "value": "2"} in resp["headers"]
    assert req["queryString"] == [{"name": "limit", "value": "10"}, {"name": "tag", "value": "a"},
                                  {"name": "tag", "value": "b"}]
    assert req["cookies"] == [{"name": "sid", "value": "abc"}, {"name": "theme", "value": "dark"}]
    assert resp["cookies"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    assert resp["status"] == 200 and resp["statusText"] == "OK"
    assert json.loads(resp["content"]["text"]) == GET_JSON["response"]["body"]
    assert "Zoë" in resp["content"]["text"]  # not \u-escaped
    assert resp["content"]["mimeType"] == "application/json" and resp["content"]["size"] == 36
    assert resp["redirectURL"] == "" and resp["bodySize"] == 36
    # timings: connect includes ssl (HAR 1.2), time is the sum
    t = e["timings"]
    assert t["blocked"] == -1 and t["dns"] == -1
    assert t["ssl"] == 2.25 and t["connect"] == 3.75
    assert (t["send"], t["wait"], t["receive"]) == (0.5, 10.0, 3.0)
    assert e["time"] == pytest.approx(3.75 + 0.5 + 10.0 + 3.0)
    assert e["serverIPAddress"] == "10.0.0.5"
    assert e["_id"] == 1 and e["_tls"]["sni"] == "api.example.com"


def test_post_json_body_redacted_cookie_and_redirect() -> None:
    e = record_to_har_entry(POST_JSON)
    post = e["request"]["postData"]
    assert post["mimeType"] == "application/json"
    assert json.loads(post["text"]) == {"name": "widget", "qty": 3}
    assert e["request"]["bodySize"] == 26
    assert e["request"]["cookies"] == []  # the Cookie header was redacted
    assert {"name": "authorization", "value": "[REDACTED]"} in e["request"]["headers"]
    assert e["response"]["redirectURL"] == "/api/items/7"
    assert e["response"]["statusText"] == "Created"
    # no phase timings: wait carries the whole duration so time == durationMs
    assert e["timings"]["wait"] == 5.0 and e["time"] == 5.0


def test_binary_and_base64_bodies() -> None:
    e = record_to_har_entry(BINARY)
    c = e["response"]["content"]
    assert "text" not in c and c["size"] == 1234 and c["mimeType"] == "image/png" and c["_isBinary"]
    e = record_to_har_entry(BASE64)
    assert e["request"]["postData"] == {"mimeType": "application/octet-stream", "text": "AAECAw==",
                                        "_encoding": "base64"}
    c = e["response"]["content"]
    assert c["text"] == "AAEC" and c["encoding"] == "base64"


def test_error_flow_without_response() -> None:
    e = record_to_har_entry(ERROR)
    r = e["response"]
    assert r["status"] == 0 and r["statusText"] == "" and r["_error"] == ERROR["error"]
    assert r["content"] == {"size": 0, "mimeType": ""}
    assert e["time"] == 1.0


def test_decoded_content_size_and_compression() -> None:
    rec = copy.deepcopy(GET_JSON)
    rec["response"].update({"bodyEncoding": "gzip", "bodySize": 500, "size": 120})
    e = record_to_har_entry(rec)
    assert e["response"]["bodySize"] == 120
    assert e["response"]["content"]["size"] == 500 and e["response"]["content"]["compression"] == 380
    back = har_to_records(records_to_har([rec], "1"))[0]
    assert back["response"]["size"] == 120 and back["response"]["bodySize"] == 500


@pytest.mark.parametrize("status,text,want", [
    (200, "200 OK", "OK"), (404, "404 Not Found", "Not Found"), (200, "HTTP/1.1 200 OK", "OK"),
    (200, "OK", "OK"), (299, "299", ""), (200, None, ""),
])
def test_reason_phrase(status: int, text: str | None, want: str) -> None:
    assert reason_phrase(status, text) == want


def test_har_to_records_round_trip() -> None:
    recs = har_to_records(records_to_har(ALL, "1"))
    assert len(recs) == len(ALL)
    g = recs[0]
    assert g["id"] == 1
    assert g["request"]["method"] == "GET" and g["request"]["url"] == GET_JSON["request"]["url"]
    assert g["request"]["host"] == "api.example.com" and g["request"]["path"] == "/users"
    assert g["request"]["scheme"] == "https"
    assert g["request"]["headers"] == GET_JSON["request"]["headers"]
    assert g["request"]["query"] == GET_JSON["request"]["query"]
    assert g["response"]["status"] == 200 and g["response"]["statusText"] == "200 OK"
    assert g["response"]["headers"] == GET_JSON["response"]["headers"]
    assert g["response"]["body"] == GET_JSON["response"]["body"]
    assert g["timings"] == pytest.approx(T)
    assert g["startTime"] == GET_JSON["startTime"] and g["durationMs"] == pytest.approx(17.25)
    assert g["endTime"] == GET_JSON["endTime"]
    assert g["tls"] == GET_JSON["tls"] and g["clientAddress"] == "127.0.0.1:50000"
    p = recs[1]
    assert p["request"]["body"] == {"name": "widget", "qty": 3} and p["request"]["bodySize"] == 26
    b = recs[2]
    assert b["response"]["isBinary"] and b["response"]["body"] == "[binary content]"
    assert b["response"]["size"] == 1234
    assert recs[3]["request"]["bodyEncoding"] == "base64" and recs[3]["response"]["body"] == "AAEC"
    err = recs[4]
    assert "response" not in err and err["error"] == ERROR["error"]
    # and again: HAR -> records -> HAR is stable
    again = records_to_har(recs, "1")
    validate(again)
    assert again == records_to_har(har_to_records(again), "1")


def test_har_to_records_rejects_non_har() -> None:
    with pytest.raises(ValueError, match="not a HAR"):
        har_to_records({"entries": []})
    with pytest.raises(ValueError, match=r"entries\[0\]\.request: missing"):
        har_to_records({"log": {"entries": [{"response": {}}]}})


def test_write_har_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "cap.har"
    target.write_text("old contents")
    har = records_to_har(ALL, "1")
    write_har_atomic(target, har)
    assert json.loads(target.read_text()) == har
    assert sorted(os.listdir(tmp_path)) == ["cap.har"]
    # a failing write keeps the old file and cleans up its temp file
    bad = {"log": {"entries": [object()]}}
    with pytest.raises(TypeError):
        write_har_atomic(target, bad)
    assert json.loads(target.read_text()) == har
    assert sorted(os.listdir(tmp_path)) == ["cap.har"]


def test_write_har_atomic_unwritable_dir(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_har_atomic(tmp_path / "missing" / "x.har", records_to_har([], "1"))


def test_har_from_real_flow_records() -> None:
    """The recorder's real output (proxycore.capture.record) must give schema-valid HAR too."""
    ropts = record.RecordOptions()

    def flow(method: str, target: str, req_headers: list, body: bytes = b"") -> Flow:
        f = Flow(Request(method, "http", "example.com", 80, target, headers=Headers.from_pairs(req_headers),
                         body=body), client_addr=("127.0.0.1", 5555))
        f.timings.end = f.timings.start + 0.01
        return f

    post = flow("POST", "/api?x=1&x=2", [("Host", "example.com"), ("Content-Type", "application/json"),
                                          ("Cookie", "a=b")], b'{"k": [1, 2]}')
    post.server_addr = ("93.184.216.34", 443)
    t = post.timings
    t.connect_start, t.connect_end, t.tls_end = t.start + 0.001, t.start + 0.002, t.start + 0.004
    t.request_sent, t.first_byte = t.start + 0.005, t.start + 0.008
    post.response = Response(200, "OK", headers=Headers.from_pairs(
        [("Content-Type", "image/png"), ("Set-Cookie", "s=1"), ("Set-Cookie", "t=2")]),
        body=b"\x89PNG\r\n\x1a\n" + bytes(100))
    failed = flow("GET", "/", [("Host", "example.com")])
    failed.error = "upstream unreachable: connection refused"
    recs = [record.flow_to_record(post, ropts), record.flow_to_record(failed, ropts)]
    har = records_to_har(recs, "1")
    validate(har)
    e0, e1 = har["log"]["entries"]
    assert json.loads(e0["request"]["postData"]["text"]) == {"k": [1, 2]}
    assert e0["request"]["cookies"] == []  # redacted by default
    assert [q["value"] for q in e0["request"]["queryString"]] == ["1", "2"]
    assert e0["response"]["content"]["mimeType"] == "image/png" and "text" not in e0["response"]["content"]
    assert [h["value"] for h in e0["response"]["headers"] if h["name"] == "set-cookie"] == ["[REDACTED]"] * 2
    assert e1["response"]["status"] == 0 and "refused" in e1["response"]["_error"]
    assert e0["time"] == pytest.approx(recs[0]["durationMs"])
    # nothing the recorder wrote is lost on the way back from HAR
    assert har_to_records(json.loads(json.dumps(har))) == json.loads(json.dumps(recs))
