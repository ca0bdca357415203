#!/usr/bin/env python3
"""Proxy throughput, latency and memory: direct vs mitmdump vs omniproxy-tui --no-ui, one interleaved run.

    python3 bench/bench_proxy.py [--duration 8] [--concurrency 50] [--rounds 5]
                                 [--ref GITREF ...] [--script bench/noop_addons.py]
                                 [--only https-*] [--targets omniproxy*] [--json FILE]

Needs (installed by this script when missing, Debian/root): nginx-light (the local origin) and hey
(the load generator, which speaks through an HTTP proxy and tunnels HTTPS with CONNECT). mitmproxy
11.0.2 (the newest that runs on Python 3.11) is installed into bench/.venv-mitm.

Every target runs the same scenarios in turn (interleaved, so machine noise hits all alike):
small body (~100 B) and 1 MiB body, over HTTP and HTTPS (the proxies intercept TLS). Targets:
  direct              hey straight to nginx
  mitmdump            as users run it (no capture file)
  omniproxy           the code of this work tree (run from it, not the installed omniproxy-tui)
  omniproxy+script    the same with `-s FILE` (--script): the cost of addon hooks
  omniproxy@REF       the code of another commit (--ref), checked out with `git worktree add
                      --detach` into the temporary directory and removed at the end
omniproxy captures every flow to NDJSON. The proxies are restarted every round and the order of
the targets rotates from round to round; peak memory is the proxy process's VmHWM per round. The
report gives best and median over rounds and the change of every omniproxy target against
mitmdump and against the first --ref. Only 127.0.0.1 is used; every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MITM_VENV = HERE / ".venv-mitm"
SCENARIOS = ["http-small", "https-small", "http-1mib", "https-1mib"]


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


def ensure_origin_tools() -> None:
    """nginx-light (the local origin) and hey (the load generator), from Debian when missing."""
    missing = [p for p, b in (("nginx-light", "nginx"), ("hey", "hey")) if not shutil.which(b)
               and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        print(f"installing {' '.join(missing)} ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def ensure_tools() -> None:
    ensure_origin_tools()
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
    # -t 0: no per-request timeout. With one, Go's transport (hey is Go 1.19) cancels a dial the
    # moment the request that started it is served by another connection that freed up; once any
    # worker waits on a dial, every finished request hands its connection over and dials anew, so
    # a proxy that answers faster than it can set up a tunnel sees a CONNECT (and a FIN) per
    # request: the run measures the client's dial churn, not the proxy. The subprocess timeout
    # still bounds a run that hangs.
    args = ["hey", "-t", "0", "-z", f"{duration}s", "-c", str(concurrency)]
    if proxy:
        args += ["-x", proxy]
    try:
        out = subprocess.run(args + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    except subprocess.TimeoutExpired:
        print(f"hey {url} via {proxy}: no end {duration + 60:g} s after it started (a hung request)", flush=True)
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "ok": 0, "errors": 1}
    total_s = float(re.search(r"Total:\s+([\d.]+) secs", out).group(1))
    p50 = re.search(r"50%+ in ([\d.]+) secs", out)
    p99 = re.search(r"99%+ in ([\d.]+) secs", out)
    ok = sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", out))
    errors = re.findall(r"\[(\d+)\]\s+Get .*", out)
    # only complete 200 responses count: an error page served fast is not throughput
    return {"rps": ok / total_s if total_s else 0.0, "p50_ms": float(p50.group(1)) * 1000 if p50 else float("nan"),
            "p99_ms": float(p99.group(1)) * 1000 if p99 else float("nan"), "ok": ok,
            "errors": sum(int(e) for e in errors)}


class TargetFailed(Exception):
    """A target that did not come up; the message is one line."""


class Target:
    def __init__(self, name: str, argv: list[str] | None, port: int | None, env: dict | None = None,
                 log: Path | None = None, cwd: Path | None = None) -> None:
        self.name, self.argv, self.port, self.env, self.log, self.cwd = name, argv, port, env, log, cwd
        self.proc: subprocess.Popen | None = None
        self.failed: str | None = None

    def start(self, timeout: float = 30) -> None:
        if not self.argv:
            return
        err = open(self.log, "wb") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=err, cwd=self.cwd,
                                         env={**os.environ, **(self.env or {})})
        finally:
            if self.log:
                err.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TargetFailed(f"{self.name}: exited with status {self.proc.returncode} before listening: "
                                   f"{self.last_error()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TargetFailed(f"{self.name}: nothing listening on 127.0.0.1:{self.port} after {timeout:.0f}s: "
                           f"{self.last_error()}")

    def last_error(self) -> str:
        """The last meaningful line the process wrote to stderr (its own one-line error)."""
        try:
            lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        except (OSError, AttributeError):
            lines = []
        errs = [ln for ln in lines if "error" in ln.lower()]
        return (errs or lines or ["(no output)"])[-1][:300]

    @property
    def proxy(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port else None

    def stop(self) -> float:
        """Stop the process; its peak memory (VmHWM, MiB) over this run."""
        p, self.proc = self.proc, None
        if p is None:
            return float("nan")
        peak = peak_rss_mib(p.pid)
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        return peak


# --------------------------------------------------------------------------- other commits (--ref)


def git(*args: str, check: bool = True) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=check).stdout.strip()


class RefTrees:
    """`git worktree add --detach` for every --ref, removed again in close() (always called)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.trees: list[Path] = []

    def add(self, ref: str) -> tuple[Path, str]:
        try:
            commit = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except subprocess.CalledProcessError:
            raise SystemExit(f"bench_proxy: error: --ref {ref}: not a commit in {ROOT}") from None
        d = self.base / f"ref-{len(self.trees)}"
        r = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(d), commit],
                           capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"bench_proxy: error: git worktree add {ref}: {r.stderr.strip()}")
        self.trees.append(d)
        return d, commit

    def close(self) -> None:
        for d in self.trees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(d)],
                           capture_output=True)
        if self.trees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)
        self.trees = []


def omniproxy_argv(tree: Path) -> tuple[list[str], dict]:
    """Run the CLI of the code in `tree` (not whatever `omniproxy-tui` on PATH is installed from):
    that tree first on PYTHONPATH, the entry point `omniproxy_tui.cli.main` called directly (works
    for every commit that has the click CLI, with or without a __main__ guard)."""
    env = {"PYTHONPATH": os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])}
    check = subprocess.run([sys.executable, "-c", "import omniproxy_tui.cli, proxycore as s; print(s.__file__)"],
                           capture_output=True, text=True, env={**os.environ, **env}, cwd=str(tree))
    where = Path(check.stdout.strip() or "/nonexistent")
    if check.returncode or not where.resolve().is_relative_to(tree.resolve()):
        raise TargetFailed(f"{tree}: cannot import its omniproxy_tui.cli/proxycore "
                           f"({(check.stderr.strip().splitlines() or [str(where)])[-1]})")
    code = "import sys; sys.argv[0] = 'omniproxy-tui'; from omniproxy_tui.cli import main; main()"
    return [sys.executable, "-c", code], env


# --------------------------------------------------------------------------- reporting


def _nanmedian(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def _best(xs: list[float], high: bool) -> float:
    xs = [x for x in xs if x == x]
    return (max(xs) if high else min(xs)) if xs else float("nan")


def _pct(new: float, old: float) -> float:
    return (new / old - 1) * 100 if old and old == old and new == new else float("nan")


def summarize(results: dict, peaks: dict) -> dict:
    """{scenario: {target: {metric: {"best": x, "median": y}}}} plus {"memory": {target: ...}}."""
    out: dict = {}
    for sname, per_target in results.items():
        for tname, rs in per_target.items():
            m = out.setdefault(sname, {}).setdefault(tname, {})
            for key, high in (("rps", True), ("p50_ms", False), ("p99_ms", False)):
                vals = [r[key] for r in rs]
                m[key] = {"best": _best(vals, high), "median": _nanmedian(vals), "rounds": len(vals)}
    out_mem = {t: {"best": _best(v, False), "median": _nanmedian(v), "rounds": len(v)}
               for t, v in peaks.items() if v}
    return {"scenarios": out, "memory": out_mem}


def comparisons(names: list[str], refs: list[str]) -> list[tuple[str, str]]:
    """(target, baseline) pairs: every omniproxy target vs mitmdump and vs the first --ref;
    the addon run also vs the plain one."""
    omni = [n for n in names if n.startswith("omniproxy")]
    pairs = []
    if "mitmdump" in names:
        pairs += [(t, "mitmdump") for t in omni]
    if refs and refs[0] in names:
        pairs += [(t, refs[0]) for t in omni if t != refs[0]]
    if "omniproxy+script" in names and "omniproxy" in names:
        pairs.append(("omniproxy+script", "omniproxy"))
    return pairs


def report(summary: dict, names: list[str], refs: list[str], rounds: int, max_slowdown: float) -> list[dict]:
    sc, mem = summary["scenarios"], summary["memory"]
    w = max([len(n) for n in names] + [9])
    print(f"\nper target, over {rounds} round(s): best / median")
    print(f"{'scenario':12} {'target':{w}} {'req/s best':>11} {'median':>9} {'p50 ms':>15} {'p99 ms':>15}")
    for sname, per_target in sc.items():
        for t in names:
            if t not in per_target:
                continue
            m = per_target[t]
            print(f"{sname:12} {t:{w}} {m['rps']['best']:11.1f} {m['rps']['median']:9.1f} "
                  f"{m['p50_ms']['best']:7.1f}/{m['p50_ms']['median']:<7.1f} "
                  f"{m['p99_ms']['best']:7.1f}/{m['p99_ms']['median']:<7.1f}")
    if mem:
        print("\npeak memory (VmHWM, MiB, best / median over rounds): " + ", ".join(
            f"{t} {v['best']:.1f} / {v['median']:.1f}" for t, v in mem.items()))
    rows = []
    pairs = comparisons(names, refs)
    if not pairs:
        return rows
    cw = max(len(f"{a} vs {b}") for a, b in pairs)
    print(f"\nchange vs baseline, best / median over rounds (req/s: + is faster; p99 and memory: + is more);"
          f" '<<' marks req/s more than {max_slowdown:g}% below the baseline")
    print(f"{'comparison':{cw}} {'scenario':12} {'req/s best':>10} {'median':>8} {'p99 best':>9} {'median':>8}")
    for a, b in pairs:
        worst = None
        for sname, per_target in sc.items():
            if a not in per_target or b not in per_target:
                continue
            ma, mb = per_target[a], per_target[b]
            row = {"target": a, "baseline": b, "scenario": sname,
                   "rps_best_pct": _pct(ma["rps"]["best"], mb["rps"]["best"]),
                   "rps_median_pct": _pct(ma["rps"]["median"], mb["rps"]["median"]),
                   "p99_best_pct": _pct(ma["p99_ms"]["best"], mb["p99_ms"]["best"]),
                   "p99_median_pct": _pct(ma["p99_ms"]["median"], mb["p99_ms"]["median"])}
            rows.append(row)
            slow = min(row["rps_best_pct"], row["rps_median_pct"]) < -max_slowdown
            print(f"{a + ' vs ' + b:{cw}} {sname:12} {row['rps_best_pct']:+9.1f}% {row['rps_median_pct']:+7.1f}% "
                  f"{row['p99_best_pct']:+8.1f}% {row['p99_median_pct']:+7.1f}%{'  <<' if slow else ''}")
            if worst is None or row["rps_median_pct"] < worst[0]:
                worst = (row["rps_median_pct"], sname)
        if a in mem and b in mem:
            print(f"{a + ' vs ' + b:{cw}} {'memory':12} {_pct(mem[a]['best'], mem[b]['best']):+9.1f}% "
                  f"{_pct(mem[a]['median'], mem[b]['median']):+7.1f}%")
        if worst is not None:
            print(f"{a + ' vs ' + b:{cw}} {'worst':12} req/s median {worst[0]:+.1f}% ({worst[1]})")
    return rows


# --------------------------------------------------------------------------- main


def _csv(values: list[str] | None) -> list[str]:
    return [x.strip() for v in values or [] for x in v.split(",") if x.strip()]


def _selected(name: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _on_sigterm(signum, frame):  # cleanup (worktrees, processes) runs in main's finally
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=f"scenarios: {', '.join(SCENARIOS)}")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions (proxies restarted each round)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per scenario and target each round")
    ap.add_argument("--ref", action="append", metavar="GITREF",
                    help="also measure the omniproxy of this commit (repeatable); the first is the A/B baseline")
    ap.add_argument("--script", metavar="FILE", help="also measure omniproxy with `-s FILE` (target omniproxy+script)")
    ap.add_argument("--only", action="append", metavar="SCENARIOS", help="comma-separated scenario names/globs")
    ap.add_argument("--targets", action="append", metavar="LIST",
                    help="comma-separated target names/globs (direct, mitmdump, omniproxy, omniproxy+script, omniproxy@REF)")
    ap.add_argument("--max-slowdown", type=float, default=5.0, metavar="PCT",
                    help="mark comparisons whose req/s is more than PCT%% below the baseline")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    if args.rounds < 1 or args.duration <= 0:
        ap.error("--rounds must be >= 1 and --duration > 0")
    scen_pat, target_pat = _csv(args.only), _csv(args.targets)
    scenarios = [s for s in SCENARIOS if _selected(s, scen_pat)]
    if not scenarios:
        ap.error(f"--only matches no scenario (there are: {', '.join(SCENARIOS)})")
    script = Path(args.script).resolve() if args.script else None
    if script is not None and not script.is_file():
        ap.error(f"--script {args.script}: no such file")
    ensure_tools()
    signal.signal(signal.SIGTERM, _on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="omniproxy-bench-"))
    tmp.chmod(0o755)  # nginx workers run as an unprivileged user and must read the files
    trees = RefTrees(tmp)
    nginx: subprocess.Popen | None = None
    targets: list[Target] = []
    results: dict = {}
    peaks: dict = {}
    failed: dict[str, str] = {}
    meta: dict = {"argv": sys.argv[1:], "loadavg_start": os.getloadavg(), "cpus": os.cpu_count(),
                  "head": git("rev-parse", "--short", "HEAD", check=False),
                  "dirty": bool(git("status", "--porcelain", "--untracked-files=no", check=False)), "refs": {}}
    ref_names: list[str] = []
    try:
        http_port, https_port = free_port(), free_port()
        urls = {"http-small": f"http://127.0.0.1:{http_port}/small.json",
                "https-small": f"https://localhost:{https_port}/small.json",
                "http-1mib": f"http://127.0.0.1:{http_port}/1mb.bin",
                "https-1mib": f"https://localhost:{https_port}/1mb.bin"}
        nginx = start_nginx(tmp, http_port, https_port)

        def omni(name: str, tree: Path, extra: list[str] = ()) -> Target:
            port = free_port()
            argv, env = omniproxy_argv(tree)
            slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
            return Target(name, argv + ["--no-ui", "-p", str(port), "--upstream-ca", str(tmp / "origin-ca.crt"),
                                        "-o", str(tmp / f"capture-{slug}.ndjson"), *extra], port,
                          {**env, "OMNIPROXY_HOME": str(tmp / "home")}, log=tmp / f"{slug}.stderr", cwd=tmp)

        mitm_port = free_port()
        wanted = [("direct", lambda: Target("direct", None, None)),
                  ("mitmdump", lambda: Target(
                      "mitmdump", [str(MITM_VENV / "bin" / "mitmdump"), "--listen-host", "127.0.0.1", "-p",
                                   str(mitm_port), "--ssl-insecure", "-q", "--set", f"confdir={tmp / 'mitm'}"],
                      mitm_port, log=tmp / "mitmdump.stderr")),
                  ("omniproxy", lambda: omni("omniproxy", ROOT))]
        if script is not None:
            wanted.append(("omniproxy+script", lambda: omni("omniproxy+script", ROOT, ["-s", str(script)])))
        for ref in args.ref or []:
            name = f"omniproxy@{ref}"
            if name in ref_names or not _selected(name, target_pat):
                continue
            tree, commit = trees.add(ref)
            meta["refs"][name] = commit
            print(f"{name} = {commit[:10]} (worktree {tree})", flush=True)
            ref_names.append(name)
            wanted.append((name, lambda name=name, tree=tree: omni(name, tree)))
        for name, make in wanted:
            if not _selected(name, target_pat):
                continue
            try:
                targets.append(make())
            except TargetFailed as exc:
                failed[name] = str(exc)
                print(f"SKIPPED {exc}", flush=True)
        if not targets:
            print("bench_proxy: error: no target left to measure", file=sys.stderr)
            return 1
        print(f"targets: {', '.join(t.name for t in targets)}; scenarios: {', '.join(scenarios)}; "
              f"{args.rounds} round(s) x {args.duration:g}s, concurrency {args.concurrency}, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        for rnd in range(args.rounds):
            live = []
            for t in targets:
                if t.name in failed:
                    continue
                try:
                    t.start()
                    live.append(t)
                except TargetFailed as exc:
                    failed[t.name] = str(exc)
                    print(f"SKIPPED {exc}", flush=True)
            # the order of the targets rotates every round: none always runs right after another
            k = rnd % len(live) if live else 0
            order = live[k:] + live[:k]
            try:
                if args.warmup > 0:  # mint leaf certs, open pools
                    for t in order:
                        for s in scenarios:
                            run_hey(urls[s], t.proxy, args.warmup, 4)
                for s in scenarios:
                    for t in order:
                        r = run_hey(urls[s], t.proxy, args.duration, args.concurrency)
                        r["round"] = rnd + 1
                        results.setdefault(s, {}).setdefault(t.name, []).append(r)
                        print(f"round {rnd + 1} {s:12} {t.name:22} {r['rps']:9.1f} req/s  p50 {r['p50_ms']:7.1f} ms"
                              f"  p99 {r['p99_ms']:7.1f} ms  ok {r['ok']}"
                              f"{'  errors ' + str(r['errors']) if r['errors'] else ''}", flush=True)
            finally:
                for t in live:
                    peak = t.stop()
                    if t.argv:
                        peaks.setdefault(t.name, []).append(peak)
        captured = {p.stem.removeprefix("capture-"): sum(1 for _ in open(p)) for p in tmp.glob("capture-*.ndjson")}
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        for t in targets:
            t.stop()
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        trees.close()
        shutil.rmtree(tmp, ignore_errors=True)
    names = [t.name for t in targets if t.name not in failed]
    summary = summarize(results, peaks)
    rows = report(summary, names, ref_names, args.rounds, args.max_slowdown)
    if captured:
        print("flows captured to NDJSON in the last round: " + ", ".join(f"{k} {v}" for k, v in sorted(captured.items())))
    for why in failed.values():
        print(f"not measured: {why}")
    meta["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps({
            "meta": meta, "scenarios": scenarios, "targets": names, "failed": failed, "results": results,
            "peaks_mib": peaks, "summary": summary, "comparisons": rows, "captured": captured}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
