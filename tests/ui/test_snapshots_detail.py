"""SVG snapshots of the detail view's additions at 80×24 and 160×48: the query and cookie tables,
the Set-Cookie table, the certificate chain and each new content view (msgpack, protobuf,
GraphQL, CSS, JavaScript, multipart with a PEM part). Stored in snapshots/test_snapshots_detail/.

Regenerate after an intended change with
`python3 -m pytest tests/ui/test_snapshots_detail.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    _flow,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    until,
)
from test_contentviews_extra import GQL, PEM, USER

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail

CHAIN = (Path(__file__).parents[1] / "data" / "example_chain.pem").read_text()


def cookie_flow():
    f = _flow(201, "GET", "https://shop.example.com/search?q=caf%C3%A9+au+lait&page=2&sort=price&tag=new&tag=sale",
              status=200, reason="OK", ctype="application/json", body=b'{"results": [], "total": 0}',
              req_headers=[("Cookie", "sid=3f9a1c77e0; theme=dark; consent=; ab_test=variant-b")],
              resp_headers=[
                  ("Set-Cookie", "sid=8d2e44b1aa; Domain=.example.com; Path=/; "
                                 "Expires=Wed, 21 Oct 2037 07:28:00 GMT; Secure; HttpOnly; SameSite=Lax"),
                  ("Set-Cookie", "theme=; Max-Age=0; Path=/settings"),
                  ("Set-Cookie", "recently_viewed=WID-42%2CWID-7; Max-Age=604800; Path=/; SameSite=Strict"),
              ])
    return f


def cert_flow():
    f = _flow(202, "GET", "https://api.example.com/v1/status", status=200, reason="OK",
              ctype="application/json", body=b'{"ok": true}')
    f.server_tls.cert_chain = CHAIN
    return f


def body_flow(fid: int, ctype: str, body: bytes, method: str = "POST", path: str = "/api") -> object:
    if method == "POST":  # the body is the request's: the response is a short JSON
        return _flow(fid, "POST", f"https://api.example.com{path}", status=200, reason="OK",
                     ctype="application/json", body=b'{"ok": true}',
                     req_headers=[("Content-Type", ctype)], req_body=body)
    return _flow(fid, "GET", f"https://api.example.com{path}", status=200, reason="OK", ctype=ctype, body=body)


CSS = (b"body{margin:0;font:14px/1.4 -apple-system,sans-serif;color:#222}.nav{display:flex;gap:8px}"
       b".nav>a:hover{color:#c00;text-decoration:underline}@media (max-width:600px){.nav{display:none}}")
JS = (b'"use strict";function debounce(fn,ms){let t;return function(...args){clearTimeout(t);'
      b't=setTimeout(()=>fn.apply(this,args),ms)}}const api={base:"/v1",get:async id=>{const r=await '
      b'fetch(`${api.base}/users/${id}`);if(!r.ok)throw new Error("HTTP "+r.status);return r.json()}};')
MSGPACK = msgpack.packb({"event": "checkout", "user": {"id": 4821, "name": "Ada Lovelace", "vip": True},
                         "items": [{"sku": "WID-42", "qty": 3, "price": 19.99}, {"sku": "GAD-7", "qty": 1,
                                                                                "price": 249.0}],
                         "ts": 1767268800, "sig": b"\x9a\x1f\x00\xc4\x77"})
MULTIPART = (b"--b0und\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nProduction TLS cert\r\n"
             b"--b0und\r\nContent-Disposition: form-data; name=\"cert\"; filename=\"server.pem\"\r\n"
             b"Content-Type: application/octet-stream\r\n\r\n" + PEM + b"\r\n"
             b"--b0und\r\nContent-Disposition: form-data; name=\"key\"; filename=\"key.der\"\r\n"
             b"Content-Type: application/octet-stream\r\n\r\n\x30\x82\x01\x00\x02\x01\x00\r\n--b0und--\r\n")

VIEWS = {
    "msgpack": (lambda: body_flow(211, "application/msgpack", MSGPACK, "GET", "/events/latest"), "response"),
    "protobuf": (lambda: body_flow(212, "application/x-protobuf", USER, "GET", "/users/150"), "response"),
    "graphql": (lambda: body_flow(213, "application/json", json.dumps(GQL).encode(), path="/graphql"), "request"),
    "css": (lambda: body_flow(214, "text/css", CSS, "GET", "/static/app.css"), "response"),
    "javascript": (lambda: body_flow(215, "application/javascript", JS, "GET", "/static/app.js"), "response"),
    "multipart": (lambda: body_flow(216, "multipart/form-data; boundary=b0und", MULTIPART, path="/certs"),
                  "request"),
}


def open_detail(flow, tab: str, end: bool = False):
    """run_before: one flow in the table, its detail open (own screen at 80, pane at 160) on `tab`."""

    async def run(pilot) -> None:
        app: OmniProxyApp = pilot.app
        app._snapshot_flows = [flow]  # the app tracks flows weakly; keep it alive
        app.on_flow_event("done", flow)
        await until(pilot, lambda: app.view.total == 1 and app._drawn_version == app.view.version, "the flow")
        await pilot.press("home", "enter")
        if app.is_wide:
            await until(pilot, lambda: app.screen.query_one(FlowDetail).has_focus_within, "the pane focused")
        else:
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        detail = app.screen.query_one(FlowDetail)
        await until(pilot, lambda: detail.flow is not None and detail.flow.id == flow.id, "the flow shown")
        await pilot.press({"request": "1", "response": "2", "timing": "3"}[tab])
        await until(pilot, lambda: detail.active_tab == tab, f"the {tab} tab")
        if end:
            await pilot.press("G")
        await app.workers.wait_for_complete()
        await pilot.pause()

    return run


@pytest.mark.parametrize("size", size_params())
def test_query_and_cookie_tables(snap_compare, size: tuple[int, int]) -> None:
    """Request tab: the query decoded and the Cookie pairs as tables, before the body."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_detail(cookie_flow(), "request"))


@pytest.mark.parametrize("size", size_params())
def test_set_cookie_table(snap_compare, size: tuple[int, int]) -> None:
    """Response tab: each Set-Cookie with its expiry and attributes."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_detail(cookie_flow(), "response"))


@pytest.mark.parametrize("size", size_params())
def test_certificate_chain(snap_compare, size: tuple[int, int]) -> None:
    """Timing tab scrolled to its end: the server's chain, leaf first."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_detail(cert_flow(), "timing", end=True))


@pytest.mark.parametrize("size", size_params())
@pytest.mark.parametrize("view", list(VIEWS))
def test_content_view(snap_compare, view: str, size: tuple[int, int]) -> None:
    make, tab = VIEWS[view]
    assert snap_compare(make_app(), terminal_size=size, run_before=open_detail(make(), tab))
