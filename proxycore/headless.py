"""Headless mode (`omniproxy-tui --no-ui`): run the proxy and log one line per finished flow.

The log goes to stderr (or `log`) so that stdout stays clean NDJSON when records are captured
there (`omniproxy-tui --no-ui > capture.ndjson`). Lines are collected and written in batches a
few times a second: one write per flow would cost a syscall per flow under load.

Headless keeps no flows: the proxy's FlowStore is built with keep_flows=0 (the Proxy default), so
memory does not grow with the flows seen; each finished flow goes to the capture and this log, and
is freed. The log listens to the proxy's raw "done" events, not the store's.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit, urlunsplit

from proxycore.config import mask_password
from proxycore.flows.flow import Flow, Peer
from proxycore.humanize import human_duration, human_size, short_content_type
from proxycore.options import Options

if TYPE_CHECKING:
    from proxycore.proxy.server import Proxy

MAX_LINE = 160
LOG_FLUSH_INTERVAL = 0.1  # seconds between batched writes of flow lines

# Content types worth a special short name; anything else shows its subtype.
def _clock(ts: float) -> str:
    secs, ms = divmod(round(ts * 1000), 1000)  # round: 0.123 is 0.12299.. as a float
    lt = time.localtime(secs)
    return f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d}.{ms:03d}"


def _addr(addr: tuple[str, int] | None) -> str:
    if not addr:
        return "-"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _truncate_url(url: str, budget: int) -> str:
    """Fit `url` in `budget` chars: drop the query first, then cut the path's middle."""
    if len(url) <= budget:
        return url
    parts = urlsplit(url)
    if parts.query:
        url = urlunsplit(parts._replace(query="", fragment="")) + "?..."
        if len(url) <= budget:
            return url
    keep = max(budget - 3, 8)
    head = keep * 2 // 3
    return url[:head] + "..." + url[len(url) - (keep - head):]


def format_flow_line(flow: Flow) -> str:
    """One log line: time, client, method, URL, status, type, size, duration (< ~160 chars)."""
    req, resp = flow.request, flow.response
    if flow.error:
        reason = " ".join(flow.error.split())
        if len(reason) > 60:
            reason = reason[:57] + "..."
        status = f"{resp.status} ERR {reason}" if resp is not None and resp.status >= 400 else f"ERR {reason}"
    elif resp is not None:
        status = str(resp.status)
    else:
        status = "-"
    if flow.passthrough:
        ctype = "[tunnel]"
    elif flow.tcp_messages is not None:
        ctype = "[tcp]"
    else:
        ctype = short_content_type(resp.headers.get("content-type") if resp is not None else None)
    size = human_size(resp.body_size if resp is not None else
                      sum(m.size for m in flow.tcp_messages) if flow.tcp_messages is not None else None)
    dur = human_duration(flow.timings.duration_ms)
    head = f"{_clock(flow.timings.start)} {_addr(flow.client_addr):<21} {req.method:<7}"
    tail = f"{status} {ctype} {size} {dur}"
    budget = MAX_LINE - len(head) - len(tail) - 2
    return f"{head} {_truncate_url(req.url, max(budget, 40))} {tail}"


def describe_capture(options: Options, stdout_capture: bool = True) -> str:
    """Where records go, for the start-up line ("out.har (har)", "stdout (ndjson)", "sqlite://...")."""
    targets = []
    if options.output:
        targets.append(f"{options.output} ({options.capture_format})")
    if options.db:
        targets.append(mask_password(options.db))
    if not targets:
        targets.append(f"stdout ({options.capture_format})" if stdout_capture else "off")
    text = ", ".join(targets)
    if options.sample_rate < 1.0:
        text += f", sampling {options.sample_rate:g}"
    return text


def listening_line(proxy: Proxy, options: Options) -> str:
    host, port = proxy.address[0], proxy.address[1]
    shown = f"[{host}]" if ":" in host else host
    if options.mitm:
        mitm = f"MITM on, CA: {options.ca_cert_path}"
    else:
        mitm = "MITM off"
    if options.upstream:
        mitm += f", upstream: {mask_password(options.upstream)}"
    if proxy.wireguard is not None:
        line = f"WireGuard server on {shown}:{port} (UDP) ({mitm}) — capture: {describe_capture(options)}"
    else:
        line = f"proxy listening on http://{shown}:{port} ({mitm}) — capture: {describe_capture(options)}"
    # who may connect, when that is more than this machine without credentials
    throttle = [proxy.throttle.describe()] if proxy.throttle.profile is not None else []
    return " — ".join([line, *proxy.access_facts, *throttle])


def summary_line(stats: dict[str, int], interrupted: bool = False) -> str:
    parts = [
        f"{stats.get('flows', 0)} flows seen",
        f"{stats.get('captured', 0)} captured",
        f"{stats.get('written', 0)} written",
        f"{stats.get('dropped', 0)} dropped",
    ]
    if stats.get("failed"):
        parts.append(f"{stats['failed']} failed to write")
    end = "stopped before the capture was drained" if interrupted else "stopped"
    return f"{end}: " + ", ".join(parts)


class _LineLog:
    """Collects flow lines and writes them in one go every LOG_FLUSH_INTERVAL seconds."""

    def __init__(self, stream: TextIO, loop: asyncio.AbstractEventLoop) -> None:
        self.stream = stream
        self.loop = loop
        self.pending: list[Flow] = []
        self.handle: asyncio.TimerHandle | None = None

    def on_event(self, kind: str, flow: Flow) -> None:
        if kind != "done":
            return
        self.pending.append(flow)
        if self.handle is None:
            self.handle = self.loop.call_later(LOG_FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if not self.pending:
            return
        flows, self.pending = self.pending, []
        self.write("\n".join(format_flow_line(f) for f in flows))

    def write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # log stream closed (e.g. a pipe reader went away)
            pass


class ConnectionLog:
    """-v: a line when a client connects and when it leaves (an addon on the connection hooks)."""

    def __init__(self, lines: _LineLog) -> None:
        self.lines = lines

    def client_connected(self, peer: Peer) -> None:
        self.lines.flush()
        self.lines.write(f"{_clock(peer.opened)} client {_addr(peer.address)} connected")

    def client_disconnected(self, peer: Peer) -> None:
        tls = f", TLS {peer.tls.version} SNI {peer.tls.sni or '-'}" if peer.tls is not None else ""
        secs = (peer.closed or peer.opened) - peer.opened
        self.lines.flush()
        self.lines.write(f"{_clock(peer.closed or peer.opened)} client {_addr(peer.address)} disconnected "
                         f"after {secs:.1f} s, {peer.flows} request{'s' if peer.flows != 1 else ''}{tls}")


async def run_headless(options: Options, *, log: TextIO = sys.stderr) -> int:
    """Run the proxy until SIGINT/SIGTERM/SIGHUP; 0 on a clean stop, 2 when it cannot start."""
    from proxycore.proxy.server import Proxy, StartupError  # the engine; imported here so `--help` stays fast

    loop = asyncio.get_running_loop()
    lines = _LineLog(log, loop)

    def on_error(message: str) -> None:
        lines.flush()  # keep the order of what happened
        lines.write(f"omniproxy-tui: warning: {message}")

    # nobody looks at binary bodies in headless mode: the capture only needs their first bytes
    proxy = Proxy(options, stdout_capture=True, on_error=on_error, retain_binary_bodies=False)
    if options.verbose:
        proxy.addons.add(ConnectionLog(lines))
    stop_requested = asyncio.Event()
    stopping: list[asyncio.Task] = []

    def on_signal() -> None:
        if not stop_requested.is_set():
            stop_requested.set()
        elif stopping:  # a second Ctrl-C while draining: give up waiting
            stopping[0].cancel()

    # Handlers first: a signal that arrives while starting (or right after the "listening" line)
    # still means a graceful stop, never a KeyboardInterrupt.
    installed = _install_signal_handlers(loop, on_signal)
    unsubscribe: Callable[[], None] | None = None
    interrupted = False
    try:
        try:
            await proxy.start()
        except StartupError as exc:
            lines.write(f"omniproxy-tui: error: {exc}")
            return 2
        unsubscribe = proxy.subscribe(lines.on_event)
        lines.write(listening_line(proxy, options))
        if proxy.wireguard is not None:
            # the client's configuration (its own key only): what a WireGuard app imports
            lines.write("WireGuard client configuration:\n" + proxy.wireguard.client_config.rstrip())
        # What start-up made (modules, the CA, compiled filters) lives as long as the process:
        # moved out of the collector's sight, full collections under traffic only walk what
        # traffic made (headless keeps no flows), not ~30 000 start-up objects each time.
        gc.collect()
        gc.freeze()
        try:
            await stop_requested.wait()
        except asyncio.CancelledError:
            if installed:
                raise
            # No loop signal handlers (Windows): Ctrl-C arrives as asyncio.Runner cancelling us;
            # still stop gracefully so the capture is drained and the HAR written.
            asyncio.current_task().uncancel()
        task = asyncio.ensure_future(proxy.stop())
        stopping.append(task)
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            interrupted = True
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if unsubscribe is not None:
            unsubscribe()
        lines.flush()
    lines.write(summary_line(proxy.stats, interrupted))
    return 1 if interrupted else 0


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> list[int]:
    installed = []
    # SIGHUP: the SSH session or terminal that ran us is gone. Stop as for SIGTERM, so the capture
    # is drained and the files finished, rather than die with the HAR half-written.
    sigs = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        sigs.append(signal.SIGHUP)
    for sig in sigs:
        try:
            loop.add_signal_handler(sig, callback)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            pass
    return installed


def run_headless_sync(options: Options, *, log: TextIO | None = None) -> int:
    """Run `run_headless` on a fresh event loop (uvloop when installed)."""
    from proxycore.runtime import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(run_headless(options, log=log if log is not None else sys.stderr))
