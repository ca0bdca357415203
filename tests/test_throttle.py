"""Throttling, deterministically: the shaping logic on a fake clock (rates, the shared link, latency
before the first byte, jitter bounds, loss, back-pressure, closing, turning off), and the parsing of
presets, rates and durations with their one-line errors."""

from __future__ import annotations

import heapq
import itertools
import random

import pytest

from proxycore import throttle as tm
from proxycore.config import ConfigError, load_options
from proxycore.proxy.endpoint import Endpoint
from proxycore.throttle import (
    DOWN,
    HIGH_WATER,
    UP,
    Profile,
    Throttle,
    custom_profile,
    parse_loss,
    parse_ms,
    parse_rate,
    preset,
    profile_from_options,
)

# --------------------------------------------------------------------------- a fake loop and peers


class FakeClock:
    """time() and call_at() as asyncio's loop has them; time moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, FakeHandle]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, cb, *args) -> FakeHandle:
        h = FakeHandle(cb, args)
        heapq.heappush(self._timers, (when, next(self._seq), h))
        return h

    def advance_to(self, t: float) -> None:
        """Run every timer due up to `t`, in time order, moving the clock to each."""
        while self._timers and self._timers[0][0] <= t + 1e-12:
            when, _, h = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not h.cancelled:
                h.cb(*h.args)
        self.now = max(self.now, t)

    def run(self, limit: float = 3600.0) -> None:
        """Run until no timer is left (bounded, so a bug cannot loop forever)."""
        while self._timers and self._timers[0][0] <= limit:
            self.advance_to(self._timers[0][0])


class FakeHandle:
    def __init__(self, cb, args) -> None:
        self.cb, self.args, self.cancelled = cb, args, False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTransport:
    """Records what was written and when; its buffer drains at once unless told otherwise."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.writes: list[tuple[float, bytes]] = []
        self.buffered = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append((self.clock.now, bytes(data)))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    @property
    def data(self) -> bytes:
        return b"".join(d for _, d in self.writes)

    def received_by(self, t: float) -> int:
        return sum(len(d) for when, d in self.writes if when <= t + 1e-9)

    def first_write_at(self) -> float:
        return self.writes[0][0]

    def last_write_at(self) -> float:
        return self.writes[-1][0]


class Peer(Endpoint):
    """A real Endpoint (the class whose write the shaper replaces) over a fake transport."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.transport = FakeTransport(clock)  # type: ignore[assignment]
        self.pauses = 0
        self.resumes = 0
        self.producer_paused = False

    def pause_writing(self) -> None:
        self.pauses += 1
        self.producer_paused = True

    def resume_writing(self) -> None:
        self.resumes += 1
        self.producer_paused = False


def setup(profile: Profile, seed: int = 1) -> tuple[FakeClock, Throttle, Peer, Peer]:
    clock = FakeClock()
    th = Throttle(clock, random.Random(seed))
    th.set(profile)
    return clock, th, Peer(clock), Peer(clock)


MBIT = 1_000_000 / 8  # bytes per second


# --------------------------------------------------------------------------- rates and the shared link


def test_download_rate_is_the_profile_rate():
    clock, th, client, up = setup(Profile("t", down=MBIT))
    th.attach(client, up)
    body = bytes(range(256)) * 500  # 128000 bytes: 1.024 s at 1 Mbit/s
    client.write(body)
    assert client.transport.writes == []  # nothing leaves before its slot on the link
    clock.advance_to(0.5)
    half = client.transport.received_by(0.5)
    assert abs(half - MBIT * 0.5) <= th.links[DOWN].quantum()
    clock.run()
    assert client.transport.data == body
    assert client.transport.last_write_at() == pytest.approx(len(body) / MBIT)
    assert th.links[DOWN].bytes == len(body)
    assert th.links[UP].bytes == 0 and up.transport.writes == []


def test_a_big_write_is_cut_into_quanta_intact():
    clock, th, client, up = setup(Profile("t", down=MBIT * 80))
    th.attach(client, up)
    body = bytes(range(256)) * 40000  # 10 MB in one write (a buffered response)
    client.write(bytearray(body))  # a mutable buffer is copied once, then sliced without copies
    clock.run()
    assert client.transport.data == body
    assert len(client.transport.writes) == -(-len(body) // th.links[DOWN].quantum())


def test_upload_uses_the_up_rate():
    clock, th, client, up = setup(Profile("t", down=None, up=MBIT / 2))
    th.attach(client, up)
    up.write(b"x" * 62500)
    clock.run()
    assert up.transport.last_write_at() == pytest.approx(1.0)
    assert th.links[UP].bytes == 62500


def test_the_link_is_shared_by_every_matching_connection():
    clock, th, c1, u1 = setup(Profile("t", down=MBIT))
    c2, u2 = Peer(clock), Peer(clock)
    th.attach(c1, u1)
    th.attach(c2, u2)
    c1.write(b"a" * 62500)
    c2.write(b"b" * 62500)
    clock.run()
    # together they take the time one connection alone would need for both bodies: one link
    end = max(c1.transport.last_write_at(), c2.transport.last_write_at())
    assert end == pytest.approx(125000 / MBIT)
    # and they interleave: each finishes near the end, neither at the half-way point
    assert min(c1.transport.last_write_at(), c2.transport.last_write_at()) > 0.9
    assert th.links[DOWN].bytes == 125000


def test_an_idle_link_stores_no_burst():
    clock, th, client, up = setup(Profile("t", down=MBIT))
    th.attach(client, up)
    clock.advance_to(10.0)  # idle for ten seconds
    client.write(b"z" * 12500)
    clock.run()
    assert client.transport.last_write_at() == pytest.approx(10.0 + 12500 / MBIT)


class LateClock(FakeClock):
    """Every timer fires 30 ms late, as on a loaded event loop."""

    def call_at(self, when: float, cb, *args) -> FakeHandle:
        return super().call_at(when + 0.03, cb, *args)


def test_late_timers_do_not_lower_the_average_rate():
    clock = LateClock()
    th = Throttle(clock, random.Random(1))
    th.set(Profile("t", down=MBIT))
    client, up = Peer(clock), Peer(clock)
    th.attach(client, up)
    client.write(b"l" * 250000)  # 2 s at 1 Mbit/s
    clock.run()
    assert client.transport.data == b"l" * 250000
    assert 2.0 - 1e-9 <= client.transport.last_write_at() <= 2.0 + 0.03 + 1e-9  # on time, give or take one lateness


def test_rate_change_applies_to_bytes_still_queued():
    clock, th, client, up = setup(Profile("t", down=MBIT))
    th.attach(client, up)
    client.write(b"q" * 125000)
    clock.advance_to(0.5)
    th.set(Profile("t2", down=MBIT * 4))
    clock.run()
    assert client.transport.data == b"q" * 125000
    assert client.transport.last_write_at() < 0.7  # the rest went four times as fast


# --------------------------------------------------------------------------- latency and jitter


def test_latency_before_the_first_byte_of_each_message():
    # 200 ms per round trip: 100 ms before the request's first byte, 100 ms before the response's
    clock, th, client, up = setup(Profile("t", latency=0.2))
    th.attach(client, up)
    up.write(b"GET / HTTP/1.1\r\n\r\n")
    clock.advance_to(0.0999)
    assert up.transport.writes == []
    clock.advance_to(0.1)
    assert up.transport.first_write_at() == pytest.approx(0.1)
    # the response's first byte waits its own latency, counted from when it was written
    clock.advance_to(0.3)
    client.write(b"HTTP/1.1 200 OK\r\n")
    client.write(b"body")  # the rest of the same message does not wait again
    clock.advance_to(0.3999)
    assert client.transport.writes == []
    clock.advance_to(0.4)
    assert client.transport.data == b"HTTP/1.1 200 OK\r\nbody"
    # the next request on the same connections waits again
    th.attach(client, up)
    up.write(b"GET /2 HTTP/1.1\r\n\r\n")
    clock.advance_to(0.45)
    assert len(up.transport.writes) == 1
    clock.advance_to(0.5)
    assert len(up.transport.writes) == 2


def test_latency_then_rate():
    clock, th, client, up = setup(Profile("t", down=MBIT, latency=0.4))
    th.attach(client, up)
    client.write(b"r" * 125000)
    clock.run()
    assert client.transport.first_write_at() > 0.2
    assert client.transport.last_write_at() == pytest.approx(0.2 + 1.0)


def test_jitter_stays_within_its_bounds():
    # per direction: half the latency, plus up to half the jitter
    clock, th, client, up = setup(Profile("t", latency=0.1, jitter=0.04), seed=7)
    delays = [th.delay() for _ in range(500)]
    assert all(0.05 <= d <= 0.07 for d in delays)
    assert max(delays) - min(delays) > 0.015  # it does vary
    th.set(Profile("t", latency=0.1))
    assert {th.delay() for _ in range(20)} == {0.05}


# --------------------------------------------------------------------------- loss


def test_loss_resets_the_given_share_of_requests():
    clock, th, _, _ = setup(Profile("t", loss=0.1), seed=3)
    lost = sum(th.lose() for _ in range(10000))
    assert 800 <= lost <= 1200
    assert th.flows_reset == lost
    th.set(Profile("t", loss=0.0))
    assert not any(th.lose() for _ in range(1000))
    th.set(Profile("t", loss=1.0))
    assert all(th.lose() for _ in range(100))


# --------------------------------------------------------------------------- flow control


def test_backpressure_pauses_the_producer_and_bounds_the_queue():
    clock, th, client, up = setup(Profile("t", down=MBIT))
    th.attach(client, up)
    total = 1 << 20
    sent = 0
    biggest = 0
    piece = b"p" * 4096
    # a producer that writes while not paused (the origin's reading), as the connections do
    while sent < total:
        while not client.producer_paused and sent < total:
            client.write(piece)
            sent += len(piece)
            biggest = max(biggest, client.shaper.backlog if client.shaper else 0)
        if sent < total:
            assert clock._timers, "paused with nothing scheduled to resume"
            clock.advance_to(clock._timers[0][0])
    clock.run()
    assert client.pauses >= 1 and client.resumes >= 1
    assert biggest <= HIGH_WATER + len(piece)
    assert client.transport.data == b"p" * total


def test_a_full_transport_holds_the_shaper_back():
    clock, th, client, up = setup(Profile("t", down=MBIT * 8))
    th.attach(client, up)
    client.transport.buffered = 10 * tm.TRANSPORT_HIGH  # the client is not reading
    client.write(b"w" * 50000)
    clock.advance_to(1.0)
    assert client.transport.writes == []
    client.transport.buffered = 0
    clock.run()
    assert client.transport.data == b"w" * 50000


async def test_wait_drained_ends_when_the_queue_is_sent_or_dropped():
    import asyncio

    clock, th, client, up = setup(Profile("t", down=MBIT))
    th.attach(client, up)
    await client.shaper.wait_drained()  # nothing queued: at once
    client.write(b"w" * 25000)
    waiter = asyncio.ensure_future(client.shaper.wait_drained())
    await asyncio.sleep(0)
    clock.advance_to(0.1)
    await asyncio.sleep(0)
    assert not waiter.done()
    clock.run()
    await asyncio.sleep(0)
    assert waiter.done() and client.transport.data == b"w" * 25000
    client.write(b"x" * 25000)
    waiter = asyncio.ensure_future(client.shaper.wait_drained())
    await asyncio.sleep(0)
    client.transport.closed = True  # the client left: nothing will drain, the waiter must not hang
    clock.run()
    await asyncio.sleep(0)
    assert waiter.done()


def test_close_waits_for_queued_bytes():
    clock, th, client, up = setup(Profile("t", down=MBIT))
    th.attach(client, up)
    client.write(b"c" * 25000)
    client.close()
    assert not client.transport.closed
    clock.run()
    assert client.transport.data == b"c" * 25000
    assert client.transport.closed
    assert client.shaper is None and "write" not in client.__dict__


def test_turning_off_sends_what_is_queued_and_restores_the_plain_write():
    clock, th, client, up = setup(Profile("t", down=MBIT, latency=1.0))
    th.attach(client, up)
    client.write(b"o" * 100000)
    th.set(None)
    assert client.transport.data == b"o" * 100000
    assert client.shaper is None and "write" not in client.__dict__ and "close" not in client.__dict__
    assert not th.shapers
    client.write(b"!")  # the class's write again: straight to the transport
    assert client.transport.data.endswith(b"!")


def test_release_detaches_idle_connections_of_unmatched_flows():
    clock, th, client, up = setup(Profile("t", down=MBIT))
    th.attach(client, up)
    client.write(b"m" * 12500)
    th.release(client, up)
    assert up.shaper is None  # idle: plain again at once
    assert client.shaper is not None  # still sending the matching flow's bytes
    clock.run()
    assert client.shaper is None
    assert client.transport.data == b"m" * 12500


def test_a_closed_connection_drops_its_queue():
    clock, th, client, up = setup(Profile("t", down=MBIT))
    th.attach(client, up)
    client.write(b"d" * 50000)
    client.transport.closed = True
    clock.run()
    assert client.shaper is None and list(th.shapers) == [up.shaper]


def test_live_throughput_meter():
    clock, th, client, up = setup(Profile("t", down=MBIT))
    th.attach(client, up)
    client.write(b"t" * 500000)
    clock.advance_to(3.0)
    down, upr = th.throughput()
    assert down == pytest.approx(MBIT, rel=0.15)
    assert upr == 0
    clock.run()
    clock.advance_to(clock.now + 5)
    assert th.throughput() == (0, 0)


def test_status_lines():
    clock, th, client, up = setup(Profile("t", down=MBIT))
    assert th.status().startswith("throttle: t ↓1 Mbit/s ↑unlimited")
    th.set_filter("~d api.example.com")
    assert "for '~d api.example.com'" in th.status()
    th.set(None)
    assert th.status() == "throttle: off"
    with pytest.raises(ValueError, match="throttle filter"):
        th.set_filter("~d (")


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text,bps", [
    ("1mbit", 125000.0), ("512kbit", 64000.0), ("64000bit", 8000.0), ("1.5 Mbit/s", 187500.0),
    ("780kbps", 97500.0), ("2Mbps", 250000.0), ("1gbit", 125_000_000.0), (".5mbit", 62500.0),
])
def test_parse_rate(text, bps):
    assert parse_rate(text) == bps


@pytest.mark.parametrize("text", ["0", "off", "none", "", "unlimited"])
def test_parse_rate_unlimited(text):
    assert parse_rate(text) is None


@pytest.mark.parametrize("text,msg", [
    ("100", "give a unit"), ("1MB", "bits per second"), ("1kB/s", "bits per second"),
    ("fast", "expected a number and a unit"), ("3 furlongs", "unknown unit .furlongs."),
    ("10xbit", "unknown unit"), ("-1mbit", "expected a number"), ("0kbit", "above 0"),
])
def test_parse_rate_errors_are_one_line(text, msg):
    with pytest.raises(ValueError, match=msg) as e:
        parse_rate(text)
    assert "\n" not in str(e.value)


def test_parse_ms_and_loss():
    assert parse_ms("100ms") == pytest.approx(0.1)
    assert parse_ms("100") == pytest.approx(0.1)
    assert parse_ms("1.5s") == pytest.approx(1.5)
    assert parse_ms("0") == 0
    for bad in ("-5ms", "abc", "10 min", "9999s"):
        with pytest.raises(ValueError, match="bad duration"):
            parse_ms(bad)
    assert parse_loss("10") == pytest.approx(0.1)
    assert parse_loss("2.5%") == pytest.approx(0.025)
    for bad in ("-1", "101", "lots"):
        with pytest.raises(ValueError, match="bad loss"):
            parse_loss(bad)


def test_presets_and_aliases():
    assert preset("3G").down == 780_000 / 8 and preset("3g").latency == pytest.approx(0.1)
    assert preset("Fast 3G") is preset("3g-fast")
    assert preset("very_bad").loss == pytest.approx(0.1)
    assert preset("Wi-Fi").name == "wifi"
    for p in tm.PRESETS.values():
        assert p.source and p.down and p.up
    with pytest.raises(ValueError, match="unknown throttle preset '5g' \\(presets: gprs, 2g"):
        preset("5g")


def test_custom_profile_over_a_preset():
    p = custom_profile("2mbit", None, None, base=preset("3g"))
    assert p.name == "3g*" and p.down == 250000 and p.up == preset("3g").up
    c = custom_profile("1mbit", "512kbit", "100ms")
    assert (c.name, c.down, c.up, c.latency) == ("custom", 125000, 64000, pytest.approx(0.1))
    assert c.describe() == "custom ↓1 Mbit/s ↑512 kbit/s 100 ms"


def test_options_flags_env_and_yaml(tmp_path):
    o = load_options(None, {}, {"throttle": "3g", "throttle_down": "1mbit", "throttle_latency": "50ms",
                                "throttle_loss": 5, "throttle_jitter": "10ms", "throttle_filter": "~d x.com"})
    p = profile_from_options(o)
    assert p.name == "3g*" and p.down == 125000 and p.up == 41250
    assert p.latency == pytest.approx(0.05) and p.jitter == pytest.approx(0.01) and p.loss == pytest.approx(0.05)
    assert profile_from_options(load_options(None, {}, {})) is None
    cfg = tmp_path / "c.yaml"
    cfg.write_text("throttle:\n  preset: edge\n  filter: '~d api.example.com'\n")
    o = load_options(cfg, {}, {})
    assert o.throttle == "edge" and o.throttle_filter == "~d api.example.com"
    o = load_options(None, {"OMNIPROXY_THROTTLE_UP": "256kbit"}, {})
    assert profile_from_options(o).up == 32000


@pytest.mark.parametrize("field,value,msg", [
    ("throttle", "5g", "--throttle: unknown throttle preset '5g'"),
    ("throttle_down", "100", "--throttle-down: bad rate '100': give a unit"),
    ("throttle_up", "1MB", "--throttle-up: bad rate '1MB': rates are in bits"),
    ("throttle_latency", "soon", "--throttle-latency: bad duration 'soon'"),
    ("throttle_jitter", "-3", "--throttle-jitter: bad duration"),
    ("throttle_loss", "150", "--throttle-loss: expected a number 0..100"),
])
def test_bad_option_values_fail_at_load_in_one_line(field, value, msg):
    with pytest.raises(ConfigError) as e:
        load_options(None, {}, {field: value})
    assert str(e.value).startswith(msg) and "\n" not in str(e.value)


def test_bad_yaml_value_names_the_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("throttle:\n  down: fast\n")
    with pytest.raises(ConfigError, match="throttle.down.*bad rate 'fast'"):
        load_options(cfg, {}, {})


def test_off_costs_nothing_on_the_write_path():
    """No shaper, no instance attributes: the plain class write, untouched."""
    clock = FakeClock()
    th = Throttle(clock)
    th.configure(load_options(None, {}, {}))
    assert th.profile is None
    peer = Peer(clock)
    assert "write" not in peer.__dict__ and peer.shaper is None
    assert UP in th.links and th.links[UP].rate is None
