#!/usr/bin/env python3
"""Deterministic cost of the UI's own work: Python function calls (cProfile) for a fixed script.

    python3 bench/profile_ui_ops.py [--kept 50000] [--rounds 20] [--batch 400] [--show live] [--sort ncalls] [--top 25]

Wall-clock timings on a shared machine are noisy; the number of Python calls made by a fixed
workload is not. The app runs headless (`run_test`, 160x48, no proxy); flows go through the real
engine store (`on_flow_event`), exactly as proxied ones do. Measured, each with its own count:

- live: `--rounds` times, `--batch` new flows published (add, then done with a response), then the
  app's tick (three calls: under this rate two of three ticks skip painting) and one frame composed
  (`Screen._compositor_refresh`), with `--kept` flows already in the view;
- keys: cycling the sort key through all six, a filter applied and cleared, the filter switched
  off and on, 30 cursor moves (the detail beside the table follows), the filter bar opened and
  closed three times, over the same view.

Reports calls and (noisy, for orientation) seconds per part; --show PART prints its profile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omniproxy_tui.app import OmniProxyApp  # noqa: E402
from proxycore.flows.flow import Flow, Headers, Request, Response  # noqa: E402
from proxycore.options import Options  # noqa: E402

_REQ_HEADERS = [("Host", "127.0.0.1:8080"), ("User-Agent", "hey/0.0.1"), ("Accept-Encoding", "gzip")]
_RESP_HEADERS = [("Server", "nginx/1.22.1"), ("Date", "Tue, 01 Dec 2026 20:00:00 GMT"),
                 ("Content-Type", "application/json"), ("Content-Length", "81"), ("Connection", "keep-alive")]
_PATHS = ["/small.json", "/small.json?page=2", "/page.html", "/missing"]


def make_flow(i: int, t0: float) -> tuple[Flow, Response]:
    path = _PATHS[i % 4]
    req = Request("GET", "http", "127.0.0.1", 8080, path, headers=Headers.from_pairs(_REQ_HEADERS),
                  authority="127.0.0.1:8080")  # as the proxy sets it from an absolute-form request
    f = Flow(req, client_addr=("127.0.0.1", 40000 + i % 20000))
    f.timings.start = t0 + i * 0.0005
    status = 404 if path == "/missing" else 200
    body = b"x" * (81 if "small" in path else 1900 if "page" in path else 150)
    return f, Response(status, "OK", headers=Headers.from_pairs(_RESP_HEADERS), body=body)


def publish(app: OmniProxyApp, flows: list[tuple[Flow, Response]]) -> None:
    for f, _ in flows:
        app.on_flow_event("add", f)
    for f, resp in flows:
        f.response = resp
        f.timings.end = f.timings.start + 0.002
        f.state = "done"
        app.on_flow_event("done", f)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def record(label: str, prof: cProfile.Profile, secs: float, results: dict, profiles: dict) -> None:
    stats = pstats.Stats(prof)
    calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
    results[label] = (calls, secs)
    profiles[label] = stats


async def measure(label: str, fn, results: dict, profiles: dict) -> None:
    """Profile `fn` as a whole (nested profilers would displace each other: the parts of `live`
    are measured in a second run of the same script)."""
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    await fn()
    prof.disable()
    record(label, prof, time.perf_counter() - t, results, profiles)


async def run(args) -> None:
    clock = Clock()
    opts = Options(port=0, max_flows=args.kept)
    app = OmniProxyApp(opts, start_proxy=False, clock=clock)
    results: dict[str, tuple[int, float]] = {}
    profiles: dict[str, pstats.Stats] = {}
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        t0 = time.time()
        n = 0
        for _ in range(0, args.kept, 5000):  # fill the view
            publish(app, [make_flow(n + i, t0) for i in range(5000)])
            n += 5000
            clock.now += 1.0
            app._tick()
        while app._pending_add or app._pending_upd or app._pending_del:  # a tick may skip painting
            clock.now += 1.0
            app._tick()
        await pilot.pause()
        screen = app.screen

        async def frame() -> None:
            # let Textual deliver the repaint messages and compose the frame, as its loop does
            await pilot.pause()
            if screen._dirty_widgets:
                screen._on_timer_update()

        batches = [[make_flow(n + r * args.batch + i, t0) for i in range(args.batch)] for r in range(args.rounds)]

        parts = {name: cProfile.Profile() for name in ("  publish", "  tick", "  frames")}

        async def live() -> None:
            # the whole, and its parts: publishing (store, events), the ticks (view), the frames
            for batch in batches:
                with parts["  publish"]:
                    publish(app, batch)
                for _ in range(3):
                    clock.now += 0.2 / 3
                    with parts["  tick"]:
                        app._tick()
                with parts["  frames"]:
                    await frame()

        view = app.view

        async def sort_keys() -> None:
            for _ in range(6):
                view.cycle_sort()
                app.sync_view()
                await frame()

        async def filter_keys() -> None:
            view.set_filter("~s 2 & !~u missing")
            app.sync_view()
            await frame()
            view.toggle_filter()
            app.sync_view()
            await frame()
            view.toggle_filter()
            app.sync_view()
            await frame()
            view.set_filter("")
            app.sync_view()
            await frame()

        async def filter_bar() -> None:
            for _ in range(3):
                await pilot.press("f")
                await frame()
                await pilot.press("escape")
                await frame()

        async def cursor_keys() -> None:
            for d in (-1, -1, -1, 1, 1, -1) * 5:
                view.move_focus(d)
                app.sync_view()
                await frame()

        t = time.perf_counter()
        await live()
        secs = time.perf_counter() - t
        for name, prof in parts.items():
            record(name, prof, 0.0, results, profiles)
        results["live"] = (sum(results[name][0] for name in parts), secs)
        profiles["live"] = pstats.Stats(*parts.values())
        await measure("sort x6", sort_keys, results, profiles)
        await measure("filter", filter_keys, results, profiles)
        await measure("cursor x30", cursor_keys, results, profiles)
        await measure("f+esc x3", filter_bar, results, profiles)
        await pilot.pause()
    per = args.rounds * args.batch
    order = ["live", *parts, "sort x6", "filter", "cursor x30", "f+esc x3"]
    for k, (calls, secs) in sorted(results.items(), key=lambda kv: order.index(kv[0])):
        extra = f"  ({calls / per:,.1f} calls/flow)" if k.strip() in ("live", "publish", "tick") else ""
        if not secs:  # the parts' own times would include the profiler's overhead only
            print(f"{k:<12} {calls:>12,} calls{extra}")
            continue
        print(f"{k:<12} {calls:>12,} calls  {secs * 1000:8.0f} ms{extra}")
    for k in args.show or ():
        profiles[k].sort_stats(args.sort).print_stats(args.top)
        for fn in args.callers or ():
            profiles[k].print_callers(fn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kept", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--show", action="append", help="print the profile of this part (repeatable)")
    ap.add_argument("--sort", default="tottime", help="pstats sort key for --show (ncalls, tottime ...)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--callers", action="append", help="with --show: who calls functions matching this")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
