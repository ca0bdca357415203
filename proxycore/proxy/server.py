"""The Proxy: listener, lifecycle, flow events and the capture pipeline."""

from __future__ import annotations

import asyncio
import errno
import secrets
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxycore.addons.core import EventsAddon, PassthroughAddon, ScopeAddon
from proxycore.addons.hooks import Addons, load_script
from proxycore.addons.intercept import Intercept
from proxycore.addons.rules import FLAG_KINDS, RulesAddon, RuleSet
from proxycore.errors import StartupError
from proxycore.eventlog import EventLog
from proxycore.flows.flow import Flow
from proxycore.flows.store import FlowStore
from proxycore.layers.tls import quiet_bad_sni
from proxycore.options import Options, omniproxy_home
from proxycore.proxy.http1 import ClientConnection
from proxycore.proxy.upstream import Pool, UpstreamProxy
from proxycore.throttle import Throttle
from proxycore.wgconf import Mode, parse_mode, parse_resolver

if TYPE_CHECKING:
    from proxycore.capture.queue import CaptureQueue
    from proxycore.certs import CertificateAuthority
    from proxycore.flows.spill import SpillStore
    from proxycore.proxy.tcprelay import TCPRelay
    from proxycore.proxy.websocket import WebSocketRelay
    from proxycore.proxy.wireguard import WireGuardServer

Subscriber = Callable[[str, Flow], None]


__all__ = ["Proxy", "StartupError", "Subscriber"]  # StartupError lives in .errors; re-exported


class Proxy:
    """A forward HTTP(S) proxy. Usable as a library:

        proxy = Proxy(Options(port=0))
        await proxy.start()
        proxy.subscribe(lambda kind, flow: ...)
        await proxy.stop()

    `proxy.flows` is the FlowStore of the flows it keeps (`keep_flows` of them, none by default).
    """

    def __init__(self, options: Options, *, stdout_capture: bool = False,
                 on_error: Callable[[str], None] | None = None, retain_binary_bodies: bool = True,
                 keep_flows: int = 0) -> None:
        """`retain_binary_bodies=False` (headless): with skip-binary on, bodies whose Content-Type
        says binary are captured only as far as detection needs, since records hold a placeholder.
        `keep_flows`: how many flows `self.flows` keeps (the UI passes --max-flows); 0 keeps none, so
        a proxy without a UI never grows with the flows it has seen."""
        self.options = options
        # HAR carries binary bodies (base64, as browsers export them): keep them, within the cap
        self.retain_binary_bodies = (retain_binary_bodies or not options.skip_binary
                                     or (options.capture_format or "").lower() == "har")
        self.stdout_capture = stdout_capture
        self.on_error = on_error
        self.ca: CertificateAuthority | None = None
        self.address: tuple[str, int] = (options.host, options.port)
        self.connections: set[ClientConnection] = set()
        self.capture: CaptureQueue | None = None
        self.scope = None
        self.sampler = None
        self.skip_host: Callable[[str], bool] | None = None
        self.capture_limit: int | None = options.max_body_size if options.include_body else None
        # The UI's proxy keeps bodies whole: past the threshold they go on into spill files, and
        # max_body_size cuts only the capture records (proxycore/flows/spill.py).
        self.spill: SpillStore | None = None
        if keep_flows and options.include_body and options.spill_threshold:
            from proxycore.flows.spill import SpillStore

            self.spill = SpillStore(omniproxy_home(), options.spill_threshold, options.spill_max_total,
                                    options.max_body_size, warn=self.report_error)
            self.capture_limit = options.spill_threshold
        self.via_token = f"omniproxy-{secrets.token_hex(4)}"  # Via token: finds loops through --upstream
        self.pool = Pool(None, None, options, self.via_token)
        self.addons = Addons(self.report_error)
        # breakpoints: the controller always exists (commands reach it), its hooks only while on
        self.intercept = Intercept(self.addons, self.publish, timeout=options.intercept_timeout,
                                   body_limit=options.body_buffer_limit)
        # Rewrite rules: loaded at start; the addon is registered only while a rule is enabled
        self.rules = RuleSet(options.rules_path)
        self.rules.on_change = self._rules_changed
        self._rules_addon: RulesAddon | None = None
        self._rules_at = 0  # where the rules addon goes: after access, scope and passthrough
        # the WebSocket relays running now, by flow id (inject.websocket finds them here)
        self.websockets: dict[int, WebSocketRelay] = {}
        self.tcp_relays: dict[int, TCPRelay] = {}  # the same for raw TCP flows (inject.tcp)
        self.throttle = Throttle()  # off until configured: the flow driver tests one attribute
        self.wireguard: WireGuardServer | None = None  # wireguard mode's server (proxy/wireguard.py)
        self._sweeper: asyncio.Task | None = None
        self._unquiet: Callable[[], None] | None = None
        self._grpc_schema = None  # the gRPC schema this proxy loaded (--proto-path / --proto-descriptor)
        self._subscribers: list[Subscriber] = []
        self._server: asyncio.AbstractServer | None = None
        self.flows_seen = 0
        self.flows_captured = 0
        self.bodies_spliced = 0  # response bodies relayed in the kernel (proxy/splice.py)
        self._errors_reported: set[str] = set()
        # start-up facts, warnings and errors for the UI's event log (E); bounded
        self.events = EventLog()
        self.flows = FlowStore(keep_flows, on_error=self.report_error)
        self.flows.compact = keep_flows > 0  # flows kept long (the UI's) are held compactly
        if self.spill is not None:
            from proxycore.flows.spill import release_flow

            self.flows.on_removed = release_flow  # a dropped flow's spill files go with it
        # Who may use the proxy, for the start-up line ("clients: ...", "proxy auth: ..."); empty
        # for the default: listening on loopback, no authentication.
        self.access_facts: list[str] = []

    def _rules_changed(self, active: bool) -> None:
        """Register the rules addon when the first rule is enabled, remove it with the last one:
        without rules no hook runs for them."""
        if active and self._rules_addon is None:
            self._rules_addon = RulesAddon(self.rules)
            self.addons.addons.insert(self._rules_at, self._rules_addon)
            self.addons.add()  # rebuild the hook chains
        elif not active and self._rules_addon is not None:
            self.addons.remove(self._rules_addon)
            self._rules_addon = None

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self, listen: bool = True) -> None:
        """Start the proxy. `listen=False`: everything but the listening socket, for a proxy that
        only replays requests (`omniproxy-tui replay`): nobody else can send through it."""
        from proxycore import certs
        from proxycore.addons.scope import Sampler, Scope, skip_host_matcher
        from proxycore.capture.queue import CaptureQueue
        from proxycore.capture.record import RecordOptions, flow_to_record
        from proxycore.capture.sinks import SinkError, open_sinks

        opts = self.options
        loop = asyncio.get_running_loop()
        try:
            upstream = UpstreamProxy(opts.upstream) if opts.upstream else None
            self.scope = Scope.from_options(opts)
            self.sampler = Sampler.from_options(opts)
            self.skip_host = skip_host_matcher(opts.skip_hosts) if opts.skip_hosts else None
            scripted = [a for path in opts.scripts for a in load_script(path)]
            guards = self._access_addons()
            self.rules.load(opts.rules, {f: getattr(opts, f) for f in FLAG_KINDS})
            self.throttle.configure(opts)
            if opts.proto_paths or opts.proto_descriptors:
                from proxycore import grpc

                # compiled once here: the capture and the UI decode gRPC messages with it
                grpc.set_schema(grpc.Schema.load(opts.proto_paths, opts.proto_descriptors))
                self._grpc_schema = grpc.active_schema()
            mode = parse_mode(opts.mode)
            if opts.wireguard_dns:
                parse_resolver(opts.wireguard_dns)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        # Built-in addons around the user's: access decides first (a refused request reaches no
        # other addon unchanged), then scope and passthrough; events publish last.
        first: list = guards
        if self.scope is not None:
            first.append(ScopeAddon(self.scope))
        if not opts.mitm or self.skip_host is not None:
            first.append(PassthroughAddon(opts.mitm, self.skip_host))
        self.addons.addons[:0] = first
        self._rules_at = len(first)
        self._rules_changed(bool(self.rules.active))
        self.addons.add(*scripted)
        if opts.intercept:
            try:
                self.intercept.set_filter(opts.intercept)
            except ValueError as exc:
                raise StartupError(f"--intercept {opts.intercept!r}: {exc}") from None
        self.addons.add(EventsAddon(self), last=True, trusted=True)
        try:
            if opts.mitm:
                self.ca = await loop.run_in_executor(
                    None, certs.CertificateAuthority.load_or_create, opts.ca_cert_path, opts.ca_key_path)
                self.ca.alpn = [p for p in opts.alpn if opts.http2 or p != "h2"]
            client_ssl = certs.client_context(opts.ssl_insecure, opts.upstream_ca)
            h2_ssl = certs.client_context(opts.ssl_insecure, opts.upstream_ca, h2=True) if opts.http2 else None
        except certs.CAError as exc:
            raise StartupError(str(exc)) from None
        self.pool = Pool(client_ssl, upstream, opts, self.via_token)
        self.pool.h2_ssl = h2_ssl
        self.pool.loop = loop

        try:
            sinks = await open_sinks(opts, stdout_fallback=self.stdout_capture, on_error=self.report_error)
        except (OSError, ValueError, SinkError) as exc:
            raise StartupError(str(exc)) from None
        if sinks:
            rec_opts = RecordOptions.from_options(opts, for_har=(opts.capture_format or "").lower() == "har")
            self.capture = CaptureQueue(
                sinks, lambda f: flow_to_record(f, rec_opts), queue_size=opts.queue_size,
                batch_size=opts.batch_size, flush_interval=opts.flush_interval, on_error=self.report_error)
            try:
                await self.capture.start()
            except Exception as exc:
                raise StartupError(f"cannot open capture target: {exc}") from None

        if not listen:
            self._sweeper = loop.create_task(self._sweep())
            return
        if mode.is_wireguard:
            await self._start_wireguard(mode)
            return
        try:
            self._server = await loop.create_server(
                lambda: ClientConnection(self), opts.host, opts.port, reuse_address=True, backlog=1024)
        except OSError as exc:
            if self.capture is not None:
                await self.capture.close()
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {opts.port} on {opts.host} is already in use (stop the other program or pick "
                    f"another port with --port)") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise StartupError(f"not allowed to listen on {opts.host}:{opts.port} (ports below 1024 need "
                                   "privileges; pick another with --port)") from None
            raise StartupError(f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}") from None
        sock = self._server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])
        self._sweeper = loop.create_task(self._sweep())
        self._unquiet = quiet_bad_sni(self.report_error)
        self._log_startup_facts()

    async def _start_wireguard(self, mode: Mode) -> None:
        """WireGuard mode (as mitmproxy's --mode wireguard): the WireGuard server instead of the
        HTTP listener; `self.address` is its UDP address."""
        from proxycore.proxy.wireguard import WireGuardServer

        wg = WireGuardServer(self, mode)
        try:
            await wg.start()
        except (ValueError, OSError, RuntimeError) as exc:
            if self.capture is not None:
                await self.capture.close()
            raise StartupError(f"cannot start the WireGuard server on {self.options.host}:{mode.port} (UDP): "
                               f"{exc}") from None
        self.wireguard = wg
        self.address = wg.address
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep())
        self._unquiet = quiet_bad_sni(self.report_error)
        self._log_startup_facts()

    def _log_startup_facts(self) -> None:
        """What a user asks first when nothing arrives: where the proxy listens, which CA to
        trust, where flows are written, what was loaded."""
        opts, ev = self.options, self.events
        host, port = self.address[:2]
        shown = f"{f'[{host}]' if ':' in host else host}:{port}"
        if self.wireguard is not None:
            ev.info(f"WireGuard server on {shown} (UDP); keys in {self.wireguard.mode.conf_path}")
            resolver = self.wireguard.resolver
            ev.info(f"WireGuard DNS forwarded to {resolver[0]}:{resolver[1]}" if resolver
                    else "WireGuard DNS: no resolver (set --wireguard-dns)")
        else:
            ev.info(f"listening on {shown}")
        for fact in self.access_facts:
            ev.info(fact)
        if self.ca is not None:
            ev.info(f"CA certificate: {self.ca.cert_path}")
        else:
            ev.info("HTTPS is tunnelled without interception (--no-mitm)")
        if opts.skip_hosts:
            ev.info(f"tunnelled untouched: {', '.join(opts.skip_hosts)}")
        if opts.upstream:
            from proxycore.config import mask_password

            ev.info(f"upstream proxy: {mask_password(opts.upstream)}")
        if opts.output:
            ev.info(f"capture: {opts.output} ({opts.capture_format})")
        if opts.db:
            from proxycore.config import mask_password

            ev.info(f"capture database: {mask_password(opts.db)}")
        if not opts.output and not opts.db and not self.stdout_capture:
            ev.info("no capture file or database: flows are kept in memory only")
        for path in opts.scripts:
            ev.info(f"addon script loaded: {path}")

    def _access_addons(self) -> list:
        """The access addons this configuration needs, and the start-up facts. Registered only when
        needed: a proxy on loopback without --proxy-auth pays nothing. ValueError (one line) for a
        bad --allow-client or --proxy-auth."""
        from proxycore.addons.access import (
            AccessAddon,
            ProxyAuthAddon,
            describe_clients,
            is_loopback_host,
            parse_allow_clients,
            parse_proxy_auth,
        )

        opts = self.options
        out: list = []
        facts: list[str] = []
        allowed = parse_allow_clients(opts.allow_clients)
        if opts.proxy_auth:
            validator = parse_proxy_auth(opts.proxy_auth)
            out.append(ProxyAuthAddon(validator))
        if not is_loopback_host(opts.host):
            def warn(message: str) -> None:
                # not report_error: that remembers every message, and public addresses are many
                # (the addon already logs each address once, in a bounded set)
                self.events.warn(message)
                if self.on_error is not None:
                    self.on_error(message)
                else:
                    print(f"omniproxy: {message}", file=sys.stderr)

            out.append(AccessAddon(self, allowed, opts.allow_loopback_targets, warn))
            facts.append(f"clients: {describe_clients(allowed)}")
            if opts.allow_loopback_targets:
                facts.append("loopback targets allowed")
        elif allowed:
            facts.append("clients: this machine only (--allow-client applies when listening beyond loopback)")
        if opts.proxy_auth:
            facts.append(f"proxy auth: {validator.describe}")
        self.access_facts = facts
        return out

    async def _sweep(self) -> None:
        """Enforce the connection timeouts: one pass over the connections a few times a second
        costs less than a timer re-armed on every request."""
        opts = self.options
        interval = min(1.0, max(0.05, min(opts.client_head_timeout, opts.keepalive_timeout,
                                          opts.response_timeout, opts.body_idle_timeout) / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in [c for c in self.connections if c.deadline and c.deadline <= now]:
                conn.on_timeout()
            for up in [u for u in self.pool.active if u.deadline and u.deadline <= now]:
                up.on_timeout()

    async def stop(self) -> None:
        """Stop accepting, close client connections, drain the capture pipeline."""
        self.throttle.set(None)  # what throttled connections still hold goes out before they close
        self.intercept.stop()  # paused flows are killed: nobody is left to resume them
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._unquiet is not None:
            self._unquiet()
            self._unquiet = None
        if self._server is not None:
            self._server.close()
        if self.wireguard is not None:
            await self.wireguard.stop()  # its raw TCP relays end; its HTTP connections close below
        # Let exchanges in flight finish (briefly), then close everything; only then drain the
        # capture, so that every flow that ends because of the shutdown is still written.
        conns = list(self.connections)
        for conn in conns:
            conn.closing = True
            if conn.active is None and not conn.queue:
                conn.close()
        busy = [c.task for c in conns if c.task is not None]
        if busy:
            await asyncio.wait(busy, timeout=1.0)
        for conn in list(self.connections):
            conn.close()
        busy = [c.task for c in conns if c.task is not None and not c.task.done()]
        if busy:
            await asyncio.wait(busy, timeout=1.0)
        self.pool.close()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except TimeoutError:
                pass
            self._server = None
        if self.capture is not None:
            await self.capture.close()
        if self.spill is not None:
            self.spill.close()  # every spill file goes (the flows were only in this process)
        if self._grpc_schema is not None:
            from proxycore import grpc

            if grpc.active_schema() is self._grpc_schema:
                grpc.set_schema(None)  # after the capture drained: it decodes with it

    # --- events -------------------------------------------------------------------------------
    # The connection code reports a flow's life with publish("add" | "update", flow) and
    # flow_done(flow). Both go through the store (`self.flows`), which tells a new flow from a known
    # one by id and emits "added" / "updated" / "removed" to its subscribers (the UI's client); the
    # raw kinds still reach `subscribe` callbacks (headless log, tests, library users).

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(kind, flow)` for "add", "update" and "done" on in-scope flows.

        A flow may reach "done" without an "add" (CONNECT tunnels, failed handshakes): treat an
        unknown flow in "done" as new. `self.flows.subscribe` does that for you, by flow id.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, kind: str, flow: Flow) -> None:
        """A flow event from the connection code: "add" (request head), "update" (response head),
        "done" (finished; flow_done calls this after the capture hand-off)."""
        if not flow.id:
            flow.ensure_id()
        if flow.in_scope:  # out-of-scope flows are proxied but never shown nor kept
            store = self.flows
            if kind == "add":
                store.add(flow)
            elif kind == "done":
                store.done(flow)
            else:
                store.update(flow)
        for cb in self._subscribers:
            try:
                cb(kind, flow)
            except Exception as exc:  # a broken subscriber must not break proxying
                self.report_error(f"flow subscriber failed: {exc!r}")

    def flow_done(self, flow: Flow) -> None:
        flow.ensure_id()
        self.flows_seen += 1
        if not flow.in_scope:
            return
        if self.sampler is not None:
            flow.sampled = self.sampler.keep(flow.request.host)
        if self.capture is not None and flow.sampled:
            self.flows_captured += 1
            self.capture.put(flow)
        self.publish("done", flow)

    def report_error(self, message: str) -> None:
        """Tell the user about an engine problem once per distinct message."""
        if message in self._errors_reported:
            return
        self._errors_reported.add(message)
        self.events.error(message)
        if self.on_error is not None:
            self.on_error(message)
        else:
            print(f"omniproxy: {message}", file=sys.stderr)

    @property
    def stats(self) -> dict[str, int]:
        cap = self.capture
        return {
            "flows": self.flows_seen,
            "captured": self.flows_captured,
            "written": cap.written if cap else 0,
            "dropped": cap.dropped if cap else 0,
            "failed": cap.failed if cap else 0,
            "active_connections": len(self.connections),
            "upstream_connections_opened": self.pool.connections_opened,
            "bodies_spliced": self.bodies_spliced,
            "kept": len(self.flows),
        }
