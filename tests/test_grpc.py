"""gRPC framing and decoding (proxycore/grpc.py) on bytes made by grpcio-tools' generated message
classes, the schema options (--proto-path, --proto-descriptor), the capture record's `grpc`
object, and gRPC-Web calls end to end through the proxy over HTTP/1.1 (http, and https through
CONNECT with the client trusting only the proxy's CA) against a small real gRPC-Web origin (and
plain gRPC over HTTP/1.1 with its status in chunked trailers)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import ssl
import zlib
from pathlib import Path

import httpx
import pytest
from conftest import proxy_url
from grpcutil import PROTO_DIR, compile_echo, frame, trailer_frame

from proxycore import grpc
from proxycore.capture.convert import read_records
from proxycore.capture.har import record_to_har_entry
from proxycore.capture.record import RecordOptions, flow_to_record
from proxycore.errors import StartupError
from proxycore.flows.flow import DONE, Flow, Headers, Request, Response
from proxycore.options import Options
from proxycore.proxy.server import Proxy

UNARY = "/omni.test.Echo/Unary"
STREAM = "/omni.test.Echo/ServerStream"


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    pb2, _ = compile_echo(tmp_path_factory.mktemp("gen"))
    return pb2


@pytest.fixture(scope="module")
def schema():
    return grpc.Schema.load([str(PROTO_DIR)], [])


@pytest.fixture(autouse=True)
def no_active_schema():
    grpc.set_schema(None)
    yield
    grpc.set_schema(None)


def request_msg(pb, **kw):
    kw.setdefault("text", "héllo")
    return pb.EchoRequest(count=3, inner=pb.Inner(name="n", score=1.5), nums=[1, 2, 300], blob=b"\x00\xff", **kw)


def grpc_flow(path: str, req_body: bytes, resp_body: bytes | None, ctype: str = "application/grpc",
              resp_headers: list[tuple[str, str]] | None = None,
              req_headers: list[tuple[str, str]] | None = None) -> Flow:
    req = Request("POST", "https", "api.example.com", 443, path, "HTTP/2.0",
                  Headers.from_pairs([("content-type", ctype), *(req_headers or [])]), req_body)
    flow = Flow(req)
    if resp_body is not None:
        flow.response = Response(200, "", "HTTP/2.0", Headers.from_pairs(
            [("content-type", ctype), *(resp_headers or [])]), resp_body)
    flow.state = DONE
    return flow


# --- recognising ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype, proto", [
    ("application/grpc", "grpc"), ("application/grpc+proto", "grpc"), ("application/grpc; charset=x", "grpc"),
    ("application/grpc-web", "grpc-web"), ("application/grpc-web+proto", "grpc-web"),
    ("application/grpc-web-text", "grpc-web-text"), ("application/grpc-web-text+proto", "grpc-web-text"),
    ("application/json", None), ("application/grpcx", None), (None, None), ("", None),
])
def test_protocol_of(ctype, proto):
    assert grpc.protocol_of(ctype) == proto


def test_method_of():
    assert grpc.method_of("/omni.test.Echo/Unary") == ("omni.test.Echo", "Unary")
    assert grpc.method_of("/x") is None
    assert grpc.method_of("/a/b/c") is None


# --- framing --------------------------------------------------------------------------------------


def test_split_messages_compressed_and_cut(pb):
    m1, m2 = request_msg(pb).SerializeToString(), pb.EchoReply(text="two", index=2).SerializeToString()
    data = frame(m1) + frame(m2, compress=True) + frame(m1)[:9]  # the third is cut short
    body = grpc.split_body(data, "grpc", "gzip")
    assert [(m.index, m.compressed, m.data) for m in body.messages] == [(0, False, m1), (1, True, m2)]
    assert body.messages[1].size == len(gzip.compress(m2))
    assert body.leftover == 9 and body.trailers is None


def test_deflate_identity_and_unknown_encodings(pb):
    m = pb.EchoReply(text="x" * 100).SerializeToString()
    deflated = zlib.compress(m)
    data = b"\x01" + len(deflated).to_bytes(4, "big") + deflated
    assert grpc.split_body(data, "grpc", "deflate").messages[0].data == m
    bad = grpc.split_body(data, "grpc", "snappy").messages[0]
    assert bad.data is None and "snappy" in bad.error
    corrupt = grpc.split_body(b"\x01\x00\x00\x00\x03abc", "grpc", "gzip").messages[0]
    assert corrupt.data is None and "corrupt" in corrupt.error


def test_gzip_bomb_is_bounded():
    bomb = gzip.compress(b"\x00" * (grpc.MAX_INFLATED + 1))
    msg = grpc.split_body(b"\x01" + len(bomb).to_bytes(4, "big") + bomb, "grpc", "gzip").messages[0]
    assert msg.data is None and "more than" in msg.error


def test_grpc_web_trailer_frame_and_text(pb):
    m = pb.EchoReply(text="hi", index=1).SerializeToString()
    raw = frame(m) + frame(m) + trailer_frame([("grpc-status", "0"), ("grpc-message", "")])
    for proto, data in (("grpc-web", raw),
                        # each message base64-encoded on its own, padded: how streaming servers send it
                        ("grpc-web-text", b"".join(base64.b64encode(p) for p in (
                            frame(m), frame(m), trailer_frame([("grpc-status", "0"), ("grpc-message", "")]))))):
        body = grpc.split_body(data, proto, None)
        assert [x.data for x in body.messages] == [m, m], proto
        assert body.trailers == [("grpc-status", "0"), ("grpc-message", "")]
    assert grpc.split_body(b"!!!x", "grpc-web-text", None).error
    # on application/grpc the 0x80 flag is not a trailer frame (h2 carries trailers): a message
    assert len(grpc.split_body(raw, "grpc", None).messages) == 3


def test_message_count_bound(monkeypatch):
    monkeypatch.setattr(grpc, "MAX_MESSAGES", 3)
    body = grpc.split_body(frame(b"\x08\x01") * 5, "grpc", None)
    assert len(body.messages) == 3 and body.more


# --- decoding -------------------------------------------------------------------------------------


def test_decoded_without_schema(pb):
    body = grpc.split_body(frame(request_msg(pb).SerializeToString()), "grpc", None)
    grpc.decode_messages(body, UNARY, True)
    d = body.messages[0].decoded
    assert d["1"] == "héllo" and d["2"] == 3
    assert d["3"]["1"] == "n"  # a nested message
    assert base64.b64decode(d["4"]) == bytes([1, 2, 0xAC, 0x02])  # packed varints: bytes on the wire
    assert base64.b64decode(d["5"]) == b"\x00\xff"
    assert body.messages[0].type_name is None


def test_repeated_numbers_become_lists():
    assert grpc.wire_dict(grpc.protobuf.decode(b"\x08\x01\x08\x02\x08\x03\x10\x05")) == {"1": [1, 2, 3], "2": 5}


def test_decoded_with_proto_path(pb, schema):
    assert schema.methods[STREAM].server_streaming and not schema.methods[UNARY].server_streaming
    req = grpc.split_body(frame(request_msg(pb).SerializeToString()), "grpc", None)
    grpc.decode_messages(req, UNARY, True, schema)
    assert req.messages[0].type_name == "omni.test.EchoRequest"
    assert req.messages[0].decoded == {"text": "héllo", "count": 3, "inner": {"name": "n", "score": 1.5},
                                       "nums": ["1", "2", "300"], "blob": "AP8="}
    resp = grpc.split_body(frame(pb.EchoReply(text="r", index=7).SerializeToString()), "grpc", None)
    grpc.decode_messages(resp, UNARY, False, schema)
    assert resp.messages[0].decoded == {"text": "r", "index": 7}
    # an unknown method: numbered fields
    other = grpc.split_body(frame(pb.EchoReply(text="r").SerializeToString()), "grpc", None)
    grpc.decode_messages(other, "/other.Svc/M", False, schema)
    assert other.messages[0].decoded == {"1": "r"} and other.messages[0].type_name is None


def test_bytes_that_do_not_fit_the_type_fall_back_to_wire_fields(schema):
    body = grpc.split_body(frame(b"\x0a\x05\xff\xfe\xfd\xfc\xfb"), "grpc", None)  # field 1 "text" not UTF-8
    grpc.decode_messages(body, UNARY, False, schema)
    m = body.messages[0]
    assert m.type_name is None and "not a omni.test.EchoReply" in m.error and m.decoded == {"1": "//79/Ps="}


def test_descriptor_set_file(pb, tmp_path):
    from grpc_tools import protoc

    out = tmp_path / "echo.pb"
    assert protoc.main(["protoc", f"-I{PROTO_DIR}", f"--descriptor_set_out={out}", "echo.proto"]) == 0
    s = grpc.Schema.load([], [str(out)])
    body = grpc.split_body(frame(pb.EchoReply(text="d", index=1).SerializeToString()), "grpc", None)
    grpc.decode_messages(body, "/omni.test.Echo/Bidi", False, s)
    assert body.messages[0].decoded == {"text": "d", "index": 1}


def test_well_known_imports_left_out_of_a_descriptor_set(tmp_path):
    from grpc_tools import protoc

    (tmp_path / "t.proto").write_text('syntax = "proto3"; package w; import "google/protobuf/timestamp.proto";\n'
                                      "message R { google.protobuf.Timestamp at = 1; }\n"
                                      "service S { rpc Get(R) returns (R); }\n")
    import grpc_tools
    bundled = Path(grpc_tools.__file__).parent / "_proto"
    out = tmp_path / "t.pb"
    assert protoc.main(["protoc", f"-I{tmp_path}", f"-I{bundled}", f"--descriptor_set_out={out}", "t.proto"]) == 0
    s = grpc.Schema.load([], [str(out)])
    body = grpc.split_body(frame(b"\x0a\x02\x08\x3c"), "grpc", None)  # at { seconds: 60 }
    grpc.decode_messages(body, "/w.S/Get", False, s)
    assert body.messages[0].decoded == {"at": "1970-01-01T00:01:00Z"}
    # a --proto-path and a --proto-descriptor together: the methods of both
    both = grpc.Schema.load([str(PROTO_DIR)], [str(out)])
    assert both.message_type("/w.S/Get", True) == "w.R"
    assert both.message_type(UNARY, False) == "omni.test.EchoReply"
    grpc.decode_messages(body, "/w.S/Get", False, both)
    assert body.messages[0].decoded == {"at": "1970-01-01T00:01:00Z"}


@pytest.mark.parametrize("make, expect", [
    (lambda d: (d / "bad.proto").write_text("syntax = \"proto3\"; message {"), "bad.proto:1:"),
    (lambda d: None, "no .proto files"),
])
def test_bad_proto_path_is_one_line(tmp_path, make, expect):
    make(tmp_path)
    with pytest.raises(ValueError) as e:
        grpc.Schema.load([str(tmp_path)], [])
    assert expect in str(e.value) and "\n" not in str(e.value) and str(tmp_path) in str(e.value)


def test_bad_descriptor_is_one_line(tmp_path):
    bad = tmp_path / "x.pb"
    bad.write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(ValueError, match=r"--proto-descriptor .*x\.pb: not a FileDescriptorSet"):
        grpc.Schema.load([], [str(bad)])
    with pytest.raises(ValueError, match="--proto-descriptor .*missing.pb"):
        grpc.Schema.load([], [str(tmp_path / "missing.pb")])


async def test_proxy_start_reports_a_bad_schema(tmp_path):
    (tmp_path / "bad.proto").write_text("message {")
    proxy = Proxy(Options(port=0, proto_paths=[str(tmp_path)]))
    with pytest.raises(StartupError, match="--proto-path"):
        await proxy.start()
    assert grpc.active_schema() is None


# --- a call and its record ------------------------------------------------------------------------


def test_call_with_h2_style_trailers_and_record(pb, schema):
    grpc.set_schema(schema)
    req = frame(request_msg(pb).SerializeToString(), compress=True)
    resp = b"".join(frame(pb.EchoReply(text=f"r{i}", index=i).SerializeToString()) for i in range(3))
    flow = grpc_flow(STREAM, req, resp, req_headers=[("grpc-encoding", "gzip")])
    trailers = Headers.from_pairs([("grpc-status", "0"), ("grpc-message", "")])
    call = grpc.read_call(flow)
    assert call.status is None  # no trailers on the flow (yet): no status is made up
    flow.response.trailers = trailers  # HTTP/2 (or chunked HTTP/1.1) trailers, as the proxy keeps them
    call = grpc.read_call(flow)
    assert (call.service, call.method, call.status, call.status_text) == ("omni.test.Echo", "ServerStream", 0, "0 OK")
    rec = flow_to_record(flow, RecordOptions())
    g = rec["grpc"]
    assert g["service"] == "omni.test.Echo" and g["method"] == "ServerStream" and g["protocol"] == "grpc"
    assert g["requestMessages"][0]["compressed"] is True
    assert g["requestMessages"][0]["decoded"]["inner"] == {"name": "n", "score": 1.5}
    assert [m["decoded"] for m in g["responseMessages"]] == [{"text": "r0"}, {"text": "r1", "index": 1},
                                                             {"text": "r2", "index": 2}]
    assert all(m["type"] == "omni.test.EchoReply" for m in g["responseMessages"])
    assert g["status"] == 0 and g["statusName"] == "OK" and g["trailers"]["grpc-status"] == "0"
    assert record_to_har_entry(rec)["_grpc"] == g
    json.dumps(rec)  # JSON-ready


def test_trailers_only_error_in_headers():
    flow = grpc_flow(UNARY, frame(b""), b"", resp_headers=[("grpc-status", "5"), ("grpc-message", "no%20such%20user")])
    call = grpc.read_call(flow)
    assert call.status == 5 and call.status_text == "5 NOT_FOUND" and call.message == "no such user"
    assert call.response.messages == []
    g = flow_to_record(flow, RecordOptions())["grpc"]
    assert g["status"] == 5 and g["statusName"] == "NOT_FOUND" and g["message"] == "no such user"
    assert g["requestMessages"] == [{"size": 0, "decoded": {}}]


def test_record_respects_the_body_cap(pb):
    m = frame(pb.EchoReply(text="x" * 50).SerializeToString())
    flow = grpc_flow(STREAM, frame(b""), m * 4, ctype="application/grpc-web+proto")
    g = flow_to_record(flow, RecordOptions(max_body_size=len(m) * 2 + 3))["grpc"]
    assert len(g["responseMessages"]) == 2 and g["responseTruncated"] is True
    g = flow_to_record(flow, RecordOptions(include_body=False))["grpc"]
    assert g["requestMessages"] == [] and g["responseMessages"] == []


def test_non_grpc_records_have_no_grpc_key():
    req = Request("POST", "http", "h", 80, "/x", headers=Headers.from_pairs([("content-type", "application/json")]),
                  body=b"{}")
    assert "grpc" not in flow_to_record(Flow(req), RecordOptions())


# --- gRPC-Web through the proxy -------------------------------------------------------------------


class GrpcWebOrigin:
    """A small real gRPC-Web server over HTTP/1.1 (asyncio streams): decodes each request with the
    generated classes (so what the proxy forwarded is checked byte for byte) and answers the echo
    service's methods: `count` replies (gzip-compressed when the client accepts it), then the
    trailer frame. A text "missing" gets NOT_FOUND."""

    def __init__(self, pb, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.pb, self.ssl = pb, ssl_ctx
        self.received: list = []

    async def start(self) -> GrpcWebOrigin:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(hdrs.get("content-length", "0")))
                writer.write(self._answer(path, hdrs, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, path: str, hdrs: dict, body: bytes) -> bytes:
        ctype = hdrs["content-type"]
        text = ctype.startswith("application/grpc-web-text")
        web = ctype.startswith("application/grpc-web")
        raw = base64.b64decode(body) if text else body
        parsed = grpc.split_body(raw, "grpc-web", hdrs.get("grpc-encoding"))
        reqs = [self.pb.EchoRequest.FromString(m.data) for m in parsed.messages]
        self.received.append((path, reqs))
        gz = "gzip" in hdrs.get("grpc-accept-encoding", "")
        if reqs and reqs[0].text == "missing":
            parts, status = [], [("grpc-status", "5"), ("grpc-message", "no%20such%20thing")]
        else:
            parts = [frame(self.pb.EchoReply(text=f"{r.text}#{i}", index=i).SerializeToString(), gz)
                     for r in reqs for i in range(max(r.count, 1))]
            status = [("grpc-status", "0"), ("grpc-message", "")]
        head = f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\n" + ("grpc-encoding: gzip\r\n" if gz else "")
        if not web:  # gRPC over HTTP/1.1: one chunk per message, the status in chunked trailers
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
            trailers = "".join(f"{k}: {v}\r\n" for k, v in status)
            return (head + "transfer-encoding: chunked\r\n\r\n").encode() + chunks + \
                f"0\r\n{trailers}\r\n".encode()
        parts.append(trailer_frame(status))
        out = b"".join(base64.b64encode(p) for p in parts) if text else b"".join(parts)
        return (head + f"content-length: {len(out)}\r\n\r\n").encode() + out


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("ctype", ["application/grpc-web+proto", "application/grpc-web-text", "application/grpc"])
async def test_grpc_web_through_the_proxy(make_proxy, origin_ca, pb, tmp_path, tls, ctype):
    origin = await GrpcWebOrigin(pb, origin_ca.server_context("localhost") if tls else None).start()
    out = tmp_path / "capture.ndjson"
    proxy = await make_proxy(output=str(out), proto_paths=[str(PROTO_DIR)])
    assert grpc.active_schema() is not None
    base = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{origin.port}"
    verify = ssl.create_default_context(cafile=str(proxy.ca.cert_path))  # the proxy's CA alone
    text = ctype == "application/grpc-web-text"
    web = ctype != "application/grpc"  # plain gRPC over HTTP/1.1: the status in chunked trailers

    def body(*frames: bytes) -> bytes:
        raw = b"".join(frames)
        return base64.b64encode(raw) if text else raw

    def replies(content: bytes) -> grpc.Body:
        return grpc.split_body(content, grpc.protocol_of(ctype), "gzip")

    try:
        async with httpx.AsyncClient(proxy=proxy_url(proxy), verify=verify, timeout=10) as client:
            hdrs = {"content-type": ctype, "x-grpc-web": "1", "grpc-encoding": "gzip", "grpc-accept-encoding": "gzip"}
            r = await client.post(f"{base}{STREAM}", headers=hdrs,
                                  content=body(frame(pb.EchoRequest(text="s", count=3).SerializeToString(), True)))
            got = replies(r.content)
            assert [pb.EchoReply.FromString(m.data).text for m in got.messages] == ["s#0", "s#1", "s#2"]
            if web:
                assert got.trailers[0] == ("grpc-status", "0")
            r = await client.post(f"{base}{UNARY}", headers={"content-type": ctype},
                                  content=body(frame(pb.EchoRequest(text="missing").SerializeToString())))
            if web:
                assert replies(r.content).trailers[0] == ("grpc-status", "5")
    finally:
        await origin.stop()
    assert [p for p, _ in origin.received] == [STREAM, UNARY]
    assert origin.received[0][1][0].count == 3
    await proxy.stop()
    assert grpc.active_schema() is None  # the proxy's schema goes with it
    records = {r["request"]["path"]: r for r in read_records(out)}
    stream = records[STREAM]["grpc"]
    assert stream["protocol"] == grpc.protocol_of(ctype)
    assert (stream["service"], stream["method"], stream["status"]) == ("omni.test.Echo", "ServerStream", 0)
    assert stream["encoding"] == "gzip"
    assert stream["requestMessages"] == [{"size": stream["requestMessages"][0]["size"], "compressed": True,
                                          "type": "omni.test.EchoRequest", "decoded": {"text": "s", "count": 3}}]
    assert [m["decoded"] for m in stream["responseMessages"]] == [
        {"text": "s#0"}, {"text": "s#1", "index": 1}, {"text": "s#2", "index": 2}]
    unary = records[UNARY]["grpc"]
    assert (unary["status"], unary["statusName"], unary["message"]) == (5, "NOT_FOUND", "no such thing")
    assert unary["responseMessages"] == []
