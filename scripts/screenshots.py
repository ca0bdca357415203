"""Regenerate the README's SVG screenshots in screenshots/ from a real run of the app.

    python3 scripts/screenshots.py [--out DIR]

Starts a small local origin (HTTP and HTTPS, on OS-chosen ports), runs `OmniProxyApp` headless
with its real proxy on port 0 (OMNIPROXY_HOME in a temporary directory, so a fresh CA is made and
the user's own is never touched), sends real requests through the proxy with httpx — HTML, JSON,
an image, a conditional 304, a 404, a POST, a slow 500, an HTTPS request through the generated CA
and a connection error — and saves what the app shows, driven by the same keys a user presses.
Last (so the other pictures never show them) a WebSocket session over wss:// with the `websockets`
client and server, and a server-streaming gRPC-Web call whose `.proto` the app is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import httpx  # noqa: E402
from textual.widgets import TextArea  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402
from websockets.asyncio.server import ServerConnection  # noqa: E402
from websockets.asyncio.server import serve as ws_serve  # noqa: E402

from omniproxy_tui.app import OmniProxyApp  # noqa: E402
from omniproxy_tui.widgets.breakpoints import EditorScreen, InboxScreen  # noqa: E402
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail  # noqa: E402
from omniproxy_tui.widgets.help import HelpScreen  # noqa: E402
from omniproxy_tui.widgets.messages import MessagesPane  # noqa: E402
from proxycore.certs import CertificateAuthority  # noqa: E402
from proxycore.flows.flow import DONE, ERROR  # noqa: E402
from proxycore.options import Options  # noqa: E402

NARROW, WIDE = (80, 24), (160, 48)
THEME = "textual-dark"
TIMEOUT = 15.0
FILTER = "~c 200 & ~t json"


# --------------------------------------------------------------------------- a small origin


def png(width: int, height: int) -> bytes:
    """A real RGB PNG (a gradient), so the detail view can report its type and dimensions."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 160)) for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


HTML = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Shop</title><link rel="stylesheet" href="/static/app.css"></head>
<body><h1>Shop</h1><img src="/static/logo.png" alt="logo"><p>Welcome back.</p></body>
</html>
"""
USERS = {"page": 2, "per_page": 3, "total": 12, "data": [
    {"id": 4, "email": "ada@example.com", "name": "Ada Lovelace", "active": True, "roles": ["admin"]},
    {"id": 5, "email": "alan@example.com", "name": "Alan Turing", "active": True, "roles": []},
    {"id": 6, "email": "grace@example.com", "name": "Grace Hopper", "active": False, "roles": ["ops"]},
], "next": "/api/users?page=3"}
ETAG = '"5f3a-1b2c"'

# A server-streaming gRPC method; the app is given this file (--proto-path), so it names the fields.
SHOP_PROTO = """syntax = "proto3";
package shop;

service Catalog {
  rpc ListProducts(ListProductsRequest) returns (stream Product);
}

message ListProductsRequest {
  string category = 1;
  int32 page_size = 2;
}

message Product {
  string sku = 1;
  string name = 2;
  int32 price_cents = 3;
  bool in_stock = 4;
  repeated string tags = 5;
}
"""
GRPC_PATH = "/shop.Catalog/ListProducts"
PRODUCTS = [("WID-42", "Widget", 1299, True, ["new"]), ("GAD-7", "Gadget", 4500, False, []),
            ("SPR-3", "Sprocket", 350, True, ["sale", "bulk"])]


def pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(number: int, value: int | str | bool) -> bytes:
    """One protobuf field: an int or bool as a varint, a str length-delimited (proto3 skips defaults)."""
    if isinstance(value, str):
        data = value.encode()
        return pb_varint(number << 3 | 2) + pb_varint(len(data)) + data
    return pb_varint(number << 3) + pb_varint(int(value)) if value else b""


def grpc_frame(payload: bytes, flag: int = 0) -> bytes:
    """A length-prefixed gRPC message (flag 0x80: a gRPC-Web trailer frame)."""
    return bytes([flag]) + struct.pack(">I", len(payload)) + payload


def product(sku: str, name: str, cents: int, in_stock: bool, tags: list[str]) -> bytes:
    return b"".join([pb_field(1, sku), pb_field(2, name), pb_field(3, cents), pb_field(4, in_stock),
                     *(pb_field(5, t) for t in tags)])


class Origin:
    """HTTP/1.1 keep-alive origin on 127.0.0.1 with a handful of realistic routes."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.logo = png(120, 40)

    async def start(self) -> Origin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split()
        headers: dict[str, str] = {}
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            k, v = raw.decode("latin-1").split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        path = target.split("?", 1)[0]
        status, ctype, out, extra = 404, "application/json", b'{"error": "not found"}', []
        if path == "/":
            status, ctype, out = 200, "text/html; charset=utf-8", HTML
        elif path == "/api/users":
            status, ctype, out = 200, "application/json; charset=utf-8", json.dumps(USERS).encode()
        elif path == "/api/profile":
            status, out = 200, json.dumps({"id": 4, "name": "Ada Lovelace", "plan": "pro",
                                           "features": ["export", "replay"]}).encode()
        elif path == "/api/orders" and method == "POST":
            order = json.loads(body or b"{}")
            status, out = 201, json.dumps({"id": "ord_8f2k", "status": "created", **order}).encode()
        elif path == "/static/logo.png":
            status, ctype, out = 200, "image/png", self.logo
        elif path == "/static/app.css":
            if headers.get("if-none-match") == ETAG:
                status, ctype, out = 304, "", b""
            else:
                status, ctype, out = 200, "text/css", b"body { font-family: sans-serif; }\n"
            extra = [("ETag", ETAG)]
        elif path == GRPC_PATH and method == "POST":  # gRPC-Web: the messages, then the trailer frame
            status, ctype = 200, "application/grpc-web+proto"
            out = b"".join(grpc_frame(product(*p)) for p in PRODUCTS)
            out += grpc_frame(b"grpc-status: 0\r\n", 0x80)
        elif path == "/api/report":
            await asyncio.sleep(0.35)  # a slow, failing backend: the duration column colours it
            status, ctype, out = 500, "text/plain", b"report worker crashed\n"
        reason = {200: "OK", 201: "Created", 304: "Not Modified", 404: "Not Found",
                  500: "Internal Server Error"}[status]
        head = [f"HTTP/1.1 {status} {reason}", "Server: demo-origin", f"Content-Length: {len(out)}"]
        head += [f"Content-Type: {ctype}"] if ctype else []
        head += [f"{k}: {v}" for k, v in extra]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + out)
        await writer.drain()
        return True


async def live_orders(ws: ServerConnection) -> None:
    """A WebSocket origin: answers a subscription with text and a binary snapshot, echoes binary
    pings reversed, acknowledges acks; the client closes."""
    async for msg in ws:
        if isinstance(msg, bytes):
            await ws.send(bytes(reversed(msg)))
        elif '"subscribe"' in msg:
            await ws.send('{"op": "subscribed", "channel": "orders", "since": "ord_8f2k"}')
            await ws.send(struct.pack(">HHI", 3, 42, 1299) + b"WID-42")  # a packed order snapshot
        else:
            await ws.send('{"op": "ok"}')


# --------------------------------------------------------------------------- driving the app


async def until(pilot, cond: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        await pilot.pause(0.02)


async def send_traffic(proxy_port: int, ca_file: Path, http: Origin, https: Origin) -> int:
    """Real requests through the proxy, one after the other so the table order is stable."""
    verify = ssl.create_default_context(cafile=str(ca_file))
    base, tls = f"http://127.0.0.1:{http.port}", f"https://localhost:{https.port}"
    async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{proxy_port}", verify=verify, trust_env=False,
                                 timeout=10) as client:
        requests = [
            client.get(f"{base}/"),
            client.get(f"{base}/static/app.css", headers={"If-None-Match": ETAG}),
            client.get(f"{base}/static/logo.png"),
            client.get(f"{base}/api/users?page=2", headers={"Accept": "application/json"}),
            client.post(f"{base}/api/orders", json={"sku": "WID-42", "qty": 3}),
            client.get(f"{tls}/api/profile", headers={"Authorization": "Bearer demo-token"}),
            client.get(f"{base}/api/users/999"),
            client.get(f"{base}/api/report?range=last-quarter"),
            client.get("http://127.0.0.1:1/health"),  # nobody listens: the proxy answers 502
        ]
        for request in requests:
            await request
    return len(requests)


async def send_streaming(proxy_port: int, ca_file: Path, ws_port: int, http: Origin) -> int:
    """A WebSocket session (text and binary both ways; each reply awaited, so the order is fixed)
    and a gRPC-Web call, through the proxy."""
    verify = ssl.create_default_context(cafile=str(ca_file))
    async with ws_connect(f"wss://localhost:{ws_port}/live/orders", proxy=f"http://127.0.0.1:{proxy_port}",
                          ssl=verify, open_timeout=10, close_timeout=5) as ws:
        await ws.send('{"op": "subscribe", "channel": "orders"}')
        for _ in range(2):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.send(b"\x01\x00\x2a\xff")
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.send('{"op": "ack", "id": "ord_8f2k"}')
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.close(1000, "done")
    async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{proxy_port}", trust_env=False, timeout=10) as client:
        await client.post(f"http://127.0.0.1:{http.port}{GRPC_PATH}",
                          content=grpc_frame(pb_field(1, "tools") + pb_field(2, 3)),
                          headers={"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1",
                                   "Accept": "application/grpc-web+proto"})
    return 2


def flows_settled(app: OmniProxyApp, n: int) -> bool:
    flows = app.view.all_flows()
    return (len(flows) == n and all(f.state in (DONE, ERROR) for f in flows)
            and app._drawn_version == app.view.version)


async def focus_flow(pilot, path: str) -> None:
    """Move the cursor to the flow with this path, with the keys a user would press."""
    app: OmniProxyApp = pilot.app
    index = next(i for i, f in enumerate(app.view.shown()) if f.request.target.startswith(path))
    await pilot.press("home", *["down"] * index)
    await until(pilot, lambda: app.view.focus is not None and app.view.focus.request.target.startswith(path),
                f"the cursor on {path}")


async def show_response_tab(pilot) -> None:
    app: OmniProxyApp = pilot.app
    await pilot.press("2")
    detail = app.screen.query_one(FlowDetail)
    await until(pilot, lambda: detail.active_tab == "response" and "JSON" in detail.status_text, "the response tab")
    await app.workers.wait_for_complete()
    await pilot.pause()


async def breakpoints(pilot, http: Origin, shot: Callable[[str], None]) -> None:
    """i sets an intercept filter, a POST pauses, B lists it, e opens it in the editor; then it is
    resumed and breakpoints are switched off again (last, so the other screenshots never show it)."""
    app: OmniProxyApp = pilot.app
    await pilot.resize_terminal(*NARROW)
    await until(pilot, lambda: not app.is_wide, "the narrow layout")
    await pilot.press("i", *["space" if c == " " else c for c in "~m post & ~q"], "enter")
    await until(pilot, lambda: app.engine.intercept is not None and app.engine.intercept.active, "breakpoints on")

    async def post() -> None:
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{app.proxy.address[1]}", trust_env=False,
                                     timeout=30) as client:
            await client.post(f"http://127.0.0.1:{http.port}/api/orders", json={"sku": "WID-42", "qty": 1})

    order = asyncio.ensure_future(post())
    await until(pilot, lambda: len(app._intercepted) == 1, "the paused POST")
    await pilot.press("B")
    await until(pilot, lambda: isinstance(app.screen, InboxScreen) and app.screen._rows, "the inbox")
    shot("inbox-80x24.svg")
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, EditorScreen), "the editor")
    app.screen.query_one(TextArea).cursor_blink = False
    await pilot.pause()
    shot("editor-80x24.svg")
    await pilot.press("escape", "a", "escape")  # editor closed, resumed from the inbox, back to the list
    await asyncio.wait_for(order, TIMEOUT)
    await pilot.press("i", "ctrl+u", "enter")
    await until(pilot, lambda: not app.engine.intercept.active, "breakpoints off")


async def streaming(pilot, http: Origin, ws_port: int, shot: Callable[[str], None]) -> None:
    """The WebSocket flow's Messages tab and the gRPC call's Response tab, at 80x24."""
    app: OmniProxyApp = pilot.app
    n = len(app.view.all_flows()) + await send_streaming(app.proxy.address[1], app.options.ca_cert_path,
                                                         ws_port, http)
    await until(pilot, lambda: flows_settled(app, n), f"{n} finished flows in the table")

    await focus_flow(pilot, "/live/orders")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the WebSocket flow's detail")
    await pilot.press("5")
    detail = app.screen.query_one(FlowDetail)
    pane = detail.query_one(MessagesPane)
    await until(pilot, lambda: detail.active_tab == "messages" and pane.list.option_count == 7, "the Messages tab")
    await app.workers.wait_for_complete()
    await pilot.pause()
    shot("websocket-80x24.svg")
    await pilot.press("escape")
    await until(pilot, lambda: not isinstance(app.screen, DetailScreen), "the detail closed")

    await focus_flow(pilot, GRPC_PATH)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the gRPC call's detail")
    await pilot.press("2")
    detail = app.screen.query_one(FlowDetail)
    await until(pilot, lambda: detail.active_tab == "response" and "gRPC" in detail.status_text,
                "the gRPC section")
    await app.workers.wait_for_complete()
    await pilot.pause()
    shot("grpc-80x24.svg")
    await pilot.press("escape")


async def capture(out: Path, home: Path) -> list[Path]:
    ca_dir = home / "origin-ca"
    ca_dir.mkdir(parents=True)
    origin_ca = CertificateAuthority.generate(ca_dir / "ca.crt", ca_dir / "ca.key", cn="Demo Origin CA")
    http, https = await Origin().start(), await Origin(origin_ca.server_context("localhost")).start()
    ws_server = await ws_serve(live_orders, "127.0.0.1", 0, ssl=origin_ca.server_context("localhost"))
    proto_dir = home / "proto"
    proto_dir.mkdir()
    (proto_dir / "shop.proto").write_text(SHOP_PROTO)
    app = OmniProxyApp(Options(host="127.0.0.1", port=0, upstream_ca=str(ca_dir / "ca.crt"),
                               proto_paths=[str(proto_dir)]))
    app.theme = THEME
    saved: list[Path] = []

    def shot(name: str) -> None:
        app.save_screenshot(filename=name, path=str(out))
        saved.append(out / name)

    try:
        async with app.run_test(size=NARROW) as pilot:
            if app.proxy is None or app.startup_error is not None:
                raise SystemExit(f"screenshots: the proxy did not start: {app.startup_error}")
            n = await send_traffic(app.proxy.address[1], app.options.ca_cert_path, http, https)
            await until(pilot, lambda: flows_settled(app, n), f"{n} finished flows in the table")

            await focus_flow(pilot, "/static/logo.png")
            await pilot.press("m", "end")  # mark the image, then follow the newest flow again
            await until(pilot, lambda: app.view.follow and any(f.marked for f in app.view.shown()), "the mark")
            shot("main-80x24.svg")

            await pilot.press("f", *["space" if c == " " else c for c in FILTER], "enter")
            await until(pilot, lambda: app.view.filter_expr == FILTER and app._drawn_version == app.view.version,
                        "the filter")
            shot("filter-80x24.svg")
            await pilot.press("f", "ctrl+u", "enter")  # an empty filter shows everything again
            await until(pilot, lambda: len(app.view) == n, "the filter cleared")

            await focus_flow(pilot, "/api/users?page=2")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
            await show_response_tab(pilot)
            shot("detail-80x24.svg")
            await pilot.press("escape")

            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
            shot("help-80x24.svg")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "help closed")

            await pilot.resize_terminal(*WIDE)
            await until(pilot, lambda: app.is_wide and app.screen.query_one("#main").has_class("wide"),
                        "the split layout")
            await focus_flow(pilot, "/api/users?page=2")
            await pilot.press("enter")  # wide: Enter moves into the detail pane
            await until(pilot, lambda: app.screen.query_one(FlowDetail).has_focus_within, "the detail pane")
            await show_response_tab(pilot)
            shot("main-160x48.svg")
            await breakpoints(pilot, http, shot)
            await streaming(pilot, http, ws_server.sockets[0].getsockname()[1], shot)
            await app.shutdown()
    finally:
        await http.stop()
        await https.stop()
        ws_server.close()
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description="Regenerate the README screenshots from a real run.")
    parser.add_argument("--out", type=Path, default=REPO / "screenshots", help="output directory")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="omniproxy-shots-") as tmp:
        os.environ["OMNIPROXY_HOME"] = str(Path(tmp) / "home")  # a fresh CA, never the user's
        for path in asyncio.run(capture(args.out.resolve(), Path(tmp))):
            print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
