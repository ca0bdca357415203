"""A small real HTTP/1.1 origin server for tests (asyncio streams, plain or TLS).

Routes:
  /json                 a JSON object
  /echo                 the request (method, path, headers, body sha256 and size) as JSON
  /bytes?n=N            N bytes (Content-Length), streamed in 64 KiB pieces, deterministic content
  /chunked?n=N&parts=K  N bytes in K chunks (Transfer-Encoding: chunked)
  /gzip                 a gzip-encoded JSON body
  /png                  a tiny PNG
  /cookies              two Set-Cookie headers
  /status/N             an empty response with status N
  /close                a body delimited by closing the connection
  /die                  headers and part of the body, then the connection is dropped
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import ssl
from urllib.parse import parse_qs, urlsplit

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def pattern_bytes(n: int) -> bytes:
    """Deterministic, non-repeating-ish content so corruption is detectable by checksum."""
    block = hashlib.sha256(b"omniproxy").digest() * 2048  # 64 KiB
    out = bytearray()
    i = 0
    while len(out) < n:
        out += bytes([i & 0xFF]) + block[: min(len(block), n - len(out) - 1)]
        i += 1
    return bytes(out[:n])


class Origin:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.connections = 0
        self.requests: list[dict] = []

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    async def start(self) -> Origin:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2)
            except TimeoutError:
                pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, target, version = line.decode("latin-1").split()
        headers: list[tuple[str, str]] = []
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            k, v = raw.decode("latin-1").split(":", 1)
            headers.append((k.strip(), v.strip()))
        hd = {k.lower(): v for k, v in headers}
        body = b""
        if "chunk" in hd.get("transfer-encoding", ""):
            parts = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                parts.append(await reader.readexactly(size))
                await reader.readline()
            body = b"".join(parts)
        elif int(hd.get("content-length", "0") or 0):
            body = await reader.readexactly(int(hd["content-length"]))
        self.requests.append({"method": method, "target": target, "headers": headers, "body": body})
        url = urlsplit(target)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        keep = hd.get("connection", "").lower() != "close"

        def send(status: int, body: bytes = b"", ctype: str = "application/json",
                 extra: list[tuple[str, str]] | None = None) -> None:
            head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Status'}",
                    f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
            head += [f"{k}: {v}" for k, v in (extra or [])]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else body))

        if path == "/json":
            send(200, json.dumps({"hello": "world", "items": [1, 2, 3], "nested": {"a": True}}).encode())
        elif path == "/echo":
            send(200, json.dumps({
                "method": method, "target": target, "headers": headers,
                "bodySha256": hashlib.sha256(body).hexdigest(), "bodySize": len(body),
                "body": body[:1000].decode("utf-8", "replace")}).encode())
        elif path == "/bytes":
            n = int(q.get("n", "1024"))
            data = pattern_bytes(n)
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         f"Content-Length: {n}\r\n\r\n".encode())
            if method != "HEAD":
                for i in range(0, n, 65536):
                    writer.write(data[i:i + 65536])
                    await writer.drain()
        elif path == "/chunked":
            n, parts = int(q.get("n", "1000")), int(q.get("parts", "4"))
            data = pattern_bytes(n)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            step = max(1, -(-n // parts))
            for i in range(0, n, step):
                piece = data[i:i + step]
                writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        elif path == "/gzip":
            send(200, gzip.compress(b'{"compressed": true, "n": 42}'), extra=[("Content-Encoding", "gzip")])
        elif path == "/png":
            send(200, PNG, ctype="image/png")
        elif path == "/cookies":
            send(200, b"{}", extra=[("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")])
        elif path.startswith("/status/"):
            send(int(path.rsplit("/", 1)[1]))
        elif path == "/close":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil close")
            await writer.drain()
            return False
        elif path == "/die":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\npartial")
            await writer.drain()
            writer.transport.abort()
            return False
        else:
            send(404, b'{"error": "not found"}')
        await writer.drain()
        return keep
