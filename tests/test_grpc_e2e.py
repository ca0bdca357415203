"""gRPC end to end: a grpcio client calling unary, server-streaming, client-streaming and bidi
methods on a local grpcio server (TLS, a certificate the proxy trusts through --upstream-ca)
through the proxy (grpcio sends CONNECT: the `grpc.http_proxy` channel option), the client
trusting only the proxy's CA. The capture must carry each call's messages decoded (named through
--proto-path) and its grpc-status from the HTTP/2 trailers."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from concurrent import futures

import pytest
from grpcutil import PROTO_DIR, compile_echo

from proxycore import grpc as pgrpc
from proxycore.capture.convert import read_records

grpc = pytest.importorskip("grpc")


def leaf_for_localhost(ca) -> tuple[bytes, bytes]:
    """(key PEM, certificate chain PEM) for localhost, signed by the test origins' CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca.key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def echo_server(pb2, pb2_grpc, key_pem: bytes, cert_pem: bytes):
    """A grpcio server of the echo service on an OS-chosen port: (server, port)."""

    class Echo(pb2_grpc.EchoServicer):
        def Unary(self, request, context):
            if request.text == "missing":
                context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
            return pb2.EchoReply(text=f"{request.text}#0")

        def ServerStream(self, request, context):
            for i in range(request.count):
                yield pb2.EchoReply(text=f"{request.text}#{i}", index=i)

        def ClientStream(self, request_iterator, context):
            texts = [r.text for r in request_iterator]
            return pb2.EchoReply(text="+".join(texts), index=len(texts))

        def Bidi(self, request_iterator, context):
            for i, r in enumerate(request_iterator):
                yield pb2.EchoReply(text=r.text.upper(), index=i)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    port = server.add_secure_port("localhost:0", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
    server.start()
    return server, port


def run_calls(pb2, pb2_grpc, target: str, root_pem: bytes, proxy: str | None) -> dict:
    """Every kind of call, blocking (run in a thread: the proxy's loop must keep running)."""
    options = [("grpc.http_proxy", proxy)] if proxy else [("grpc.enable_http_proxy", 0)]
    with grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root_pem),
                             options=options) as channel:
        stub = pb2_grpc.EchoStub(channel)
        out: dict = {"unary": stub.Unary(pb2.EchoRequest(text="u"), timeout=10).text}
        # grpcio sends a message uncompressed when gzip would not make it smaller: a blob that shrinks
        out["stream"] = [r.text for r in stub.ServerStream(pb2.EchoRequest(text="s", count=3, blob=bytes(4096)),
                                                           timeout=10, compression=grpc.Compression.Gzip)]
        reply = stub.ClientStream(iter([pb2.EchoRequest(text=t) for t in "abc"]), timeout=10)
        out["client_stream"] = (reply.text, reply.index)
        out["bidi"] = [r.text for r in stub.Bidi(iter([pb2.EchoRequest(text=t) for t in ("x", "y")]), timeout=10)]
        try:
            stub.Unary(pb2.EchoRequest(text="missing"), timeout=10)
        except grpc.RpcError as e:
            out["error"] = (e.code(), e.details())
    return out


EXPECTED = {"unary": "u#0", "stream": ["s#0", "s#1", "s#2"], "client_stream": ("a+b+c", 3), "bidi": ["X", "Y"]}


async def test_grpcio_through_the_proxy(make_proxy, origin_ca, tmp_path):
    pb2, pb2_grpc = compile_echo(tmp_path / "gen")
    key_pem, cert_pem = leaf_for_localhost(origin_ca)
    server, port = echo_server(pb2, pb2_grpc, key_pem, cert_pem)
    out = tmp_path / "capture.ndjson"
    try:
        proxy = await make_proxy(output=str(out), proto_paths=[str(PROTO_DIR)])
        root = proxy.ca.cert_path.read_bytes()  # the client trusts the proxy's CA alone
        got = await asyncio.wait_for(asyncio.to_thread(
            run_calls, pb2, pb2_grpc, f"localhost:{port}", root, f"http://127.0.0.1:{proxy.address[1]}"), 60)
        await proxy.stop()
    finally:
        server.stop(None)
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    assert got["error"] == (grpc.StatusCode.NOT_FOUND, "no such thing")
    assert pgrpc.active_schema() is None
    calls = [r["grpc"] for r in read_records(out) if "grpc" in r]
    by_method: dict[str, list] = {}
    for g in calls:
        by_method.setdefault(g["method"], []).append(g)
    assert sorted(by_method) == ["Bidi", "ClientStream", "ServerStream", "Unary"]
    ok, missing = sorted(by_method["Unary"], key=lambda g: g["status"])
    assert ok["service"] == "omni.test.Echo" and ok["status"] == 0 and ok["statusName"] == "OK"
    assert ok["requestMessages"][0]["decoded"] == {"text": "u"}
    assert ok["responseMessages"][0]["type"] == "omni.test.EchoReply"
    assert ok["responseMessages"][0]["decoded"] == {"text": "u#0"}
    assert (missing["status"], missing["statusName"], missing["message"]) == (5, "NOT_FOUND", "no such thing")
    stream = by_method["ServerStream"][0]
    assert stream["requestMessages"][0]["compressed"] is True  # gzip, decoded all the same
    assert stream["encoding"] == "gzip" and stream["requestMessages"][0]["size"] < 4096
    decoded = stream["requestMessages"][0]["decoded"]
    assert (decoded["text"], decoded["count"], base64.b64decode(decoded["blob"])) == ("s", 3, bytes(4096))
    assert [m["decoded"]["text"] for m in stream["responseMessages"]] == ["s#0", "s#1", "s#2"]
    assert stream["status"] == 0
    cs = by_method["ClientStream"][0]
    assert [m["decoded"] for m in cs["requestMessages"]] == [{"text": "a"}, {"text": "b"}, {"text": "c"}]
    assert cs["responseMessages"][0]["decoded"] == {"text": "a+b+c", "index": 3}
    bidi = by_method["Bidi"][0]
    assert [m["decoded"]["text"] for m in bidi["requestMessages"]] == ["x", "y"]
    assert [m["decoded"]["text"] for m in bidi["responseMessages"]] == ["X", "Y"]
    assert all(g["status"] == 0 for g in (stream, cs, bidi))
