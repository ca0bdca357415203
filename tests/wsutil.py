"""WebSocket test helpers: a real `websockets` echo server and a client through the proxy."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve


async def echo(ws: Any) -> None:
    """Greets at once (bytes right behind the 101), then echoes: text as "echo:<text>", binary
    reversed; "close-me" makes the server close with 4001 "bye"."""
    await ws.send("welcome")
    async for msg in ws:
        if msg == "close-me":
            await ws.close(4001, "bye")
            return
        if isinstance(msg, str):
            await ws.send("echo:" + msg)
        else:
            await ws.send(bytes(reversed(msg)))


async def start_server(ssl_ctx: ssl.SSLContext | None = None, handler: Any = echo, **kw: Any) -> Any:
    server = await serve(handler, "127.0.0.1", 0, ssl=ssl_ctx, **kw)
    return server


def server_port(server: Any) -> int:
    return next(iter(server.sockets)).getsockname()[1]


class _AbsoluteForm(ClientConnection):
    """A plain ws:// handshake sent to a proxy: the request target in absolute form."""

    authority = ""

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        orig = self.protocol.connect

        def absolute() -> Any:
            req = orig()
            req.path = f"http://{self.authority}{req.path}"
            return req

        self.protocol.connect = absolute  # type: ignore[method-assign]
        await super().handshake(*args, **kwargs)


def ws_through_proxy(proxy_port: int, origin_port: int, path: str = "/chat", **kw: Any) -> Any:
    """ws://127.0.0.1:origin_port/path through the proxy at proxy_port (absolute-form request)."""
    authority = f"127.0.0.1:{origin_port}"
    cls = type("AbsoluteFormConnection", (_AbsoluteForm,), {"authority": authority})
    sock = socket.create_connection(("127.0.0.1", proxy_port))
    return connect(f"ws://{authority}{path}", sock=sock, proxy=None, create_connection=cls,
                   open_timeout=10, close_timeout=5, **kw)


def wss_through_proxy(proxy_port: int, origin_port: int, ca_path: str, path: str = "/chat", **kw: Any) -> Any:
    """wss://localhost:origin_port/path through the proxy (CONNECT), trusting only `ca_path`."""
    ctx = ssl.create_default_context(cafile=ca_path)
    return connect(f"wss://localhost:{origin_port}{path}", proxy=f"http://127.0.0.1:{proxy_port}", ssl=ctx,
                   open_timeout=10, close_timeout=5, **kw)
