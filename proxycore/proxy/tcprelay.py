"""Raw TCP relaying with a recorded TCP flow: hooks, breakpoints, injected messages, throttling.

Like mitmproxy's TCP layer: each read from one side is a `TCPMessage` appended to the flow
(`flow.messages[-1]` while the `tcp_message` hooks run), the hooks may change its content or
drop it, and then its content is sent to the other side. `tcp_start` runs before the server is
connected, then exactly one of `tcp_end` / `tcp_error` when the flow ends (a server that cannot
be reached and a killed flow are errors). Hooks cost nothing when no addon defines them.

Order: each direction is one coroutine (read, hooks, write, read ...), so messages of a direction
go in order and reading from a side waits while its message waits (the stream's own back-pressure).
Async hooks (a breakpoint) see one message at a time, both directions together (a lock), so a
paused message holds the flow both ways, as mitmproxy pauses the flow. `inject` (mitmproxy's
inject.tcp) sends a message made by the user through the lane of the side it pretends to come
from, hooks included.

Throttling: when a profile is on and the flow matches its scope, writes go through
`Throttle.pace` (the shared links; half the latency when the conversation turns), and the loss
rate is rolled once for the connection (`lost`: the caller resets it before connecting).

The store hears of new messages through one coalesced "update" per `UPDATE_DELAY`
(`CoalescedUpdates`, which the WebSocket relay uses too).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from proxycore.addons.hooks import run_hook
from proxycore.flows.flow import DONE, ERROR
from proxycore.flows.tcp import TCPMessage, append, cap
from proxycore.throttle import DOWN, UP

if TYPE_CHECKING:
    from proxycore.flows.flow import Flow
    from proxycore.proxy.server import Proxy

READ_SIZE = 65536
UPDATE_DELAY = 0.25  # seconds: at most ~4 store updates a second per TCP flow


class CoalescedUpdates:
    """At most one "update" of a flow per `delay`: a chatty connection costs the UI a few
    refreshes a second, not one per message (and the last change is never left unpublished)."""

    __slots__ = ("proxy", "flow", "delay", "_timer")

    def __init__(self, proxy: Proxy, flow: Flow, delay: float) -> None:
        self.proxy = proxy
        self.flow = flow
        self.delay = delay
        self._timer: asyncio.TimerHandle | None = None

    def changed(self) -> None:
        if self._timer is None and self.flow.in_scope:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._publish)

    def _publish(self) -> None:
        self._timer = None
        self.proxy.publish("update", self.flow)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Side:
    """One end of the relay as the relay uses it (a WireGuard stream, an asyncio stream pair)."""

    __slots__ = ("read", "write", "drain", "write_eof", "close")

    def __init__(self, read: Callable[[int], Awaitable[bytes]], write: Callable[[bytes], Any],
                 drain: Callable[[], Awaitable[Any]], write_eof: Callable[[], Any],
                 close: Callable[[], Any]) -> None:
        self.read = read
        self.write = write
        self.drain = drain
        self.write_eof = write_eof
        self.close = close

    @classmethod
    def of_streams(cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Side:
        def eof() -> None:
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()

        return cls(reader.read, writer.write, writer.drain, eof, writer.close)


class TCPRelay:
    """One TCP flow's relay: `start()`, then `run()` until both directions ended (or `end()`
    with an error when the server could not be reached)."""

    def __init__(self, proxy: Proxy, flow: Flow) -> None:
        self.proxy = proxy
        self.flow = flow
        self.room = proxy.capture_limit  # bytes of content the flow may still keep (None: all)
        self.client: Side | None = None
        self.server: Side | None = None
        self.ended = False
        self._hook_lock = asyncio.Lock()  # async tcp_message hooks: one message at a time
        self._lanes = {True: asyncio.Lock(), False: asyncio.Lock()}  # by from_client: order of writes
        self._tasks: set[asyncio.Task] = set()
        self._updates = CoalescedUpdates(proxy, flow, UPDATE_DELAY)
        self._throttled: bool | None = None  # decided once, when a profile is first seen
        self._last_to_client: bool | None = None

    async def start(self) -> None:
        """The tcp_start hooks (before the server is connected, as mitmproxy's)."""
        chain = self.proxy.addons.tcp_start
        if chain is not None:
            await run_hook(chain, self.flow)

    async def run(self, client: Side, server: Side, first: bytes = b"",
                  pending: asyncio.Future | None = None) -> None:
        """Relay until both directions are done, then end the flow. `first`: bytes the client
        sent already; `pending`: a read of the client still running (a server-first stream)."""
        self.client, self.server = client, server
        flow = self.flow
        self.proxy.tcp_relays[flow.id] = self
        up = asyncio.ensure_future(self._pipe(True, client, server, first, pending))
        down = asyncio.ensure_future(self._pipe(False, server, client))
        self._tasks.update((up, down))
        try:
            await asyncio.gather(up, down)
        except asyncio.CancelledError:
            if not self.ended:  # cancelled from outside (the proxy stops), not by our own kill
                if flow.error is None:
                    flow.error = "the proxy stopped"
                raise
        finally:
            for t in list(self._tasks):
                t.cancel()
            self.proxy.tcp_relays.pop(flow.id, None)
            client.close()
            server.close()
            await self.end()

    async def end(self, error: str | None = None) -> None:
        """The flow is over: tcp_end or tcp_error, then the store and the capture."""
        flow = self.flow
        if error is not None and flow.error is None:
            flow.error = error
        self.ended = True
        self._updates.cancel()
        flow.timings.end = time.time()
        flow.state = ERROR if flow.error else DONE
        chain = self.proxy.addons.tcp_error if flow.error else self.proxy.addons.tcp_end
        if chain is not None:
            await run_hook(chain, flow)
        self.proxy.flow_done(flow)

    # --- the two directions --------------------------------------------------------------------
    async def _pipe(self, from_client: bool, src: Side, dst: Side, first: bytes = b"",
                    pending: asyncio.Future | None = None) -> None:
        try:
            data = first
            if pending is not None:
                data = await pending
            elif not from_client or not data:
                data = await src.read(READ_SIZE)
            while data and not self.ended:
                await self._message(TCPMessage(from_client, bytes(data)))
                if self.ended:
                    return
                data = await src.read(READ_SIZE)
            if not self.ended:
                dst.write_eof()  # half-close: the other direction may go on (mitmproxy's too)
        except (OSError, ConnectionError, EOFError):
            pass

    async def _message(self, msg: TCPMessage) -> None:
        """Record, run the hooks, send on (unless dropped), then cap what the flow keeps."""
        flow = self.flow
        async with self._lanes[msg.from_client]:  # an injected message waits for the read before it
            chain = self.proxy.addons.tcp_message
            if chain is None:
                append(flow, msg)
            elif chain.is_async:
                # during its hooks a message is flow.messages[-1] (mitmproxy's promise), and a
                # breakpoint holds this flow both ways
                async with self._hook_lock:
                    append(flow, msg)
                    if not self.ended:
                        await chain.run(flow)
            else:
                append(flow, msg)
                chain.call(flow)
            if flow.killed:
                self.kill()
                return
            if self.ended:
                return
            if msg.content and not msg.dropped:
                await self._write(not msg.from_client, msg.content)
            room = self.room
            kept = cap(flow, msg, room)
            if room is not None:
                self.room = room - kept
            self._updates.changed()

    async def _write(self, to_client: bool, data: bytes) -> None:
        side = self.client if to_client else self.server
        assert side is not None
        throttle = self.proxy.throttle
        if throttle.profile is not None and self._shaped():
            await throttle.pace(DOWN if to_client else UP, data, side.write, side.drain,
                                turn=self._last_to_client is not to_client)
        else:
            side.write(data)
            await side.drain()
        self._last_to_client = to_client

    def lost(self) -> bool:
        """Packet-loss emulation, rolled once per connection (an HTTP request rolls once per
        request): True when this flow is throttled and its connection is to be reset."""
        throttle = self.proxy.throttle
        return throttle.profile is not None and self._shaped() and throttle.lose()

    def _shaped(self) -> bool:
        if self._throttled is None:
            self._throttled = self.proxy.throttle.matches(self.flow)
        return self._throttled

    # --- the user's actions --------------------------------------------------------------------
    def inject(self, to_client: bool, content: bytes) -> None:
        """A message made by the user (mitmproxy's inject.tcp): it goes through the lane of the
        side it pretends to come from, hooks included, and is marked injected."""
        if self.ended or self.client is None:
            raise ValueError("the TCP connection has ended")
        msg = TCPMessage(not to_client, content, injected=True)

        async def send() -> None:
            try:
                await self._message(msg)
            except (OSError, ConnectionError):
                pass

        task = asyncio.ensure_future(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def kill(self) -> None:
        """End both connections at once (a hook's or the user's flow.kill(): tcp_error)."""
        if self.ended:
            return
        if self.flow.error is None:
            self.flow.error = "killed"
        self.ended = True
        current = asyncio.current_task()
        for t in list(self._tasks):
            if t is not current:
                t.cancel()
        for side in (self.client, self.server):
            if side is not None:
                side.close()


__all__ = ["CoalescedUpdates", "Side", "TCPRelay"]
