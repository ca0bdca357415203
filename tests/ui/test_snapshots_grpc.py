"""The gRPC section of the detail view: documents and a pilot test asserting what a user sees, and
SVG snapshots at 80×24 and 160×48 (snapshots/test_snapshots_grpc/). The flows are made here from
bytes of grpcio-tools' generated classes (no network).

Regenerate after an intended change with
`python3 -m pytest tests/ui/test_snapshots_grpc.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import pytest
from grpcutil import PROTO_DIR, compile_echo, frame, trailer_frame
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    _flow,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    until,
)
from test_snapshots_detail import open_detail

from omniproxy_tui.views.contentviews import view_body
from omniproxy_tui.widgets.detail import FlowDetail, request_document, response_document
from proxycore import grpc
from proxycore.flows.flow import Headers


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return compile_echo(tmp_path_factory.mktemp("gen"))[0]


@pytest.fixture(scope="module")
def echo_schema():
    return grpc.Schema.load([str(PROTO_DIR)], [])


@pytest.fixture(autouse=True)
def no_schema():
    grpc.set_schema(None)
    yield
    grpc.set_schema(None)


def stream_flow(pb):
    """gRPC-Web server streaming: one request, three replies (the second gzip), status OK."""
    req = frame(pb.EchoRequest(text="weather in Lyon", count=3, inner=pb.Inner(name="metric", score=0.75),
                               nums=[7, 300]).SerializeToString())
    replies = [pb.EchoReply(text=t, index=i).SerializeToString()
               for i, t in enumerate(["sunny, 21°C", "cloudy, 17°C", "rain, 12°C"])]
    body = (frame(replies[0]) + frame(replies[1], compress=True) + frame(replies[2])
            + trailer_frame([("grpc-status", "0"), ("grpc-message", "")]))
    return _flow(301, "POST", "https://api.example.com/omni.test.Echo/ServerStream", status=200, reason="OK",
                 ctype="application/grpc-web+proto", body=body,
                 req_headers=[("Content-Type", "application/grpc-web+proto"), ("X-Grpc-Web", "1"),
                              ("Grpc-Accept-Encoding", "gzip")], req_body=req,
                 resp_headers=[("Grpc-Encoding", "gzip")])


def h2_flow(pb, fid: int, status: str, message: str = "", replies: int = 1):
    """A gRPC call over HTTP/2 with its status in the trailers."""
    req = frame(pb.EchoRequest(text="user/4821", count=replies, blob=b"\x00\x9f\xff").SerializeToString())
    body = b"".join(frame(pb.EchoReply(text=f"Ada Lovelace #{i}", index=i).SerializeToString())
                    for i in range(replies))
    f = _flow(fid, "POST", "https://users.internal:8443/omni.test.Echo/Unary", status=200, ctype="application/grpc",
              body=body, req_headers=[("Content-Type", "application/grpc"), ("Te", "trailers")], req_body=req)
    f.request.http_version = f.response.http_version = "HTTP/2.0"
    f.response.trailers = Headers.from_pairs([("grpc-status", status), ("grpc-message", message)])
    return f


def plain(doc) -> list[str]:
    return [doc.plain(i) for i in range(len(doc))]


def req_doc(flow) -> list[str]:
    return plain(request_document(flow, view_body(flow.request.body, flow.request.headers.get("content-type"))))


def resp_doc(flow) -> list[str]:
    resp = flow.response
    return plain(response_document(flow, view_body(resp.body, resp.headers.get("content-type"))))


# --- what the documents say ----------------------------------------------------------------------


def test_stream_without_schema_lists_every_message_and_the_trailers(pb):
    flow = stream_flow(pb)
    req = req_doc(flow)
    assert "gRPC  omni.test.Echo / ServerStream  grpc-web · 1 message" in req
    assert '  1: "weather in Lyon"' in req and "  3 {" in req  # numbered wire fields, nested
    resp = resp_doc(flow)
    assert "grpc-status  0 OK" in resp
    assert "gRPC  grpc-web · 3 messages" in resp
    assert [s.split("  ")[0] for s in resp if s.startswith("#")] == ["#0", "#1", "#2"]
    assert any(s.startswith("#1") and "gzip →" in s for s in resp)
    assert '  1: "cloudy, 17°C"' in resp
    assert resp[resp.index("Trailers  2") + 1].startswith("grpc-status")


def test_schema_names_the_fields_and_errors_show_status(pb, echo_schema):
    grpc.set_schema(echo_schema)
    ok = h2_flow(pb, 302, "0")
    req = req_doc(ok)
    assert any(s.startswith("#0") and s.endswith("omni.test.EchoRequest") for s in req)
    assert '  text: "user/4821"' in req and '  blob: "AJ//"' in req
    err = h2_flow(pb, 303, "5", "user%204821%20not%20found", replies=0)
    resp = resp_doc(err)
    assert "grpc-status  5 NOT_FOUND  user 4821 not found" in resp
    assert "gRPC  grpc · 0 messages" in resp


def test_not_grpc_gets_no_section():
    flow = _flow(304, "GET", "https://api.example.com/x", status=200, ctype="application/json", body=b"{}")
    assert not any(s.startswith("gRPC") for s in resp_doc(flow))


async def test_m_shows_the_body_in_other_views(pb):
    """The body line points at the section; m cycles to the body's own views (keyboard only)."""
    app = make_app()
    flow = stream_flow(pb)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(flow, "response")(pilot)
        detail = app.screen.query_one(FlowDetail)
        view = detail.view("response")

        def text() -> list[str]:
            doc = view.doc
            return [doc.plain(i) for i in range(len(doc))]

        assert any("the gRPC messages above" in s for s in text())
        await pilot.press("m")
        await until(pilot, lambda: not any("the gRPC messages above" in s for s in text()), "another view")
        assert any(s.startswith("Body  ") for s in text())


# --- snapshots ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", size_params())
def test_stream_response(snap_compare, pb, size: tuple[int, int]) -> None:
    """Response tab of a gRPC-Web server stream: status, three messages (one gzip), trailers."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_detail(stream_flow(pb), "response"))


@pytest.mark.parametrize("size", size_params())
def test_named_request(snap_compare, pb, echo_schema, size: tuple[int, int]) -> None:
    """Request tab of an HTTP/2 unary call decoded with --proto-path: named fields."""
    grpc.set_schema(echo_schema)
    assert snap_compare(make_app(), terminal_size=size, run_before=open_detail(h2_flow(pb, 302, "0"), "request"))


@pytest.mark.parametrize("size", size_params())
def test_error_status(snap_compare, pb, echo_schema, size: tuple[int, int]) -> None:
    """Response tab of a failed call: 5 NOT_FOUND and its message, from the HTTP/2 trailers."""
    grpc.set_schema(echo_schema)
    flow = h2_flow(pb, 303, "5", "user%204821%20not%20found", replies=0)
    assert snap_compare(make_app(), terminal_size=size, run_before=open_detail(flow, "response"))
