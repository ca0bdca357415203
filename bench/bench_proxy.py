#!/usr/bin/env python3
"""Proxy throughput, latency and memory: direct vs mitmdump vs omniproxy-tui --no-ui, one interleaved run.

    python3 bench/bench_proxy.py [--duration 8] [--concurrency 50] [--rounds 1]

Needs (installed by this script when missing, Debian/root): nginx-light (the local origin) and hey
(the load generator, which speaks through an HTTP proxy and tunnels HTTPS with CONNECT). mitmproxy
11.0.2 (the newest that runs on Python 3.11) is installed into bench/.venv-mitm.

Every target runs the same scenarios in turn (interleaved, so machine noise hits all alike):
small body (~100 B) and 1 MiB body, over HTTP and HTTPS (the proxies intercept TLS). omniproxy
captures every flow to NDJSON; mitmdump runs as users run it (no capture file). Peak memory is
the proxy process's VmHWM. Only 127.0.0.1 is used; every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MITM_VENV = HERE / ".venv-mitm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def ensure_tools() -> None:
    missing = [p for p, b in (("nginx-light", "nginx"), ("hey", "hey")) if not shutil.which(b)
               and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        print(f"installing {' '.join(missing)} ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)
    if not (MITM_VENV / "bin" / "mitmdump").exists():
        print("installing mitmproxy 11.0.2 into bench/.venv-mitm ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MITM_VENV)], check=True)
        subprocess.run([str(MITM_VENV / "bin" / "pip"), "install", "-q", "mitmproxy==11.0.2"], check=True)


def make_origin_cert(d: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT))
    from proxycore.certs import CertificateAuthority

    ca = CertificateAuthority.generate(d / "origin-ca.crt", d / "origin-ca.key", cn="Bench Origin CA")
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca.key, hashes.SHA256()))
    (d / "origin.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca.cert_pem)
    (d / "origin.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return d / "origin.crt", d / "origin.key"


def start_nginx(d: Path, http_port: int, https_port: int) -> subprocess.Popen:
    www = d / "www"
    www.mkdir()
    (www / "small.json").write_bytes(b'{"hello":"world","items":[1,2,3],"text":"' + b"x" * 60 + b'"}')
    (www / "1mb.bin").write_bytes(os.urandom(1 << 20))
    crt, key = make_origin_cert(d)
    conf = d / "nginx.conf"
    conf.write_text(f"""
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
  types {{ application/json json; application/octet-stream bin; }}
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{http_port};
    listen 127.0.0.1:{https_port} ssl;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    root {www};
  }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    p = subprocess.Popen([nginx, "-c", str(conf), "-p", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(http_port)
    wait_port(https_port)
    return p


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_hey(url: str, proxy: str | None, duration: float, concurrency: int) -> dict:
    args = ["hey", "-z", f"{duration}s", "-c", str(concurrency)]
    if proxy:
        args += ["-x", proxy]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    total_s = float(re.search(r"Total:\s+([\d.]+) secs", out).group(1))
    p50 = re.search(r"50%+ in ([\d.]+) secs", out)
    p99 = re.search(r"99%+ in ([\d.]+) secs", out)
    ok = sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", out))
    errors = re.findall(r"\[(\d+)\]\s+Get .*", out)
    # only complete 200 responses count: an error page served fast is not throughput
    return {"rps": ok / total_s if total_s else 0.0, "p50_ms": float(p50.group(1)) * 1000 if p50 else float("nan"),
            "p99_ms": float(p99.group(1)) * 1000 if p99 else float("nan"), "ok": ok,
            "errors": sum(int(e) for e in errors)}


class Target:
    def __init__(self, name: str, argv: list[str] | None, port: int | None, env: dict | None = None) -> None:
        self.name, self.argv, self.port, self.env = name, argv, port, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self.argv:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         env={**os.environ, **(self.env or {})})
            wait_port(self.port)

    @property
    def proxy(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port else None

    def stop(self) -> float:
        if not self.proc:
            return float("nan")
        peak = peak_rss_mib(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="omniproxy-bench-"))
    tmp.chmod(0o755)  # nginx workers run as an unprivileged user and must read the files
    http_port, https_port = free_port(), free_port()
    nginx = start_nginx(tmp, http_port, https_port)
    home = tmp / "home"
    omni_port, mitm_port = free_port(), free_port()
    omni_bin = shutil.which("omniproxy-tui") or str(Path(sys.executable).parent / "omniproxy-tui")
    targets = [
        Target("direct", None, None),
        Target("mitmdump", [str(MITM_VENV / "bin" / "mitmdump"), "--listen-host", "127.0.0.1", "-p", str(mitm_port),
                            "--ssl-insecure", "-q", "--set", f"confdir={tmp / 'mitm'}"], mitm_port),
        Target("omniproxy", [omni_bin, "--no-ui", "-p", str(omni_port), "--upstream-ca", str(tmp / "origin-ca.crt"),
                             "-o", str(tmp / "capture.ndjson")], omni_port, {"OMNIPROXY_HOME": str(home)}),
    ]
    scenarios = [
        ("http small", f"http://127.0.0.1:{http_port}/small.json"),
        ("https small", f"https://localhost:{https_port}/small.json"),
        ("http 1MiB", f"http://127.0.0.1:{http_port}/1mb.bin"),
        ("https 1MiB", f"https://localhost:{https_port}/1mb.bin"),
    ]
    results: dict = {}
    peaks: dict = {}
    try:
        for t in targets:
            t.start()
        # warm-up: mint leaf certs, open pools
        for t in targets:
            for _, url in scenarios:
                run_hey(url, t.proxy, 1, 4)
        for rnd in range(args.rounds):
            for sname, url in scenarios:
                for t in targets:
                    r = run_hey(url, t.proxy, args.duration, args.concurrency)
                    results.setdefault(sname, {}).setdefault(t.name, []).append(r)
                    print(f"round {rnd + 1} {sname:12} {t.name:10} {r['rps']:9.1f} req/s  "
                          f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  ok {r['ok']}", flush=True)
    finally:
        for t in targets:
            peaks[t.name] = t.stop()
        nginx.terminate()
        nginx.wait(10)
    captured = sum(1 for _ in open(tmp / "capture.ndjson")) if (tmp / "capture.ndjson").exists() else 0
    print()
    print(f"{'scenario':12} {'direct':>10} {'mitmdump':>10} {'omniproxy':>10} {'omni/mitm':>10} {'omni/direct':>12}"
          f" {'p99 mitm':>9} {'p99 omni':>9}")
    summary = {}
    for sname, _ in scenarios:
        best = {n: max(r["rps"] for r in rs) for n, rs in results[sname].items()}
        p99 = {n: min(r["p99_ms"] for r in rs) for n, rs in results[sname].items()}
        ratio = best["omniproxy"] / best["mitmdump"] if best["mitmdump"] else float("inf")
        summary[sname] = {"rps": best, "p99_ms": p99, "omni_vs_mitm": ratio,
                          "omni_vs_direct": best["omniproxy"] / best["direct"]}
        print(f"{sname:12} {best['direct']:10.1f} {best['mitmdump']:10.1f} {best['omniproxy']:10.1f} "
              f"{ratio:9.2f}x {best['omniproxy'] / best['direct']:11.2f}x {p99['mitmdump']:8.1f} {p99['omniproxy']:8.1f}")
    print(f"\npeak memory (VmHWM): mitmdump {peaks['mitmdump']:.1f} MiB, omniproxy {peaks['omniproxy']:.1f} MiB")
    print(f"omniproxy captured {captured} flows to NDJSON")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "summary": summary, "peaks": peaks,
                                               "captured": captured}, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
