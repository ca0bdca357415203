"""Addons and the hooks the engine calls on them, in a fixed order.

An addon is a plain object with the hook methods it needs, sync (`def`) or async (`async def`).
Only the hooks some addon defines are called, so a feature that is off costs nothing. A hook may
await for as long as it likes: it holds up its own flow, never another flow or the event loop.

The hooks, in the order a flow meets them (each gets the Flow, the connection hooks a `Peer`):

    client_connected(peer)          a client connection was accepted
    connect(flow)                   a CONNECT request; set flow.passthrough to tunnel it blind,
                                    flow.response to answer it, or flow.kill()
    tls(flow)                       the client's TLS handshake inside a CONNECT completed
    requestheaders(flow)            request head read; the body may still be arriving. Set
                                    flow.request.stream = False to have it buffered whole (up
                                    to options.body_buffer_limit) before `request`
    request(flow)                   before the request goes upstream (buffered: body complete);
                                    set flow.response to answer locally, or flow.kill()
    responseheaders(flow)           response head read; flow.response.stream = False buffers it
    response(flow)                  response complete (buffered: before the client gets it,
                                    so a hook may change it; streamed: after it was sent)
    websocket_start(flow)           a 101 switched the connection to WebSocket (flow.websocket set)
    websocket_message(flow)         a whole message arrived: flow.websocket.messages[-1]; a hook
                                    may change its content or drop() it before it is sent on
    websocket_end(flow)             the WebSocket closed (flow.websocket.close_code, closed_by_client)
    tcp_start(flow)                 a raw TCP flow began (flow.tcp_messages set; before the server
                                    is connected, as mitmproxy's)
    tcp_message(flow)               one read from one side: flow.messages[-1]; a hook may change
                                    its content or drop() it before it is sent on
    tcp_end(flow) | tcp_error(flow) exactly one, when the TCP flow ended (tcp_error: flow.error set:
                                    the server could not be reached, the flow was killed, ...)
    error(flow) | done(flow)        exactly one, when the flow has ended
    client_disconnected(peer)

Hooks run in addon registration order; an exception in a hook is reported and the flow goes on.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

HOOKS = (
    "client_connected", "client_disconnected", "connect", "tls", "requestheaders", "request",
    "responseheaders", "response", "error", "done", "websocket_start", "websocket_message", "websocket_end",
    "tcp_start", "tcp_message", "tcp_end", "tcp_error",
)


class Chain:
    """The bound methods of one hook, and whether any of them is a coroutine function (then the
    chain must be awaited; otherwise it is called inline, with no task switch)."""

    __slots__ = ("fns", "is_async", "on_error", "call", "trusted")

    def __init__(self, on_error: Callable[[str], None]) -> None:
        self.fns: list[tuple[Callable[..., Any], bool]] = []
        self.is_async = False
        self.on_error = on_error
        # call(arg) runs a chain of sync hooks (is_async is False); the engine's own lone hook
        # is called directly (see Addons.add(trusted=True))
        self.call: Callable[[Any], Any] = self._call_each
        self.trusted = True  # only the engine's own addons: they change no message

    def _call_each(self, arg: Any) -> None:
        for fn, _ in self.fns:
            try:
                fn(arg)
            except Exception as exc:
                self.on_error(f"addon hook {_name(fn)} failed: {exc!r}")

    async def run(self, arg: Any) -> None:
        """Run the chain, awaiting the async hooks in turn."""
        for fn, is_async in self.fns:
            try:
                if is_async:
                    await fn(arg)
                else:
                    r = fn(arg)
                    if inspect.isawaitable(r):  # a sync def that returned a coroutine
                        await r
            except Exception as exc:
                self.on_error(f"addon hook {_name(fn)} failed: {exc!r}")


async def run_hook(chain: Chain | None, arg: Any) -> None:
    """Run a hook chain off the hot path (the flow driver inlines this where it counts)."""
    if chain is not None:
        if chain.is_async:
            await chain.run(arg)
        else:
            chain.call(arg)


def fire_hook(chain: Chain | None, arg: Any) -> None:
    """Run a hook chain without waiting for it: a sync chain at once, an async one as its own task
    (connection events and ends, which nothing waits on)."""
    if chain is not None:
        if chain.is_async:
            asyncio.ensure_future(chain.run(arg))
        else:
            chain.call(arg)


def _name(fn: Callable[..., Any]) -> str:
    owner = getattr(fn, "__self__", None)
    return f"{type(owner).__name__}.{fn.__name__}" if owner is not None else getattr(fn, "__name__", repr(fn))


class Addons:
    """The registered addons; one `Chain` attribute per hook (`addons.request`, ...), None when
    no addon defines that hook."""

    client_connected: Chain | None
    client_disconnected: Chain | None
    connect: Chain | None
    tls: Chain | None
    requestheaders: Chain | None
    request: Chain | None
    responseheaders: Chain | None
    response: Chain | None
    error: Chain | None
    done: Chain | None
    websocket_start: Chain | None
    websocket_message: Chain | None
    websocket_end: Chain | None
    tcp_start: Chain | None
    tcp_message: Chain | None
    tcp_end: Chain | None
    tcp_error: Chain | None

    def __init__(self, on_error: Callable[[str], None] | None = None) -> None:
        self._on_error = on_error or (lambda msg: None)
        self.addons: list[Any] = []
        self._tail: list[Any] = []  # after every other addon, whenever those were added
        self._trusted: list[Any] = []
        self._rebuild()

    def add(self, *addons: Any, last: bool = False, trusted: bool = False) -> None:
        """`trusted`: the engine's own addons; a hook only they define is called directly,
        without the guard that reports a failing user hook."""
        (self._tail if last else self.addons).extend(addons)
        if trusted:
            self._trusted.extend(addons)
        self._rebuild()

    def remove(self, addon: Any) -> None:
        self.addons = [a for a in self.addons if a is not addon]
        self._tail = [a for a in self._tail if a is not addon]
        self._rebuild()

    def _rebuild(self) -> None:
        # Chains are rebuilt whole and swapped in, so a flow iterating the old one is unaffected.
        for hook in HOOKS:
            chain = Chain(self._on_error)
            for addon in self.addons + self._tail:
                fn = getattr(addon, hook, None)
                if fn is None or not callable(fn):
                    continue
                is_async = inspect.iscoroutinefunction(fn)
                chain.fns.append((fn, is_async))
                if addon not in self._trusted:
                    chain.trusted = False
                chain.is_async = chain.is_async or is_async
            if len(chain.fns) == 1 and not chain.is_async and getattr(chain.fns[0][0], "__self__", None) \
                    in self._trusted:
                chain.call = chain.fns[0][0]  # the engine's own: no guard to pay for
            # An empty chain is None, so `if addons.request:` costs no call on the hot path.
            setattr(self, hook, chain if chain.fns else None)

    def get(self, cls: type) -> Any:
        """The first registered addon of this class, or None."""
        return next((a for a in self.addons + self._tail if isinstance(a, cls)), None)


def load_script(path: str) -> list[Any]:
    """The addons a script file defines (`addons = [...]`, like mitmproxy's -s). ValueError with
    one line for the user when the file cannot be loaded."""
    import importlib.util
    from pathlib import Path

    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"addon script {path}: no such file")
    spec = importlib.util.spec_from_file_location(f"omniproxy_script_{abs(hash(str(p)))}", p)
    if spec is None or spec.loader is None:
        raise ValueError(f"addon script {path}: cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ValueError(f"addon script {path} failed to load: {exc!r}") from None
    addons = getattr(module, "addons", None)
    if not isinstance(addons, list | tuple):
        raise ValueError(f"addon script {path} defines no `addons` list")
    return list(addons)
