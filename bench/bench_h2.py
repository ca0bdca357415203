#!/usr/bin/env python3
"""HTTP/2 through the proxy: many small requests (h2load) through omniproxy vs mitmdump, and a
100 MiB download over h2 vs HTTP/1.1 through omniproxy, in one run.

    python3 bench/bench_h2.py [-n 20000] [-c 4] [-m 32] [--rounds 3] [--size-mib 100] [--json FILE]

The origin is nginx (http2 + TLS, from bench_proxy's setup). h2load has no proxy option, so a
CONNECT shim stands in front of each proxy: `socat TCP-LISTEN:P,fork PROXY:127.0.0.1:localhost:PORT`
(a tiny asyncio shim when socat is missing); h2load speaks TLS + h2 through it to the proxy, which
MITMs it and talks h2 to nginx. Requests count only when they got a 2xx. The download goes with
curl (--http2 vs --http1.1, the proxy's CA trusted), and the h2 file is checked by sha256.
Targets and scenarios are interleaved round by round; the report gives the best and the median.
Every run is bounded (-n requests, --max-time). mitmdump 11.0.2 lives in bench/.venv-mitm
(installed there when missing, as bench_proxy.py does).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_proxy import (  # noqa: E402
    MITM_VENV,
    ROOT,
    Target,
    ensure_tools,
    free_port,
    make_origin_cert,
    omniproxy_argv,
    wait_port,
)


def start_nginx_h2(d: Path, https_port: int, size_mib: int) -> tuple[subprocess.Popen, str]:
    """nginx with http2 on TLS; returns the process and the sha256 of big.bin."""
    www = d / "www"
    www.mkdir()
    (www / "small.json").write_bytes(b'{"hello":"world","items":[1,2,3],"text":"' + b"x" * 60 + b'"}')
    digest = hashlib.sha256()
    with open(www / "big.bin", "wb") as f:
        for _ in range(size_mib):
            block = os.urandom(1 << 20)
            digest.update(block)
            f.write(block)
    crt, key = make_origin_cert(d)
    (d / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  http2_max_concurrent_streams 256;
  types {{ application/json json; application/octet-stream bin; }}
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{https_port} ssl http2;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    root {www};
  }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    p = subprocess.Popen([nginx, "-c", str(d / "nginx.conf"), "-p", str(d)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(https_port)
    return p, digest.hexdigest()


class Shim:
    """A CONNECT shim: every connection to `port` becomes a CONNECT localhost:origin through the proxy."""

    def __init__(self, proxy_port: int, origin_port: int) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        if shutil.which("socat"):
            self.proc = subprocess.Popen(
                ["socat", f"TCP-LISTEN:{self.port},bind=127.0.0.1,fork,reuseaddr",
                 f"PROXY:127.0.0.1:localhost:{origin_port},proxyport={proxy_port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            self.thread = threading.Thread(target=self._run, args=(proxy_port, origin_port), daemon=True)
            self.thread.start()
        wait_port(self.port)

    def _run(self, proxy_port: int, origin_port: int) -> None:
        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(1 << 16):
                    w.write(data)
                    await w.drain()
            except OSError:
                pass
            finally:
                w.close()

        async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
            pr, pw = await asyncio.open_connection("127.0.0.1", proxy_port)
            pw.write(f"CONNECT localhost:{origin_port} HTTP/1.1\r\nHost: localhost:{origin_port}\r\n\r\n".encode())
            await pr.readuntil(b"\r\n\r\n")
            await asyncio.gather(pipe(cr, pw), pipe(pr, cw))

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            async with server:
                await server.serve_forever()

        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(main())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def run_h2load(port: int, n: int, c: int, m: int, timeout: float) -> dict:
    args = ["h2load", "-n", str(n), "-c", str(c), "-m", str(m), f"https://localhost:{port}/small.json"]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return {"rps": 0.0, "ok": 0, "error": "timeout"}
    took = re.search(r"finished in ([\d.]+)(ms|s)", out)
    ok = re.search(r"status codes: (\d+) 2xx", out)
    secs = float(took.group(1)) / (1000 if took.group(2) == "ms" else 1) if took else 0.0
    n_ok = int(ok.group(1)) if ok else 0
    r = {"rps": n_ok / secs if secs else 0.0, "ok": n_ok, "secs": secs}
    if not n_ok:
        r["error"] = (out.strip().splitlines() or ["(no output)"])[-1][:200]
    return r


def run_download(proxy_port: int, ca: Path, url: str, http: str, dest: Path, timeout: float) -> dict:
    args = ["curl", "-sS", "--max-time", str(int(timeout)), f"--{http}", "--cacert", str(ca),
            "-x", f"http://127.0.0.1:{proxy_port}", "-o", str(dest), "-w", "%{http_code} %{http_version} %{speed_download}", url]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10)
    parts = r.stdout.split()
    if r.returncode or len(parts) != 3 or parts[0] != "200":
        return {"mib_s": 0.0, "error": (r.stderr.strip() or r.stdout)[-200:]}
    return {"version": parts[1], "mib_s": float(parts[2]) / (1 << 20)}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20000, help="h2load requests per run")
    ap.add_argument("-c", type=int, default=4, help="h2load clients (connections)")
    ap.add_argument("-m", type=int, default=32, help="h2load concurrent streams per connection")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=100, help="download size")
    ap.add_argument("--timeout", type=float, default=180, help="bound on each run (seconds)")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    ensure_tools()
    if not shutil.which("h2load"):
        raise SystemExit("bench_h2: h2load (Debian nghttp2-client) is needed")
    results: dict[str, list] = {"h2load:omniproxy": [], "h2load:mitmdump": [],
                                "download:h2": [], "download:http1.1": []}
    with tempfile.TemporaryDirectory(prefix="bench-h2-") as tmpd:
        tmp = Path(tmpd)
        tmp.chmod(0o755)  # nginx workers run as an unprivileged user and must read the files
        https_port = free_port()
        nginx, digest = start_nginx_h2(tmp, https_port, args.size_mib)
        omni_port, mitm_port = free_port(), free_port()
        argv, env = omniproxy_argv(ROOT)
        targets = {
            "omniproxy": Target("omniproxy", argv + ["--no-ui", "-p", str(omni_port), "--upstream-ca",
                                                     str(tmp / "origin-ca.crt"), "-o", str(tmp / "capture.ndjson")],
                                omni_port, {**env, "OMNIPROXY_HOME": str(tmp / "home")},
                                log=tmp / "omniproxy.stderr", cwd=tmp),
            "mitmdump": Target("mitmdump", [str(MITM_VENV / "bin" / "mitmdump"), "--listen-host", "127.0.0.1",
                                            "-p", str(mitm_port), "--ssl-insecure", "-q",
                                            "--set", f"confdir={tmp / 'mitm'}"], mitm_port,
                               log=tmp / "mitmdump.stderr"),
        }
        try:
            for rnd in range(args.rounds):
                order = ["omniproxy", "mitmdump"] if rnd % 2 == 0 else ["mitmdump", "omniproxy"]
                for name in order:
                    t = targets[name]
                    t.start()
                    shim = Shim(t.port, https_port)  # type: ignore[arg-type]
                    try:
                        r = run_h2load(shim.port, args.n, args.c, args.m, args.timeout)
                    finally:
                        shim.stop()
                        t.stop()
                    results[f"h2load:{name}"].append(r)
                    print(f"round {rnd + 1} h2load {name}: {r['rps']:.0f} req/s ({r['ok']} ok)"
                          f"{' ' + r['error'] if 'error' in r else ''}", flush=True)
                t = targets["omniproxy"]
                t.start()
                try:
                    ca = tmp / "home" / "ca" / "omniproxy-ca.crt"
                    for http in (["http2", "http1.1"] if rnd % 2 == 0 else ["http1.1", "http2"]):
                        dest = tmp / "big.out"
                        r = run_download(t.port, ca, f"https://localhost:{https_port}/big.bin", http, dest,
                                         args.timeout)
                        if http == "http2" and "error" not in r:
                            r["sha256_ok"] = sha256_file(dest) == digest
                        dest.unlink(missing_ok=True)
                        key = "download:h2" if http == "http2" else "download:http1.1"
                        results[key].append(r)
                        print(f"round {rnd + 1} download {http}: {r.get('mib_s', 0):.0f} MiB/s "
                              f"(HTTP/{r.get('version', '?')}{', sha256 ok' if r.get('sha256_ok') else ''}"
                              f"{' ' + r['error'] if 'error' in r else ''})", flush=True)
                finally:
                    t.stop()
        finally:
            nginx.terminate()
            nginx.wait(10)

    def best_med(key: str, field: str) -> tuple[float, float]:
        xs = [r.get(field, 0.0) for r in results[key]]
        return (max(xs), statistics.median(xs)) if xs else (0.0, 0.0)

    o_best, o_med = best_med("h2load:omniproxy", "rps")
    m_best, m_med = best_med("h2load:mitmdump", "rps")
    d2_best, d2_med = best_med("download:h2", "mib_s")
    d1_best, d1_med = best_med("download:http1.1", "mib_s")
    print()
    print(f"h2load -n {args.n} -c {args.c} -m {args.m} small.json (req/s, best / median):")
    print(f"  omniproxy {o_best:8.0f} / {o_med:8.0f}")
    print(f"  mitmdump  {m_best:8.0f} / {m_med:8.0f}")
    print(f"  ratio omniproxy/mitmdump: {o_best / m_best if m_best else float('nan'):.2f}x best, "
          f"{o_med / m_med if m_med else float('nan'):.2f}x median")
    print(f"{args.size_mib} MiB download through omniproxy (MiB/s, best / median):")
    print(f"  h2        {d2_best:8.0f} / {d2_med:8.0f}   sha256 ok: "
          f"{all(r.get('sha256_ok') for r in results['download:h2'])}")
    print(f"  http/1.1  {d1_best:8.0f} / {d1_med:8.0f}")
    print(f"  ratio h2/http1.1: {d2_best / d1_best if d1_best else float('nan'):.2f} best, "
          f"{d2_med / d1_med if d1_med else float('nan'):.2f} median")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results,
                                         "loadavg": os.getloadavg(), "time": time.time()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
