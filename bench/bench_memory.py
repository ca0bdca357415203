#!/usr/bin/env python3
"""Memory of the flows the UI keeps: KiB per kept flow, and peak RSS with big bodies.

    python3 bench/bench_memory.py [--flows 10000,50000] [--big-flows 1000] [--big-size 10MB]
                                  [--skip-big] [--breakdown] [--json FILE]

Everything runs on 127.0.0.1 and stops by itself. An origin (a subprocess) serves a small JSON GET
(~250 B, as the issue measured) and a big body; each measurement runs in a fresh process that
starts the real app headless at 160x48 (`OmniProxyApp.run_test`: the proxy, the UI's flow store,
the view and the table, as a user runs it) and a load client (another subprocess) that sends the
requests through the proxy on keep-alive connections.

- KiB per kept flow: RSS (gc collected) after 1 000 flows and after N flows, (RSS_N - RSS_1000) /
  (N - 1000), so start-up costs cancel out. --max-flows is N, nothing is dropped.
- Big bodies: the process's peak RSS (VmHWM) after --big-flows responses of --big-size each,
  and the bytes its spill directory held (whole bodies on disk instead of memory).
- --breakdown: where one small flow's bytes go (deep sys.getsizeof of its parts), measured in the
  same process after the run.

Run it from the tree to measure (PYTHONPATH is set to the tree this file is in unless --tree says
otherwise: `--tree /work/main` measures another checkout for a before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMALL = json.dumps({"id": 12345, "name": "widget", "tags": ["a", "b", "c"], "price": 9.99,
                    "owner": {"id": 7, "login": "someone"}, "active": True,
                    "description": "a small JSON body like an API returns"}).encode()


def parse_size(s: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([kmg]?)(i?b)?", s.strip().lower())
    if not m:
        raise SystemExit(f"bad size {s!r} (10MB, 512k ...)")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)]


def proc_kib(field: str, pid: str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- origin (subprocess)


async def serve_origin(big_size: int) -> None:
    big = (b'{"data": "' + b"x" * (big_size - 12) + b'"}')[:big_size]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                body = big if path.endswith(b"/big") else SMALL
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nServer: origin\r\n"
                             b"Date: Tue, 01 Dec 2026 20:00:00 GMT\r\nContent-Length: %d\r\n\r\n" % len(body))
                mv = memoryview(body)
                for i in range(0, len(body), 1 << 20):
                    writer.write(mv[i:i + (1 << 20)])
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)  # killed by the parent; an hour at most whatever happens


# --------------------------------------------------------------------------- load (subprocess)


async def load(proxy_port: int, origin_port: int, n: int, path: str, conc: int) -> None:
    url = f"http://127.0.0.1:{origin_port}{path}".encode()
    req = b"GET " + url + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n" % origin_port
    left = [n]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port, limit=1 << 22)
        while left[0] > 0:
            left[0] -= 1
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            length = int(m.group(1)) if m else 0
            while length:
                chunk = await reader.read(min(length, 1 << 20))
                if not chunk:
                    raise ConnectionError("proxy closed mid-body")
                length -= len(chunk)
        writer.close()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(conc))), 1800)


def run_load(proxy_port: int, origin_port: int, n: int, path: str, conc: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--load", str(proxy_port), str(origin_port), str(n), path,
                             str(conc)])


async def wait_proc(proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the load client did not finish in time")
        await asyncio.sleep(0.1)
    if proc.returncode:
        raise SystemExit(f"the load client failed ({proc.returncode})")


# --------------------------------------------------------------------------- measuring (subprocess)


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """sys.getsizeof of obj and everything it holds (shared interned strings counted once)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or obj is None or isinstance(obj, (bool, type)):
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(deep_size(x, seen) for x in obj)
    elif not isinstance(obj, (str, bytes, int, float)):
        for cls in type(obj).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            for slot in (slots,) if isinstance(slots, str) else slots:
                if slot in ("__weakref__", "__dict__"):
                    continue
                try:  # the slot itself, not a property a subclass may put over it
                    value = cls.__dict__[slot].__get__(obj, cls)
                except (AttributeError, KeyError):
                    continue
                size += deep_size(value, seen)
        if hasattr(obj, "__dict__"):
            size += deep_size(vars(obj), seen)
    return size


def breakdown(flow: object) -> dict[str, int]:
    out: dict[str, int] = {"flow (whole)": deep_size(flow)}
    for part in ("request", "response", "timings"):
        out[part] = deep_size(getattr(flow, part))
    for part in ("request", "response"):
        msg = getattr(flow, part)
        if msg is not None:
            out[f"{part}.headers"] = deep_size(msg.headers)
    return out


async def measure(kind: str, n: int, origin_port: int, big_size: int, want_breakdown: bool,
                  spill_max_total: int | None) -> dict:
    from omniproxy_tui.app import OmniProxyApp
    from proxycore.options import Options

    opts = Options(port=0, host="127.0.0.1", max_flows=max(n, 1))
    if spill_max_total is not None and hasattr(opts, "spill_max_total"):  # a tree without spilling: ignored
        opts.spill_max_total = spill_max_total
    app = OmniProxyApp(opts)
    result: dict = {"kind": kind, "flows": n}
    async with app.run_test(size=(160, 48)) as pilot:
        proxy = app.engine.proxy  # type: ignore[attr-defined]
        port = proxy.address[1]

        async def settle(count: int) -> None:
            deadline = time.monotonic() + 600
            while not (len(proxy.flows) >= count and app.view.total >= count
                       and all(f.is_finished for f in list(proxy.flows)[-50:])):
                if time.monotonic() > deadline:
                    raise SystemExit(f"flows did not settle: {len(proxy.flows)} of {count}")
                await pilot.pause(0.05)
            for _ in range(5):  # let the table refresh its visible rows (it coalesces at ~10-20 Hz)
                await pilot.pause(0.1)
            gc.collect()

        if kind == "small":
            first = min(1000, n)
            await wait_proc(run_load(port, origin_port, first, "/json", 8), 600)
            await settle(first)
            rss1 = proc_kib("VmRSS")
            t0 = time.monotonic()
            await wait_proc(run_load(port, origin_port, n - first, "/json", 8), 1800)
            await settle(n)
            result["seconds"] = round(time.monotonic() - t0, 1)
            rss2 = proc_kib("VmRSS")
            result["rss_kib"] = rss2
            result["kib_per_flow"] = round((rss2 - rss1) / max(1, n - first), 3)
            if want_breakdown:
                result["breakdown_bytes"] = breakdown(list(proxy.flows)[-1])
        else:
            t0 = time.monotonic()
            await wait_proc(run_load(port, origin_port, n, "/big", 4), 3600)
            await settle(n)
            result["seconds"] = round(time.monotonic() - t0, 1)
            spill = getattr(proxy, "spill", None)
            result["spill_bytes"] = getattr(spill, "total", 0)
            result["rss_kib"] = proc_kib("VmRSS")
            result["peak_rss_kib"] = proc_kib("VmHWM")
            result["big_size"] = big_size
    return result


# --------------------------------------------------------------------------- driver


def run_child(tree: Path, kind: str, n: int, origin_port: int, big_size: int, want_breakdown: bool,
              home: Path, spill_max_total: str | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMNIPROXY_HOME=str(home))
    argv = [sys.executable, __file__, "--measure", kind, str(n), str(origin_port), str(big_size)]
    if want_breakdown:
        argv.append("--breakdown")
    if spill_max_total:
        argv += ["--spill-max-total", spill_max_total]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=7200)
    if out.returncode:
        raise SystemExit(f"{kind} {n}: failed\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", default="10000,50000", help="small-flow counts (comma-separated)")
    ap.add_argument("--big-flows", type=int, default=1000)
    ap.add_argument("--big-size", default="10MB")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--spill-max-total", help="--spill-max-total for the big-body run (default: the option's "
                    "default, 4GiB: past it bodies are cut at --max-body-size and held in memory)")
    ap.add_argument("--tree", default=str(HERE.parent), help="the checkout to measure (default: this one)")
    ap.add_argument("--json")
    # internal modes
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    big_size = parse_size(args.big_size)
    if args.serve:
        asyncio.run(serve_origin(big_size))
        return 0
    if args.load:
        pp, op, n, path, conc = args.load
        asyncio.run(load(int(pp), int(op), int(n), path, int(conc)))
        return 0
    if args.measure:
        kind, n, op, bs = args.measure
        cap = parse_size(args.spill_max_total) if args.spill_max_total else None
        res = asyncio.run(measure(kind, int(n), int(op), int(bs), args.breakdown, cap))
        print(json.dumps(res))
        return 0

    tree = Path(args.tree).resolve()
    origin = subprocess.Popen([sys.executable, __file__, "--serve", "--big-size", str(big_size)],
                              stdout=subprocess.PIPE, text=True)
    results = []
    try:
        origin_port = int(origin.stdout.readline())  # type: ignore[union-attr]
        print(f"tree {tree} · load {os.getloadavg()[0]:.1f} · {os.cpu_count()} CPUs")
        for n in [int(x) for x in args.flows.split(",") if x]:
            with tempfile.TemporaryDirectory(prefix="bench-mem-") as home:
                r = run_child(tree, "small", n, origin_port, big_size, args.breakdown, Path(home))
            results.append(r)
            print(f"{n:>7,} small flows: {r['kib_per_flow']:.2f} KiB per kept flow "
                  f"(RSS {r['rss_kib'] / 1024:.0f} MiB, {r['seconds']} s)")
            for part, b in r.get("breakdown_bytes", {}).items():
                print(f"          {part:<18} {b:>6} B")
        if not args.skip_big:
            with tempfile.TemporaryDirectory(prefix="bench-mem-") as home:
                r = run_child(tree, "big", args.big_flows, origin_port, big_size, False, Path(home),
                              args.spill_max_total)
            results.append(r)
            print(f"{args.big_flows:>7,} flows of {big_size / 1048576:.0f} MiB: peak RSS {r['peak_rss_kib'] / 1024:.0f} MiB, "
                  f"RSS at the end {r['rss_kib'] / 1024:.0f} MiB, spilled {r['spill_bytes'] / 1e9:.2f} GB "
                  f"({r['seconds']} s)")
    finally:
        origin.kill()
        origin.wait()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
