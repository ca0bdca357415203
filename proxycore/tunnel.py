"""CONNECT handling on a client connection: TLS interception, blind tunnels and raw relays."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httptools

from .certs import get_sni
from .flow import Response
from .upstream import UpstreamConnection, UpstreamError, _tls_info

if TYPE_CHECKING:
    from .http1 import ClientConnection, Exchange


class TunnelMixin:
    """The part of ClientConnection that turns a connection into a tunnel (kept apart: one concept)."""

    async def _relay_upgrade(self: ClientConnection, ex: Exchange, conn: UpstreamConnection) -> None:
        """After 101 Switching Protocols both sides speak something else: relay it raw."""
        assert conn.transport is not None
        self.relay_to = conn.transport
        for chunk in self.pending_raw:
            conn.transport.write(chunk)
        self.pending_raw = []
        ex.done = asyncio.get_running_loop().create_future()
        conn.handler = ex
        await ex.done
        conn.close()
        self.relay_to = None
        self.closing = True
        self._finish(ex)
        self.close()

    async def _serve_connect(self: ClientConnection, ex: Exchange) -> None:
        proxy = self.proxy
        flow = ex.flow
        req = flow.request
        host, port = req.host, req.port
        if not proxy.options.mitm or (proxy.skip_host is not None and proxy.skip_host(host)):
            await self._tunnel(ex, host, port)
            return
        loop = asyncio.get_running_loop()
        assert proxy.ca is not None and self.transport is not None
        try:
            ctx = proxy.ca.mitm_context(host)
        except Exception as exc:  # a host name the CA cannot mint for
            self.send_error(ex, 502, f"cannot create a certificate for {host}: {exc}")
            return
        self.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        flow.timings.connect_start = time.time()
        # Ready for the requests inside the tunnel *before* the handshake: TLS hands decrypted
        # bytes to this protocol as soon as they arrive, possibly before start_tls() returns.
        self.tunnel = (host, port)
        self.parser = httptools.HttpRequestParser(self)
        self.current = None
        self.pending_raw = []
        try:
            tls_transport = await loop.start_tls(self.transport, self, ctx, server_side=True,
                                                 ssl_handshake_timeout=30)
        except (TimeoutError, OSError, ConnectionError, Exception) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            flow.error = (f"client TLS handshake failed for {host}: {reason} "
                          "(does the client trust the OmniProxy CA? see `omniproxy-tui ca info`)")
            flow.passthrough = False
            ex.resp_size = 0
            self._finish(ex)
            self.abort()
            return
        if tls_transport is None:
            self.abort()
            return
        self.transport = tls_transport
        sslobj = tls_transport.get_extra_info("ssl_object")
        self.client_tls = _tls_info(None, get_sni(sslobj) if sslobj is not None else None)
        if sslobj is not None:
            self.client_tls.version = sslobj.version()
            self.client_tls.alpn = sslobj.selected_alpn_protocol()
            c = sslobj.cipher()
            self.client_tls.cipher = c[0] if c else None
        for early in self.queue:  # requests parsed while start_tls() was returning
            early.flow.client_tls = self.client_tls
        # The CONNECT itself is not recorded once intercepted: the requests inside it are.

    async def _tunnel(self: ClientConnection, ex: Exchange, host: str, port: int) -> None:
        """Blind tunnel (skip-host or --no-mitm): relayed untouched and recorded as one flow."""
        flow = ex.flow
        flow.passthrough = True
        flow.timings.connect_start = time.time()
        try:
            transport, relay = await self.proxy.pool.open_tunnel(host, port)
        except UpstreamError as exc:
            self.send_error(ex, exc.status, str(exc))
            return
        flow.timings.connect_end = time.time()
        peer = transport.get_extra_info("peername")
        if peer:
            flow.server_addr = (peer[0], peer[1])
        if self.closed:
            transport.close()
            return
        self.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        flow.response = Response(200, "Connection Established")
        if flow.in_scope:
            self.proxy.publish("add", flow)
        self.relay_to = transport
        for chunk in self.pending_raw:
            transport.write(chunk)
            ex.req_size += len(chunk)
        self.pending_raw = []
        ex.done = asyncio.get_running_loop().create_future()
        ex.upgrade = True  # no body capture inside the tunnel
        ex.resp_cap = None
        relay.sink = ex
        for chunk in relay.buffer:
            ex.response_body(chunk)
        relay.buffer = []
        if relay.closed:
            ex._resolve("ok")
        await ex.done
        transport.close()
        self._finish(ex)
        self.close()
