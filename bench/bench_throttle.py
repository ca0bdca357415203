#!/usr/bin/env python3
"""Throttling: a 1 MiB download through a 1 Mbit/s profile, and unthrottled traffic beside it.

    python3 bench/bench_throttle.py [--rounds 3] [--rate 1mbit] [--duration 6] [--concurrency 10]
                                    [--json FILE]

One `omniproxy-tui --no-ui` of this tree runs with `--throttle-down RATE --throttle-filter
'~d localhost'`; a local nginx (installed from Debian when missing, as bench_proxy.py does) serves a
1 MiB file and a small JSON body on 127.0.0.1. Each round:

  before      hey (the small body, through the proxy, to 127.0.0.1: not throttled) for --duration s
  throttled   curl downloads the 1 MiB file from `localhost` (throttled) while the same hey load
              runs beside it; the download's time is compared with size*8/rate (8.39 s at 1 Mbit/s)
  after       hey alone again; "without" is the mean of before and after (drift on a shared machine)

The report gives per round the download time and its error against the expectation (must be within
10 %), and unthrottled req/s without and with the throttled download running. The exit status is 1
when a download was off by more than 10 %. Only 127.0.0.1 is used; every step is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_proxy import Target, ensure_origin_tools, free_port, omniproxy_argv, run_hey, start_nginx  # noqa: E402

from proxycore.throttle import parse_rate  # noqa: E402

SIZE = 1 << 20  # nginx's 1mb.bin


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far: what a phase cost the proxy, whatever else
    loads the machine (req/s alone swings with the other work on a shared machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def download(proxy: str, url: str, timeout: float) -> tuple[float, int]:
    """(seconds, bytes) of one curl download through the proxy."""
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", str(int(timeout)), "-x", proxy,
                          "-w", "%{time_total} %{size_download} %{http_code}", url],
                         capture_output=True, text=True, timeout=timeout + 10).stdout.split()
    if len(out) != 3 or out[2] != "200":
        raise RuntimeError(f"download failed: {' '.join(out) or 'no output'}")
    return float(out[0]), int(out[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", default="1mbit", help="the throttled download's rate (default 1mbit)")
    ap.add_argument("--duration", type=float, default=6.0, help="seconds of unthrottled load per measurement")
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    rate = parse_rate(args.rate)
    if rate is None:
        ap.error("--rate must be a rate, e.g. 1mbit")
    expected = SIZE / rate
    if shutil.which("curl") is None:
        print("bench_throttle: curl is needed", file=sys.stderr)
        return 2
    ensure_origin_tools()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-throttle-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)  # nginx workers run as an unprivileged user and must read the files
        http_port, https_port, proxy_port = free_port(), free_port(), free_port()
        nginx = start_nginx(d, http_port, https_port)
        argv, env = omniproxy_argv(ROOT)
        target = Target("omniproxy", argv + [
            "--no-ui", "--no-mitm", "--host", "127.0.0.1", "--port", str(proxy_port), "-o", str(d / "flows.ndjson"),
            "--throttle-down", args.rate, "--throttle-filter", "~d localhost"],
            proxy_port, env={**env, "OMNIPROXY_HOME": str(d / "home")}, log=d / "proxy.log", cwd=d)
        try:
            target.start()
            proxy = target.proxy
            assert proxy is not None
            small = f"http://127.0.0.1:{http_port}/small.json"
            big = f"http://localhost:{http_port}/1mb.bin"
            for r in range(1, args.rounds + 1):
                pid = target.proc.pid  # type: ignore[union-attr]
                c0 = cpu_seconds(pid)
                before = run_hey(small, proxy, args.duration, args.concurrency)
                c1 = cpu_seconds(pid)
                started = time.monotonic()
                curl = subprocess.Popen(
                    ["curl", "-s", "-o", "/dev/null", "--max-time", str(int(expected * 3 + 30)), "-x", proxy,
                     "-w", "%{time_total} %{size_download} %{http_code}", big],
                    stdout=subprocess.PIPE, text=True)
                during = run_hey(small, proxy, min(args.duration, expected * 0.8), args.concurrency)
                c2 = cpu_seconds(pid)  # this phase also carries the throttled download's own cost
                out, _ = curl.communicate(timeout=expected * 3 + 60)
                parts = out.split()
                if len(parts) != 3 or parts[2] != "200":
                    raise RuntimeError(f"throttled download failed: {out.strip() or 'no output'}")
                seconds, size = float(parts[0]), int(parts[1])
                # unthrottled alone again: "without" is the mean of before and after, which cancels
                # most of the drift other work on a shared machine causes
                c3 = cpu_seconds(pid)
                after = run_hey(small, proxy, args.duration, args.concurrency)
                c4 = cpu_seconds(pid)
                base = {"rps": (before["rps"] + after["rps"]) / 2, "ok": before["ok"] + after["ok"],
                        "p50_ms": (before["p50_ms"] + after["p50_ms"]) / 2}
                alone, _ = download(proxy, big, expected * 3 + 30) if r == 1 else (float("nan"), 0)
                row = {"round": r, "download_s": seconds, "expected_s": expected,
                       "error_pct": (seconds - expected) / expected * 100, "bytes": size,
                       "download_alone_s": alone, "rps_without": base["rps"], "rps_with": during["rps"],
                       "rps_before": before["rps"], "rps_after": after["rps"],
                       "p50_ms_without": base["p50_ms"], "p50_ms_with": during["p50_ms"],
                       "cpu_us_per_req_without": ((c1 - c0) + (c4 - c3)) / max(base["ok"], 1) * 1e6,
                       "cpu_us_per_req_with": (c2 - c1) / max(during["ok"], 1) * 1e6,
                       "wall_s": time.monotonic() - started}
                rows.append(row)
                print(f"round {r}: 1 MiB at {args.rate}: {seconds:.2f} s (expected {expected:.2f} s, "
                      f"{row['error_pct']:+.1f} %)"
                      + (f"; alone, no load beside it: {alone:.2f} s" if alone == alone else "")
                      + f"; unthrottled {base['rps']:.0f} req/s without (before {before['rps']:.0f}, after "
                      f"{after['rps']:.0f}), {during['rps']:.0f} req/s with "
                      f"the throttled download ({during['rps'] / base['rps'] * 100 if base['rps'] else 0:.0f} %); "
                      f"proxy CPU per unthrottled request {row['cpu_us_per_req_without']:.0f} us without, "
                      f"{row['cpu_us_per_req_with']:.0f} us with", flush=True)
        finally:
            target.stop()
            nginx.terminate()
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                nginx.kill()
    errs = [abs(r["error_pct"]) for r in rows]
    print(f"\nload: {os.getloadavg()[0]:.1f} (1 min); download error: worst {max(errs):.1f} %, "
          f"median {statistics.median(errs):.1f} %; unthrottled req/s with/without: "
          f"{statistics.median(r['rps_with'] / r['rps_without'] for r in rows if r['rps_without']) * 100:.0f} % "
          f"(median)")
    if args.json:
        from proxycore.safefile import write_atomic

        write_atomic(Path(args.json), (json.dumps(rows, indent=2) + "\n").encode())
    return 0 if max(errs) <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
