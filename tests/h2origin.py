"""A real HTTP/2 origin for tests: hypercorn (h2 + http/1.1 over TLS) serving a small ASGI app,
in the test's own event loop.

Routes:
  /echo              the request (method, path, http_version, headers, body sha256 and size) as JSON
  /bytes?n=N         N bytes (Content-Length), sent in 1 MiB pieces, deterministic content
  /slow?ms=M         waits M ms, then a small body
  /trailers          a streamed body followed by trailers (grpc-status: 0, x-sum: the body's sha256)
  /push              tries to push /echo first (the proxy refuses push: nothing may arrive), then a body
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from urllib.parse import parse_qs

from hypercorn.asyncio import serve
from hypercorn.config import Config
from origin import pattern_bytes


class _Config(Config):
    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__()
        self._ctx = ctx

    @property
    def ssl_enabled(self) -> bool:
        return True

    def create_ssl_context(self) -> ssl.SSLContext:
        return self._ctx


class H2Origin:
    def __init__(self, ca, alpn: tuple[str, ...] = ("h2", "http/1.1")) -> None:
        ca.alpn = list(alpn)
        self.ctx = ca.server_context("localhost", h2="h2" in alpn)
        self.port = 0
        self.versions: list[str] = []  # http_version of each request, in order
        self.push_attempts = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}{path}"

    async def start(self) -> H2Origin:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cfg = _Config(self.ctx)
        cfg.bind = [f"127.0.0.1:{self.port}"]
        cfg.accesslog = None
        cfg.errorlog = None
        cfg.h2_max_concurrent_streams = 200
        self._task = asyncio.ensure_future(serve(self.app, cfg, shutdown_trigger=self._stop.wait))
        for _ in range(500):  # until it listens (every wait has a bound)
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return self
            except OSError:
                await asyncio.sleep(0.01)
        raise RuntimeError("hypercorn did not start")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError, Exception):
                pass

    async def app(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        self.versions.append(scope["http_version"])
        q = parse_qs(scope["query_string"].decode())
        body = bytearray()
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        if path == "/bytes":
            n = int(q["n"][0])
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(n).encode()),
                                    (b"content-type", b"application/octet-stream")]})
            block = pattern_bytes(1 << 20)
            sent = 0
            while sent < n:
                piece = block[: min(len(block), n - sent)]
                sent += len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": sent < n})
            return
        if path == "/slow":
            await asyncio.sleep(int(q.get("ms", ["200"])[0]) / 1000)
        if path == "/trailers":
            await send({"type": "http.response.start", "status": 200, "trailers": True,
                        "headers": [(b"content-type", b"application/grpc")]})
            parts = [b"part-%d;" % i for i in range(5)]
            for p in parts:
                await send({"type": "http.response.body", "body": p, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            await send({"type": "http.response.trailers", "more_trailers": False,
                        "headers": [(b"grpc-status", b"0"),
                                    (b"x-sum", hashlib.sha256(b"".join(parts)).hexdigest().encode())]})
            return
        if path == "/push" and "http.response.push" in scope.get("extensions", {}):
            self.push_attempts += 1
            await send({"type": "http.response.push", "path": "/echo", "headers": []})
        out = json.dumps({
            "method": scope["method"], "path": path, "http_version": scope["http_version"],
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body_sha256": hashlib.sha256(bytes(body)).hexdigest(), "body_size": len(body),
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})
