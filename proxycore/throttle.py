"""Network throttling: presets, rate and delay parsing, and the shaper on the engine's write path.

How it works, in one paragraph. `Throttle` (one per Proxy) holds the active `Profile` (None: off)
and the scope filter. For each request the flow driver asks `Throttle.matches(flow)`; when a flow
matches, `attach` swaps the `write` (and `close`) of both of its connections for a `Shaper`'s:
from then on every byte to the client (download) and to the origin (upload) is queued there and
released in small quanta at the times a shared `Link` hands out. One `Link` per direction is shared
by every matching connection, like one slow link: two downloads at once each get about half.
The first byte of each request and of each response waits half the `latency` (+ up to half the
`jitter`): a request's round trip gains `latency`, as Charles and browser DevTools add it once per request. A shaper's queue is bounded: past `HIGH_WATER` bytes it pauses
its producer (the same `pause_writing` the transport would call), below `LOW_WATER` it resumes it.
When throttling is off nothing is swapped, so the write path is the plain `Endpoint.write`.

The clock and timers come from an asyncio-like loop (`time()`, `call_at()`), so the shaping logic is
tested deterministically with a fake one.
"""

from __future__ import annotations

import math
import random
import re
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from proxycore.flows.filter import Filter
    from proxycore.flows.flow import Flow
    from proxycore.options import Options

DOWN = "down"  # bytes written to clients
UP = "up"  # bytes written to origins

# A shaper holds at most about this many bytes before it pauses whoever feeds it.
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024
# While the transport itself holds more than this (the peer is not reading), release no more.
TRANSPORT_HIGH = 64 * 1024
TRANSPORT_RETRY = 0.05  # seconds between looks at a full transport buffer
# Bytes are released in quanta of about this much link time: small enough to interleave connections
# sharing a link smoothly, big enough to keep the number of timers low at fast rates.
QUANTUM_SECONDS = 0.02
MIN_QUANTUM = 512
MAX_QUANTUM = 64 * 1024


# --------------------------------------------------------------------------- profiles and presets


@dataclass(frozen=True)
class Profile:
    """What a throttled link looks like. Rates in bytes per second (None: not limited)."""

    name: str
    down: float | None = None
    up: float | None = None
    latency: float = 0.0  # seconds a request's round trip gains: half before the request, half before the response
    jitter: float = 0.0  # up to this many seconds more per round trip, uniformly at random
    loss: float = 0.0  # probability (0..1) that a matching request has its connection reset
    source: str = ""

    def describe(self) -> str:
        """`3g ↓780 kbit/s ↑330 kbit/s 100 ms`: for the header, the status command and the log."""
        parts = [self.name, f"↓{format_rate(self.down)}", f"↑{format_rate(self.up)}"]
        if self.latency:
            parts.append(format_ms(self.latency))
        if self.jitter:
            parts.append(f"±{format_ms(self.jitter)}")
        if self.loss:
            parts.append(f"{self.loss * 100:g}% loss")
        return " ".join(parts)


def _kbit(n: float) -> float:
    return n * 1000 / 8


def _mbit(n: float) -> float:
    return n * 1_000_000 / 8


# Sources: ../shared/reference/anchors.md §3.1 (Firefox DevTools, Apple's Network Link Conditioner,
# Lighthouse/WebPageTest, BrowserStack). README.md repeats this table.
PRESETS: dict[str, Profile] = {p.name: p for p in (
    Profile("gprs", _kbit(50), _kbit(20), 0.5, source="Firefox DevTools (GPRS)"),
    Profile("2g", _kbit(250), _kbit(50), 0.3, source="Firefox DevTools (Regular 2G)"),
    Profile("edge", _kbit(250), _kbit(150), 0.3, source="BrowserStack (EDGE, good)"),
    Profile("3g", _kbit(780), _kbit(330), 0.1, source="Network Link Conditioner (3G)"),
    Profile("3g-fast", _mbit(1.6), _kbit(750), 0.15, source="Lighthouse / WebPageTest (Mobile 3G - Fast)"),
    Profile("4g", _mbit(4), _mbit(3), 0.02, source="Firefox DevTools (Regular 4G)"),
    Profile("lte", _mbit(50), _mbit(10), 0.05, source="Network Link Conditioner (LTE)"),
    Profile("dsl", _mbit(2), _kbit(256), 0.005, source="Network Link Conditioner (DSL)"),
    Profile("wifi", _mbit(30), _mbit(15), 0.002, source="Firefox DevTools (Wi-Fi)"),
    Profile("very-bad", _mbit(1), _mbit(1), 0.5, loss=0.10, source="Network Link Conditioner (Very Bad Network)"),
)}
_ALIASES = {"fast-3g": "3g-fast", "3gfast": "3g-fast", "regular-2g": "2g", "regular-3g": "3g",
            "regular-4g": "4g", "wi-fi": "wifi", "verybad": "very-bad", "very-bad-network": "very-bad"}


def preset(name: str) -> Profile:
    """The preset called `name` (case, spaces and underscores do not matter); ValueError otherwise."""
    key = re.sub(r"[\s_]+", "-", name.strip().lower())
    key = _ALIASES.get(key, key)
    try:
        return PRESETS[key]
    except KeyError:
        raise ValueError(f"unknown throttle preset {name!r} (presets: {', '.join(PRESETS)})") from None


# --------------------------------------------------------------------------- parsing values

_RATE = re.compile(r"(?P<n>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[a-z]*)(?:/s|ps)?", re.I)
_BIT_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000,
              "kbps": 1_000, "mbps": 1_000_000, "gbps": 1_000_000_000, "bps": 1}


def parse_rate(text: str) -> float | None:
    """'1mbit', '512kbit', '64000bit', '1.5 mbit/s', 'kbps'/'mbps' (bits) -> bytes per second.
    '0', 'off', 'none' or '' -> None (no limit). ValueError with a one-line reason otherwise."""
    t = str(text).strip()
    if t.lower() in ("", "0", "off", "none", "unlimited"):
        return None
    m = _RATE.fullmatch(t)
    if m is None:
        raise ValueError(f"bad rate {text!r}: expected a number and a unit, e.g. 1mbit, 512kbit, 64000bit")
    unit = m["unit"]
    if unit.lower() not in _BIT_UNITS:
        if unit and unit[-1:] in "bB" and unit.lower() not in _BIT_UNITS:
            raise ValueError(f"bad rate {text!r}: rates are in bits per second (bit, kbit, mbit); "
                             f"8mbit is 1 MB/s")
        if not unit:
            raise ValueError(f"bad rate {text!r}: give a unit, e.g. {m['n']}kbit or {m['n']}mbit")
        raise ValueError(f"bad rate {text!r}: unknown unit {unit!r} (use bit, kbit or mbit)")
    bits = float(m["n"]) * _BIT_UNITS[unit.lower()]
    if bits <= 0 or not math.isfinite(bits):
        raise ValueError(f"bad rate {text!r}: must be above 0 (or 'off')")
    return bits / 8


_MS = re.compile(r"(?P<n>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s)?", re.I)


def parse_ms(text: str) -> float:
    """'100ms', '100' (milliseconds), '1.5s' -> seconds. ValueError with a one-line reason otherwise."""
    t = str(text).strip()
    m = _MS.fullmatch(t)
    if m is None:
        raise ValueError(f"bad duration {text!r}: expected milliseconds, e.g. 100ms, 100 or 1.5s")
    n = float(m["n"])
    seconds = n if (m["unit"] or "").lower() == "s" else n / 1000
    if seconds > 600:
        raise ValueError(f"bad duration {text!r}: at most 600 s")
    return seconds


def parse_loss(text: str | float) -> float:
    """'10', '10%', 2.5 -> a probability 0..1. ValueError otherwise."""
    t = str(text).strip().removesuffix("%").strip()
    try:
        p = float(t)
    except ValueError:
        raise ValueError(f"bad loss {text!r}: expected a percentage 0..100, e.g. 10 or 2.5%") from None
    if not 0 <= p <= 100:
        raise ValueError(f"bad loss {text!r}: expected a percentage 0..100")
    return p / 100


def check_option(kind: str, value: Any) -> str | None:
    """Validate a throttle option (config kinds 'preset', 'rate', 'ms'); the value normalised as
    text, None when unset. ValueError (one line) when bad: the config layer adds the key."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {value!r}")
    text = str(value).strip()
    if kind == "preset":
        return preset(text).name
    if kind == "rate":
        parse_rate(text)
    elif kind == "ms":
        parse_ms(text)
    return text


def format_rate(rate: float | None) -> str:
    """Bytes per second -> '780 kbit/s', '1.6 Mbit/s'; None -> 'unlimited'."""
    if rate is None:
        return "unlimited"
    bits = rate * 8
    for div, unit in ((1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")):
        if bits >= div:
            return f"{bits / div:.3g} {unit}"
    return f"{bits:.3g} bit/s"


def format_ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


def format_throughput(rate: float) -> str:
    """Bytes per second as the header shows live throughput: '12.3 kB/s'."""
    for div, unit in ((1e6, "MB/s"), (1e3, "kB/s")):
        if rate >= div:
            return f"{rate / div:.1f} {unit}"
    return f"{rate:.0f} B/s"


def custom_profile(down: str | None, up: str | None, latency: str | None, *, jitter: str | None = None,
                   loss: str | float | None = None, base: Profile | None = None) -> Profile:
    """A profile from user values (each may be None: keep `base`'s, or unlimited / 0)."""
    p = base or Profile("custom")
    changes: dict[str, Any] = {}
    if down is not None:
        changes["down"] = parse_rate(down)
    if up is not None:
        changes["up"] = parse_rate(up)
    if latency is not None:
        changes["latency"] = parse_ms(latency)
    if jitter is not None:
        changes["jitter"] = parse_ms(jitter)
    if loss is not None:
        changes["loss"] = parse_loss(loss)
    if base is not None and any(k in changes for k in ("down", "up", "latency")):
        changes["name"] = f"{base.name}*"  # a preset with values changed: say so
        changes["source"] = ""
    return replace(p, **changes)


def profile_from_options(opts: Options) -> Profile | None:
    """The profile the throttle options describe, None when none is set. ValueError when bad."""
    base = preset(opts.throttle) if opts.throttle else None
    values = (opts.throttle_down, opts.throttle_up, opts.throttle_latency, opts.throttle_jitter)
    if base is None and all(v is None for v in values) and not opts.throttle_loss:
        return None
    return custom_profile(*values[:3], jitter=values[3], loss=opts.throttle_loss or None, base=base)


# --------------------------------------------------------------------------- the shaping machinery


def _buffered(transport: Any) -> int:
    """Bytes a transport holds unsent; 0 for one that does not say (an in-memory stream: replays)."""
    try:
        return transport.get_write_buffer_size()
    except (NotImplementedError, AttributeError):
        return 0


class Clock(Protocol):
    """What the shaper needs of an event loop (asyncio's, or a fake one in tests)."""

    def time(self) -> float: ...
    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Any: ...


class Link:
    """One direction's shared bandwidth: a token bucket with no stored burst. Each reservation of
    n bytes occupies the link for n/rate seconds after the previous one (or after now, if the link
    was idle); the bytes may go out when their slot ends. Whoever reserves first goes first.

    A busy link whose timer fired late (a loaded event loop) books its next slot right after the
    previous one, not after now: up to `SLACK` seconds of lateness are made up, so the average rate
    holds under load; a link idle for longer earns no credit."""

    SLACK = 0.1

    __slots__ = ("rate", "free_at", "bytes")

    def __init__(self, rate: float | None = None) -> None:
        self.rate = rate
        self.free_at = 0.0
        self.bytes = 0  # every byte that went through this direction's shapers (the accounting)

    def reserve(self, n: int, now: float) -> float:
        """When `n` bytes reserved now have gone through the link."""
        rate = self.rate
        if rate is None:
            return now
        free_at = self.free_at
        start = now if now - free_at > self.SLACK else free_at
        self.free_at = start + n / rate
        return self.free_at

    def quantum(self) -> int:
        rate = self.rate
        if rate is None:
            return MAX_QUANTUM
        return max(MIN_QUANTUM, min(MAX_QUANTUM, int(rate * QUANTUM_SECONDS)))


class Meter:
    """Bytes per second over the last ~2 s, in fixed time buckets (bounded memory)."""

    __slots__ = ("buckets", "width")

    def __init__(self, width: float = 0.25, count: int = 8) -> None:
        self.width = width
        self.buckets: deque[list[float]] = deque(maxlen=count)  # [bucket start, bytes]

    def add(self, n: int, now: float) -> None:
        start = now - now % self.width
        b = self.buckets
        if b and b[-1][0] == start:
            b[-1][1] += n
        else:
            b.append([start, n])

    def rate(self, now: float) -> float:
        span = self.width * (self.buckets.maxlen or 1)
        since = now - span
        total = sum(n for start, n in self.buckets if start >= since)
        return total / span


class Shaper:
    """The write path of one throttled connection side. Installed over `endpoint.write` and
    `endpoint.close` by `Throttle.attach`; removed when idle and no longer wanted."""

    __slots__ = ("throttle", "endpoint", "direction", "link", "meter", "queue", "backlog", "pending",
                 "timer", "paused_producer", "armed", "unwanted", "close_after", "waiters", "__weakref__")

    def __init__(self, throttle: Throttle, endpoint: Any, direction: str) -> None:
        self.throttle = throttle
        self.endpoint = endpoint
        self.direction = direction
        self.link = throttle.links[direction]
        self.meter = throttle.meters[direction]
        # bytes (or a memoryview of a big write's rest), or a float: hold until that time
        self.queue: deque[bytes | memoryview | float] = deque()
        self.backlog = 0
        self.pending: tuple[bytes | memoryview, float] | None = None  # a quantum with its slot on the link
        self.timer: Any = None
        self.paused_producer = False
        self.armed = False  # the next write starts a message: it waits the latency first
        self.unwanted = False  # the connection no longer carries matching flows: remove when idle
        self.close_after = False
        self.waiters: list[Any] = []  # futures of wait_drained()
        endpoint.write = self.write
        endpoint.close = self.close
        endpoint.shaper = self

    # --- what the connection code calls instead of Endpoint.write / close ---------------------------
    def write(self, data: bytes) -> None:
        ep = self.endpoint
        if not data or ep.closed or ep.transport is None or self.close_after:
            return
        if type(data) is not bytes:
            data = bytes(data)  # held until sent: a caller's buffer must not change under it
        if self.armed:
            self.armed = False
            delay = self.throttle.delay()
            if delay > 0:
                self.queue.append(self.throttle.clock.time() + delay)
        self.queue.append(data)
        self.backlog += len(data)
        if self.backlog > HIGH_WATER:
            # Back-pressure: stop whoever feeds this side, as a full transport would. Called on every
            # write while over, since the transport's own resume_writing may have undone it.
            self.paused_producer = True
            ep.pause_writing()
        if self.timer is None:
            self._pump()

    def close(self) -> None:
        """Close once what is queued has gone out (a response framed by the connection's end
        must arrive whole)."""
        if not self.queue and self.pending is None:
            self.detach()
            self.endpoint.close()
        else:
            self.close_after = True

    async def wait_drained(self) -> None:
        """Until what is queued now has gone out (or the connection is gone): the flow driver ends
        a throttled exchange when its client has the response, not when the origin sent it."""
        if not self.queue and self.pending is None:
            return
        import asyncio

        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        await fut

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    # --- releasing bytes -----------------------------------------------------------------------
    def _pump(self) -> None:
        self.timer = None
        ep = self.endpoint
        tr = ep.transport
        if ep.closed or tr is None or tr.is_closing():
            self._drop()
            return
        clock = self.throttle.clock
        now = clock.time()
        link = self.link
        q = self.queue
        while True:
            p = self.pending
            if p is not None:
                if p[1] > now:
                    self.timer = clock.call_at(p[1], self._pump)
                    return
                self.pending = None
                self._send(p[0], now)
                continue
            if not q:
                break
            head = q[0]
            if type(head) is float:
                if head > now:
                    self.timer = clock.call_at(head, self._pump)
                    return
                q.popleft()
                continue
            if _buffered(tr) > TRANSPORT_HIGH:
                # the peer is not reading: the transport paused our producer; wait for it to drain
                self.timer = clock.call_at(now + TRANSPORT_RETRY, self._pump)
                return
            size = link.quantum()
            if len(head) > size:  # type: ignore[arg-type]
                # slices of a memoryview: a big write is cut into quanta without copying its rest
                mv = head if type(head) is memoryview else memoryview(head)  # type: ignore[arg-type]
                chunk, q[0] = mv[:size], mv[size:]
            else:
                chunk = q.popleft()  # type: ignore[assignment]
            self.backlog -= len(chunk)
            link.bytes += len(chunk)
            self.pending = (chunk, link.reserve(len(chunk), now))  # type: ignore[arg-type]
        # nothing left to send
        self._wake()
        if self.paused_producer and self.backlog <= LOW_WATER:
            self._resume_producer()
        if self.close_after:
            self.detach()
            self.endpoint.close()
        elif self.unwanted or self.throttle.profile is None:
            self.detach()

    def _send(self, chunk: bytes | memoryview, now: float) -> None:
        ep = self.endpoint
        ep.transport.write(chunk)
        self.meter.add(len(chunk), now)
        if self.paused_producer and self.backlog <= LOW_WATER:
            self._resume_producer()

    def _resume_producer(self) -> None:
        tr = self.endpoint.transport
        if tr is not None and _buffered(tr) > TRANSPORT_HIGH:
            return  # the transport paused the producer too: its resume_writing will undo that
        self.paused_producer = False
        self.endpoint.resume_writing()

    def _drop(self) -> None:
        """The connection is gone: what is queued can never be sent."""
        self.queue.clear()
        self.backlog = 0
        self.pending = None
        self.detach()

    def flush(self) -> None:
        """Throttling was turned off: send what is queued at once and step aside."""
        ep = self.endpoint
        tr = ep.transport
        chunks = [] if self.pending is None else [self.pending[0]]
        chunks += [c for c in self.queue if type(c) is not float]
        self.queue.clear()
        self.pending = None
        self.backlog = 0
        close_after = self.close_after
        paused = self.paused_producer
        self.detach()
        if chunks and tr is not None and not ep.closed and not tr.is_closing():
            tr.write(b"".join(chunks))  # type: ignore[arg-type]
        if close_after:
            ep.close()
        elif paused:
            ep.resume_writing()

    def detach(self) -> None:
        """Give the connection its plain write path back (what waits for the queue goes on)."""
        self._wake()
        if self.timer is not None:
            cancel = getattr(self.timer, "cancel", None)
            if cancel is not None:
                cancel()
            self.timer = None
        ep = self.endpoint
        if ep.shaper is self:
            ep.shaper = None
            ep.__dict__.pop("write", None)
            ep.__dict__.pop("close", None)
        self.throttle.shapers.discard(self)


class Throttle:
    """The engine's throttling state: the profile (None: off), the scope filter, the two shared
    links and the accounting. Commands and the UI change it at run time."""

    def __init__(self, clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self.profile: Profile | None = None
        self.filter: Filter | None = None
        self.filter_expr = ""
        self.links = {DOWN: Link(), UP: Link()}
        self.meters = {DOWN: Meter(), UP: Meter()}
        # weak: a connection that closes while idle takes its shaper with it
        self.shapers: weakref.WeakSet[Shaper] = weakref.WeakSet()
        self._clock = clock
        self.rng = rng or random.Random()
        self.flows_matched = 0
        self.flows_reset = 0

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            import asyncio

            self._clock = asyncio.get_running_loop()
        return self._clock

    # --- configuration ---------------------------------------------------------------------------
    def configure(self, opts: Options) -> None:
        """From the options at start-up. ValueError (one line) when a value is bad."""
        self.set_filter(opts.throttle_filter or "")
        self.set(profile_from_options(opts))

    def set(self, profile: Profile | None) -> None:
        """Switch to `profile` (None: off). Connections being shaped follow at once; turning it
        off sends what they hold straight away."""
        self.profile = profile
        self.links[DOWN].rate = profile.down if profile else None
        self.links[UP].rate = profile.up if profile else None
        if profile is None:
            for s in list(self.shapers):
                s.flush()

    def set_filter(self, expr: str) -> None:
        """Throttle only flows matching `expr` (the filter language; '' = all). ValueError if bad."""
        expr = expr.strip()
        if not expr:
            self.filter, self.filter_expr = None, ""
            return
        from proxycore.flows.filter import FilterError, parse

        try:
            self.filter = parse(expr)
        except FilterError as exc:
            raise ValueError(f"throttle filter {expr!r}: {exc}") from None
        self.filter_expr = expr

    def describe(self) -> str:
        """`throttle: 3g ↓780 kbit/s ↑330 kbit/s 100 ms for '~d api.example.com'` (or `throttle: off`)."""
        p = self.profile
        if p is None:
            return "throttle: off"
        scope = f" for {self.filter_expr!r}" if self.filter_expr else ""
        return f"throttle: {p.describe()}{scope}"

    def status(self) -> str:
        """describe() and, when on, the live throughput of the traffic it shapes."""
        if self.profile is None:
            return self.describe()
        now = self.clock.time()
        return (f"{self.describe()}; now ↓{format_throughput(self.meters[DOWN].rate(now))} "
                f"↑{format_throughput(self.meters[UP].rate(now))}")

    def throughput(self) -> tuple[float, float]:
        """(down, up) bytes per second of matching traffic over the last ~2 s."""
        now = self.clock.time()
        return self.meters[DOWN].rate(now), self.meters[UP].rate(now)

    # --- what the flow driver calls (only while a profile is set) --------------------------------
    def matches(self, flow: Flow) -> bool:
        """Whether `flow` is throttled (called once per request while a profile is set)."""
        f = self.filter
        if f is None or f(flow):
            self.flows_matched += 1
            return True
        return False

    def lose(self) -> bool:
        """Roll the dice for packet-loss emulation: True = reset this request's connection."""
        p = self.profile
        if p is None or not p.loss or self.rng.random() >= p.loss:
            return False
        self.flows_reset += 1
        return True

    def delay(self) -> float:
        """Seconds before the first byte of a message. The profile's latency is what one request's
        round trip gains (as DevTools and Charles count it: once per request), so each direction
        waits half of it, plus up to half the jitter."""
        p = self.profile
        if p is None:
            return 0.0
        d = p.latency / 2
        if p.jitter:
            d += self.rng.uniform(0.0, p.jitter / 2)
        return d

    async def pace(self, direction: str, data: bytes, write: Callable[[bytes], Any],
                   drain: Callable[[], Any], turn: bool) -> None:
        """Write `data` through a stream at the link's pace: the shaping of a relay that owns its
        writes as coroutines (a raw TCP flow's), where `attach` has no `Endpoint` to stand in for.
        Each quantum is booked on the same shared `Link` as the shaped connections and written when
        its slot ends; `turn` (the other side spoke last: a request or an answer begins) waits
        half the latency first, as a request or a response does. Turning throttling off mid-way
        sends the rest at once."""
        import asyncio

        clock = self.clock
        if turn:
            d = self.delay()
            if d > 0:
                await asyncio.sleep(d)
        link, meter = self.links[direction], self.meters[direction]
        view = memoryview(data)
        off, n = 0, len(data)
        while off < n:
            if self.profile is None:
                write(bytes(view[off:]))
                await drain()
                return
            chunk = view[off:off + link.quantum()]
            link.bytes += len(chunk)
            at = link.reserve(len(chunk), clock.time())
            wait = at - clock.time()
            if wait > 0:
                await asyncio.sleep(wait)
            write(bytes(chunk))
            meter.add(len(chunk), clock.time())
            off += len(chunk)
            await drain()

    def attach(self, client: Any, upstream: Any) -> None:
        """A matching flow is about to be sent on `upstream` and answered on `client`: shape both
        sides; the next write on each (the request head, the response head) waits the latency."""
        for ep, direction in ((client, DOWN), (upstream, UP)):
            s = ep.shaper
            if s is None:
                s = Shaper(self, ep, direction)
                self.shapers.add(s)
            s.unwanted = False
            s.armed = True

    def release(self, client: Any, upstream: Any) -> None:
        """A flow that does not match uses these connections: stop shaping them once idle."""
        for ep in (client, upstream):
            s = ep.shaper
            if s is not None:
                s.unwanted = True
                s.armed = False
                if s.timer is None and not s.queue and s.pending is None:
                    s.detach()
