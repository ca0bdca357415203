"""Raw TCP flows without a WireGuard client: a TCP echo server on 127.0.0.1, and a tunnel entry
(a listener on 127.0.0.1) whose accepted connections are handed to the WireGuard server's stream
handler as if they came out of the tunnel, with the echo server as their original destination.
So a plain socket client drives the very code a WireGuard client's raw TCP stream goes through
(sniffing the first bytes, the relay, the TCP flow); the tunnel itself is tested in
tests/test_wireguard_netns.py."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from proxycore.proxy.wireguard import WireGuardServer
from proxycore.wgconf import parse_mode


class _Stream:
    """An accepted connection with the interface of a mitmproxy_wireguard stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dst: tuple[str, int]) -> None:
        self.reader, self.writer, self.dst = reader, writer, dst

    async def read(self, n: int) -> bytes:
        return await self.reader.read(n)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    def write_eof(self) -> None:
        if self.writer.can_write_eof() and not self.writer.is_closing():
            self.writer.write_eof()

    def close(self) -> None:
        self.writer.close()

    def get_extra_info(self, name: str) -> Any:
        if name == "original_dst":
            return self.dst
        if name == "peername":
            return self.writer.get_extra_info("peername")
        return None


async def start_echo(banner: bytes = b"") -> asyncio.AbstractServer:
    """Answers each read with b"echo:" + what it read (after `banner`, sent first if given)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if banner:
                writer.write(banner)
            while data := await reader.read(65536):
                writer.write(b"echo:" + data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def port_of(server: asyncio.AbstractServer) -> int:
    return server.sockets[0].getsockname()[1]


@asynccontextmanager
async def tunnel_entry(proxy: Any, dst: tuple[str, int]):
    """Yields the port of a listener whose connections become TCP flows of `proxy` to `dst`."""
    wg = WireGuardServer(proxy, parse_mode("wireguard"))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await wg._on_stream(_Stream(reader, writer, dst))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield port_of(server)
    finally:
        server.close()
        await wg.stop()


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes,
                   expect: bytes) -> bytes:
    """Send `data` and read until `expect` came back whole (a read may split it)."""
    writer.write(data)
    await writer.drain()
    got = b""
    while len(got) < len(expect):
        more = await asyncio.wait_for(reader.read(65536), 10)
        if not more:
            break
        got += more
    return got
