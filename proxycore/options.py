"""The one typed options object shared by the engine, the CLI and the UI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_REDACT = [
    "authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "proxy-authorization",
]


def omniproxy_home() -> Path:
    """~/.omniproxy, or $OMNIPROXY_HOME."""
    env = os.environ.get("OMNIPROXY_HOME")
    return Path(env).expanduser() if env else Path.home() / ".omniproxy"


@dataclass
class Options:
    # server
    host: str = "127.0.0.1"
    port: int = 8080
    verbose: bool = False
    # mitm
    mitm: bool = True
    ca_cert: str | None = None  # None: <home>/ca/omniproxy-ca.crt
    ca_key: str | None = None  # None: <home>/ca/omniproxy-ca.key
    skip_hosts: list[str] = field(default_factory=list)
    ssl_insecure: bool = False
    upstream_ca: str | None = None
    # capture
    output: str | None = None  # None: stdout (headless only)
    format: str | None = None  # ndjson | json | har | ir; None: from the extension, else ndjson
    include_headers: bool = True
    include_body: bool = True
    max_body_size: int = 1048576
    skip_binary: bool = True
    redact: bool = True
    filter_headers: list[str] = field(default_factory=list)  # redacted in addition to DEFAULT_REDACT
    sample_rate: float = 1.0
    always_hosts: list[str] = field(default_factory=list)
    never_hosts: list[str] = field(default_factory=list)
    db: str | None = None
    queue_size: int = 10000
    batch_size: int = 100
    flush_interval: float = 0.1
    # filter (scope of capture)
    include_hosts: list[str] = field(default_factory=list)
    exclude_hosts: list[str] = field(default_factory=list)
    include_paths: list[str] = field(default_factory=list)
    exclude_paths: list[str] = field(default_factory=list)
    include_methods: list[str] = field(default_factory=list)
    exclude_methods: list[str] = field(default_factory=list)
    # upstream proxy
    upstream: str | None = None
    # ui
    max_flows: int = 50000
    # engine limits and timeouts (seconds)
    connect_timeout: float = 15.0
    client_head_timeout: float = 30.0
    keepalive_timeout: float = 60.0
    response_timeout: float = 120.0
    body_idle_timeout: float = 60.0
    max_head_size: int = 65536
    max_pipelined: int = 16
    body_buffer_limit: int = 33554432
    scripts: list[str] = field(default_factory=list)
    alpn: list[str] = field(default_factory=lambda: ["http/1.1"])

    @property
    def ca_cert_path(self) -> Path:
        return Path(self.ca_cert).expanduser() if self.ca_cert else omniproxy_home() / "ca" / "omniproxy-ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return Path(self.ca_key).expanduser() if self.ca_key else omniproxy_home() / "ca" / "omniproxy-ca.key"

    @property
    def redacted_headers(self) -> frozenset[str]:
        if not self.redact:
            return frozenset()
        return frozenset(h.lower() for h in DEFAULT_REDACT + list(self.filter_headers))

    @property
    def capture_format(self) -> str:
        if self.format:
            return self.format
        if self.output:
            ext = Path(self.output).suffix.lower().lstrip(".")
            if ext in ("ndjson", "json", "har", "ir"):
                return ext
            if ext == "jsonl":
                return "ndjson"
        return "ndjson"
