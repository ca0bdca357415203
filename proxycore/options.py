"""The one typed options object shared by the engine, the CLI and the UI.

Each option is declared once, as a field of `Options` whose default is `opt(...)`: the default,
the YAML `section.key`, the help text and, when there is one, the command-line flag. Everything
else is derived from that declaration (`proxycore.config.KEYS`): the config-file keys and their
validation, the `OMNIPROXY_<FIELD>` environment names, `config init`/`config show`, and the click
flags (`omniproxy_tui.cli`). Adding an option is adding one field here.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REDACT = [
    "authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "proxy-authorization",
]
FORMATS = ("ndjson", "json", "har", "ir")
# ALPN protocols the MITM layer can speak to clients (h2 only where the origin speaks it too).
ALPN_PROTOCOLS = ("h2", "http/1.1")
ENV_PREFIX = "OMNIPROXY_"

# Value kinds, each with its own parsing and checks in `proxycore.config.coerce`:
#   bool, int, float, str          as the names say (inferred from the default when not given)
#   path                           an optional string, None = unset (inferred from a None default)
#   list                           strings; YAML list or a comma-separated string; flag repeatable, a,b ok
#   size                           bytes, int or 512k / 1MiB / 10MB
#   count                          a non-negative int; also true/false (= 1/0); the flag counts (-vv)
#   files                          like list, but each entry must be an existing file, and a flag value
#                                  is not split on commas (file names may contain them)
#   headers                        a list of header names
#   format, url, db                a capture format, an upstream proxy URL, a --db URL
#   specs                          like files, but each entry is a mitmproxy-style rule spec
#                                  (/filter/a/b), checked by proxycore.addons.rules
#   rules                          a YAML list of rule mappings (proxycore.addons.rules); no flag
#   mode                           `regular` or `wireguard[:CONF_PATH][@PORT]` (proxycore.wgconf)
#   preset, rate, ms               throttling: a preset name, 512kbit / 1mbit, 100ms / 1.5s (proxycore.throttle)
KINDS = frozenset({"bool", "int", "float", "str", "path", "list", "size", "count", "files", "headers",
                   "format", "url", "db", "specs", "rules", "preset", "rate", "ms", "mode"})
LIST_KINDS = frozenset({"list", "files", "headers", "specs"})


@dataclass(frozen=True)
class Key:
    """How one option appears in the config file, the environment and on the command line."""

    section: str | None  # None: a top-level scalar (`upstream: "url"`)
    name: str  # camelCase YAML key inside the section
    kind: str  # see KINDS
    help: str  # one line, the comment in `config init`
    default: Any = None
    field: str = ""  # the Options attribute; filled in from the dataclass field
    flag: str | None = None  # "--port", or "--mitm/--no-mitm" for an on/off pair; None: no flag
    short: str | None = None  # "-p"
    flag_help: str | None = None  # `--help` text; None: `help`, capitalised, with a full stop
    metavar: str | None = None  # "FILE", "PATTERN"; None: click's own (INTEGER, TEXT ...)
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound (timeouts: above=0)
    choices: tuple[str, ...] | None = None  # allowed values (format) or allowed list entries (alpn)
    secret: bool = False  # may hold a password: masked by `config show` unless --show-secrets
    env_name: str | None = None  # None: OMNIPROXY_<FIELD>
    example: str | None = None  # a commented example value for `config init`
    note: str | None = None  # a longer comment printed above the key in `config init`

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def env(self) -> str:
        return self.env_name or ENV_PREFIX + self.field.upper()

    @property
    def flag_name(self) -> str:
        """The flag named in error messages: for an on/off pair, the one that changes the default."""
        if not self.flag:
            return "--" + self.field.replace("_", "-")
        on, _, off = self.flag.partition("/")
        return off if off and self.default else on

    @property
    def cli_help(self) -> str:
        if self.flag_help:
            return self.flag_help
        text = self.help[:1].upper() + self.help[1:]
        return text if text.endswith(".") else text + "."


def _kind_of(default: Any) -> str:
    # bool before int: bool is an int subclass
    for typ, kind in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "list")):
        if isinstance(default, typ):
            return kind
    if default is None:
        return "path"
    raise TypeError(f"cannot infer the kind of an option from the default {default!r}")


def opt(default: Any, path: str, help: str, *, kind: str | None = None, **spec: Any) -> Any:
    """Declare one option: its default, its YAML `section.key` (or a top-level `key`), its help
    text, and any of `Key`'s other attributes (flag, short, minimum, choices, secret ...)."""
    section, _, name = path.rpartition(".")
    key = Key(section or None, name, kind or _kind_of(default), help, default, **spec)
    if key.kind not in KINDS:
        raise ValueError(f"unknown option kind {key.kind!r}")
    meta = {"option": key}
    if isinstance(default, list):  # a fresh list per Options instance
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


_REDACT_LIST = ", ".join(DEFAULT_REDACT)


@dataclass
class Options:
    # ---------------------------------------------------------------- server
    host: str = opt("127.0.0.1", "server.host", "address to listen on (0.0.0.0 = every interface)",
                    flag="--host", flag_help="Address to listen on.")
    port: int = opt(8080, "server.port", "port to listen on (0 = any free port)", minimum=0, maximum=65535,
                    flag="--port", short="-p", flag_help="Port to listen on (0: any free port).")
    # An int since -v became a count; the config file may still say true/false (= 1/0).
    mode: str = opt("regular", "server.mode", "regular (an HTTP(S) proxy) or wireguard[:CONF_PATH][@PORT] (a "
                    "user-space WireGuard server, UDP 51820 on the listen host; keys in <home>/wireguard.conf)",
                    kind="mode", flag="--mode", metavar="MODE",
                    flag_help="regular, or wireguard[:CONF_PATH][@PORT]: a WireGuard server (UDP, on --host) "
                    "whose clients' TCP traffic is proxied (as mitmproxy's --mode wireguard).")
    wireguard_dns: str | None = opt(None, "server.wireguardDns", "DNS server (host or host:port) WireGuard "
                                    "clients' queries are forwarded to; null = the first nameserver of "
                                    "/etc/resolv.conf", flag="--wireguard-dns", metavar="HOST[:PORT]")
    verbose: int = opt(0, "server.verbose", "log detail: 0 = one line per flow, 1 = per-connection detail "
                       "in --no-ui mode (true = 1)", kind="count", flag="--verbose", short="-v",
                       flag_help="Log more detail; repeatable (-vv). With --no-ui, -v adds per-connection "
                       "detail.")
    connect_timeout: float = opt(15.0, "server.connectTimeout", "seconds to connect to the origin or the "
                                 "upstream proxy (TCP + TLS)", above=0, flag="--connect-timeout",
                                 metavar="SECONDS")
    client_head_timeout: float = opt(30.0, "server.clientHeadTimeout", "seconds a client has to send a "
                                     "complete request head", above=0, flag="--client-head-timeout",
                                     metavar="SECONDS")
    keepalive_timeout: float = opt(60.0, "server.keepaliveTimeout", "seconds an idle client connection is "
                                   "kept open between requests", above=0, flag="--keepalive-timeout",
                                   metavar="SECONDS")
    response_timeout: float = opt(120.0, "server.responseTimeout", "seconds the origin has to start its "
                                  "response (the head) after the request was sent", above=0,
                                  flag="--response-timeout", metavar="SECONDS")
    body_idle_timeout: float = opt(60.0, "server.bodyIdleTimeout", "seconds a request or response body "
                                   "may stall mid-transfer", above=0, flag="--body-idle-timeout",
                                   metavar="SECONDS")
    max_head_size: int = opt(65536, "server.maxHeadSize", "largest request or response head in bytes "
                             "(64k, 1MiB ok)", kind="size", minimum=1, flag="--max-head-size")
    max_pipelined: int = opt(16, "server.maxPipelined", "requests read ahead on one client connection "
                             "before reading pauses", minimum=1, flag="--max-pipelined")
    body_buffer_limit: int = opt(33554432, "server.bodyBufferLimit", "largest body an addon may buffer "
                                 "whole (32MiB ok); larger bodies are streamed", kind="size", minimum=1,
                                 flag="--body-buffer-limit")
    # Who may use the proxy (proxycore/addons/access.py); see "Security" in README.md.
    allow_clients: list[str] = opt([], "server.allowClients", "client networks (CIDR) allowed when listening "
                                   "beyond loopback; empty = loopback and private networks",
                                   example='["10.0.0.0/8", "203.0.113.7"]', flag="--allow-client",
                                   metavar="CIDR",
                                   flag_help="When listening beyond loopback, allow clients from this network "
                                   "(repeatable, a,b ok); replaces the default, loopback and private networks. "
                                   "Loopback is always allowed.")
    allow_loopback_targets: bool = opt(False, "server.allowLoopbackTargets", "let clients on other machines "
                                       "reach this machine's loopback (127.0.0.1, localhost) through the proxy",
                                       flag="--allow-loopback-targets")
    proxy_auth: str | None = opt(None, "server.proxyAuth", "require proxy credentials: user:pass, or @FILE "
                                 "(an htpasswd file with bcrypt hashes)", secret=True,
                                 example='"@/etc/omniproxy/htpasswd"', flag="--proxy-auth",
                                 metavar="USER:PASS|@FILE",
                                 flag_help="Require proxy authentication (407): user:pass, or @FILE for an "
                                 "htpasswd file with bcrypt hashes (htpasswd -B).")
    scripts: list[str] = opt([], "server.scripts", "Python files that define addons (like mitmproxy's -s), "
                             "loaded in order", kind="files", flag="--script", short="-s", metavar="FILE",
                             flag_help="Load addons from a Python file (repeatable).")
    # ---------------------------------------------------------------- mitm
    mitm: bool = opt(True, "mitm.enabled", "decrypt HTTPS (CONNECT) traffic with the generated CA",
                     flag="--mitm/--no-mitm", flag_help="Decrypt HTTPS with the generated CA.")
    ca_cert: str | None = opt(None, "mitm.certPath", "CA certificate; null = <home>/ca/omniproxy-ca.crt",
                              flag="--ca-cert", metavar="FILE",
                              flag_help="CA certificate [default: ~/.omniproxy/ca/omniproxy-ca.crt].")
    ca_key: str | None = opt(None, "mitm.keyPath", "CA private key; null = <home>/ca/omniproxy-ca.key",
                             flag="--ca-key", metavar="FILE",
                             flag_help="CA private key [default: ~/.omniproxy/ca/omniproxy-ca.key].")
    skip_hosts: list[str] = opt([], "mitm.skipHosts", "hosts tunnelled untouched, exact or wildcard",
                                example='["*.pinned-app.com", "bank.example"]', flag="--skip-host",
                                metavar="PATTERN",
                                flag_help="Tunnel these hosts without MITM (repeatable, a,b ok).")
    ssl_insecure: bool = opt(False, "mitm.sslInsecure", "do not verify upstream certificates",
                             flag="--ssl-insecure", flag_help="Do not verify upstream server certificates.")
    upstream_ca: str | None = opt(None, "mitm.upstreamCa", "extra CA file (PEM) trusted for upstream servers",
                                  flag="--upstream-ca", metavar="FILE")
    alpn: list[str] = opt(list(ALPN_PROTOCOLS), "mitm.alpn", "ALPN protocols offered to clients; h2 only "
                          "to hosts whose origin negotiates h2", choices=ALPN_PROTOCOLS)
    http2: bool = opt(True, "mitm.http2", "speak HTTP/2 with clients and origins that offer it (as "
                      "mitmproxy's http2 option)", flag="--http2/--no-http2",
                      flag_help="Speak HTTP/2 with clients and origins that offer it.")
    # ---------------------------------------------------------------- capture
    output: str | None = opt(None, "capture.output", "capture file; null = stdout in --no-ui mode",
                             example="traffic.ndjson", flag="--output", short="-o", metavar="FILE",
                             flag_help="Capture file [default: stdout with --no-ui].")
    format: str | None = opt(None, "capture.format", "ndjson | json | har | ir; null = from the output "
                             "file's extension, else ndjson", kind="format", choices=FORMATS,
                             flag="--format", short="-f",
                             flag_help="Capture format [default: from the output extension, else ndjson].")
    include_headers: bool = opt(True, "capture.includeHeaders", "record headers")
    include_body: bool = opt(True, "capture.includeBody", "record bodies")
    max_body_size: int = opt(1048576, "capture.maxBodySize", "bytes of each body kept in the capture "
                             "(512k, 1MiB ok); forwarded bytes are never cut", kind="size", minimum=0,
                             flag="--max-body-size",
                             flag_help="Body bytes kept in captures (1048576, 512k, 1MiB, 10MB).")
    filter_headers: list[str] = opt([], "capture.filterHeaders", "extra headers to redact (added to the "
                                    "defaults)", kind="headers", example='["x-session-id"]',
                                    flag="--filter-header", metavar="NAME",
                                    flag_help="Extra header to redact, on top of authorization, cookie, ... "
                                    "(repeatable).",
                                    note=f"Always redacted unless redact is false: {_REDACT_LIST}.\nUnlike the "
                                    "original OmniProxy, filterHeaders adds to that list instead of replacing it.")
    skip_binary: bool = opt(True, "capture.skipBinary", "replace binary bodies with a placeholder",
                            flag="--skip-binary/--no-skip-binary")
    redact: bool = opt(True, "capture.redact", "redact the sensitive headers above (false = keep them)",
                       flag="--redact/--no-redact", flag_help="Redact sensitive headers in captures.")
    sample_rate: float = opt(1.0, "capture.sampleRate", "fraction of flows captured (0..1)",
                             minimum=0.0, maximum=1.0, flag="--sample-rate")
    always_hosts: list[str] = opt([], "capture.alwaysHosts", "hosts always captured, whatever sampleRate",
                                  flag="--always-host", metavar="PATTERN",
                                  flag_help="Always capture these hosts when sampling.")
    never_hosts: list[str] = opt([], "capture.neverHosts", "hosts never captured", flag="--never-host",
                                 metavar="PATTERN", flag_help="Never capture these hosts.")
    db: str | None = opt(None, "capture.db", "database for flows: sqlite:///abs/path.db, sqlite::memory:",
                         kind="db", secret=True, example="sqlite:///var/lib/omniproxy/flows.db", flag="--db",
                         metavar="URL",
                         flag_help="Store flows in a database: sqlite:///abs/path.db, sqlite::memory:.")
    queue_size: int = opt(10000, "capture.queueSize", "records queued for the sinks before dropping",
                          minimum=1, flag="--queue-size",
                          flag_help="Records queued for the capture before dropping.")
    batch_size: int = opt(100, "capture.batchSize", "records written per batch", minimum=1,
                          flag="--batch-size")
    flush_interval: float = opt(0.1, "capture.flushInterval", "seconds between flushes of a partial batch",
                                minimum=0.001)
    # ---------------------------------------------------------------- filter (scope of capture)
    include_hosts: list[str] = opt([], "filter.includeHosts", "capture only these hosts (* and ? wildcards)",
                                   example="[api.example.com]", flag="--include-host", metavar="PATTERN",
                                   flag_help="Capture only these hosts (* ? wildcards).")
    exclude_hosts: list[str] = opt([], "filter.excludeHosts", "never capture these hosts",
                                   example='["*.example.org"]', flag="--exclude-host", metavar="PATTERN")
    include_paths: list[str] = opt([], "filter.includePaths", "capture only these paths",
                                   example='["/api/*"]', flag="--include-path", metavar="PATTERN")
    exclude_paths: list[str] = opt([], "filter.excludePaths", "never capture these paths",
                                   example='["*.js", "*.css", "*.png", "*.jpg"]', flag="--exclude-path",
                                   metavar="PATTERN")
    include_methods: list[str] = opt([], "filter.includeMethods", "capture only these methods",
                                     example="[GET, POST]", flag="--include-method", metavar="METHOD")
    exclude_methods: list[str] = opt([], "filter.excludeMethods", "never capture these methods",
                                     example="[OPTIONS]", flag="--exclude-method", metavar="METHOD")
    # ---------------------------------------------------------------- grpc (proxycore/grpc.py)
    proto_paths: list[str] = opt([], "grpc.protoPaths", "directories of .proto files: gRPC messages are "
                                 "shown and captured with their field names (compiled at start)",
                                 example='["~/src/api/proto"]', flag="--proto-path", metavar="DIR",
                                 flag_help="Directory of .proto files (compiled at start) naming the fields "
                                 "of gRPC messages (repeatable).")
    proto_descriptors: list[str] = opt([], "grpc.protoDescriptors", "FileDescriptorSet files (protoc -o "
                                       "--include_imports) naming the fields of gRPC messages", kind="files",
                                       flag="--proto-descriptor", metavar="FILE",
                                       flag_help="A FileDescriptorSet (protoc -o FILE --include_imports) "
                                       "naming the fields of gRPC messages (repeatable).")
    # ---------------------------------------------------------------- upstream proxy
    upstream: str | None = opt(None, "upstream", "upstream proxy, http://[user:pass@]host:port; null = direct",
                               kind="url", secret=True, example="http://user:pass@proxy.corp:3128",
                               flag="--upstream", metavar="URL",
                               flag_help="Upstream proxy: http://[user:pass@]host:port.")
    # ---------------------------------------------------------------- breakpoints (proxycore/addons/intercept.py)
    intercept: str | None = opt(None, "intercept.filter", "pause flows matching this filter expression (~q: "
                                "requests only, ~s: responses only); null = no breakpoints", kind="path",
                                example='"~d api.example.com & ~m post"', flag="--intercept", metavar="FILTER",
                                flag_help="Pause flows matching this filter (~q requests only, ~s responses "
                                "only, else both) until resumed in the UI.")
    intercept_timeout: float = opt(0.0, "intercept.timeout", "seconds a paused flow waits before it resumes by "
                                   "itself (0 = waits for the user)", minimum=0.0, flag="--intercept-timeout",
                                   metavar="SECONDS")
    # ---------------------------------------------------------------- rewrite rules
    # proxycore/addons/rules.py; the syntax of each spec is mitmproxy's (first character: separator)
    modify_headers: list[str] = opt([], "rewrite.modifyHeaders", "set a header: /[filter]/name/value "
                                    "(an empty value removes it), on requests and responses the filter matches",
                                    kind="specs", example="['/~q & ~d example.com/X-Debug/1']",
                                    flag="--modify-headers", metavar="SPEC",
                                    flag_help="Set or remove a header, mitmproxy syntax: /[filter]/name/value "
                                    "(empty value: remove). Repeatable.")
    modify_body: list[str] = opt([], "rewrite.modifyBody", "replace in bodies by regex: /[filter]/regex/"
                                 "replacement", kind="specs", example="['/~s & ~u api/\"beta\":false/\"beta\":true']",
                                 flag="--modify-body", metavar="SPEC",
                                 flag_help="Replace in bodies by regex: /[filter]/regex/[@]replacement. "
                                 "Repeatable.")
    map_remote: list[str] = opt([], "rewrite.mapRemote", "rewrite URLs before they go upstream: "
                                "|[filter]|url-regex|replacement", kind="specs",
                                example="['|^https://api.example.com|http://127.0.0.1:9000']",
                                flag="--map-remote", metavar="SPEC",
                                flag_help="Rewrite the URL before it goes upstream: |[filter]|regex|replacement. "
                                "Repeatable.")
    map_local: list[str] = opt([], "rewrite.mapLocal", "answer from local files: |[filter]|url-regex|"
                               "file-or-directory", kind="specs", example="['|example.com/static/|/tmp']",
                               flag="--map-local", metavar="SPEC",
                               flag_help="Answer from a local file or directory: |[filter]|regex|path. "
                               "Repeatable.")
    block_list: list[str] = opt([], "rewrite.block", "block requests: :[filter]:status (444 = hang up, "
                                "no response)", kind="specs", example="[':~d ads.example.com:404']",
                                flag="--block", metavar="SPEC",
                                flag_help="Block requests: :[filter]:status; 444 hangs up. Repeatable.")
    rules_file: str | None = opt(None, "rewrite.rulesFile", "the rules file the rules screen saves to; "
                                 "null = <home>/rules.yaml", flag="--rules", metavar="FILE",
                                 flag_help="Rules file (YAML) to load and to save the rules screen's "
                                 "changes to [default: ~/.omniproxy/rules.yaml].")
    rules: list[dict] = opt([], "rules", "rewrite rules applied in order, e.g. "
                            "{kind: block, filter: '~d ads', status: 404} (README: Rewrite rules)", kind="rules")
    # ---------------------------------------------------------------- throttle (proxycore/throttle.py)
    throttle: str | None = opt(None, "throttle.preset", "throttle matching traffic like this network: gprs, "
                               "2g, edge, 3g, 3g-fast, 4g, lte, dsl, wifi, very-bad", kind="preset",
                               example="3g", flag="--throttle", metavar="PRESET",
                               flag_help="Throttle matching traffic with a preset: gprs, 2g, edge, 3g, "
                               "3g-fast, 4g, lte, dsl, wifi, very-bad.")
    throttle_down: str | None = opt(None, "throttle.down", "download bandwidth shared by matching traffic "
                                    "(bit, kbit, mbit per second); overrides the preset's", kind="rate",
                                    example="1mbit", flag="--throttle-down", metavar="RATE",
                                    flag_help="Download bandwidth for matching traffic, e.g. 1mbit, 512kbit.")
    throttle_up: str | None = opt(None, "throttle.up", "upload bandwidth shared by matching traffic",
                                  kind="rate", example="512kbit", flag="--throttle-up", metavar="RATE",
                                  flag_help="Upload bandwidth for matching traffic, e.g. 512kbit.")
    throttle_latency: str | None = opt(None, "throttle.latency", "delay each request's round trip gains "
                                       "(100ms, 1.5s): half before its first byte, half before the response's",
                                       kind="ms", example="100ms", flag="--throttle-latency", metavar="MS",
                                       flag_help="Latency added to each request's round trip (half before the "
                                       "request's first byte, half before the response's), e.g. 100ms.")
    throttle_jitter: str | None = opt(None, "throttle.jitter", "up to this much more latency per request, at "
                                      "random", kind="ms", example="20ms", flag="--throttle-jitter", metavar="MS")
    throttle_loss: float = opt(0.0, "throttle.loss", "percent of matching requests whose connection is "
                               "reset (packet-loss emulation)", minimum=0.0, maximum=100.0,
                               flag="--throttle-loss", metavar="PERCENT")
    throttle_filter: str | None = opt(None, "throttle.filter", "throttle only flows matching this filter "
                                      "expression; null = all", example='"~d api.example.com"',
                                      flag="--throttle-filter", metavar="FILTER",
                                      flag_help="Throttle only flows matching this filter expression "
                                      "[default: all flows].")
    # ---------------------------------------------------------------- ui
    max_flows: int = opt(50000, "ui.maxFlows", "flows kept in memory by the UI (oldest dropped)", minimum=1,
                         flag="--max-flows", flag_help="Flows kept in the UI's memory.")
    # Whole bodies in the UI (proxycore/flows/spill.py): past the threshold a body goes on into a
    # spill file under <home>/spill instead of memory; maxBodySize then applies to captures only.
    spill_threshold: int = opt(1048576, "ui.spillThreshold", "bodies larger than this are kept whole in a "
                               "spill file under <home>/spill instead of memory (0 = never: cut at "
                               "maxBodySize)", kind="size", minimum=0, flag="--spill-threshold",
                               flag_help="Bodies larger than this go to a spill file under "
                               "~/.omniproxy/spill, kept whole (0: cut at --max-body-size).")
    spill_max_total: int = opt(4294967296, "ui.spillMaxTotal", "bytes of spill files at most; past it "
                               "bodies are cut at maxBodySize", kind="size", minimum=0,
                               flag="--spill-max-total",
                               flag_help="Bytes of spill files at most (4GiB); past it bodies are cut at "
                               "--max-body-size.")

    @property
    def ca_cert_path(self) -> Path:
        return Path(self.ca_cert).expanduser() if self.ca_cert else omniproxy_home() / "ca" / "omniproxy-ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return Path(self.ca_key).expanduser() if self.ca_key else omniproxy_home() / "ca" / "omniproxy-ca.key"

    @property
    def rules_path(self) -> Path:
        return Path(self.rules_file).expanduser() if self.rules_file else omniproxy_home() / "rules.yaml"

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
            if ext in FORMATS:
                return ext
            if ext == "jsonl":
                return "ndjson"
        return "ndjson"


def omniproxy_home() -> Path:
    """~/.omniproxy, or $OMNIPROXY_HOME."""
    env = os.environ.get("OMNIPROXY_HOME")
    return Path(env).expanduser() if env else Path.home() / ".omniproxy"


# Every option, in declaration order, with `field` filled in: what config.py and cli.py iterate.
OPTION_KEYS: tuple[Key, ...] = tuple(
    dataclasses.replace(f.metadata["option"], field=f.name) for f in dataclasses.fields(Options)
)
