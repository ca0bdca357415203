#!/usr/bin/env python3
"""HAR capture under load: the proxy's peak memory and what a SIGKILL leaves in the HAR.

    python3 bench/bench_har.py [--flows 10000,100000] [--concurrency 20] [--ref GITREF] [--json FILE]

For every N in --flows: a local nginx (127.0.0.1, a ~100 B JSON file) is the origin, the real CLI
runs headless (`omniproxy-tui --no-ui -o x.har`) and `hey -n N` sends exactly N requests through
it. The moment hey has its N responses the proxy gets SIGKILL (no close, no final write), and the
HAR is parsed as it stands. Reported per run: flows the clients completed, entries in the HAR
(and whether it parsed as JSON at all), the proxy's peak RSS (VmHWM, read just before the kill),
throughput, and the HAR's size.

`--ref GITREF` runs the same for another commit's code too (exported with `git archive` into the
temporary directory: no worktree is added). nginx and hey come from Debian packages (installed
when missing, as bench_proxy.py does). Everything stops by itself: each run is bounded by N and
by a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_proxy import ensure_origin_tools as ensure_tools  # noqa: E402
from bench_proxy import free_port, omniproxy_argv, peak_rss_mib, start_nginx  # noqa: E402


def export_ref(ref: str, base: Path) -> Path:
    """The tree of `ref` as plain files (git archive), for running that commit's CLI."""
    d = base / f"ref-{re.sub(r'[^A-Za-z0-9._-]', '_', ref)}"
    d.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"bench_har: error: --ref {ref}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(d)], input=archive.stdout, check=True)
    return d


def har_entries(path: Path) -> tuple[int, bool]:
    """(entries, parsed): the entry count of a complete HAR; for one that does not parse, the
    number of complete entry lines a tolerant reader could still recover (one entry per line)."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0, False
    try:
        return len(json.loads(data)["log"]["entries"]), True
    except (ValueError, KeyError, TypeError):
        return sum(1 for ln in data.splitlines() if ln.startswith(b'{"startedDateTime"')), False


def one_run(tree: Path, label: str, n: int, concurrency: int, origin_url: str, work: Path,
            timeout: float) -> dict:
    home = work / f"home-{label}-{n}"
    out = work / f"cap-{label}-{n}.har"
    port = free_port()
    argv, env = omniproxy_argv(tree)
    log = open(work / f"proxy-{label}-{n}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*argv, "--no-ui", "-p", str(port), "-o", str(out)], cwd=str(tree),
                            stdout=subprocess.DEVNULL, stderr=log,
                            env={**os.environ, **env, "OMNIPROXY_HOME": str(home)})
    try:
        deadline = time.monotonic() + 30
        while b"listening on" not in (work / f"proxy-{label}-{n}.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench_har: error: {label} did not start (see {log.name})")
            time.sleep(0.05)
        t0 = time.monotonic()
        hey = subprocess.run(["hey", "-n", str(n), "-c", str(concurrency), "-x", f"http://127.0.0.1:{port}",
                              origin_url], capture_output=True, text=True, timeout=timeout)
        elapsed = time.monotonic() - t0
        peak = peak_rss_mib(proc.pid)  # VmHWM before the kill: the peak of the whole run
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        log.close()
    ok = sum(int(x) for x in re.findall(r"\[200\]\s+(\d+) responses", hey.stdout))
    kept, parsed = har_entries(out)
    return {"target": label, "flows": n, "completed": ok, "kept": kept, "lost": ok - kept,
            "har_valid": parsed, "peak_rss_mib": round(peak, 1), "req_per_s": round(ok / elapsed) if elapsed else 0,
            "har_mib": round(out.stat().st_size / 2**20, 1) if out.exists() else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", default="10000,100000", help="comma list of request counts [10000,100000]")
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--ref", action="append", default=[], help="also run this commit's code (repeatable)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one run may take at most [900]")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    try:
        flows = [int(x) for x in args.flows.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--flows {args.flows!r}: expected a comma list of numbers, like 10000,100000")
    if not flows or min(flows) < 1 or max(flows) > 1_000_000:
        ap.error("--flows: each count must be between 1 and 1000000")
    ensure_tools()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-har-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run as an unprivileged user and must read the files
        nginx_dir = work / "nginx"
        nginx_dir.mkdir()
        http_port, https_port = free_port(), free_port()
        nginx = start_nginx(nginx_dir, http_port, https_port)
        try:
            targets = [("omniproxy", ROOT)] + [(f"omniproxy@{r}", export_ref(r, work)) for r in args.ref]
            print(f"{'target':<22} {'flows':>7} {'completed':>9} {'kept':>7} {'lost':>6} {'valid':>5} "
                  f"{'peak MiB':>8} {'req/s':>6} {'HAR MiB':>7}", flush=True)
            for n in flows:
                for label, tree in targets:
                    r = one_run(tree, label.replace("/", "_"), n, args.concurrency,
                                f"http://127.0.0.1:{http_port}/small.json", work, args.timeout)
                    r["target"] = label
                    results.append(r)
                    print(f"{label:<22} {n:>7} {r['completed']:>9} {r['kept']:>7} {r['lost']:>6} "
                          f"{'yes' if r['har_valid'] else 'NO':>5} {r['peak_rss_mib']:>8} "
                          f"{r['req_per_s']:>6} {r['har_mib']:>7}", flush=True)
        finally:
            nginx.terminate()
            nginx.wait(30)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min average; other work on the machine skews these figures)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
