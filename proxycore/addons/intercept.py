"""Breakpoints: flows matching the intercept filter pause until the user resumes, edits or kills them.

Semantics follow mitmproxy's `intercept` option: the filter is tried when the request is complete
(the `request` hook) and again when the response is (the `response` hook), so `~q` (no response
yet) pauses requests only, `~s` (has a response) responses only, and anything else both. One
difference: replays are intercepted too (mitmproxy lets them through), since an edited replay is
what one usually wants to look at again.

A paused flow waits on its own future: only its driver coroutine awaits, every other flow goes on.
A matching message is buffered whole (up to --body-buffer-limit; a larger one streams and is not
paused) so that an edit can change its body.

`Intercept` is the controller the commands talk to; it registers its hooks object with the proxy's
addons only while a filter is active, so with breakpoints off no hook of this module runs.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxycore.flows.filter import Filter, parse
from proxycore.flows.flow import INTERCEPTED, PENDING, Flow

Publish = Callable[[str, Flow], None]


@dataclass
class Paused:
    """One paused flow: which part waits, since when, and when it resumes by itself."""

    flow: Flow
    phase: str  # "request", "response" or "message" (a WebSocket or TCP message)
    since: float  # time.monotonic()
    deadline: float | None  # time.monotonic() of the auto-resume, None: waits for the user
    future: asyncio.Future = field(repr=False)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    message: Any = None  # the paused WebSocketMessage or TCPMessage (phase "message")

    def waited(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.since

    def remaining(self, now: float | None = None) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - (time.monotonic() if now is None else now))


def _too_big(headers_get: Callable[[str], str | None], limit: int) -> bool:
    """A Content-Length beyond the buffer limit: the body would stream, so an edit could not
    change it and a pause would come after it was sent."""
    cl = headers_get("content-length")
    return cl is not None and cl.strip().isdigit() and int(cl) > limit


class InterceptHooks:
    """The hooks registered while breakpoints are on (see Intercept.sync)."""

    def __init__(self, ctl: Intercept) -> None:
        self.ctl = ctl

    def requestheaders(self, flow: Flow) -> None:
        ctl = self.ctl
        req = flow.request
        if flow.in_scope and ctl.wants(flow) and not _too_big(req.headers.get, ctl.body_limit):
            req.stream = False  # the body whole, so that an edit can change it

    async def request(self, flow: Flow) -> None:
        ctl = self.ctl
        if flow.in_scope and flow.response is None and not flow.killed and ctl.matches(flow):
            await ctl.pause(flow, "request")

    def responseheaders(self, flow: Flow) -> None:
        ctl = self.ctl
        resp = flow.response
        if resp is not None and flow.in_scope and resp.status != 101 and ctl.wants(flow) \
                and not _too_big(resp.headers.get, ctl.body_limit):
            resp.stream = False

    async def websocket_message(self, flow: Flow) -> None:
        ws = flow.websocket
        if ws is None or not ws.messages or not flow.in_scope:
            return
        msg = ws.messages[-1]
        if self.ctl.matches_message(flow, msg):
            await self.ctl.pause(flow, "message", msg)

    async def tcp_message(self, flow: Flow) -> None:
        msgs = flow.tcp_messages
        if not msgs or not flow.in_scope:
            return
        msg = msgs[-1]
        if self.ctl.matches_message(flow, msg):
            await self.ctl.pause(flow, "message", msg)

    async def response(self, flow: Flow) -> None:
        resp = flow.response
        # only a buffered response can still be changed: a streamed one was sent already
        if resp is not None and not resp.stream and resp.status != 101 and flow.in_scope \
                and not flow.killed and self.ctl.matches(flow):
            await self.ctl.pause(flow, "response")


class Intercept:
    """The intercept filter, its on/off switch, and the flows paused by it."""

    def __init__(self, addons: object, publish: Publish, *, timeout: float = 0.0,
                 body_limit: int = 32 << 20) -> None:
        self.addons = addons  # proxycore.addons.hooks.Addons
        self.publish = publish
        self.timeout = timeout  # seconds before a paused flow resumes by itself; 0: never
        self.body_limit = body_limit
        self.expr = ""
        self.filter: Filter | None = None
        self.active = False
        self.needs_body = False  # the filter looks at bodies: buffer every body to test it
        self.paused: dict[int, Paused] = {}
        self.hooks = InterceptHooks(self)
        self._registered = False
        self.stopping = False

    # ------------------------------------------------------------------ filter and switch

    def set_filter(self, expr: str) -> None:
        """Set the filter and turn breakpoints on (empty: off and forgotten), as mitmproxy's
        `intercept` option does. FilterError (a ValueError) for a bad expression."""
        expr = expr.strip()
        if not expr:
            self.expr, self.filter, self.active, self.needs_body = "", None, False, False
        else:
            self.filter = parse(expr)
            self.expr = expr
            self.active = True
            self.needs_body = "~b" in expr
        self.sync()

    def toggle(self) -> bool:
        """Breakpoints off / on again, the filter kept. Paused flows stay paused."""
        self.active = not self.active and self.filter is not None
        self.sync()
        return self.active

    def sync(self) -> None:
        """Register the hooks only while a filter is active: off costs the hot path nothing."""
        want = self.active and self.filter is not None and not self.stopping
        if want and not self._registered:
            self.addons.add(self.hooks)  # type: ignore[attr-defined]
        elif not want and self._registered:
            self.addons.remove(self.hooks)  # type: ignore[attr-defined]
        self._registered = want

    @property
    def registered(self) -> bool:
        return self._registered

    def matches(self, flow: Flow) -> bool:
        f = self.filter
        return self.active and f is not None and f(flow)

    def matches_message(self, flow: Flow, msg: Any) -> bool:
        """Does the filter match this one WebSocket or TCP message? It sees the flow as if the
        message were its only one, so ~b pauses the messages that contain the text, not every
        message after the first that did (mitmproxy tries the whole flow)."""
        f = self.filter
        if not self.active or f is None:
            return False
        view = copy.copy(flow)
        if flow.tcp_messages is not None:
            view.tcp_messages = [msg]
        else:
            from proxycore.flows.websocket import WebSocketData

            view.websocket = WebSocketData()
            view.websocket.messages.append(msg)
        return f(view)

    def wants(self, flow: Flow) -> bool:
        """At a head: might this message pause once it is complete? (bodies are not there yet)"""
        return self.active and (self.needs_body or self.matches(flow))

    # ------------------------------------------------------------------ pausing

    async def pause(self, flow: Flow, phase: str, message: Any = None) -> None:
        """Hold this flow (only this one) until it is resumed, killed or times out."""
        if self.stopping:
            return
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        p = Paused(flow, phase, now, now + self.timeout if self.timeout > 0 else None, loop.create_future(),
                   message=message)
        if self.timeout > 0:
            p.timer = loop.call_later(self.timeout, self._release, flow.id)
        self.paused[flow.id] = p
        flow.state = INTERCEPTED
        self.publish("update", flow)
        try:
            await p.future
        finally:
            if p.timer is not None:
                p.timer.cancel()
            self.paused.pop(flow.id, None)
            if flow.state == INTERCEPTED:
                flow.state = PENDING
            self.publish("update", flow)

    def _release(self, flow_id: int) -> bool:
        p = self.paused.get(flow_id)
        if p is None or p.future.done():
            return False
        p.future.set_result(None)
        return True

    def is_paused(self, flow: Flow) -> bool:
        return flow.id in self.paused

    def resume(self, flows: list[Flow]) -> int:
        return sum(self._release(f.id) for f in flows)

    def resume_all(self) -> int:
        return sum(self._release(fid) for fid in list(self.paused))

    def kill(self, flows: list[Flow]) -> int:
        """Kill paused flows: their client connection is closed without a response (a TCP or
        WebSocket flow: both connections end)."""
        n = 0
        for f in flows:
            if f.id in self.paused:
                f.kill()
                n += self._release(f.id)
        return n

    def stop(self) -> None:
        """The proxy stops: paused flows are killed (their connections are closing anyway)."""
        self.stopping = True
        self.sync()
        self.kill([p.flow for p in list(self.paused.values())])

    def inbox(self) -> list[Paused]:
        """The paused flows, the longest waiting first."""
        return sorted(self.paused.values(), key=lambda p: p.since)
