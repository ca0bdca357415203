"""The msgpack, protobuf, GraphQL, CSS and JavaScript views and multipart text parts, on
real-shaped samples; each falls back (with a reason) on bodies that are not what they say, and
each bounds its work on huge bodies."""

from __future__ import annotations

import json
import struct
import time

import msgpack
import pytest

from omniproxy_tui.views.contentviews import DEFAULT_LIMIT, view_body
from proxycore import protobuf

MIB = 1024 * 1024


def plain(view) -> list[str]:
    return [t.plain for t in view.lines]


# --- a small protobuf encoder (the wire format, to build real messages) --------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_varint(num: int, v: int) -> bytes:
    return varint(num << 3) + varint(v)


def pb_len(num: int, b: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(b)) + b


def pb_double(num: int, f: float) -> bytes:
    return varint(num << 3 | 1) + struct.pack("<d", f)


def pb_float(num: int, f: float) -> bytes:
    return varint(num << 3 | 5) + struct.pack("<f", f)


# A realistic message: a user with a nested address, a repeated tag, a packed list and a score.
USER = (pb_varint(1, 150) + pb_len(2, b"Ada Lovelace") + pb_len(3, pb_len(1, b"10 Downing St")
        + pb_len(2, b"London") + pb_varint(3, 44)) + pb_len(4, b"admin") + pb_len(4, b"ops")
        + pb_len(5, b"\x01\x02\x03") + pb_double(6, 98.5) + pb_float(7, 1.5) + pb_varint(8, -2)
        + pb_len(9, "naïve café".encode()))


def test_protobuf_decoder_fields_types_nesting() -> None:
    fields = protobuf.decode(USER)
    assert [(f.number, f.wire) for f in fields] == [(1, 0), (2, 2), (3, 2), (4, 2), (4, 2), (5, 2), (6, 1),
                                                      (7, 5), (8, 0), (9, 2)]
    assert fields[1].value == "Ada Lovelace" and fields[2].is_message
    assert [f.value for f in fields[2].value] == ["10 Downing St", "London", 44]
    assert fields[5].value == b"\x01\x02\x03"  # packed varints: not text, not a message


def test_protobuf_view_lines() -> None:
    v = view_body(USER, "application/x-protobuf")
    assert v.name == "protobuf" and v.error is None
    assert plain(v) == [
        "1: 150",
        '2: "Ada Lovelace"',
        "3 {",
        '  1: "10 Downing St"',
        '  2: "London"',
        "  3: 44",
        "}",
        '4: "admin"',
        '4: "ops"',
        "5: <01 02 03>",
        "6: 98.5  (fixed64 0x4058a00000000000, int 4636631738238369792)",
        "7: 1.5  (fixed32 0x3fc00000, int 1069547520)",
        "8: 18446744073709551614  (int64 -2)",
        '9: "naïve café"',
    ]
    styled = v.lines[2]
    assert any(span.style == "bold #61afef" for span in styled.spans)  # field numbers highlighted


def test_grpc_body_is_split_into_messages() -> None:
    frame = b"\x00" + len(USER).to_bytes(4, "big") + USER
    reply = pb_varint(1, 7)
    body = frame + b"\x00" + len(reply).to_bytes(4, "big") + reply
    v = view_body(body, "application/grpc")
    lines = plain(v)
    assert v.name == "protobuf"
    assert lines[0].startswith("── message 1  (") and "  1: 150" in lines
    assert "── message 2  (2 B)" in lines and lines[-1] == "  1: 7"


def test_grpc_views_inflate_and_read_grpc_web() -> None:
    import base64
    import gzip

    gz = gzip.compress(USER)
    trailer = b"grpc-status: 0\r\n"
    web = (b"\x01" + len(gz).to_bytes(4, "big") + gz + b"\x80" + len(trailer).to_bytes(4, "big") + trailer)
    lines = plain(view_body(web, "application/grpc-web+proto"))
    assert lines[0].startswith("── message 1  (") and lines[0].endswith(", compressed)") and "  1: 150" in lines
    assert lines[-2:] == ["── trailers", "  grpc-status: 0"]
    assert plain(view_body(base64.b64encode(web), "application/grpc-web-text", mode="protobuf")) == lines
    odd = b"\x01\x00\x00\x00\x03abc"  # compressed, but not gzip or zlib: said, not guessed
    assert plain(view_body(odd, "application/grpc"))[1] == "  (compressed with the grpc-encoding: not decoded)"


def test_protobuf_mode_on_something_else_falls_back_with_a_reason() -> None:
    v = view_body(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "application/x-protobuf")
    assert v.name == "hex" and v.error.startswith("not a protobuf message")
    v = view_body(b"hello world", "text/plain", mode="protobuf")
    assert v.name == "text" and "not a protobuf message" in v.error


def test_protobuf_is_bounded() -> None:
    deep = b"\x08\x01"
    for _ in range(200):  # nested far deeper than MAX_DEPTH: the deep part stays bytes
        deep = pb_len(1, deep)
    v = view_body(deep, "application/x-protobuf", limit_lines=None)
    assert v.name == "protobuf" and len(plain(v)) < 100
    big = (pb_varint(1, 1) + pb_len(2, b"x" * 20)) * 200_000  # 4.6 MiB, 400 000 fields
    t = time.perf_counter()
    v = view_body(big, "application/x-protobuf")
    assert v.name == "protobuf" and v.truncated and len(plain(v)) == DEFAULT_LIMIT
    assert time.perf_counter() - t < 30  # generous: bounded, not a benchmark
    whole = view_body(big, "application/x-protobuf", limit_lines=None)  # what f computes
    assert whole.name == "protobuf" and "decoding stopped: more than 100,000 fields" in whole.error
    assert plain(whole)[:2] == ["1: 1", '2: "xxxxxxxxxxxxxxxxxxxx"']
    cut = view_body(USER[:-5], "application/x-protobuf")  # a body cut inside the last field
    assert cut.name == "protobuf" and "decoding stopped" in cut.error and '2: "Ada Lovelace"' in plain(cut)
    with pytest.raises(protobuf.DecodeError, match="more than"):
        protobuf.decode(pb_varint(1, 1) * (protobuf.MAX_FIELDS + 1))


# --- msgpack --------------------------------------------------------------------------------


def test_msgpack_body_as_indented_json() -> None:
    doc = {"id": 7, "user": {"name": "Ada", "tags": ["admin", "ops"]}, "score": 98.5, "ok": True,
           "avatar": b"\x89PNG\r\n", "none": None, 3: "int key"}
    v = view_body(msgpack.packb(doc), "application/msgpack")
    lines = plain(v)
    assert v.name == "msgpack" and v.error is None
    assert lines[0] == "{" and '  "id": 7,' in lines and '    "name": "Ada",' in lines
    assert '  "avatar": "<bytes 89 50 4e 47 0d 0a (6 B)>",' in lines
    assert '  "3": "int key"' in lines
    assert any(span.style for span in v.lines[1].spans)  # highlighted as JSON


def test_msgpack_stream_of_values_and_bad_bytes() -> None:
    body = msgpack.packb({"event": "a"}) + msgpack.packb({"event": "b"})
    lines = plain(view_body(body, "application/x-msgpack"))
    assert lines.count("{") == 2 and '  "event": "b"' in lines and "" in lines
    bad = view_body(b"\xc1\xc1\xc1", "application/msgpack")  # 0xc1 is never used in msgpack
    assert bad.name == "hex" and "not valid msgpack" in bad.error
    cut = view_body(msgpack.packb({"a": 1}) + msgpack.packb({"b": "x" * 50})[:10], "application/msgpack")
    assert cut.name == "msgpack" and '  "a": 1' in plain(cut) and "ends inside a msgpack value" in cut.error


def test_msgpack_is_bounded() -> None:
    stream = b"".join(msgpack.packb({"i": i, "pad": "x" * 100}) for i in range(30_000))  # 3.3 MiB
    v = view_body(stream, "application/msgpack")
    assert v.name == "msgpack" and v.truncated and len(plain(v)) == DEFAULT_LIMIT
    huge = msgpack.packb(list(range(600_000)))  # one 2.9 MiB value: more than a capped view reads
    v = view_body(huge, "application/msgpack")
    assert v.name == "hex" and "larger than 1,024 KiB: f shows it whole" in v.error
    whole = view_body(huge, "application/msgpack", limit_lines=None)
    assert whole.name == "msgpack" and plain(whole)[:2] == ["[", "  0,"]


# --- GraphQL --------------------------------------------------------------------------------


GQL = {"operationName": "GetUser",
       "query": "query GetUser($id: ID!) { user(id: $id) { name friends(first: 2) { name } } }",
       "variables": {"id": "42", "withFriends": True}}


def test_graphql_request_query_and_variables() -> None:
    v = view_body(json.dumps(GQL).encode(), "application/json")
    lines = plain(v)
    assert v.name == "GraphQL"
    assert lines[:9] == ["── operation 1: GetUser", "query GetUser($id: ID!) {", "  user(id: $id) {", "    name",
                         "    friends(first: 2) {", "      name", "    }", "  }", "}"]
    assert lines[9:] == ["", "── variables", "{", '  "id": "42",', '  "withFriends": true', "}"]


def test_graphql_batch_and_raw_query() -> None:
    batch = [GQL, {"query": "{ me { id } }"}]
    lines = plain(view_body(json.dumps(batch).encode(), "application/json"))
    assert "── operation 2" in lines and "  me {" in lines
    raw = view_body(b"mutation { like(id: 1) { count } }", "application/graphql")
    assert raw.name == "GraphQL" and plain(raw)[:2] == ["mutation {", "  like(id: 1) {"]


def test_json_that_is_not_graphql_stays_json() -> None:
    v = view_body(json.dumps({"query": "select * from t", "n": 1}).encode(), "application/json")
    assert v.name == "JSON" and v.error is None  # a search API's "query": nothing to warn about
    forced = view_body(json.dumps({"query": "select * from t"}).encode(), "application/json", mode="graphql")
    assert forced.name == "JSON" and forced.error == "not a GraphQL request (no query); shown as json"
    v = view_body(b'{"query": "{ broken', "application/json")
    assert v.name in ("JSON", "text")


# --- CSS / JavaScript -----------------------------------------------------------------------


def test_css_beautified() -> None:
    css = b"body{margin:0;font:14px/1.4 sans-serif}.nav>a:hover{color:#c00;text-decoration:underline}"
    v = view_body(css, "text/css; charset=utf-8")
    assert v.name == "CSS"
    assert plain(v)[:4] == ["body {", "    margin: 0;", "    font: 14px/1.4 sans-serif", "}"]


def test_javascript_beautified() -> None:
    js = b'function f(a,b){if(a>b){return a-b}return{sum:a+b,list:[1,2,3]}}var x=f(1,2);'
    v = view_body(js, "application/javascript")
    lines = plain(v)
    assert v.name == "JavaScript"
    assert lines[:4] == ["function f(a, b) {", "  if (a > b) {", "    return a - b", "  }"]
    assert any(span.style for span in v.lines[0].spans)  # "function" highlighted


def test_huge_minified_javascript_is_bounded() -> None:
    js = b"function f(a,b){if(a>b){return a-b}return{a:1,b:[1,2,3]}};" * 40_000  # 2.3 MiB, one line
    t = time.perf_counter()
    v = view_body(js, "text/javascript")
    assert v.name == "JavaScript" and v.truncated and len(plain(v)) == DEFAULT_LIMIT
    assert time.perf_counter() - t < 30  # a 16 KiB prefix, not 2 MiB
    whole = view_body(js, "text/javascript", limit_lines=None)
    assert whole.name == "text" and "too big to beautify" in whole.error


# --- multipart text parts -------------------------------------------------------------------


PEM = (b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ5xK\nZW0gaXBzdW0=\n-----END CERTIFICATE-----\n")


def test_multipart_pem_part_is_text_even_as_octet_stream() -> None:
    body = (b"--b0und\r\nContent-Disposition: form-data; name=\"cert\"; filename=\"server.pem\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + PEM + b"\r\n"
            b"--b0und\r\nContent-Disposition: form-data; name=\"blob\"; filename=\"x.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\xff\r\n--b0und--\r\n")
    lines = plain(view_body(body, "multipart/form-data; boundary=b0und"))
    assert "  -----BEGIN CERTIFICATE-----" in lines and "  -----END CERTIFICATE-----" in lines
    assert lines[-1] == "  <binary, 4B>"  # sizes are written one way (README)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["msgpack", "protobuf", "graphql", "css", "javascript"])
def test_random_bytes_never_raise(mode: str) -> None:
    import random

    rng = random.Random(mode)
    samples = [rng.randbytes(rng.randint(1, 300)) for _ in range(150)]
    samples += [msgpack.packb({(1, 2): "tuple key"}, use_bin_type=True), b"\x81\x91\x01\x02",  # {[1]: 2}
                b'{"query": 5}', b'[{"query": "{ a"}]', b"\x0a\xff\xff\xff\xff\x0f"]
    for data in samples:
        v = view_body(data, None, mode=mode)
        assert v.lines is not None
        for i in range(min(len(v.lines), 20)):
            v.lines[i]  # highlighting every shown line works too


def test_libraries_are_imported_on_first_use_only() -> None:
    import subprocess
    import sys

    code = ("import sys, omniproxy_tui.views.contentviews, omniproxy_tui.widgets.detail; "
            "print(sorted(m for m in ('graphql', 'jsbeautifier', 'cssbeautifier', 'msgpack') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_graphql_without_graphql_core_is_indented_by_braces(monkeypatch: pytest.MonkeyPatch) -> None:
    from omniproxy_tui.views import extraviews

    real = extraviews._module
    monkeypatch.setattr(extraviews, "_module", lambda name: None if name == "graphql" else real(name))
    assert extraviews.format_query(GQL["query"]) == [
        "query GetUser($id: ID!) {", "  user(id: $id) {", "    name", "    friends(first: 2) {", "      name",
        "    }", "  }", "}"]
