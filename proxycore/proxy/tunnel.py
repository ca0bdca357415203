"""CONNECT handling on a client connection: TLS interception, blind tunnels and raw relays."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TYPE_CHECKING

from proxycore.addons.hooks import run_hook
from proxycore.certs import get_sni
from proxycore.flows.flow import Flow, Response
from proxycore.layers import http1 as h1
from proxycore.layers.tls import start_tls
from proxycore.proxy.upstream import UpstreamConnection, UpstreamError, _tls_info

if TYPE_CHECKING:
    from proxycore.proxy.http1 import ClientConnection, Exchange


class TunnelMixin:
    """The part of ClientConnection that turns a connection into a tunnel (kept apart: one concept)."""

    async def _relay_upgrade(self: ClientConnection, ex: Exchange, conn: UpstreamConnection) -> None:
        """After 101 Switching Protocols both sides speak something else: WebSocket message by
        message (proxycore/proxy/websocket.py), anything else raw."""
        if ex.ws_early is not None and ex.flow.websocket is not None:
            from proxycore.proxy.websocket import WebSocketRelay

            relay = WebSocketRelay(self, ex, conn)
            early, ex.ws_early = ex.ws_early, None
            await relay.run(self.codec.detach(), early)
            self.relay_to = None
            self.closing = True
            self._finish(ex)
            self.close()
            return
        self.relay_to = conn
        rest = self.codec.detach()
        if rest:
            conn.write(rest)
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
        if self.shaper is not None:
            # a throttled exchange went before on this connection: its queued bytes must reach the
            # client before the tunnel's (and before a TLS handshake takes the transport over)
            self.shaper.flush()
        # One turn of the loop first, so that a client that half-closed right after its CONNECT
        # is seen before anything is spent on it: Go's transport abandons every dial it no longer
        # needs that way (another connection freed up first). Answering each with a 200, a TLS
        # handshake and an error flow let such dials queue up under load until every new tunnel
        # waited seconds. A CONNECT abandoned before its answer is not a flow (as in mitmproxy).
        await asyncio.sleep(0)
        if self.closing or self.closed:
            self.close()
            return
        if proxy.addons.connect is not None:
            await run_hook(proxy.addons.connect, flow)
            if self.closed:
                return  # abandoned before its answer
            if flow.killed:
                self._kill(ex)
                return
            if flow.response is not None:  # answered by a hook (e.g. refused): no tunnel
                flow.ensure_id()
                await self._send_local(ex)
                self.closing = True
                return
        if flow.passthrough:
            await self._tunnel(ex, host, port)
            return
        assert proxy.ca is not None and self.transport is not None
        offer_h2 = False
        if proxy.pool.h2_ssl is not None and "h2" in proxy.ca.alpn:
            # h2 is offered to the client only when the origin speaks it: ask the origin first
            # (mitmproxy's eager connection strategy); the connection serves the first requests
            offer_h2 = await self._eager_connect(flow, host, port)
            if self.closed:
                return  # abandoned before its answer
        try:
            ctx = proxy.ca.mitm_context(host, offer_h2)
        except Exception as exc:  # a host name the CA cannot mint for
            flow.ensure_id()
            self.send_error(ex, 502, f"cannot create a certificate for {host}: {exc}")
            return
        self.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        flow.timings.connect_start = time.time()
        # Ready for the requests inside the tunnel *before* the handshake: TLS hands decrypted
        # bytes to this protocol as soon as they arrive, possibly before start_tls() returns.
        early = self.codec.detach()  # a ClientHello sent along with the CONNECT
        self.tunnel = (host, port)
        self.codec = h1.H1Server(proxy.options.max_head_size)
        self.current = None
        hold = None
        if offer_h2:
            # the layer depends on the ALPN the handshake picks: hold what arrives meanwhile
            from proxycore.proxy.http2 import Buffering

            hold = self.relay_to = Buffering()  # type: ignore[assignment]
        try:
            tls_transport = await start_tls(self.transport, self, ctx, server_side=True, initial=early,
                                            timeout=proxy.options.client_head_timeout)
        except (TimeoutError, OSError, ConnectionError, ssl.SSLError, Exception) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            flow.ensure_id()
            if reason == "CALLBACK_FAILED":  # our SNI hook (or Python's decoding of the name) refused it
                flow.error = f"client TLS handshake refused for {host}: the server name (SNI) it sent is not usable"
            else:
                flow.error = (f"client TLS handshake failed for {host}: {reason} "
                              "(does the client trust the OmniProxy CA? see `omniproxy-tui ca info`)")
            flow.passthrough = False
            ex.resp_size = 0
            self.relay_to = None
            self._finish(ex)
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
        if hold is not None and self.client_tls.alpn == "h2":
            from proxycore.proxy.http2 import H2ClientConnection

            flow.client_tls = self.client_tls
            await run_hook(proxy.addons.tls, flow)
            if self.closed:
                self._finish(ex)
                return
            conn = H2ClientConnection(proxy, self)
            self.relay_to = conn  # this connection's serve loop ends here; the h2 layer takes over
            self.deadline = 0.0
            tls_transport.set_protocol(conn)
            conn.start(tls_transport, hold.take())
            return
        if hold is not None:  # offered h2, the client chose HTTP/1.1: its flows go over HTTP/1.1;
            # the h2 connection stays pooled for h2 clients (and spares later CONNECTs the dial)
            self.relay_to = None
        if self.client_tls.alpn not in (None, "http/1.1"):
            # a context never offers anything else (options.alpn)
            flow.ensure_id()
            flow.error = f"client negotiated {self.client_tls.alpn!r}, which this proxy does not speak"
            self._finish(ex)
            self.abort()
            return
        if self.peer is not None:
            self.peer.tls = self.client_tls
        for queued in self.queue:  # requests parsed while start_tls() was returning
            queued.flow.client_tls = self.client_tls
        flow.client_tls = self.client_tls
        await run_hook(proxy.addons.tls, flow)
        if hold is not None:
            early = hold.take()
            if early and not self.closed:
                self.data_received(early)
        # The CONNECT itself is not recorded once intercepted: the requests inside it are.

    async def _eager_connect(self: ClientConnection, flow: Flow, host: str, port: int) -> bool:
        """Connect to the origin offering h2 before the client's handshake; True when it speaks h2.
        The connection stays in the pool for the tunnel's first requests. An origin known to
        speak only HTTP/1.1 is left to the first request; for one that cannot be reached the
        CONNECT still succeeds (as without HTTP/2) and the tunnel's first request reports this
        dial's error instead of dialing again (ClientConnection._eager_failure)."""
        pool = self.proxy.pool
        key = ("https", host, port)
        if pool.h2.get(key):
            for c in pool.h2[key]:
                if c.usable and not c.closed:
                    return True
        known = pool.alpn_known.get(key)
        if known is False:
            return False
        try:
            conn = await pool.connect(flow, "https", host, port, self.dial, h2=True)
        except UpstreamError as exc:
            self.eager_failed = (key, exc, pool.loop.time())  # the first request gets it: no second wait
            return False
        is_h2 = not isinstance(conn, UpstreamConnection)
        if len(pool.alpn_known) < 4096:
            pool.alpn_known[key] = is_h2
        conn.release()  # an h1 connection goes idle in the pool; an unused h2 stream is freed
        return is_h2

    async def _tunnel(self: ClientConnection, ex: Exchange, host: str, port: int) -> None:
        """Blind tunnel (skip-host or --no-mitm): relayed untouched and recorded as one flow."""
        flow = ex.flow
        flow.passthrough = True
        flow.timings.connect_start = time.time()
        try:
            transport, relay = await self.proxy.pool.open_tunnel(host, port)
        except UpstreamError as exc:
            flow.ensure_id()
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
        self.relay_to = relay
        early = self.codec.detach()
        if early:
            relay.write(early)
            ex.req_size += len(early)
        ex.done = asyncio.get_running_loop().create_future()
        ex.upgrade = True  # no body capture inside the tunnel
        ex.head_sent = True
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
