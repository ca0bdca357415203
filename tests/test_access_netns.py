"""Clients on other machines: the real CLI listens on the host side of a veth pair, and curl runs
in a network namespace on the other side, so the proxy sees a private (10.x) or a public
(203.0.113.x, TEST-NET-3: documentation only, never routed) client address.

Each test builds its own namespace and veth pair with unique names and a free subnet, and removes
both in the fixture's teardown. Nothing outside them is touched. Skipped when not root or when
`ip netns` is unavailable.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cli import Running, clean_env

LISTEN = re.compile(r"^proxy listening on http://([\d.]+):(\d+) \(.*\) — capture: .*$")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def _netns_usable() -> str | None:
    """Why the namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if shutil.which("ip") is None or shutil.which("curl") is None:
        return "needs iproute2 (ip) and curl"
    probe = f"opxprobe{os.getpid() % 100000}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"ip netns is unavailable: {r.stderr.strip()}"
    try:
        r = _ip("netns", "exec", probe, "true", check=False)
    finally:
        _ip("netns", "del", probe, check=False)
    return f"ip netns exec is unavailable: {r.stderr.strip()}" if r.returncode != 0 else None


@dataclass
class Pair:
    ns: str
    host_ip: str  # the proxy listens here (host side)
    client_ip: str  # curl's address (namespace side)

    def curl(self, proxy: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                                                         "no_proxy")}
        return subprocess.run(["ip", "netns", "exec", self.ns, "curl", "-sS", "--max-time", "20", "--noproxy", "",
                               "-x", proxy, *extra, url], capture_output=True, text=True, env=env, timeout=40)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _ip("-4", "-o", "addr", "show").stdout
    return [ipaddress.ip_interface(m).network for m in re.findall(r"inet (\S+)", out)]


def _free_subnet(kind: str) -> ipaddress.IPv4Network:
    """A /30 of our own that overlaps nothing configured on this machine."""
    used = _used_networks()
    for _ in range(200):
        if kind == "public":  # TEST-NET-3 (RFC 5737): reserved for documentation, never routed
            net = ipaddress.ip_network(f"203.0.113.{random.randrange(0, 64) * 4}/30")
        else:
            net = ipaddress.ip_network(f"10.{random.randrange(200, 250)}.{random.randrange(0, 256)}."
                                       f"{random.randrange(0, 64) * 4}/30")
        if not any(net.overlaps(u) for u in used):
            return net
    pytest.skip("no free test subnet")


@pytest.fixture(params=["private"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    why = _netns_usable()
    if why:
        pytest.skip(why)
    tag = f"{os.getpid() % 10000}{random.randrange(1000):03d}"
    ns, host_if, ns_if = f"opx{tag}", f"opxh{tag}", f"opxn{tag}"
    net = _free_subnet(request.param)
    host_ip, client_ip = (str(a) for a in list(net.hosts())[:2])
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{client_ip}/30", "dev", ns_if)
        _ip("-n", ns, "link", "set", ns_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield Pair(ns, host_ip, client_ip)
    finally:
        _ip("link", "del", host_if, check=False)  # takes its peer (and the addresses, the route) along
        _ip("netns", "del", ns, check=False)


class _Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"path": self.path, "at": self.server.server_address[0]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def origins(pair: Pair) -> Iterator[dict[str, int]]:
    """An origin on this machine's loopback and one on the host side of the pair: {"lo": port, "veth": port}."""
    servers = {name: http.server.ThreadingHTTPServer((addr, 0), _Origin)
               for name, addr in (("lo", "127.0.0.1"), ("veth", pair.host_ip))}
    for s in servers.values():
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield {name: s.server_address[1] for name, s in servers.items()}
    for s in servers.values():
        s.shutdown()
        s.server_close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    started: list[Running] = []

    def run(*args: str) -> tuple[Running, str, str]:
        r = Running(["--no-ui", "--no-mitm", "-p", "0", "-o", str(tmp_path / "cap.ndjson"), *args],
                    clean_env(tmp_path), tmp_path)
        started.append(r)
        line = r.wait_line("err", LISTEN.match)
        m = LISTEN.match(line)
        return r, f"http://{m.group(1)}:{m.group(2)}", line

    yield run
    for r in started:
        r.stop()


def _stop(r: Running) -> list[str]:
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(timeout=20) == 0
    r.rest("err")  # adds the remaining lines to r.seen
    return r.seen["err"]


def test_private_client_allowed_loopback_targets_refused(pair: Pair, origins: dict[str, int], start) -> None:
    proxy, url, line = start("--host", pair.host_ip)
    assert line.endswith(" — clients: loopback and private networks"), line

    r = pair.curl(url, f"http://{pair.host_ip}:{origins['veth']}/ok")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"path": "/ok", "at": pair.host_ip}

    # this machine's loopback is not reachable through the proxy from another machine
    for target in (f"http://127.0.0.1:{origins['lo']}/secret", f"http://localhost:{origins['lo']}/secret",
                   f"http://127.1:{origins['lo']}/secret"):
        r = pair.curl(url, target, "-i")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("HTTP/1.1 403"), r.stdout
        assert "--allow-loopback-targets" in r.stdout and "secret" not in r.stdout.split("\n\n", 1)[1]  # text mode: \r\n read as \n
    r = pair.curl(url, f"http://127.0.0.1:{origins['lo']}/secret", "-p")  # CONNECT 127.0.0.1:port
    assert r.returncode != 0 and "403" in r.stderr, r.stderr
    lines = _stop(proxy)
    assert not any("Traceback" in s for s in lines)


def test_allow_loopback_targets(pair: Pair, origins: dict[str, int], start) -> None:
    proxy, url, line = start("--host", pair.host_ip, "--allow-loopback-targets")
    assert "loopback targets allowed" in line, line
    r = pair.curl(url, f"http://127.0.0.1:{origins['lo']}/local")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"path": "/local", "at": "127.0.0.1"}


@pytest.mark.parametrize("pair", ["public"], indirect=True)
def test_public_client_refused_with_one_warning(pair: Pair, origins: dict[str, int], start) -> None:
    proxy, url, line = start("--host", pair.host_ip)
    assert line.endswith(" — clients: loopback and private networks"), line
    for _ in range(2):
        r = pair.curl(url, f"http://{pair.host_ip}:{origins['veth']}/nope")
        assert r.returncode != 0, r.stdout  # closed without an answer, as mitmproxy's block_global does
    lines = _stop(proxy)
    warnings = [s for s in lines if f"refused client {pair.client_ip}" in s]
    assert len(warnings) == 1, lines
    assert warnings[0].startswith("omniproxy-tui: warning: ") and "--allow-client" in warnings[0]
    assert not any("/nope" in s for s in lines)  # no flow: the connection was closed on arrival


@pytest.mark.parametrize("pair", ["public"], indirect=True)
def test_allow_client_admits_a_public_network(pair: Pair, origins: dict[str, int], start) -> None:
    proxy, url, line = start("--host", pair.host_ip, "--allow-client", f"{pair.client_ip}/32")
    assert line.endswith(f" — clients: loopback, {pair.client_ip}/32"), line
    r = pair.curl(url, f"http://{pair.host_ip}:{origins['veth']}/yes")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/yes"
