"""Client replay: send a request again through the proxy's own pipeline, as a new flow.

There is no second HTTP client here. A replayed request is fed, as bytes, to an ordinary
`ClientConnection` over an in-memory transport (`layers.tls.StreamTransport`), exactly as a proxy
client would send it: absolute-form for http, and for https origin-form on a connection marked as
a MITM'd tunnel to the origin (`conn.tunnel`, what `_serve_connect` sets after the client's TLS
handshake), so the flow goes to the origin over TLS. Everything after that is the live path: the
addons' hooks (rules, breakpoints, throttling, user scripts), the upstream pool, `--upstream`, the
flow store and the capture. The new flow has `is_replay = True`.

As mitmproxy's `replay.client`: flows still in flight, tunnels, WebSocket flows and flows whose
request body was not captured whole are refused with a reason; replays run in order, one at a
time unless a higher concurrency is asked for. Unlike mitmproxy, the original flow is left as it
was and the replay is a new flow (as Charles' Repeat and Proxyman's Replay do): the two can be
compared, and replaying twice gives two flows.

Nothing here runs until something is replayed: no hook, no task, no cost on the live path.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from proxycore.flows.flow import Flow, Headers, Request
from proxycore.layers import http1 as h1
from proxycore.layers.tls import StreamTransport
from proxycore.proxy.http1 import ClientConnection, Exchange

if TYPE_CHECKING:
    from proxycore.proxy.server import Proxy

# Where replayed flows say they came from: the proxy itself.
REPLAY_PEER = ("127.0.0.1", 0)
MAX_QUEUED = 10_000  # flows waiting for replay; more are refused (every queue has a bound)
_FRAMING = (b"content-length", b"transfer-encoding")


def replay_problem(flow: Flow) -> str | None:
    """Why `flow` cannot be replayed (one line), or None when it can."""
    req = flow.request
    if not flow.is_finished:
        return "cannot replay a flow still in flight"
    if flow.tcp_messages is not None:
        return "cannot replay a TCP flow"
    if flow.passthrough or req.method == "CONNECT":
        return "cannot replay a tunnel (CONNECT)"
    if req.scheme not in ("http", "https") or not req.host or not req.port:
        return "cannot replay a request without a valid URL"
    if (flow.response is not None and flow.response.status == 101) or req.headers.get("upgrade") is not None:
        return "cannot replay WebSocket / upgraded flows"
    if req.body_truncated or (flow.original_request is None and len(req.body) < req.body_size):
        return "cannot replay: the request body was not captured whole (raise --max-body-size)"
    return None


def copy_request(req: Request) -> Request:
    """The request as it is now (later edits of the original do not change a queued replay)."""
    return Request(req.method, req.scheme, req.host, req.port, req.target, req.http_version,
                   Headers(req.headers.fields), req.body, req.authority)


def request_bytes(req: Request) -> bytes:
    """The request as a proxy client sends it: absolute-form for http, origin-form for https
    (the connection is a tunnel to the origin). The body is framed by Content-Length, since the
    captured body is the whole, de-chunked one; the header keeps its place."""
    body = req.body
    fields: list[tuple[bytes, bytes]] = []
    framed = False
    had_framing = False
    for k, v in req.headers.fields:
        if k.lower() in _FRAMING:
            had_framing = True
            if not framed and (body or req.method not in ("GET", "HEAD")):
                fields.append((b"Content-Length", str(len(body)).encode()))
                framed = True
            continue
        fields.append((k, v))
    if body and not framed:
        fields.append((b"Content-Length", str(len(body)).encode()))
    elif not had_framing and req.method in ("POST", "PUT", "PATCH") and not framed:
        fields.append((b"Content-Length", b"0"))
    if not any(k.lower() == b"host" for k, _ in fields):
        fields.insert(0, (b"Host", req.host_header.encode("latin-1")))
    target = req.target if req.scheme == "https" else f"http://{req.netloc}{req.target}"
    head = f"{req.method} {target} HTTP/1.1\r\n".encode("latin-1")
    return head + b"".join(k + b": " + v + b"\r\n" for k, v in fields) + b"\r\n" + body


class _Pipe:
    """The client end of an in-memory connection: the request, then silence until closed. What the
    proxy writes back is dropped: the flow records the response (capped as any capture)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._closed = asyncio.Event()

    async def read(self, n: int) -> bytes:
        if self._data:
            out, self._data = self._data[:n], self._data[n:]
            return out
        await self._closed.wait()  # no EOF before the exchange ends: an EOF means "client gone"
        return b""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self._closed.set()


class _ReplayConnection(ClientConnection):
    """A client connection that carries one replayed request and reports its flow."""

    def __init__(self, proxy: Proxy, tunnel: tuple[str, int] | None) -> None:
        super().__init__(proxy)
        self.tunnel = tunnel
        self.finished: asyncio.Future[Flow] = asyncio.get_running_loop().create_future()

    def _new_flow(self, ev: h1.RequestHead) -> tuple[Flow, tuple[int, str] | None]:
        flow, err = super()._new_flow(ev)
        flow.is_replay = True  # before the first hook: addons and the UI see a replay from the start
        return flow, err

    def _finish(self, ex: Exchange) -> None:
        ex.flow.is_replay = True  # also a request the codec refused (its flow is made elsewhere)
        super()._finish(ex)
        if not self.finished.done():
            self.finished.set_result(ex.flow)


async def replay_request(proxy: Proxy, req: Request) -> Flow:
    """Send `req` through `proxy`'s pipeline as a new replayed flow; returns it once finished
    (errors are on the flow, as for live traffic: never raised)."""
    tunnel = (req.host, req.port) if req.scheme == "https" else None
    conn = _ReplayConnection(proxy, tunnel)
    pipe = _Pipe(request_bytes(req))
    transport = StreamTransport(pipe, conn, peername=REPLAY_PEER)
    try:
        # no timeout here on purpose: a breakpoint may hold the flow as long as the user likes;
        # the proxy's own deadlines (connect, response, body idle) end a stuck exchange
        flow = await asyncio.shield(conn.finished)
    finally:
        transport.close()
    return flow


class Replayer:
    """The replay queue behind `replay.client`: flows are copied when queued and sent in order by
    at most `concurrency` workers (1, as mitmproxy's default, keeps a sequence such as a login
    in order). `on_done(flow)` is called with each finished replay."""

    def __init__(self, proxy: Proxy, concurrency: int = 1,
                 on_done: Callable[[Flow], None] | None = None) -> None:
        self.proxy = proxy
        self.concurrency = max(1, concurrency)
        self.on_done = on_done
        self.queue: deque[Request] = deque()
        self.inflight = 0
        self.workers: set[asyncio.Task] = set()

    def submit(self, flows: Iterable[Flow]) -> tuple[int, list[str]]:
        """Queue the replayable flows; returns (how many were queued, reasons others were not)."""
        queued = 0
        problems: list[str] = []
        for f in flows:
            problem = replay_problem(f)
            if problem is None and len(self.queue) >= MAX_QUEUED:
                problem = f"the replay queue is full ({MAX_QUEUED} flows)"
            if problem is not None:
                problems.append(f"flow {f.id}: {problem}")
                continue
            self.queue.append(copy_request(f.request))
            queued += 1
        while self.queue and len(self.workers) < self.concurrency:
            task = asyncio.get_running_loop().create_task(self._work())
            self.workers.add(task)
            task.add_done_callback(self.workers.discard)
        return queued, problems

    @property
    def count(self) -> int:
        """Replays queued or in flight."""
        return len(self.queue) + self.inflight

    def clear(self) -> int:
        """Drop the queued replays (those in flight finish); returns how many were dropped."""
        n = len(self.queue)
        self.queue.clear()
        return n

    async def _work(self) -> None:
        while self.queue:
            req = self.queue.popleft()
            self.inflight += 1
            try:
                flow = await replay_request(self.proxy, req)
            except Exception as exc:  # a bug must not kill the queue: one line, and go on
                self.proxy.report_error(f"replay of {req.url} failed: {exc!r}")
                continue
            finally:
                self.inflight -= 1
            if self.on_done is not None:
                self.on_done(flow)

    async def stop(self) -> None:
        """Drop the queue and cancel the workers (the proxy's stop closes their connections)."""
        self.queue.clear()
        tasks = list(self.workers)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)


async def replay_all(proxy: Proxy, requests: Iterable[Request], concurrency: int,
                     report: Callable[[int, Flow], None]) -> None:
    """Replay `requests` with at most `concurrency` in flight; `report(index, flow)` as each
    finishes (the CLI's `replay` command)."""
    pending = deque(enumerate(requests))

    async def worker() -> None:
        while pending:
            i, req = pending.popleft()
            report(i, await replay_request(proxy, req))

    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, min(concurrency, len(pending))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
