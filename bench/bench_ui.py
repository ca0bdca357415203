#!/usr/bin/env python3
"""UI benchmark: 100 000 flows through the running terminal UI, key latency under load, UI vs --no-ui.

    python3 bench/bench_ui.py [--flows 100000] [--rate 2000] [--quick] [--json FILE]

The UI runs as users run it: the real `omniproxy-tui` CLI (uvloop, Textual's Linux driver) in a
pseudo-terminal of 160x48, not `App.run_test()`: Textual's headless driver skips turning frames
into escape sequences and writing them, so it would time less than a user waits for. This script is
the terminal: it reads the pty, keeps a minimal screen mirror (Textual only moves the cursor and
writes styled runs) and times each key from the byte written to the pty until the screen shows the
key's effect (cursor row moved, sort/filter/follow shown in the status line, filter text echoed).

1. 100 000 flows (4 kinds of request: 200/404, two sizes) at --rate flows/s from `hey` (rate-limited)
   through the UI's proxy to a local nginx, while keys are pressed: j/k, o (sort), v (reverse),
   f + typing a filter + enter, t (filter off/on), G (follow). Peak memory (VmHWM) after all
   flows, with --max-flows 50 000 kept; the header's count; flows the app received.
2. Throughput: `hey -c 50` for a fixed time against a small body, through the UI and through
   `omniproxy-tui --no-ui`, both capturing to NDJSON (-o), interleaved rounds, best of each.

nginx and hey come from Debian packages (installed when missing); helpers are bench_proxy.py's.
Everything is on 127.0.0.1 with OS-chosen ports, bounded in time, and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import fcntl
import importlib.util
import json
import os
import random
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load_bench_proxy():  # bench/ is not a package: load the sibling script as a module
    spec = importlib.util.spec_from_file_location("bench_proxy", HERE / "bench_proxy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bp = _load_bench_proxy()

# --------------------------------------------------------------------------- the terminal

# Textual writes: CSI sequences (cursor moves, SGR, modes), OSC strings, CR/LF and text runs.
_TOKEN = re.compile(r"\x1b\[([0-9;:?<>=$ ]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[^\[\]]|\r|\n|[^\x1b\r\n]+")


class Mirror:
    """A minimal terminal screen: characters and background colour per cell.

    Enough for Textual's full-screen output (absolute cursor moves, styled text runs, no scrolling
    regions); every character is taken as one cell wide, which holds for what this run shows."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.chars = [[" "] * cols for _ in range(rows)]
        self.bgs: list[list[object]] = [[None] * cols for _ in range(rows)]
        self.x = self.y = 0
        self.bg: object = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._hold = ""
        self._sgr: dict[str, tuple[bool, object]] = {}
        self.bytes = 0

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        s = self._hold + self._decoder.decode(data)
        self._hold = ""
        pos, n = 0, len(s)
        match = _TOKEN.match
        while pos < n:
            m = match(s, pos)
            if m is None:  # an escape sequence cut by the read: keep it for the next chunk
                if n - pos < 128:
                    self._hold = s[pos:]
                    return
                pos += 1
                continue
            pos = m.end()
            final = m.group(2)
            if final is not None:
                self._csi(m.group(1), final)
                continue
            tok = m.group(0)
            if tok[0] == "\x1b":
                continue
            if tok == "\r":
                self.x = 0
            elif tok == "\n":
                self.y = min(self.y + 1, self.rows - 1)
            else:
                x, k = self.x, len(tok)
                if x + k > self.cols:
                    tok = tok[: max(0, self.cols - x)]
                    k = len(tok)
                self.chars[self.y][x:x + k] = tok
                self.bgs[self.y][x:x + k] = [self.bg] * k
                self.x = min(x + k, self.cols - 1) if x + k >= self.cols else x + k

    def _csi(self, params: str, final: str) -> None:
        if final == "m":
            hit = self._sgr.get(params)
            if hit is None:
                hit = self._sgr[params] = _parse_sgr_bg(params)
            reset, bg = hit
            if reset:
                self.bg = None
            if bg is not _KEEP:
                self.bg = bg
        elif final in "Hf":
            parts = params.split(";") if params else []
            row = int(parts[0]) if parts and parts[0] else 1
            col = int(parts[1]) if len(parts) > 1 and parts[1] else 1
            self.y, self.x = min(max(row, 1), self.rows) - 1, min(max(col, 1), self.cols) - 1
        elif final == "J" and params in ("2", "3"):
            for y in range(self.rows):
                self._erase(y, 0)
        elif final == "K":
            self._erase(self.y, self.x)

    def _erase(self, y: int, x0: int) -> None:
        k = self.cols - x0
        self.chars[y][x0:] = [" "] * k
        self.bgs[y][x0:] = [self.bg] * k

    def line(self, y: int) -> str:
        return "".join(self.chars[y])

    def text(self) -> str:
        return "\n".join(self.line(y).rstrip() for y in range(self.rows))


_KEEP = object()


def _parse_sgr_bg(params: str) -> tuple[bool, object]:
    """(resets?, new background or _KEEP) for one SGR parameter string."""
    nums = [int(p) if p.isdigit() else 0 for p in params.replace(":", ";").split(";")] if params else [0]
    reset, bg, i = False, _KEEP, 0
    while i < len(nums):
        p = nums[i]
        if p == 0:
            reset, bg = True, _KEEP
        elif p in (38, 48):
            if i + 1 < len(nums) and nums[i + 1] == 2:
                if p == 48:
                    bg = tuple(nums[i + 2:i + 5])
                i += 4
            elif i + 1 < len(nums) and nums[i + 1] == 5:
                if p == 48:
                    bg = ("256", nums[i + 2] if i + 2 < len(nums) else 0)
                i += 2
        elif p == 49:
            bg = None
        elif 40 <= p <= 47 or 100 <= p <= 107:
            bg = ("16", p)
        i += 1
    return reset, bg


class Tui:
    """`omniproxy-tui` (through --child, see child_main) running in a pseudo-terminal."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int, rows: int) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.fd = master
        self.screen = Mirror(cols, rows)
        self._drain: threading.Thread | None = None
        self._draining = False

    def pump(self, timeout: float) -> float | None:
        """Read what the app wrote (waiting up to `timeout`); returns when the bytes arrived."""
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return None
        t = time.perf_counter()
        try:
            data = os.read(self.fd, 1 << 20)
        except OSError:  # the child exited and the pty closed
            time.sleep(min(timeout, 0.01))
            return None
        self.screen.feed(data)
        return t

    def wait(self, cond: Callable[[Mirror], object], timeout: float) -> float | None:
        """Pump until `cond(screen)` holds; the time the deciding bytes arrived, or None."""
        if cond(self.screen):
            return time.perf_counter()
        deadline = time.perf_counter() + timeout
        while (left := deadline - time.perf_counter()) > 0:
            t = self.pump(left)
            if t is not None and cond(self.screen):
                return t
        return None

    def idle(self, seconds: float) -> None:
        """Keep reading (a terminal that stops reading blocks the app) for `seconds`."""
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            self.pump(left)

    def send(self, data: bytes) -> float:
        os.write(self.fd, data)
        return time.perf_counter()

    def drain_in_background(self, on: bool) -> None:
        """Keep reading from a thread while the main thread blocks (e.g. in bench_proxy.run_hey)."""
        if on:
            self._draining = True
            self._drain = threading.Thread(target=self._drain_loop, daemon=True)
            self._drain.start()
        elif self._drain is not None:
            self._draining = False
            self._drain.join(5)
            self._drain = None

    def _drain_loop(self) -> None:
        while self._draining and self.proc.poll() is None:
            self.pump(0.05)

    def quit(self, keys: bytes = b"q", timeout: float = 30) -> int | None:
        self.send(keys)
        end = time.perf_counter() + timeout
        while self.proc.poll() is None and time.perf_counter() < end:
            self.pump(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.fd)
        return self.proc.returncode


# --------------------------------------------------------------------------- reading the screen

_COUNT = re.compile(r"([\d,]+) flows")
_SHOWN = re.compile(r"\[([\d,]+)/([\d,]+)\]")


def header_flows(s: Mirror) -> int | None:
    m = _COUNT.search(s.line(0))
    return int(m.group(1).replace(",", "")) if m else None


def status_y(s: Mirror) -> int | None:
    for y in range(s.rows - 1, 0, -1):
        line = s.line(y)
        if line.startswith(" [") and " sort " in line:
            return y
    return None


def status_line(s: Mirror) -> str:
    y = status_y(s)
    return s.line(y) if y is not None else ""


def shown_total(s: Mirror) -> tuple[int, int] | None:
    m = _SHOWN.search(status_line(s))
    return (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))) if m else None


def filter_bar(s: Mirror) -> str | None:
    for y in range(s.rows - 1, 0, -1):
        line = s.line(y)
        if line.startswith(" filter: "):
            return line
    return None


def cursor_id(s: Mirror) -> int | None:
    """Id of the highlighted table row: the one row whose background differs from the others."""
    bottom = status_y(s) or s.rows - 2
    rows = []
    for y in range(2, bottom):
        head = "".join(s.chars[y][:8]).strip()
        if head[:1].isdigit():
            rows.append((y, s.bgs[y][0], int(head.split()[0]) if head.split()[0].isdigit() else None))
    if len(rows) < 3:
        return None
    common = Counter(bg for _, bg, _ in rows).most_common(1)[0][0]
    odd = [fid for _, bg, fid in rows if bg != common]
    return odd[0] if len(odd) == 1 else None


def follow_on(s: Mirror) -> bool:
    return status_line(s).rstrip().endswith("follow")


# --------------------------------------------------------------------------- the key script

FILTER_TEXT = "~u small"
_NEXT_SORT = {"time": "method", "method": "url", "url": "size", "size": "duration", "duration": "status",
              "status": "time"}
_SORT = re.compile(r"sort (\w+) ([▲▼])")


def key_script() -> list[tuple[str, bytes]]:
    """One cycle: (label, bytes). It starts following and ends following, sorted by time, no filter."""
    nav = [("k", b"k")] * 4 + [("j", b"j")] * 2
    typing = [(f"type {FILTER_TEXT[:i + 1]}", c.encode()) for i, c in enumerate(FILTER_TEXT)]
    return ([("k (stop follow)", b"k")] + nav
            + [("o", b"o"), ("k", b"k"), ("j", b"j"), ("o", b"o"), ("v", b"v"), ("j", b"j"), ("v", b"v"),
               ("o", b"o"), ("o", b"o"), ("o", b"o"), ("k", b"k"), ("o", b"o")]
            + [("f", b"f")] + typing + [("enter (apply)", b"\r"), ("k", b"k"), ("j", b"j"), ("t", b"t"),
                                        ("t", b"t"), ("f", b"f"), ("ctrl+u", b"\x15"), ("enter (clear)", b"\r")]
            + nav + [("G", b"G")])


_BAR = len(" filter: ")


def bar_input(s: Mirror) -> tuple[str, int | None] | None:
    """(text typed in the filter bar, column of its cursor) while the bar is open."""
    y = next((y for y in range(s.rows - 1, 0, -1) if s.line(y).startswith(" filter: ")), None)
    if y is None:
        return None
    bgs = s.bgs[y][_BAR:]
    common = Counter(bgs).most_common(1)[0][0]
    cursor = next((i for i, bg in enumerate(bgs) if bg != common), None)
    return s.line(y)[_BAR:], cursor


def expectation(label: str, s: Mirror) -> Callable[[Mirror], bool] | None:
    """What the screen must show once the key took effect, read from the screen before the press."""
    st = status_line(s)
    sort = _SORT.search(st)
    if label.startswith("k (stop"):
        before = cursor_id(s)
        return lambda m: not follow_on(m) and cursor_id(m) not in (None, before)
    if label in ("j", "k"):
        before = cursor_id(s)
        return lambda m: cursor_id(m) not in (None, before)
    if label == "G":
        return follow_on
    if label == "o" and sort:
        want = f"sort {_NEXT_SORT[sort.group(1)]} "
        return lambda m: want in status_line(m)
    if label == "v" and sort:
        want = "▼" if sort.group(2) == "▲" else "▲"
        return lambda m: f"sort {sort.group(1)} {want}" in status_line(m)
    if label == "f":
        return lambda m: filter_bar(m) is not None
    if label.startswith("type "):
        typed = label[5:]  # the text in the bar once this key is in: its characters and the cursor after them

        def echoed(m: Mirror) -> bool:
            bar = bar_input(m)
            return bar is not None and bar[0].startswith(typed) and bar[1] == len(typed)

        return echoed
    if label == "enter (apply)":
        return lambda m: filter_bar(m) is None and f"filter {FILTER_TEXT}" in status_line(m)
    if label == "t":
        off = "filter off" in st
        return lambda m: ("filter off" in status_line(m)) != off and "filter" in status_line(m)
    if label == "ctrl+u":
        return lambda m: (bar := bar_input(m)) is not None and bar[1] == 0 and FILTER_TEXT not in bar[0]
    if label == "enter (clear)":
        return lambda m: filter_bar(m) is None and " filter" not in status_line(m)
    return None


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def percentiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    ys = sorted(xs)

    def pct(p: float) -> float:
        return ys[min(len(ys) - 1, max(0, round(p / 100 * len(ys) + 0.5) - 1))]  # nearest rank

    return {"n": len(ys), "p50": pct(50), "p95": pct(95), "p99": pct(99), "max": ys[-1],
            "mean": statistics.fmean(ys)}


# --------------------------------------------------------------------------- load

def parse_hey(out: str) -> dict:
    total = re.search(r"Total:\s+([\d.]+) secs", out)
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s+Get ", out, re.M))
    return {"secs": float(total.group(1)) if total else float("nan"), "codes": codes,
            "responses": sum(codes.values()), "errors": errors}


def start_paced_load(urls: list[str], proxy: str, flows: int, rate: float) -> list[subprocess.Popen]:
    """One `hey` per URL, together `rate` requests/s. hey paces each worker with a ticker that drops
    missed ticks, so many workers with a slow tick each ride out a short stall of the proxy."""
    per = flows // len(urls)
    workers = 25  # 100 connections: a 50 ms tick rides out the proxy's longer pauses (re-sorts)
    qps = rate / len(urls) / workers
    procs = []
    for i, url in enumerate(urls):
        n = per + (flows - per * len(urls) if i == 0 else 0)
        n -= n % workers
        procs.append(subprocess.Popen(["hey", "-n", str(n), "-c", str(workers), "-q", f"{qps:.2f}", "-x", proxy,
                                       "-t", "30", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    return procs


# --------------------------------------------------------------------------- phases

def tui_argv(stats: Path, port: int, capture: Path, max_flows: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", str(stats), "--",
            "--host", "127.0.0.1", "-p", str(port), "-o", str(capture), "--max-flows", str(max_flows)]


def start_tui(env: dict, tmp: Path, name: str, cols: int, rows: int, max_flows: int) -> tuple[Tui, int, Path]:
    port = bp.free_port()
    stats = tmp / f"{name}.stats.json"
    tui = Tui(tui_argv(stats, port, tmp / f"{name}.ndjson", max_flows), env, cols, rows)
    if tui.wait(lambda m: f"127.0.0.1:{port}" in m.line(0) and status_y(m) is not None, 30) is None:
        tui.proc.kill()
        raise RuntimeError(f"the UI did not start; screen:\n{tui.screen.text()}")
    return tui, port, stats


def press_keys(tui: Tui, rng: random.Random, args, t_start: float, go_on: Callable[[], bool],
               limit: int | None = None) -> list[dict]:
    """Run the key script while `go_on()`, then to the end of the cycle (those presses are marked
    uncounted); for each key the time until its effect is on screen."""
    script = key_script()
    presses: list[dict] = []
    step = 0
    while limit is None or step < limit:
        counted = go_on()
        if not counted and step % len(script) == 0:
            break
        label, data = script[step % len(script)]
        cond = expectation(label, tui.screen)
        shown = shown_total(tui.screen)
        sort = _SORT.search(status_line(tui.screen))
        cursor_before = cursor_id(tui.screen)
        t0 = tui.send(data)
        t1 = tui.wait(cond, args.key_timeout) if cond is not None else None
        press = {"key": label, "ms": (t1 - t0) * 1000 if t1 is not None else None, "at_s": round(t0 - t_start, 3),
                 "t0": t0, "view": shown[1] if shown else None, "sort": sort.group(1) if sort else None,
                 "counted": counted, "cursor_before": cursor_before, "cursor_after": cursor_id(tui.screen)}
        if t1 is None:  # later keys read their expectation from the screen, so the run goes on
            press.update(screen=tui.screen.text(), cursor_before=cursor_before, cursor_after=cursor_id(tui.screen),
                         status=status_line(tui.screen))
            tui.idle(1.0)
        presses.append(press)
        step += 1
        tui.idle(rng.uniform(args.gap_min, args.gap_max))
    return presses


# keys whose effect re-sorts or re-filters every stored flow (O(n) in the view), the rest are O(1)-ish
REBUILD_KEYS = ("o", "enter", "t")


def key_class(label: str) -> str:
    return "rebuild" if label.split(" ")[0] in REBUILD_KEYS else "other"


def by_key(presses: list[dict]) -> dict[str, dict[str, float]]:
    keys: dict[str, list[float]] = {}
    for p in presses:
        if p["ms"] is not None and p["counted"]:
            keys.setdefault("type" if p["key"].startswith("type") else p["key"].split(" ")[0], []).append(p["ms"])
    return {k: percentiles(v) for k, v in sorted(keys.items())}


def phase_flows(args, env: dict, tmp: Path, urls: list[str]) -> dict:
    tui, port, stats_path = start_tui(env, tmp, "ui-flows", args.cols, args.rows, args.max_flows)
    try:
        return _flows(args, tui, port, stats_path, urls)
    finally:
        if tui.proc.poll() is None:  # stopped by an error: leave nothing running
            tui.proc.kill()


def _flows(args, tui: Tui, port: int, stats_path: Path, urls: list[str]) -> dict:
    proxy = f"http://127.0.0.1:{port}"
    rng = random.Random(7)
    t_start = time.perf_counter()
    cpu_start = cpu_seconds(tui.proc.pid)
    profiler = None
    if args.py_spy:  # sampling without pausing the app (--nonblocking), so keys are not slowed by it
        profiler = subprocess.Popen(["py-spy", "record", "--nonblocking", "-p", str(tui.proc.pid), "-f", "raw",
                                     "-o", args.py_spy, "-d", str(int(args.py_spy_seconds))],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    loads = start_paced_load(urls, proxy, args.flows, args.rate)
    outputs: dict[int, str] = {}
    readers = [threading.Thread(target=lambda i=i, p=p: outputs.__setitem__(i, p.stdout.read()), daemon=True)
               for i, p in enumerate(loads)]
    for r in readers:
        r.start()
    max_full = args.flows * 2 / args.rate + 120  # bounded even if the proxy crawls
    try:
        tui.idle(args.warmup)
        presses = press_keys(tui, rng, args, t_start,
                             lambda: any(p.poll() is None for p in loads) and time.perf_counter() - t_start < max_full)
        while any(p.poll() is None for p in loads) and time.perf_counter() - t_start < max_full:
            tui.pump(0.05)
    finally:
        for p in loads:
            if p.poll() is None:
                p.kill()
    t_load_end = time.perf_counter()
    ui_cpu = (cpu_seconds(tui.proc.pid) - cpu_start) / (t_load_end - t_start)
    if profiler is not None:
        profiler.wait(args.py_spy_seconds + 30)
    for r in readers:
        r.join(10)
    hey = [parse_hey(outputs.get(i, "")) for i in range(len(loads))]
    sent = sum(h["responses"] for h in hey)
    load_secs = max(h["secs"] for h in hey)
    # the header settles at min(received, max_flows) once the 15 Hz tick applied the last batch
    expect_view = min(sent, args.max_flows)
    tui.wait(lambda m: header_flows(m) == expect_view and (shown_total(m) or (0, 0))[1] == expect_view, 10)
    header = header_flows(tui.screen)
    shown = shown_total(tui.screen)
    if not follow_on(tui.screen):
        tui.send(b"G")
        tui.wait(follow_on, 5)
    tui.idle(0.5)
    newest = cursor_id(tui.screen)
    peak = bp.peak_rss_mib(tui.proc.pid)
    # the same keys with the view full and no traffic: what rendering costs without the load
    n_idle = len(key_script()) * args.idle_cycles
    idle = press_keys(tui, rng, args, time.perf_counter(), lambda: True, limit=n_idle)
    rc = tui.quit()
    child = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    counted = [p for p in presses if p["counted"]]
    lat = [p["ms"] for p in counted if p["ms"] is not None]
    full = [p["ms"] for p in counted if p["ms"] is not None and p["view"] == args.max_flows]
    return {
        "flows_sent": sent, "hey": hey, "load_secs": load_secs, "arrival_rate": sent / load_secs if load_secs else 0,
        "wall_secs": t_load_end - t_start, "ui_cpu_share": ui_cpu, "peak_rss_mib": peak, "header_flows": header, "status_shown_total": shown,
        "newest_id_on_screen": newest, "child": child, "exit_code": rc,
        "presses": len(counted), "timeouts": sum(1 for p in counted if p["ms"] is None),
        "latency_ms": percentiles(lat), "latency_full_view_ms": percentiles(full),
        "latency_by_key_ms": by_key(presses),
        "latency_by_class_ms": {c: percentiles([p["ms"] for p in counted if p["ms"] is not None
                                                and key_class(p["key"]) == c]) for c in ("other", "rebuild")},
        "idle_latency_ms": percentiles([p["ms"] for p in idle if p["ms"] is not None]),
        "idle_timeouts": sum(1 for p in idle if p["ms"] is None), "idle_by_key_ms": by_key(idle),
        "press_log": presses, "idle_press_log": idle,
    }


def phase_throughput(args, env: dict, tmp: Path, url: str) -> dict:
    tui, ui_port, _ = start_tui(env, tmp, "ui-tp", args.cols, args.rows, args.max_flows)
    headless_port = bp.free_port()
    headless = subprocess.Popen([shutil.which("omniproxy-tui") or "omniproxy-tui", "--no-ui", "--host", "127.0.0.1",
                                 "-p", str(headless_port), "-o", str(tmp / "noui-tp.ndjson")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    results: dict[str, list[dict]] = {"ui": [], "no-ui": []}
    try:
        bp.wait_port(headless_port)
        tui.drain_in_background(True)  # the UI must keep drawing while run_hey blocks this thread
        for port in (ui_port, headless_port):
            bp.run_hey(url, f"http://127.0.0.1:{port}", 1, 4)  # warm-up: pools, first imports
        for rnd in range(args.rounds):
            for name, port in (("ui", ui_port), ("no-ui", headless_port)):
                r = bp.run_hey(url, f"http://127.0.0.1:{port}", args.tp_duration, args.concurrency)
                results[name].append(r)
                print(f"  throughput round {rnd + 1} {name:6} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.1f} ms"
                      f"  p99 {r['p99_ms']:6.1f} ms  ok {r['ok']}  errors {r['errors']}", flush=True)
    finally:
        tui.drain_in_background(False)
        ui_peak = bp.peak_rss_mib(tui.proc.pid)
        tui.quit()
        headless_peak = bp.peak_rss_mib(headless.pid)
        headless.send_signal(signal.SIGINT)
        try:
            headless.wait(30)
        except subprocess.TimeoutExpired:
            headless.kill()
    best = {k: max((r["rps"] for r in v), default=0.0) for k, v in results.items()}
    return {"rounds": results, "best_rps": best, "ratio": best["ui"] / best["no-ui"] if best["no-ui"] else 0.0,
            "peak_rss_mib": {"ui": ui_peak, "no-ui": headless_peak}}


# --------------------------------------------------------------------------- child (inside the pty)

def child_main(stats_path: str, argv: list[str]) -> int:
    """Run the real CLI (`omniproxy-tui ARGS`) and, after quit, write what the app received.

    Only observes: records the app instance the CLI creates, without changing its class."""
    sys.path.insert(0, str(ROOT))
    import omniproxy_tui.app as appmod
    from omniproxy_tui import cli

    apps: list = []
    original_init = appmod.OmniProxyApp.__init__

    def init(self, *a, **kw) -> None:
        original_init(self, *a, **kw)
        apps.append(self)

    appmod.OmniProxyApp.__init__ = init
    trace_path = os.environ.get("OMNIPROXY_BENCH_TRACE")
    trace = _install_trace() if trace_path else None
    rc = cli.run(argv)
    if trace is not None:
        Path(trace_path).write_text(json.dumps(trace))
    stats: dict = {"rc": rc, "peak_rss_mib": bp.peak_rss_mib(os.getpid())}
    if apps:
        app = apps[0]
        proxy = getattr(app.proxy, "proxy", app.proxy)  # the engine client's Proxy (in process)
        stats.update(flows_received=app._adds_total, view_total=app.view.total, view_shown=len(app.view),
                     view_dropped=app.view.dropped, proxy_flows_seen=getattr(proxy, "flows_seen", None),
                     proxy_flows_captured=getattr(proxy, "flows_captured", None))
    Path(stats_path).write_text(json.dumps(stats))
    return rc


def _install_trace() -> dict[str, list]:
    """--trace: timestamps (perf_counter, the clock this script uses too) of each key event reaching
    the app and of each frame composed and handed to the output thread."""
    from textual import events
    from textual.app import App
    from textual.screen import Screen

    import omniproxy_tui.app as appmod

    trace: dict[str, list] = {"keys": [], "frames": []}
    app_class = appmod.OmniProxyApp if "on_event" in vars(appmod.OmniProxyApp) else App
    on_event, refresh = app_class.on_event, Screen._compositor_refresh

    async def traced_event(self, event) -> None:
        if isinstance(event, events.Key):
            trace["keys"].append(time.perf_counter())
            await on_event(self, event)
            focus = getattr(getattr(self, "view", None), "focus", None)
            trace.setdefault("keys_done", []).append((time.perf_counter(), event.key, focus and focus.id))
            return
        await on_event(self, event)

    def traced_refresh(self) -> None:
        t = time.perf_counter()
        refresh(self)
        trace["frames"].append((t, time.perf_counter()))

    app_class.on_event, Screen._compositor_refresh = traced_event, traced_refresh
    trace["gc"] = []
    started: list[float] = [0.0]

    def gc_callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            trace["gc"].append((started[0], time.perf_counter(), info["generation"]))

    import gc
    gc.callbacks.append(gc_callback)

    from textual.drivers._writer_thread import WriterThread

    trace["writes"] = []

    def traced_run(self) -> None:  # WriterThread.run, plus when each write reached the terminal
        write, flush, get, qsize = self._file.write, self._file.flush, self._queue.get, self._queue.qsize
        while True:
            text = get()
            if text is None:
                break
            t = time.perf_counter()
            write(text)
            if qsize() == 0:
                flush()
            trace["writes"].append((t, time.perf_counter(), len(text)))
        flush()

    WriterThread.run = traced_run

    # Stalls: the event loop (uvloop, no per-callback hook) held by one piece of work for 8 ms or
    # more, with samples of the loop thread's stack meanwhile: what a key waited for.
    trace["stalls"] = []
    beat = [time.perf_counter()]
    loop_thread = threading.get_ident()

    async def heartbeat() -> None:
        while True:
            beat[0] = time.perf_counter()
            await asyncio.sleep(0.001)

    def watch() -> None:
        stall: list | None = None
        while True:
            time.sleep(0.002)
            now, last = time.perf_counter(), beat[0]
            if now - last < 0.008:
                if stall is not None:
                    stall[1] = last
                    trace["stalls"].append(stall)
                    stall = None
                continue
            if stall is None:
                stall = [last, now, []]
            frame = sys._current_frames().get(loop_thread)
            stack = []
            while frame is not None and len(stack) < 12:
                code = frame.f_code
                stack.append(f"{code.co_name} {code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}")
                frame = frame.f_back
            stall[2].append(stack)

    on_mount = appmod.OmniProxyApp.on_mount

    def traced_mount(self) -> None:
        on_mount(self)
        asyncio.get_running_loop().create_task(heartbeat())
        threading.Thread(target=watch, daemon=True).start()

    appmod.OmniProxyApp.on_mount = traced_mount
    return trace


def trace_breakdown(presses: list[dict], trace: dict[str, list]) -> dict[str, dict[str, float]]:
    """Split each key's latency: byte written -> key event in the app (terminal input, then waiting
    for the event loop), -> end of the last frame composed before the change was seen (handling,
    frames in between, rendering), -> the change seen in the pty (output thread and terminal)."""
    from bisect import bisect_left, bisect_right

    keys, frames = trace["keys"], trace["frames"]
    frame_ends = [e for _, e in frames]
    parts: dict[str, list[float]] = {"input+queue": [], "handle+render": [], "output": [], "frames": []}
    for p in presses:
        if p["ms"] is None or not p["counted"] or p["key"].startswith("type"):
            continue  # a typed string is several keys
        t0, t_seen = p["t0"], p["t0"] + p["ms"] / 1000
        i = bisect_left(keys, t0)
        j = bisect_right(frame_ends, t_seen) - 1  # the frame that showed it
        if i == len(keys) or keys[i] > t_seen or j < 0 or frame_ends[j] < keys[i]:
            continue
        parts["input+queue"].append((keys[i] - t0) * 1000)
        parts["handle+render"].append((frame_ends[j] - keys[i]) * 1000)
        parts["output"].append((t_seen - frame_ends[j]) * 1000)
        parts["frames"].append(j - bisect_left(frame_ends, keys[i]) + 1)
    return {k: percentiles(v) for k, v in parts.items()}


# --------------------------------------------------------------------------- main

def ensure_tools() -> None:
    missing = [p for p, b in (("nginx-light", "nginx"), ("hey", "hey"))
               if not shutil.which(b) and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        print(f"installing {' '.join(missing)} ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def _pct_line(p: dict) -> str:
    if not p.get("n"):
        return "n=0"
    return f"n={p['n']} p50 {p['p50']:.1f}  p95 {p['p95']:.1f}  p99 {p['p99']:.1f}  max {p['max']:.1f} ms"


def summary(res: dict, args) -> str:
    f, tp, ch = res["flows"], res.get("throughput"), res["flows"]["child"]
    lat = f["latency_ms"]
    ok = lambda b: "ok" if b else "MISSED"  # noqa: E731
    rows = [
        ("machine", f"{res['cpus']} CPUs, load average before {res['load_before']}, after {res['load_after']}"),
        ("flows sent (hey)", f"{f['flows_sent']:,} in {f['load_secs']:.1f} s = {f['arrival_rate']:.0f}/s "
                             f"(target {args.rate:.0f}/s), errors {sum(h['errors'] for h in f['hey'])}"),
        ("flows received by UI", f"{ch.get('flows_received') or 0:,} (proxy saw {ch.get('proxy_flows_seen') or 0:,}); kept "
                                 f"{ch.get('view_total', 0):,}, dropped {ch.get('view_dropped', 0):,} -> "
                                 f"{ok(ch.get('flows_received') == f['flows_sent'])}"),
        ("header shows", f"{f['header_flows']:,} flows, status {f['status_shown_total']}, newest row "
                         f"#{f['newest_id_on_screen']} -> {ok(f['header_flows'] == ch.get('view_total'))}"),
        ("UI process CPU", f"{f['ui_cpu_share'] * 100:.0f}% of one core while flows arrived (this script "
                           f"~{f['bench_cpu_s'] / f['wall_secs'] * 100:.0f}%)"),
        ("peak memory (VmHWM)", f"{f['peak_rss_mib']:.0f} MiB after {f['flows_sent']:,} flows, "
                                f"--max-flows {args.max_flows:,}"),
        ("key latency, all", _pct_line(lat) + f", timeouts {f['timeouts']} -> p99<100 "
                                              f"{ok(lat.get('p99', 1e9) < 100 and not f['timeouts'])}"),
        ("  other keys", _pct_line(f["latency_by_class_ms"]["other"])),
        ("  re-sort/filter keys", _pct_line(f["latency_by_class_ms"]["rebuild"]) + f" ({'/'.join(REBUILD_KEYS)})"),
        ("  view full", _pct_line(f["latency_full_view_ms"])),
    ]
    idle = f["idle_by_key_ms"]
    for k, v in f["latency_by_key_ms"].items():
        i = idle.get(k)
        rows.append((f"  key {k}", f"n={v['n']} p50 {v['p50']:.1f}  p95 {v['p95']:.1f}  max {v['max']:.1f} ms"
                     + (f"   | no traffic: p50 {i['p50']:.1f}  max {i['max']:.1f} ms" if i else "")))
    rows.append(("key latency, no traffic", _pct_line(f["idle_latency_ms"]) + f", timeouts {f['idle_timeouts']} "
                                                                             f"({f['header_flows']:,} flows in view)"))
    for part, v in f.get("trace_ms", {}).items():
        rows.append((f"  trace: {part}", _pct_line(v)))
    if tp:
        rows.append(("throughput ui / no-ui", f"{tp['best_rps']['ui']:.0f} / {tp['best_rps']['no-ui']:.0f} req/s = "
                                              f"{tp['ratio']:.2f}x -> >=0.8x {ok(tp['ratio'] >= 0.8)}"))
        rows.append(("  peak memory there", f"ui {tp['peak_rss_mib']['ui']:.0f} MiB, "
                                            f"no-ui {tp['peak_rss_mib']['no-ui']:.0f} MiB"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child_main(sys.argv[2], sys.argv[4:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=100_000, help="flows sent through the UI")
    ap.add_argument("--rate", type=float, default=2000.0, help="flows per second while keys are pressed")
    ap.add_argument("--max-flows", type=int, default=50_000, help="the UI's --max-flows")
    ap.add_argument("--size", default="160x48", help="terminal COLSxROWS")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the first key")
    ap.add_argument("--gap-min", type=float, default=0.05, help="min pause after a key took effect (s)")
    ap.add_argument("--gap-max", type=float, default=0.20, help="max pause after a key took effect (s)")
    ap.add_argument("--key-timeout", type=float, default=3.0, help="a key not visible by then is a failure")
    ap.add_argument("--idle-cycles", type=int, default=2, help="key script cycles after the load (no traffic)")
    ap.add_argument("--tp-duration", type=float, default=8.0, help="seconds per throughput measurement")
    ap.add_argument("--concurrency", type=int, default=50, help="hey -c for the throughput comparison")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved throughput rounds (best counts)")
    ap.add_argument("--quick", action="store_true", help="20 000 flows, one 4 s throughput round")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--py-spy", metavar="FILE", help="profile the UI process during phase 1 (raw format)")
    ap.add_argument("--py-spy-seconds", type=float, default=10.0)
    ap.add_argument("--json", help="write all results (with every key press) here")
    ap.add_argument("--trace", action="store_true",
                    help="split key latency into input wait, handling+render and output (phase 1)")
    args = ap.parse_args()
    if args.quick:
        args.flows, args.tp_duration, args.rounds = min(args.flows, 20_000), 4.0, 1
    args.cols, args.rows = (int(v) for v in args.size.lower().split("x"))
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="omniproxy-bench-ui-"))
    tmp.chmod(0o755)  # nginx workers run unprivileged and must read the files
    http_port, https_port = bp.free_port(), bp.free_port()
    nginx = bp.start_nginx(tmp, http_port, https_port)
    (tmp / "www" / "page.html").write_text("<html><body>" + "<p>hello</p>" * 150 + "</body></html>")
    origin = f"http://127.0.0.1:{http_port}"
    urls = [f"{origin}/small.json", f"{origin}/small.json?page=2", f"{origin}/page.html", f"{origin}/missing"]
    env = {**os.environ, "OMNIPROXY_HOME": str(tmp / "home"), "TERM": "xterm-256color", "COLORTERM": "truecolor",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("NO_COLOR", None)
    if args.trace:
        env["OMNIPROXY_BENCH_TRACE"] = str(tmp / "trace.json")
    # a CA made beforehand: the first-run notice would cover part of the screen
    subprocess.run([shutil.which("omniproxy-tui") or "omniproxy-tui", "ca", "generate"], env=env,
                   capture_output=True, check=True)
    res: dict = {"cpus": os.cpu_count(), "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                 "args": {k: v for k, v in vars(args).items() if k != "json"}}
    try:
        print(f"phase 1: {args.flows:,} flows at {args.rate:.0f}/s through the UI ({args.cols}x{args.rows} pty), "
              "pressing keys ...", flush=True)
        c0 = time.process_time()
        res["flows"] = phase_flows(args, env, tmp, urls)
        res["flows"]["bench_cpu_s"] = time.process_time() - c0
        if args.trace:
            trace = json.loads((tmp / "trace.json").read_text())
            res["flows"]["trace_ms"] = trace_breakdown(res["flows"]["press_log"], trace)
            res["flows"]["trace"] = trace
        if not args.skip_throughput:
            print(f"phase 2: throughput, hey -c {args.concurrency} for {args.tp_duration:.0f} s, UI vs --no-ui, "
                  f"{args.rounds} round(s) ...", flush=True)
            res["throughput"] = phase_throughput(args, env, tmp, urls[0])
    finally:
        nginx.terminate()
        nginx.wait(10)
        res["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(summary(res, args))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
