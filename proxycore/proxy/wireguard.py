"""WireGuard mode: a user-space WireGuard server (mitmproxy_wireguard) whose clients' traffic is
proxied.

Each TCP stream that arrives through the tunnel is looked at before anything is decided (its
first bytes, waited for a short bounded time):

- a TLS ClientHello (unless --no-mitm, or --skip-host names its SNI: then it is relayed as below):
  MITM with the certificate for its SNI (or the original destination's IP)
  and then the ordinary HTTP pipeline, on a `ClientConnection` over the stream
  (`layers.tls.StreamTransport`) whose `tunnel` is the origin, as after a MITMed CONNECT; the
  origin is dialled at the original destination address and TLS names the SNI;
- plain HTTP: the same pipeline, `tunnel_scheme` "http";
- anything else, or nothing (a server-first protocol): relayed to the original destination and
  recorded as a TCP flow (proxycore.flows.tcp).

UDP: DNS queries (port 53) are forwarded, those to the address the client config names as its
DNS server (10.0.0.53) to `--wireguard-dns` or the system's resolver, others to where they were
sent; the answer goes back through the tunnel. Other UDP is dropped (a debug line in the event
log, once per destination). Raw TCP relays and DNS connect directly (not through --upstream);
TCP flows run the tcp_* hooks, breakpoints and throttling (proxy/tcprelay.py) and the scope
options apply to them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from typing import TYPE_CHECKING, Any

from proxycore.certs import get_sni
from proxycore.flows.tcp import new_tcp_flow
from proxycore.layers.tls import StreamTransport, start_tls
from proxycore.proxy.http1 import ClientConnection
from proxycore.proxy.tcprelay import Side, TCPRelay
from proxycore.proxy.upstream import _tls_info, describe_connect_error
from proxycore.wgconf import (
    CLIENT_DNS,
    Mode,
    client_config,
    endpoint_host,
    load_or_create_keys,
    parse_resolver,
    system_resolver,
)

if TYPE_CHECKING:
    from proxycore.proxy.server import Proxy

FIRST_BYTES_TIMEOUT = 1.0  # how long a stream may stay silent before it is taken as server-first
HELLO_TIMEOUT = 10.0  # a ClientHello split over packets must be whole by then
MAX_HELLO = 65536 + 5
DNS_TIMEOUT = 5.0
MAX_DNS_INFLIGHT = 256  # queries forwarded at once; more are dropped (the client retries)
READ_SIZE = 65536
_HTTP_START = re.compile(rb"(GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH|TRACE|CONNECT|PROPFIND|MKCOL) ")


def client_hello_sni(data: bytes) -> str | None:
    """The server name of a whole TLS ClientHello record, or None."""
    try:
        if data[0] != 0x16 or data[5] != 0x01:
            return None
        i = 5 + 4 + 2 + 32  # record header, handshake header, version, random
        i += 1 + data[i]  # session id
        i += 2 + int.from_bytes(data[i:i + 2], "big")  # cipher suites
        i += 1 + data[i]  # compression methods
        end = i + 2 + int.from_bytes(data[i:i + 2], "big")
        i += 2
        while i + 4 <= end:
            etype = int.from_bytes(data[i:i + 2], "big")
            elen = int.from_bytes(data[i + 2:i + 4], "big")
            body = data[i + 4:i + 4 + elen]
            if etype == 0:  # server_name: list length, then (type, length, name)
                j = 2
                while j + 3 <= len(body):
                    ntype, nlen = body[j], int.from_bytes(body[j + 1:j + 3], "big")
                    if ntype == 0:
                        return body[j + 3:j + 3 + nlen].decode("ascii").lower().rstrip(".") or None
                    j += 3 + nlen
                return None
            i += 4 + elen
    except (IndexError, UnicodeDecodeError):
        return None
    return None


class _Prefixed:
    """A stream whose first read returns bytes already read from it."""

    def __init__(self, stream: Any, first: bytes) -> None:
        self._stream = stream
        self._first = first

    async def read(self, n: int) -> bytes:
        if self._first:
            out, self._first = self._first[:n], self._first[n:]
            return out
        return await self._stream.read(n)  # type: ignore[no-any-return]

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    async def drain(self) -> None:
        await self._stream.drain()

    def close(self) -> None:
        self._stream.close()


class WireGuardServer:
    """The WireGuard listener of a Proxy in wireguard mode (`Proxy.wireguard`)."""

    def __init__(self, proxy: Proxy, mode: Mode) -> None:
        self.proxy = proxy
        self.mode = mode
        self.server: Any = None
        self.address: tuple[str, int] = (proxy.options.host, mode.port)
        self.client_config = ""
        self.tasks: set[asyncio.Task] = set()
        self.resolver: tuple[str, int] | None = None
        self.dns_inflight = 0
        self._dropped: set[tuple[str, int]] = set()  # UDP destinations already logged (bounded)
        self._tls_failed: set[str] = set()  # server names whose failed handshake was logged (bounded)

    async def start(self) -> None:
        """Load (or create) the keys and listen. ValueError / OSError for the caller to report."""
        import mitmproxy_wireguard as wg

        # its tasks log "shut down early" as errors on every ordinary close: not news to the user
        logging.getLogger("mitmproxy_wireguard.shutdown").setLevel(logging.CRITICAL)
        opts = self.proxy.options
        self.resolver = parse_resolver(opts.wireguard_dns) if opts.wireguard_dns else system_resolver()
        assert self.mode.conf_path is not None
        loop = asyncio.get_running_loop()
        keys = await loop.run_in_executor(None, load_or_create_keys, self.mode.conf_path)
        host = opts.host
        self.server = await wg.start_server(host, self.mode.port, keys.server_key, [keys.client_public],
                                            self._on_stream, self._on_datagram)
        got = self.server.getsockname()
        self.address = (got[0], got[1])
        self.client_config = client_config(keys, endpoint_host(host), self.address[1])

    async def stop(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2.0)
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
            except TimeoutError:
                pass
            self.server = None

    def _track(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- TCP ----------------------------------------------------------------------------------
    async def _on_stream(self, stream: Any) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        try:
            await self._serve_stream(stream)
        except Exception as exc:  # a bug must not take the server down: one line, and go on
            self.proxy.report_error(f"WireGuard stream failed: {exc!r}")
            stream.close()

    async def _serve_stream(self, stream: Any) -> None:
        dst = stream.get_extra_info("original_dst")
        src = stream.get_extra_info("peername")
        dst = (str(dst[0]), int(dst[1]))
        src = (str(src[0]), int(src[1])) if src else None
        # The first read is never cancelled (a cancelled read could lose bytes): a server-first
        # stream hands the pending read on to the relay.
        first_read = asyncio.ensure_future(stream.read(READ_SIZE))
        done, _ = await asyncio.wait({first_read}, timeout=FIRST_BYTES_TIMEOUT)
        if not done:
            await self._relay(stream, dst, src, first_read)
            return
        try:
            first = first_read.result()
        except OSError:
            stream.close()
            return
        if not first:
            stream.close()  # opened and closed without a byte: nothing to record
            return
        opts = self.proxy.options
        if first[0] == 0x16 and opts.mitm and self.proxy.ca is not None:
            hello = await self._whole_hello(stream, first)
            if hello is None:
                stream.close()
                return
            sni = client_hello_sni(hello)
            skip = self.proxy.skip_host
            if skip is not None and skip(sni or dst[0]):  # --skip-host: relayed untouched, a TCP flow
                await self._relay(stream, dst, src, None, hello)
                return
            await self._serve_tls(stream, hello, sni, dst, src)
            return
        if _HTTP_START.match(first):
            conn = ClientConnection(self.proxy)
            conn.tunnel = dst
            conn.tunnel_scheme = "http"
            StreamTransport(_Prefixed(stream, first), conn, peername=src)
            return
        await self._relay(stream, dst, src, None, first)

    async def _whole_hello(self, stream: Any, data: bytes) -> bytes | None:
        """`data` read on until its first TLS record is whole (bounded in size and time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HELLO_TIMEOUT
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            if len(data) > MAX_HELLO:
                return data  # not a ClientHello we can parse: TLS will refuse it
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                more = await asyncio.wait_for(stream.read(READ_SIZE), left)
            except (TimeoutError, OSError):
                return None
            if not more:
                return None
            data += more
        return data

    async def _serve_tls(self, stream: Any, hello: bytes, sni: str | None, dst: tuple[str, int],
                         src: tuple[str, int] | None) -> None:
        proxy = self.proxy
        assert proxy.ca is not None
        conn = ClientConnection(proxy)
        conn.tunnel = (sni or dst[0], dst[1])
        if sni:
            conn.dial = dst  # the name is for TLS and the flow; the packets went to dst
        try:
            ctx = proxy.ca.mitm_context(sni or dst[0])
        except Exception as exc:
            proxy.report_error(f"WireGuard: cannot create a certificate for {sni or dst[0]}: {exc}")
            stream.close()
            return
        transport = StreamTransport(stream, conn, peername=src)
        try:
            tls_transport = await start_tls(transport, conn, ctx, server_side=True, initial=hello,
                                            timeout=proxy.options.client_head_timeout)
        except (TimeoutError, OSError, ConnectionError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            name = sni or dst[0]
            if len(self._tls_failed) < 1024 and name not in self._tls_failed:  # once per name: apps retry
                self._tls_failed.add(name)
                proxy.events.warn(f"WireGuard: client TLS handshake for {name} failed: {reason} "
                                  "(does the client trust the OmniProxy CA? apps that pin certificates "
                                  "never will)")
            transport.close()
            return
        conn.transport = tls_transport
        sslobj = tls_transport.get_extra_info("ssl_object")
        info = _tls_info(None, get_sni(sslobj) if sslobj is not None else sni)
        if sslobj is not None:
            info.version = sslobj.version()
            info.alpn = sslobj.selected_alpn_protocol()
            c = sslobj.cipher()
            info.cipher = c[0] if c else None
        conn.client_tls = info
        if conn.peer is not None:
            conn.peer.tls = info
        for ex in [*conn.queue, conn.current]:  # requests parsed while start_tls() was returning
            if ex is not None:
                ex.flow.client_tls = info

    async def _relay(self, stream: Any, dst: tuple[str, int], src: tuple[str, int] | None,
                     pending: asyncio.Future | None, first: bytes = b"") -> None:
        """Relay a stream that is not HTTP to its original destination, recorded as a TCP flow
        (proxy/tcprelay.py: hooks, breakpoints, inject.tcp, throttling)."""
        proxy = self.proxy
        opts = proxy.options
        flow = new_tcp_flow(dst[0], dst[1], src)
        if proxy.scope is not None:  # --include-host and friends, as for a CONNECT (method "TCP")
            flow.in_scope = proxy.scope.matches(dst[0], flow.request.path, flow.request.method)
        relay = TCPRelay(proxy, flow)
        await relay.start()
        lost = relay.lost()
        if flow.killed or lost:  # a tcp_start hook's verdict, or throttling's loss: no connection
            if pending is not None:
                pending.cancel()
            stream.close()
            await relay.end("connection reset by throttling (packet-loss emulation)" if lost else None)
            return
        flow.timings.connect_start = time.time()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*dst), opts.connect_timeout)
        except (TimeoutError, OSError) as exc:
            if pending is not None:
                pending.cancel()
            stream.close()
            await relay.end(describe_connect_error(exc, *dst))
            return
        flow.timings.connect_end = time.time()
        proxy.publish("add", flow)
        client = Side(stream.read, stream.write, stream.drain, stream.write_eof, stream.close)
        await relay.run(client, Side.of_streams(reader, writer), first, pending)

    # --- UDP ----------------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
        if dst[1] != 53:
            if len(self._dropped) < 1024 and dst not in self._dropped:
                self._dropped.add(dst)
                self.proxy.events.info(f"debug: WireGuard: UDP to {dst[0]}:{dst[1]} dropped "
                                       "(only DNS is forwarded)")
            return
        if self.dns_inflight >= MAX_DNS_INFLIGHT:
            return
        target = self.resolver if dst[0] == CLIENT_DNS else (dst[0], 53)
        if target is None:
            self.proxy.report_error("WireGuard: no DNS server to forward to (set --wireguard-dns)")
            return
        self.dns_inflight += 1
        self._track(self._forward_dns(bytes(data), src, dst, target))

    async def _forward_dns(self, query: bytes, src: tuple[str, int], dst: tuple[str, int],
                           target: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()

        class _Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                if not answer.done():
                    answer.set_result(data)

            def error_received(self, exc: Exception) -> None:
                if not answer.done():
                    answer.set_exception(exc)

        transport = None
        try:
            transport, _ = await loop.create_datagram_endpoint(_Proto, remote_addr=target)
            transport.sendto(query)
            reply = await asyncio.wait_for(answer, DNS_TIMEOUT)
        except (TimeoutError, OSError) as exc:
            self.proxy.events.warn(f"WireGuard: DNS query to {target[0]}:{target[1]} failed: "
                                   f"{type(exc).__name__} {exc}".rstrip())
            return
        finally:
            self.dns_inflight -= 1
            if transport is not None:
                transport.close()
        if self.server is not None:
            self.server.send_datagram(reply, dst, src)
