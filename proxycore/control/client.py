"""The UI's one interface to the engine.

The UI talks to an `EngineClient` and to nothing else of the engine's runtime (the proxy, its
connections, its upstream pool). `LocalEngine` runs the proxy in this process and on this event
loop; a client for an engine served over a socket would implement the same methods, with flows
arriving as `proxycore.flows.serialize` records, without any widget noticing.

Everything here is called on the event loop's thread, except `on_error`, which the engine may call
from a capture writer's thread (the UI hops back to its loop itself).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxycore.errors import StartupError
from proxycore.eventlog import EventLog
from proxycore.flows.flow import Flow
from proxycore.flows.store import StoreCallback
from proxycore.options import Options

if TYPE_CHECKING:
    from proxycore.addons.intercept import Intercept
    from proxycore.addons.rules import RuleSet
    from proxycore.control.commands import CommandContext
    from proxycore.proxy.server import Proxy
    from proxycore.throttle import Throttle

ErrorCallback = Callable[[str], None]


class EngineClient(ABC):
    """What the UI may ask of the engine. Flow events are `callback(kind, flow_id, flow)` with kinds
    "added", "updated" and "removed" (see proxycore.flows.store)."""

    # ---------------------------------------------------------------- lifecycle
    @abstractmethod
    async def start(self) -> None:
        """Start proxying. Raises StartupError (one line for the user) when it cannot."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop proxying and drain the capture (files and databases complete). Idempotent."""

    # ---------------------------------------------------------------- flows
    @abstractmethod
    def subscribe(self, callback: StoreCallback) -> Callable[[], None]:
        """Flow events from now on; returns the unsubscribe function."""

    @abstractmethod
    def get_flow(self, flow_id: int) -> Flow | None:
        """A kept flow by id (None once dropped)."""

    @abstractmethod
    def snapshot(self, ids: Iterable[int] | None = None) -> list[Flow]:
        """Kept flows (all, or those of `ids`), safe to read in a worker thread: flows in flight
        are copies, finished ones shared."""

    @abstractmethod
    def add_flow(self, flow: Flow) -> None:
        """A flow made by the user (a duplicate): the engine keeps it like the ones it proxied."""

    @abstractmethod
    def remove_flows(self, ids: Iterable[int]) -> int:
        """Forget flows (the user deleted them); returns how many were kept."""

    @abstractmethod
    def clear_flows(self) -> int:
        """Forget every flow; returns how many were kept."""

    # ---------------------------------------------------------------- replay
    def replay(self, flows: list[Flow]) -> tuple[int, list[str]]:
        """Send the flows' current requests again as new replayed flows (queued, in order);
        returns (how many were queued, one reason per flow that was not)."""
        raise NotImplementedError("this engine cannot replay flows")

    def replay_count(self) -> int:
        """Replays queued or in flight."""
        return 0

    def websocket_inject(self, flow_id: int, to_client: bool, content: bytes, is_text: bool) -> None:
        """Send a new message on a live WebSocket flow; ValueError when it is not live."""
        raise ValueError("this engine cannot send WebSocket messages")

    def tcp_inject(self, flow_id: int, to_client: bool, content: bytes) -> None:
        """Send new data on a live TCP flow; ValueError when it is not live."""
        raise ValueError("this engine cannot send TCP messages")

    def replay_clear(self) -> int:
        """Drop the queued replays; returns how many were dropped."""
        return 0

    # ---------------------------------------------------------------- commands
    def run_command(self, name: str, ctx: CommandContext, /, *args: Any, **kwargs: Any) -> Any:
        """Run a named command of proxycore.control.commands against `ctx` (the caller's view state and
        services); arguments by position or by their declared names. Returns the command's
        message, None or a Job for the caller to run off the loop; raises CommandError."""
        from proxycore.control.commands import registry

        ctx.engine = self
        return registry.call(ctx, name, *_positional(name, args, kwargs))

    @property
    def intercept(self) -> Intercept | None:
        """The breakpoints controller (filter, paused flows), None when this engine has none."""
        return None

    @property
    def rules(self) -> RuleSet | None:
        """The rewrite rules (proxycore.addons.rules); None where the engine has none."""
        return None

    @property
    def throttle(self) -> Throttle | None:
        """The engine's throttling state (proxycore.throttle), None when this engine has none."""
        return None
    # ---------------------------------------------------------------- options
    @abstractmethod
    def set_option(self, field: str, value: Any) -> bool:
        """Apply an already validated option value to the running engine (see
        proxycore.control.settings). Returns False, changing nothing, for an option the engine only
        reads at start: it takes effect at the next start (from the config file)."""

    # ---------------------------------------------------------------- facts the UI shows
    @property
    @abstractmethod
    def events(self) -> EventLog:
        """The engine's event log: start-up facts, warnings, errors (bounded, oldest first)."""

    @property
    def wireguard_config(self) -> str | None:
        """The WireGuard client's configuration text in WireGuard mode (its own private key, the
        server's public key, the endpoint), else None."""
        return None

    @property
    @abstractmethod
    def address(self) -> tuple[str, int]:
        """(host, port) the proxy listens on (the requested one before start)."""

    @property
    @abstractmethod
    def ca_cert_path(self) -> Path | None:
        """The CA certificate clients must trust (None without MITM or before start)."""

    @property
    @abstractmethod
    def first_run(self) -> bool:
        """The CA was created by this start (the user has not trusted it yet)."""

    @property
    @abstractmethod
    def stats(self) -> dict[str, int]:
        """Counters: flows seen, captured, written, dropped, failed, connections, kept."""


def _positional(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """`args` followed by `kwargs` placed by the command's declared argument names."""
    if not kwargs:
        return list(args)
    from proxycore.control.commands import CommandError, registry

    cmd = registry.get(name)
    rest = cmd.args[len(args):]
    unknown = set(kwargs) - {a.name for a in rest}
    if unknown:
        raise CommandError(f"{name}: unexpected or repeated argument {', '.join(sorted(unknown))} "
                           f"({cmd.signature})")
    out = list(args)
    last = max(i for i, a in enumerate(rest) if a.name in kwargs)
    for a in rest[:last + 1]:  # a keyword after an omitted argument: that one takes its default
        if a.name in kwargs:
            out.append(kwargs[a.name])
        elif a.required:
            raise CommandError(f"{name}: missing <{a.name}> ({cmd.signature})")
        else:
            out.append(a.default)
    return out


class LocalEngine(EngineClient):
    """The engine in this process: builds and owns the Proxy from `options`. The proxy keeps
    `keep_flows` flows (default: options.max_flows), the store the UI mirrors."""

    def __init__(self, options: Options, *, on_error: ErrorCallback | None = None,
                 keep_flows: int | None = None) -> None:
        from proxycore.proxy.server import Proxy  # the engine's runtime, loaded with the engine

        self.options = options
        self._first_run = options.mitm and not options.ca_cert_path.exists()
        self.proxy: Proxy = Proxy(options, on_error=on_error,
                                  keep_flows=options.max_flows if keep_flows is None else keep_flows)
        self.running = False
        self._stopped = False
        self._replayer = None  # made on the first replay: nothing runs until then

    async def start(self) -> None:
        self._first_run = self.options.mitm and not self.options.ca_cert_path.exists()
        try:
            await self.proxy.start()
        except StartupError:
            self._stopped = True  # nothing to stop
            raise
        self.running = True

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._replayer is not None:
            await self._replayer.stop()
        if self.running:
            self.running = False
            await self.proxy.stop()  # drains the capture queue and closes sinks (HAR written)

    def subscribe(self, callback: StoreCallback) -> Callable[[], None]:
        return self.proxy.flows.subscribe(callback)

    def get_flow(self, flow_id: int) -> Flow | None:
        return self.proxy.flows.get(flow_id)

    def snapshot(self, ids: Iterable[int] | None = None) -> list[Flow]:
        return self.proxy.flows.snapshot(ids)

    def add_flow(self, flow: Flow) -> None:
        self.proxy.flows.add(flow)

    def remove_flows(self, ids: Iterable[int]) -> int:
        return self.proxy.flows.remove(ids)

    def clear_flows(self) -> int:
        return self.proxy.flows.clear()

    def replay(self, flows: list[Flow]) -> tuple[int, list[str]]:
        if not self.running:
            raise RuntimeError("the proxy is not running")
        if self._replayer is None:
            from proxycore.proxy.replay import Replayer

            self._replayer = Replayer(self.proxy)
        return self._replayer.submit(flows)

    def replay_count(self) -> int:
        return self._replayer.count if self._replayer is not None else 0

    def replay_clear(self) -> int:
        return self._replayer.clear() if self._replayer is not None else 0
    def set_option(self, field: str, value: Any) -> bool:
        from proxycore.control.settings import LIVE_OPTIONS

        if field not in LIVE_OPTIONS:
            return False
        setattr(self.options, field, value)  # the proxy reads this very object
        pool = self.proxy.pool
        if field in ("connect_timeout", "response_timeout", "body_idle_timeout", "max_head_size"):
            setattr(pool, field, value)  # the upstream pool keeps its own copies
        return True

    @property
    def events(self) -> EventLog:
        return self.proxy.events

    @property
    def wireguard_config(self) -> str | None:
        wg = self.proxy.wireguard
        return wg.client_config if wg is not None else None

    def websocket_inject(self, flow_id: int, to_client: bool, content: bytes, is_text: bool) -> None:
        relay = self.proxy.websockets.get(flow_id)
        if relay is None:
            raise ValueError(f"flow #{flow_id} is not a live WebSocket connection")
        relay.inject(to_client, content, is_text)

    def tcp_inject(self, flow_id: int, to_client: bool, content: bytes) -> None:
        relay = self.proxy.tcp_relays.get(flow_id)
        if relay is None:
            raise ValueError(f"flow #{flow_id} is not a live TCP connection")
        relay.inject(to_client, content)

    def inject(self, kind: str, flow: Flow) -> None:
        """Publish a flow as the proxy's connection code would ("add", "update", "done"), without
        a proxy running: tests, demos and snapshots feed the UI through the real store with it."""
        self.proxy.publish(kind, flow)

    @property
    def intercept(self) -> Intercept | None:
        return self.proxy.intercept

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.proxy.address[:2]
        return host, port

    @property
    def rules(self) -> RuleSet:
        return self.proxy.rules

    @property
    def ca_cert_path(self) -> Path | None:
        ca = self.proxy.ca
        return ca.cert_path if ca is not None else None

    @property
    def first_run(self) -> bool:
        return self._first_run and self.proxy.ca is not None

    @property
    def stats(self) -> dict[str, int]:
        return self.proxy.stats

    @property
    def throttle(self) -> Throttle | None:
        return self.proxy.throttle


__all__ = ["EngineClient", "ErrorCallback", "LocalEngine", "StartupError"]
