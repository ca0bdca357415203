"""The canonical IR record built from Flow objects."""

from __future__ import annotations

import base64
import gzip
import json
import re
from datetime import datetime

import brotli

from proxycore.capture.record import (
    BINARY_PLACEHOLDER,
    REDACTED,
    RecordOptions,
    flow_to_record,
    record_to_json_line,
)
from proxycore.flows.flow import Flow, Headers, Request, Response, TLSInfo
from proxycore.options import Options

PNG = b"\x89PNG\r\n\x1a\n\x00\x00"  # 10 bytes, as in the original's test
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$")


def make_flow(
    method: str = "GET",
    target: str = "/users?limit=10",
    *,
    scheme: str = "https",
    host: str = "api.example.com",
    port: int = 443,
    req_headers: list[tuple[str, str]] | None = None,
    req_body: bytes = b"",
    status: int | None = 200,
    reason: str = "OK",
    resp_headers: list[tuple[str, str]] | None = None,
    resp_body: bytes = b"",
) -> Flow:
    req = Request(method, scheme, host, port, target,
                  headers=Headers.from_pairs(req_headers or [("Host", host)]), body=req_body,
                  authority=host if port in (80, 443) else f"{host}:{port}")
    f = Flow(req, ("127.0.0.1", 50123))
    if status is not None:
        f.response = Response(status, reason, headers=Headers.from_pairs(resp_headers or []), body=resp_body)
    t = f.timings
    t.start = 1_700_000_000.0
    t.end = t.start + 0.0123456
    return f


def rec(flow: Flow, **kw: object) -> dict:
    return flow_to_record(flow, RecordOptions(**kw))  # type: ignore[arg-type]


def test_request_fields() -> None:
    r = rec(make_flow())
    req = r["request"]
    assert req["method"] == "GET"
    assert req["url"] == "https://api.example.com/users?limit=10"
    assert req["host"] == "api.example.com"
    assert req["path"] == "/users"
    assert req["scheme"] == "https"
    assert req["httpVersion"] == "HTTP/1.1"
    assert req["query"] == {"limit": "10"}
    assert isinstance(r["id"], int)
    # empty things are omitted, like the original
    for key in ("body", "bodySize", "isBinary", "contentType", "bodyTruncated"):
        assert key not in req


def test_scheme_and_host_with_port() -> None:
    r = rec(make_flow(scheme="http", host="localhost", port=8080, target="/"))
    assert r["request"]["scheme"] == "http"
    assert r["request"]["host"] == "localhost:8080"
    assert r["request"]["url"] == "http://localhost:8080/"
    assert "query" not in r["request"]


def test_query_parsing_repeats_and_blanks() -> None:
    r = rec(make_flow(target="/s?q=a%20b&tag=x&tag=y&empty=&flag&caf%C3%A9=%E2%82%AC"))
    assert r["request"]["query"] == {"q": "a b", "tag": ["x", "y"], "empty": "", "flag": "", "café": "€"}
    assert r["request"]["path"] == "/s"


def test_response_fields_and_status_line() -> None:
    r = rec(make_flow(resp_headers=[("Content-Type", "text/plain; charset=utf-8")], resp_body=b"hello"))
    resp = r["response"]
    assert resp["status"] == 200
    assert resp["statusText"] == "200 OK"
    assert resp["httpVersion"] == "HTTP/1.1"
    assert resp["body"] == "hello"
    assert resp["size"] == 5
    assert resp["contentType"] == "text/plain; charset=utf-8"
    assert "isBinary" not in resp and "bodySize" not in resp


def test_status_text_without_reason_uses_standard_phrase() -> None:
    assert rec(make_flow(status=404, reason=""))["response"]["statusText"] == "404 Not Found"
    assert rec(make_flow(status=599, reason=""))["response"]["statusText"] == "599"
    assert rec(make_flow(status=204, reason="Nothing Here"))["response"]["statusText"] == "204 Nothing Here"


def test_png_request_and_response_are_placeholders_with_size() -> None:
    f = make_flow("POST", "/upload", req_headers=[("Content-Type", "image/png")], req_body=PNG,
                  resp_headers=[("Content-Type", "image/png")], resp_body=PNG)
    r = rec(f)
    assert r["request"]["isBinary"] is True
    assert r["request"]["body"] == BINARY_PLACEHOLDER
    assert r["request"]["bodySize"] == 10
    assert r["request"]["contentType"] == "image/png"
    assert r["response"]["isBinary"] is True
    assert r["response"]["body"] == BINARY_PLACEHOLDER
    assert r["response"]["size"] == 10


def test_png_detected_by_magic_without_content_type() -> None:
    r = rec(make_flow(resp_body=PNG))
    assert r["response"]["isBinary"] is True and r["response"]["body"] == BINARY_PLACEHOLDER


def test_skip_binary_off_gives_base64() -> None:
    f = make_flow("POST", "/upload", req_headers=[("Content-Type", "image/png")], req_body=PNG,
                  resp_headers=[("Content-Type", "image/png")], resp_body=PNG)
    r = rec(f, skip_binary=False)
    for side in ("request", "response"):
        assert r[side]["isBinary"] is True
        assert r[side]["bodyEncoding"] == "base64"
        assert base64.b64decode(r[side]["body"]) == PNG


def test_json_body_is_an_object_not_a_string() -> None:
    f = make_flow("POST", "/users", req_headers=[("Content-Type", "application/json")],
                  req_body=b'{"name": "Ada", "tags": [1, 2]}',
                  resp_headers=[("Content-Type", "application/json")], resp_body=b'[{"id": 1}]')
    r = rec(f)
    assert r["request"]["body"] == {"name": "Ada", "tags": [1, 2]}
    assert "isBinary" not in r["request"]
    assert r["response"]["body"] == [{"id": 1}]
    line = record_to_json_line(r)
    assert b'"body":{"name":"Ada","tags":[1,2]}' in line


def test_json_detected_without_content_type_and_bad_json_stays_text() -> None:
    assert rec(make_flow(resp_body=b'  {"a": 1}'))["response"]["body"] == {"a": 1}
    r = rec(make_flow(resp_headers=[("Content-Type", "application/json")], resp_body=b"{not json"))
    assert r["response"]["body"] == "{not json"
    r = rec(make_flow(resp_headers=[("Content-Type", "application/json")], resp_body=b"NaN"))
    assert r["response"]["body"] == "NaN"  # not valid JSON output either
    assert json.loads(record_to_json_line(r))["response"]["body"] == "NaN"
    r = rec(make_flow(resp_headers=[("Content-Type", "application/json")], resp_body=b"42"))
    assert r["response"]["body"] == 42


def test_truncated_json_stays_a_string_and_is_flagged() -> None:
    f = make_flow(resp_headers=[("Content-Type", "application/json")], resp_body=b'{"items": [1, 2, 3')
    f.response.body_size = 5000  # type: ignore[union-attr]
    f.response.body_truncated = True  # type: ignore[union-attr]
    r = rec(f)
    assert r["response"]["body"] == '{"items": [1, 2, 3'
    assert r["response"]["bodyTruncated"] is True
    assert r["response"]["size"] == 5000


def test_gzip_json_response_is_decoded() -> None:
    payload = {"ok": True, "name": "日本"}
    wire = gzip.compress(json.dumps(payload).encode())
    f = make_flow(resp_headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                  resp_body=wire)
    r = rec(f)["response"]
    assert r["body"] == payload
    assert r["bodyEncoding"] == "gzip"
    assert r["size"] == len(wire)
    assert r["bodySize"] == len(json.dumps(payload).encode())
    assert "isBinary" not in r


def test_stacked_encoding_and_undecodable_body() -> None:
    wire = brotli.compress(gzip.compress(b"<p>hello</p>"))
    r = rec(make_flow(resp_headers=[("Content-Type", "text/html"), ("Content-Encoding", "gzip, br")],
                      resp_body=wire))["response"]
    assert (r["body"], r["bodyEncoding"]) == ("<p>hello</p>", "gzip, br")
    # a body that claims gzip but is not: kept as captured and classified as such
    r = rec(make_flow(resp_headers=[("Content-Encoding", "gzip")], resp_body=b"\x1f\x8b\x08garbage\x00\x00"))
    assert r["response"]["isBinary"] is True and "bodyEncoding" not in r["response"]


def test_truncated_gzip_capture_shows_decoded_prefix() -> None:
    text = ("line of log text\n" * 5000).encode()
    wire = gzip.compress(text)
    f = make_flow(resp_headers=[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
                  resp_body=wire[: len(wire) // 2])
    f.response.body_size = len(wire)  # type: ignore[union-attr]
    f.response.body_truncated = True  # type: ignore[union-attr]
    r = rec(f)["response"]
    assert r["bodyTruncated"] is True and r["bodyEncoding"] == "gzip"
    assert isinstance(r["body"], str) and len(r["body"]) > 100 and text.decode().startswith(r["body"])


def test_decoded_body_is_capped_at_max_body_size() -> None:
    wire = gzip.compress(b"a" * 100_000)
    f = make_flow(resp_headers=[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")], resp_body=wire)
    r = rec(f, max_body_size=1000)["response"]
    assert r["body"] == "a" * 1000
    assert r["bodyTruncated"] is True


def test_long_utf8_text_is_not_binary() -> None:
    body = ("日本語のテキスト" * 200).encode()
    r = rec(make_flow(resp_body=body))["response"]
    assert r["body"] == body.decode() and "isBinary" not in r


def test_charset_from_content_type() -> None:
    r = rec(make_flow(resp_headers=[("Content-Type", "text/plain; charset=ISO-8859-1")],
                      resp_body="café".encode("latin-1")))
    assert r["response"]["body"] == "café"
    r = rec(make_flow(resp_headers=[("Content-Type", "text/plain; charset=bogus")], resp_body=b"ok"))
    assert r["response"]["body"] == "ok"


def test_repeated_headers_are_all_kept() -> None:
    f = make_flow(resp_headers=[("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("Vary", "Accept"),
                                ("X-Multi", "1"), ("X-Multi", "2"), ("X-Multi", "3")])
    r = rec(f, redact_headers=frozenset())["response"]["headers"]
    assert r["set-cookie"] == ["a=1", "b=2"]
    assert r["vary"] == "Accept"
    assert r["x-multi"] == ["1", "2", "3"]
    # redacted, both are still visible as sent
    r = rec(f)["response"]["headers"]
    assert r["set-cookie"] == [REDACTED, REDACTED]


def test_default_redaction_masks_secrets_and_keeps_the_rest() -> None:
    f = make_flow(req_headers=[("Host", "api.example.com"), ("Authorization", "Bearer secret"),
                               ("Cookie", "sid=1"), ("X-API-Key", "k"), ("X-Auth-Token", "t"),
                               ("Proxy-Authorization", "Basic x"), ("Accept", "application/json"),
                               ("User-Agent", "curl/8.5")])
    r = flow_to_record(f, RecordOptions.from_options(Options()))
    h = r["request"]["headers"]
    for name in ("authorization", "cookie", "x-api-key", "x-auth-token", "proxy-authorization"):
        assert h[name] == REDACTED
    assert h["accept"] == "application/json"
    assert h["user-agent"] == "curl/8.5"
    assert h["host"] == "api.example.com"
    assert b"secret" not in record_to_json_line(r)


def test_filter_header_adds_to_redaction_case_insensitively() -> None:
    f = make_flow(req_headers=[("X-Custom-Secret", "s3"), ("Accept", "*/*")])
    r = flow_to_record(f, RecordOptions.from_options(Options(filter_headers=["x-CUSTOM-secret"])))
    assert r["request"]["headers"] == {"x-custom-secret": REDACTED, "accept": "*/*"}


def test_no_redact() -> None:
    f = make_flow(req_headers=[("Authorization", "Bearer secret"), ("Cookie", "sid=1")])
    r = flow_to_record(f, RecordOptions.from_options(Options(redact=False)))
    assert r["request"]["headers"] == {"authorization": "Bearer secret", "cookie": "sid=1"}


def test_query_is_not_redacted() -> None:
    r = rec(make_flow(target="/x?authorization=abc"))
    assert r["request"]["query"] == {"authorization": "abc"}


def test_include_headers_and_body_off() -> None:
    f = make_flow("POST", "/x", req_headers=[("Content-Type", "application/json")], req_body=b'{"a":1}',
                  resp_headers=[("Content-Type", "text/plain")], resp_body=b"hi")
    r = flow_to_record(f, RecordOptions.from_options(Options(include_headers=False, include_body=False)))
    for side in ("request", "response"):
        assert "headers" not in r[side] and "body" not in r[side]
    assert r["request"]["bodySize"] == 7 and r["response"]["size"] == 2
    assert r["request"]["contentType"] == "application/json"


def test_non_ascii_header_values() -> None:
    f = make_flow(req_headers=[("X-Name", "x")])
    f.request.headers.fields.append((b"X-Utf8", "Zoë".encode()))
    f.request.headers.fields.append((b"X-Latin1", b"caf\xe9"))
    h = rec(f)["request"]["headers"]
    assert h["x-utf8"] == "Zoë" and h["x-latin1"] == "café"
    json.loads(record_to_json_line(rec(f)))


def test_times_duration_and_timings() -> None:
    f = make_flow()
    t = f.timings
    t.connect_start = t.start + 0.001
    t.connect_end = t.start + 0.003
    t.tls_end = t.start + 0.0065
    t.request_sent = t.start + 0.007
    t.first_byte = t.start + 0.011
    r = rec(f)
    assert RFC3339.match(r["startTime"]) and RFC3339.match(r["endTime"])
    start = datetime.fromisoformat(r["startTime"])
    end = datetime.fromisoformat(r["endTime"])
    assert start.timestamp() == 1_700_000_000.0
    assert round((end - start).total_seconds() * 1000, 3) == 12.346
    assert r["durationMs"] == 12.346 and isinstance(r["durationMs"], float)
    assert r["timings"] == {"connectMs": 2.0, "tlsMs": 3.5, "sendMs": 0.5, "waitMs": 4.0, "receiveMs": 1.346}


def test_timings_missing_phases_are_minus_one() -> None:
    f = make_flow()  # a pooled connection: no connect, no TLS handshake
    f.timings.request_sent = f.timings.start + 0.001
    f.timings.first_byte = f.timings.start + 0.005
    r = rec(f)["timings"]
    assert r["connectMs"] == -1 and r["tlsMs"] == -1
    assert r["sendMs"] == 1.0 and r["waitMs"] == 4.0


def test_error_flow_without_response() -> None:
    f = make_flow(status=None)
    f.error = "connection refused: 127.0.0.1:1"
    f.timings.end = None
    r = rec(f)
    assert "response" not in r
    assert r["error"] == "connection refused: 127.0.0.1:1"
    assert "endTime" not in r and "durationMs" not in r
    assert r["timings"] == {"connectMs": -1, "tlsMs": -1, "sendMs": -1, "waitMs": -1, "receiveMs": -1}
    assert json.loads(record_to_json_line(r))["error"] == f.error


def test_addresses_tls_and_passthrough() -> None:
    f = make_flow("CONNECT", "pinned.example.com:443", status=None)
    f.server_addr = ("2001:db8::1", 443)
    tls = TLSInfo()
    tls.sni, tls.alpn, tls.version, tls.cipher = "pinned.example.com", "h2", "TLSv1.3", "TLS_AES_128_GCM_SHA256"
    f.client_tls = tls
    f.passthrough = True
    r = rec(f)
    assert r["clientAddress"] == "127.0.0.1:50123"
    assert r["serverAddress"] == "[2001:db8::1]:443"
    assert r["tls"] == {"sni": "pinned.example.com", "alpn": "h2", "version": "TLSv1.3",
                        "cipher": "TLS_AES_128_GCM_SHA256"}
    assert r["passthrough"] is True
    assert r["request"]["method"] == "CONNECT"
    assert r["request"]["url"] == "pinned.example.com:443"
    assert r["request"]["path"] == ""
    assert "query" not in r["request"]


def test_not_passthrough_omits_key() -> None:
    r = rec(make_flow())
    assert "passthrough" not in r and "tls" not in r and "serverAddress" not in r


def test_json_line_is_compact_utf8_and_round_trips() -> None:
    # a compact body: one with spaces is now also kept as sent (bodyText), spaces and all
    f = make_flow(resp_headers=[("Content-Type", "application/json")], resp_body='{"名前":"値"}'.encode())
    r = rec(f)
    line = record_to_json_line(r)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b": " not in line and b", " not in line
    assert "名前".encode() in line  # not \u-escaped
    assert json.loads(line) == r
    assert list(r)[:2] == ["id", "request"]


def test_record_options_from_options() -> None:
    ro = RecordOptions.from_options(Options(max_body_size=10, skip_binary=False, include_headers=False,
                                            include_body=False, filter_headers=["X-A"]))
    assert ro.max_body_size == 10 and not ro.skip_binary and not ro.include_headers and not ro.include_body
    assert "x-a" in ro.redact_headers and "authorization" in ro.redact_headers


def test_rfc3339_timestamps_match_datetime() -> None:
    """The per-second cache formats exactly what datetime does, microsecond rounding included."""
    import random
    from datetime import datetime

    from proxycore.capture.record import _rfc3339

    rng = random.Random(7)
    stamps = [rng.uniform(0, 2e9) for _ in range(20000)]
    stamps += [1e9 + 0.9999995, 1700000000.0000005, 1764600000.123456, 1764600000.0, 1.5]
    for ts in stamps:
        assert _rfc3339(ts) == datetime.fromtimestamp(ts).astimezone().isoformat(timespec="microseconds"), ts
