"""WireGuard mode's configuration: the `--mode` value, the key file and the client's config.

`--mode` follows mitmproxy's syntax: `regular` (the default HTTP(S) proxy) or
`wireguard[:CONF_PATH][@PORT]`. The key file is JSON as mitmproxy writes it
(`{"server_key": ..., "client_key": ...}`, both private keys), generated once, created 0600 through
proxycore.safefile and never printed: only the client's own configuration is shown. Nothing here
imports mitmproxy_wireguard until keys must be generated.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from proxycore.options import omniproxy_home
from proxycore.safefile import write_atomic

DEFAULT_PORT = 51820
CLIENT_ADDRESS = "10.0.0.1/32"
CLIENT_DNS = "10.0.0.53"  # any address inside the tunnel: queries to port 53 are forwarded


@dataclass(frozen=True)
class Mode:
    kind: str  # "regular" | "wireguard"
    conf_path: Path | None = None  # wireguard: the key file
    port: int = DEFAULT_PORT  # wireguard: the UDP port

    @property
    def is_wireguard(self) -> bool:
        return self.kind == "wireguard"


def parse_mode(spec: str) -> Mode:
    """`regular` or `wireguard[:CONF_PATH][@PORT]`; ValueError (one line) otherwise."""
    s = (spec or "regular").strip()
    if s == "regular":
        return Mode("regular")
    name, _, rest = s.partition(":")
    port = DEFAULT_PORT
    if "@" in (rest if rest else name):
        if rest:
            rest, _, p = rest.rpartition("@")
        else:
            name, _, p = name.partition("@")
        if not p.isdigit() or not 0 <= int(p) < 65536:
            raise ValueError(f"mode {spec!r}: the port after @ must be 0..65535 (0: any free port)")
        port = int(p)
    if name != "wireguard":
        raise ValueError(f"mode {spec!r}: expected 'regular' or 'wireguard[:CONF_PATH][@PORT]'")
    path = Path(rest).expanduser() if rest else omniproxy_home() / "wireguard.conf"
    return Mode("wireguard", path, port)


@dataclass(frozen=True)
class Keys:
    server_key: str  # private keys, both (the client's config needs its private key)
    client_key: str

    @property
    def server_public(self) -> str:
        import mitmproxy_wireguard as wg

        return wg.pubkey(self.server_key)

    @property
    def client_public(self) -> str:
        import mitmproxy_wireguard as wg

        return wg.pubkey(self.client_key)


def load_or_create_keys(path: Path) -> Keys:
    """The keys in `path`, generated and written (0600) the first time. ValueError for a file
    that is not a key file (it is never overwritten)."""
    try:
        data = path.read_text()
    except FileNotFoundError:
        import mitmproxy_wireguard as wg

        keys = Keys(wg.genkey(), wg.genkey())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = json.dumps({"server_key": keys.server_key, "client_key": keys.client_key}, indent=4) + "\n"
        write_atomic(path, text.encode("ascii"))
        return keys
    try:
        d = json.loads(data)
        keys = Keys(str(d["server_key"]), str(d["client_key"]))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: not a WireGuard key file (JSON with server_key and client_key)") from None
    import mitmproxy_wireguard as wg

    try:
        wg.pubkey(keys.server_key)
        wg.pubkey(keys.client_key)
    except Exception:
        raise ValueError(f"{path}: a key in it is not a valid WireGuard key") from None
    return keys


def endpoint_host(host: str) -> str:
    """The address a client reaches the server at: the listen address, or for a wildcard the
    address this machine would send from (no packet is sent)."""
    if host not in ("", "0.0.0.0", "::"):
        return host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def client_config(keys: Keys, host: str, port: int) -> str:
    """The client's WireGuard configuration (what `wg-quick` and the phone apps read)."""
    h = f"[{host}]" if ":" in host else host
    return (
        "[Interface]\n"
        f"PrivateKey = {keys.client_key}\n"
        f"Address = {CLIENT_ADDRESS}\n"
        f"DNS = {CLIENT_DNS}\n"
        "\n"
        "[Peer]\n"
        f"PublicKey = {keys.server_public}\n"
        "AllowedIPs = 0.0.0.0/0\n"
        f"Endpoint = {h}:{port}\n"
    )


def system_resolver() -> tuple[str, int] | None:
    """The first nameserver of /etc/resolv.conf, or None."""
    try:
        with open("/etc/resolv.conf", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return (parts[1].split("%")[0], 53)
    except OSError:
        pass
    return None


def parse_resolver(spec: str) -> tuple[str, int]:
    """`host` or `host:port` ([v6]:port); ValueError otherwise."""
    s = spec.strip()
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "53"
    elif s.count(":") == 1:
        host, _, port = s.partition(":")
    else:
        host, port = s, "53"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{spec!r}: expected host or host:port")
    return host, int(port)


__all__ = ["CLIENT_ADDRESS", "CLIENT_DNS", "DEFAULT_PORT", "Keys", "Mode", "client_config", "endpoint_host",
           "load_or_create_keys", "parse_mode", "parse_resolver", "system_resolver"]
