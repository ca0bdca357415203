"""Who may use the proxy: client networks (like mitmproxy's block_global), loopback targets, and
proxy authentication (like mitmproxy's proxyauth).

The Proxy registers these addons only when they have something to do: `AccessAddon` when it
listens beyond loopback, `ProxyAuthAddon` with --proxy-auth. Both run before every other addon, so
scope, user scripts, the UI and the capture see a request only after it was let through (a
refused one is still a flow: the 403/407 answer) and never see a proxy password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import socket
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from proxycore.flows.flow import Flow, Headers, Peer, Response

if TYPE_CHECKING:
    from proxycore.proxy.server import Proxy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REALM = "omniproxy"
REDACTED = "[REDACTED]"  # the capture's placeholder (capture/record.py), so both read the same

# Clients allowed by default when the proxy listens beyond loopback: the networks that are not
# reachable from the internet. mitmproxy blocks `ipaddress.is_global`; Python counts the
# documentation and benchmarking ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
# 198.18.0.0/15 ...) as not global, but no client of ours has a legitimate reason to come from
# one, so we name the private networks instead and treat everything else as public.
PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # RFC 6598 shared address space (carrier-grade NAT, Tailscale)
    "169.254.0.0/16",  # link-local
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
))


class AccessError(ValueError):
    """A bad access option; the message is one line naming the option and the fix."""


def parse_ip(text: str) -> IPAddress | None:
    """The address in a peer/host string ("::ffff:10.0.0.1", "fe80::1%eth0"), IPv4-mapped IPv6
    unwrapped; None when it is not an IP address."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback_host(host: str) -> bool:
    """Does listening on `host` keep the proxy on this machine? ("127.0.0.1", "::1", "localhost")."""
    h = host.strip().strip("[]").lower().rstrip(".")
    if h == "localhost":
        return True
    ip = parse_ip(h)
    return ip is not None and ip.is_loopback


def is_loopback_target(host: str) -> bool:
    """Would connecting to `host` reach this machine itself? Loopback addresses, the unspecified
    address (0.0.0.0 / :: connect to the local host on Linux), localhost and *.localhost (RFC 6761),
    and the legacy IPv4 spellings the resolver accepts (127.1, 2130706433, 0x7f000001)."""
    h = host.strip().strip("[]").lower().rstrip(".")
    if h == "localhost" or h.endswith(".localhost"):
        return True
    ip = parse_ip(h)
    if ip is None and h and h[0].isdigit():
        try:  # what getaddrinfo would make of it
            ip = ipaddress.IPv4Address(socket.inet_aton(h))
        except (OSError, ValueError):
            return False
    if ip is None:
        return False
    return ip.is_loopback or ip.is_unspecified or (ip.version == 4 and ip in _THIS_HOST)


_THIS_HOST = ipaddress.ip_network("0.0.0.0/8")  # "this network": 0.x.y.z reaches the local host


def parse_allow_clients(items: Iterable[str]) -> list[IPNetwork]:
    """The --allow-client networks; AccessError naming the bad entry."""
    out: list[IPNetwork] = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise AccessError(f"--allow-client (server.allowClients): {item!r} is not an IP network; "
                              "give one like 10.0.0.0/8, 192.168.1.20 or fd00::/8") from None
    return out


def describe_clients(allowed: list[IPNetwork]) -> str:
    """Who may connect, for the start-up line."""
    if not allowed:
        return "loopback and private networks"
    return "loopback, " + ", ".join(str(n) for n in allowed)


class _Bounded(OrderedDict):
    """A dict that forgets its oldest entries beyond `limit` (so a flood cannot grow it)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: object, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class AccessAddon:
    """Listening beyond loopback: clients from outside the allowed networks are disconnected at
    once with one warning line per address (mitmproxy's block_global does the same), and clients
    from other machines may not reach this machine's loopback through the proxy (403) unless
    --allow-loopback-targets."""

    def __init__(self, proxy: Proxy, allowed: list[IPNetwork], allow_loopback_targets: bool,
                 warn: Callable[[str], None]) -> None:
        self.proxy = proxy
        self.allowed = tuple(allowed)
        self.allow_loopback_targets = allow_loopback_targets
        self.warn = warn
        self.remote: dict[tuple[str, int], bool] = {}  # live connection -> client is on another machine
        self.warned = _Bounded(4096)

    def client_allowed(self, ip: IPAddress) -> bool:
        if ip.is_loopback:
            return True  # this machine: always, as in mitmproxy
        networks = self.allowed or PRIVATE_NETWORKS
        return any(ip in net for net in networks)

    def client_connected(self, peer: Peer) -> None:
        addr = peer.address
        if addr is None:
            return
        ip = parse_ip(addr[0])
        if ip is None:  # not an IP peer (a Unix socket, an in-memory pipe): this machine
            return
        if not self.client_allowed(ip):
            peer.error = "refused: client address not allowed"
            if str(ip) not in self.warned:
                self.warned.put(str(ip), True)
                self.warn(f"refused client {ip}: not in the allowed networks ({describe_clients(list(self.allowed))}); "
                          "allow it with --allow-client CIDR")
            for conn in list(self.proxy.connections):
                if conn.peer is peer:
                    conn.abort()  # no response at all: a scanner learns nothing (mitmproxy kills it too)
                    break
            return
        if not ip.is_loopback:
            self.remote[addr] = True

    def client_disconnected(self, peer: Peer) -> None:
        if peer.address is not None:
            self.remote.pop(peer.address, None)

    def requestheaders(self, flow: Flow) -> None:
        if flow.response is None and not self.allow_loopback_targets and flow.client_addr in self.remote \
                and is_loopback_target(flow.request.host):
            host = flow.request.host
            msg = (f"requests to this machine's loopback ({host}) are refused for clients on other machines; "
                   "start the proxy with --allow-loopback-targets to allow them")
            flow.response = _local_response(403, "Forbidden", msg)
            flow.error = f"refused: loopback target {host} from a client on another machine"

    connect = requestheaders


# ---------------------------------------------------------------- proxy authentication


class Validator:
    """Checks a user name and password; `describe` is what the start-up line shows."""

    describe = ""

    def __call__(self, user: str, password: str) -> bool:
        raise NotImplementedError


class SingleUser(Validator):
    def __init__(self, user: str, password: str) -> None:
        self.user = user.encode()
        self.password = password.encode()
        self.describe = f"user {user}"

    def __call__(self, user: str, password: str) -> bool:
        # both compared in constant time, and both always compared
        ok_user = hmac.compare_digest(user.encode(), self.user)
        ok_pass = hmac.compare_digest(password.encode(), self.password)
        return ok_user and ok_pass


class Htpasswd(Validator):
    """An Apache htpasswd file with bcrypt entries (`htpasswd -B`: $2y$; $2a$/$2b$ also read)."""

    def __init__(self, path: str) -> None:
        try:
            import bcrypt
        except ImportError:
            raise AccessError("--proxy-auth @FILE needs the bcrypt package (pip install bcrypt)") from None
        self._bcrypt = bcrypt
        p = Path(path).expanduser()
        where = f"--proxy-auth @{path}"
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AccessError(f"{where}: no such htpasswd file") from None
        except IsADirectoryError:
            raise AccessError(f"{where}: is a directory, not an htpasswd file") from None
        except UnicodeDecodeError:
            raise AccessError(f"{where}: not a text file") from None
        except OSError as exc:
            raise AccessError(f"{where}: cannot read it ({exc.strerror or exc})") from None
        self.users: dict[str, bytes] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise AccessError(f"{where}: line {n} is not user:hash")
            if not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                raise AccessError(f"{where}: line {n}: the hash for {user!r} is not bcrypt; only bcrypt is "
                                  "accepted (create entries with htpasswd -B)")
            self.users[user] = hashed.encode()
        if not self.users:
            raise AccessError(f"{where}: the file has no users (add some with htpasswd -B)")
        # compared against when the user is unknown, so an unknown user costs as much as a wrong password
        self._dummy = next(iter(self.users.values()))
        self.describe = f"htpasswd {p} ({len(self.users)} user{'s' if len(self.users) != 1 else ''})"

    def __call__(self, user: str, password: str) -> bool:
        hashed = self.users.get(user)
        try:
            ok = self._bcrypt.checkpw(password.encode(), hashed or self._dummy)
        except ValueError:  # a malformed hash in the file
            return False
        return ok and hashed is not None


def parse_proxy_auth(spec: str) -> Validator:
    """--proxy-auth: "user:pass" or "@FILE" (htpasswd, bcrypt). AccessError for anything else."""
    if spec.startswith("@"):
        if len(spec) == 1:
            raise AccessError("--proxy-auth (server.proxyAuth): @ needs a file name: @/path/to/htpasswd")
        return Htpasswd(spec[1:])
    user, sep, password = spec.partition(":")
    if not sep or not user or not password:
        raise AccessError("--proxy-auth (server.proxyAuth): expected user:pass or @FILE (an htpasswd "
                          "file with bcrypt hashes)")
    return SingleUser(user, password)


def parse_basic(value: str) -> tuple[str, str] | None:
    """(user, password) from a `Basic base64(user:pass)` value; None when it is not one. The
    password may hold colons (RFC 7617: the user name ends at the first)."""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class ProxyAuthAddon:
    """--proxy-auth: a request without valid Basic credentials in Proxy-Authorization is answered
    `407 Proxy Authentication Required`. As in mitmproxy, a CONNECT that authenticated makes its
    connection authenticated: the requests inside the tunnel carry no credentials of their own.

    The header is removed from every flow that passes (it is hop-by-hop and never forwarded
    anyway), and its value is replaced by [REDACTED] in a refused flow, whose error names the user
    (never the password). Valid header values are remembered (a SHA-256 of them, a bounded set),
    so bcrypt runs once per client and not once per request."""

    def __init__(self, validator: Validator, cache_size: int = 1024) -> None:
        self.validator = validator
        self.authenticated: set[tuple[str, int]] = set()  # connections authenticated by a CONNECT
        self.good = _Bounded(cache_size)  # sha256(header value) -> user name

    def client_connected(self, peer: Peer) -> None:
        pass  # defined so that the engine reports client_disconnected (it keeps Peers only then)

    def client_disconnected(self, peer: Peer) -> None:
        if peer.address is not None:
            self.authenticated.discard(peer.address)

    def check(self, flow: Flow) -> bool:
        headers = flow.request.headers
        value = headers.get("proxy-authorization")
        if value is not None:
            key = hashlib.sha256(value.encode("latin-1", "replace")).digest()
            if key in self.good:
                self.good.move_to_end(key)
                headers.remove("proxy-authorization")
                return True
            creds = parse_basic(value)
            if creds is not None and self.validator(*creds):
                self.good.put(key, creds[0])
                headers.remove("proxy-authorization")
                return True
            headers.set("Proxy-Authorization", REDACTED)
            who = f"user {creds[0]!r}" if creds is not None else "malformed credentials"
            flow.error = f"proxy authentication failed ({who})"
        else:
            flow.error = "proxy authentication required (no credentials sent)"
        resp = _local_response(407, "Proxy Authentication Required",
                               "proxy authentication required: send valid credentials "
                               "(e.g. curl --proxy-user USER:PASS)")
        resp.headers.set("Proxy-Authenticate", f'Basic realm="{REALM}"')
        flow.response = resp
        return False

    def connect(self, flow: Flow) -> None:
        if self.check(flow) and flow.client_addr is not None:
            self.authenticated.add(flow.client_addr)

    def requestheaders(self, flow: Flow) -> None:
        if flow.is_replay:
            return  # sent by the proxy's own user (replay.client), not by a network client
        if flow.client_addr in self.authenticated:
            if flow.request.headers.get("proxy-authorization") is not None:
                flow.request.headers.remove("proxy-authorization")
            return
        self.check(flow)


def _local_response(status: int, reason: str, message: str) -> Response:
    return Response(status, reason, headers=Headers.from_pairs([("Content-Type", "text/plain; charset=utf-8")]),
                    body=(message + "\n").encode())
