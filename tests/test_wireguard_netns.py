"""WireGuard mode end to end with a real WireGuard client: Debian's wireguard-go and wg in a
network namespace of the test's own (the client, A), the proxy's WireGuard server on the host
side of A's veth pair, and the origins in a second namespace (B) that the proxy reaches over a
second veth pair. curl, a raw TCP client and a DNS query in A go through the tunnel; the proxy
captures them. Every address is on the test's own veth pairs (free 10.x /30 subnets); both
namespaces, both pairs and the wireguard-go process are removed in the fixture's teardown.
Skipped, with the reason, when not root, without /dev/net/tun or without the tools.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import collect_done, run, wait_for
from test_access_netns import _free_subnet, _ip, _netns_usable

from proxycore.flows.filter import parse

ORIGIN_SCRIPT = Path(__file__).parent / "wg_origin.py"
ORIGIN_NAME = "origin.test"


def _wg_usable() -> str | None:
    why = _netns_usable()
    if why:
        return why
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun for wireguard-go's TUN device"
    for tool in ("wireguard-go", "wg"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: apt-get install wireguard-go wireguard-tools)"
    return None


@dataclass
class Topo:
    a: str  # the WireGuard client's namespace
    b: str  # the origins' namespace
    host_a: str  # the proxy's WireGuard server listens here
    a_ip: str
    host_b: str
    b_ip: str  # the origins listen here
    wg_if: str
    procs: list[asyncio.subprocess.Process]


def _leaf(origin_ca, tmp: Path) -> tuple[Path, Path]:
    """A certificate for ORIGIN_NAME signed by the test origin CA (which the proxy trusts)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ORIGIN_NAME)]))
            .issuer_name(origin_ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(ORIGIN_NAME)]), critical=False)
            .sign(origin_ca.key, hashes.SHA256()))
    cert_path, key_path = tmp / "origin.crt", tmp / "origin.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
async def topo() -> AsyncIterator[Topo]:
    why = _wg_usable()
    if why:
        pytest.skip(why)
    tag = f"{os.getpid() % 1000}{random.randrange(1000):03d}"
    a, b = f"owga{tag}", f"owgb{tag}"
    ha, na, hb, nb = f"owha{tag}", f"owna{tag}", f"owhb{tag}", f"ownb{tag}"
    net_a = _free_subnet("private")
    net_b = _free_subnet("private")
    while net_b.overlaps(net_a):
        net_b = _free_subnet("private")
    host_a, a_ip = (str(x) for x in list(net_a.hosts())[:2])
    host_b, b_ip = (str(x) for x in list(net_b.hosts())[:2])
    t = Topo(a, b, host_a, a_ip, host_b, b_ip, f"owg{tag}", [])
    try:
        for ns, h, n, hip, nip in ((a, ha, na, host_a, a_ip), (b, hb, nb, host_b, b_ip)):
            _ip("netns", "add", ns)
            _ip("link", "add", h, "type", "veth", "peer", "name", n)
            _ip("link", "set", n, "netns", ns)
            _ip("addr", "add", f"{hip}/30", "dev", h)
            _ip("link", "set", h, "up")
            _ip("-n", ns, "addr", "add", f"{nip}/30", "dev", n)
            _ip("-n", ns, "link", "set", n, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield t
    finally:
        for p in t.procs:  # only the processes this test started, by their own handle
            if p.returncode is None:
                p.kill()
                try:
                    await asyncio.wait_for(p.wait(), 5)
                except TimeoutError:
                    pass
        for h in (ha, hb):
            _ip("link", "del", h, check=False)
        for ns in (a, b):
            _ip("netns", "del", ns, check=False)


async def _start_origin(t: Topo, cert: Path, key: Path) -> dict[str, int]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", t.b, sys.executable, str(ORIGIN_SCRIPT), t.b_ip, str(cert), str(key),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    t.procs.append(proc)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    return json.loads(line)


async def _checked(*args: str, timeout: float = 30) -> str:
    code, out, err = await run(*args, timeout=timeout)
    assert code == 0, f"{' '.join(args)} failed ({code}): {err.decode(errors='replace')[-2000:]}"
    return out.decode(errors="replace")


async def _start_client(t: Topo, tmp: Path, conf: dict[str, str], endpoint: tuple[str, int]) -> None:
    """wireguard-go in namespace A, configured with wg as the proxy's client config says."""
    import mitmproxy_wireguard as wg

    env = dict(os.environ, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1")
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", t.a, "wireguard-go", "-f", t.wg_if, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    t.procs.append(proc)

    async def has_link() -> bool:
        code, _, _ = await run("ip", "-n", t.a, "link", "show", t.wg_if, timeout=10)
        return code == 0

    for _ in range(200):  # bounded: wireguard-go creates its TUN device within a moment
        if await has_link():
            break
        assert proc.returncode is None, "wireguard-go exited"
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("wireguard-go made no interface")
    keyfile = tmp / "client.key"
    keyfile.write_text(conf["client_key"] + "\n")
    keyfile.chmod(0o600)
    await _checked("ip", "netns", "exec", t.a, "wg", "set", t.wg_if, "private-key", str(keyfile),
                   "peer", wg.pubkey(conf["server_key"]), "allowed-ips", "0.0.0.0/0",
                   "endpoint", f"{endpoint[0]}:{endpoint[1]}")
    await _checked("ip", "-n", t.a, "addr", "add", "10.0.0.1/32", "dev", t.wg_if)
    await _checked("ip", "-n", t.a, "link", "set", t.wg_if, "up")
    # everything but the veth's own /30 (where the WireGuard endpoint is) goes into the tunnel
    await _checked("ip", "-n", t.a, "route", "add", "default", "dev", t.wg_if)


_TCP_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
if sys.argv[3] == "banner":
    print(s.recv(100).decode().strip())
s.sendall(b"ping")
print(s.recv(100).decode().strip())
"""

_DNS_CLIENT = """
import socket, sys
q = b"\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x04test\\x00\\x00\\x01\\x00\\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for _ in range(5):  # UDP: a retry or two, as any resolver does
    s.sendto(q, (sys.argv[1], 53))
    try:
        a = s.recv(512)
        break
    except TimeoutError:
        continue
print(a[:2].hex(), socket.inet_ntoa(a[-4:]))
"""


async def test_wireguard_client_end_to_end(topo: Topo, make_proxy, origin_ca, tmp_path: Path) -> None:
    t = topo
    cert, key = _leaf(origin_ca, tmp_path)
    ports = await _start_origin(t, cert, key)
    conf_path = tmp_path / "wireguard.conf"
    proxy = await make_proxy(mode=f"wireguard:{conf_path}@0", host=t.host_a,
                             wireguard_dns=f"{t.b_ip}:{ports['dns']}", skip_hosts=["skipped.test"])
    done = collect_done(proxy)
    assert proxy.wireguard is not None and proxy.address[0] == t.host_a
    assert oct(conf_path.stat().st_mode & 0o777) == "0o600"
    conf = json.loads(conf_path.read_text())
    assert f"PrivateKey = {conf['client_key']}" in proxy.wireguard.client_config
    assert f"Endpoint = {t.host_a}:{proxy.address[1]}" in proxy.wireguard.client_config
    await _start_client(t, tmp_path, conf, proxy.address)

    # plain HTTP through the tunnel
    out = await _checked("ip", "netns", "exec", t.a, "curl", "-sS", "--noproxy", "*",
                         f"http://{t.b_ip}:{ports['http']}/hello?x=1")
    assert json.loads(out)["path"] == "/hello?x=1"
    flow = await wait_for(lambda: next((f for f in done if f.request.path == "/hello"), None), what="http flow")
    assert flow.request.url == f"http://{t.b_ip}:{ports['http']}/hello?x=1"
    assert flow.response.status == 200 and flow.client_addr[0] == "10.0.0.1"

    # a big body: the tunnel side is flow-controlled, and all of it arrives
    n = 24 * 1024 * 1024
    out = await _checked("ip", "netns", "exec", t.a, "curl", "-sS", "--noproxy", "*", "-o", "/dev/null",
                         "-w", "%{size_download}", f"http://{t.b_ip}:{ports['http']}/bytes/{n}", timeout=60)
    assert int(out) == n
    big = await wait_for(lambda: next((f for f in done if f.request.path == f"/bytes/{n}"), None), what="big")
    assert big.response.body_size == n and big.error is None

    # HTTPS: the certificate for the SNI, the origin at the address the packets went to
    ca = str(proxy.ca.cert_path)
    out = await _checked("ip", "netns", "exec", t.a, "curl", "-sS", "--noproxy", "*", "--cacert", ca,
                         "--resolve", f"{ORIGIN_NAME}:{ports['https']}:{t.b_ip}",
                         f"https://{ORIGIN_NAME}:{ports['https']}/secure")
    assert json.loads(out)["path"] == "/secure"
    flow = await wait_for(lambda: next((f for f in done if f.request.path == "/secure"), None), what="https flow")
    assert flow.request.url == f"https://{ORIGIN_NAME}:{ports['https']}/secure"
    assert flow.server_addr == (t.b_ip, ports["https"])
    assert flow.client_tls.sni == ORIGIN_NAME and flow.server_tls is not None

    # a client that does not trust the CA: its handshake fails, and the event log says why (once)
    code, _, _ = await run("ip", "netns", "exec", t.a, "curl", "-sS", "--noproxy", "*",
                           "--resolve", f"{ORIGIN_NAME}:{ports['https']}:{t.b_ip}",
                           f"https://{ORIGIN_NAME}:{ports['https']}/untrusted", timeout=30)
    assert code == 60  # curl: peer certificate cannot be authenticated
    await wait_for(lambda: any(f"client TLS handshake for {ORIGIN_NAME} failed" in e.message
                               for e in proxy.events.entries()), what="the handshake warning")

    # --skip-host names the SNI: the TLS stream is relayed untouched (the origin's own certificate)
    out = await _checked("ip", "netns", "exec", t.a, "curl", "-sS", "-k", "--noproxy", "*",
                         "--resolve", f"skipped.test:{ports['https']}:{t.b_ip}",
                         f"https://skipped.test:{ports['https']}/skipped")
    assert json.loads(out)["path"] == "/skipped"
    skipped = await wait_for(lambda: next((f for f in done if f.tcp_messages is not None
                                           and f.request.port == ports["https"]), None), what="skipped flow")
    assert skipped.tcp_messages[0].from_client and skipped.tcp_messages[0].content[:1] == b"\x16"
    assert not any(f.request.path == "/skipped" for f in done)

    # a stream that is not HTTP: relayed, and recorded as a TCP flow
    out = await _checked("ip", "netns", "exec", t.a, sys.executable, "-c", _TCP_CLIENT, t.b_ip,
                         str(ports["echo"]), "echo")
    assert out.strip() == "echo:ping"
    tcp = await wait_for(lambda: next((f for f in done if f.tcp_messages is not None
                                       and f.request.port == ports["echo"]), None), what="tcp flow")
    assert [(m.from_client, m.content) for m in tcp.tcp_messages] == [(True, b"ping"), (False, b"echo:ping")]
    assert tcp.request.url == f"tcp://{t.b_ip}:{ports['echo']}" and tcp.error is None
    assert parse("~tcp")(tcp) and not parse("~http")(tcp)
    assert parse("~http")(flow) and not parse("~tcp")(flow)

    # a server-first protocol: the proxy waits a moment for client bytes, then relays
    out = await _checked("ip", "netns", "exec", t.a, sys.executable, "-c", _TCP_CLIENT, t.b_ip,
                         str(ports["banner"]), "banner")
    assert out.split("\n")[:2] == ["220 banner first", "250 got ping"]
    banner = await wait_for(lambda: next((f for f in done if f.tcp_messages is not None
                                          and f.request.port == ports["banner"]), None), what="banner flow")
    assert banner.tcp_messages[0].from_client is False

    # DNS to the configured resolver (a tiny server in B)
    out = await _checked("ip", "netns", "exec", t.a, sys.executable, "-c", _DNS_CLIENT, "10.0.0.53")
    assert out.split() == ["1234", "192.0.2.77"]
