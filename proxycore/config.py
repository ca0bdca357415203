"""Loading the one `Options` object: defaults < YAML file < OMNIPROXY_* environment < flags.

One table (`KEYS`) maps every Options field to its YAML key, environment variable and flag, so
the file layout, the env names, `config show` and `config init` can never drift apart. Every
value from every source goes through the same checks, and an error names where the bad value
came from (`config.yaml: capture.maxBodySize`, `OMNIPROXY_PORT`, `--sample-rate`).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .options import DEFAULT_REDACT, Options, omniproxy_home

ENV_PREFIX = "OMNIPROXY_"
# OMNIPROXY_* variables that are not options (OMNIPROXY_HOME moves the home directory).
NON_OPTION_ENV = frozenset({"OMNIPROXY_HOME", "OMNIPROXY_DEBUG"})
FORMATS = ("ndjson", "json", "har", "ir")


class ConfigError(Exception):
    """A bad configuration value; the message is one user-facing line naming the key."""


@dataclass(frozen=True)
class Key:
    section: str | None  # None: a top-level scalar (`upstream: "url"`)
    name: str  # camelCase YAML key inside the section
    field: str  # Options attribute
    kind: str  # bool | int | size | float | str | path | list | format | url | db | headers
    help: str  # one line, used in the generated config file
    example: str | None = None  # a commented example value for `config init`
    minimum: float | None = None
    maximum: float | None = None
    flag: str | None = None  # the command-line flag naming this field, when not --field-name
    note: str | None = None  # a longer comment printed above the key in `config init`

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.field.upper()

    @property
    def flag_name(self) -> str:
        return self.flag or "--" + self.field.replace("_", "-")


_redact_list = ", ".join(DEFAULT_REDACT)

KEYS: tuple[Key, ...] = (
    Key("server", "host", "host", "str", "address to listen on (0.0.0.0 = every interface)"),
    Key("server", "port", "port", "int", "port to listen on (0 = any free port)", minimum=0, maximum=65535),
    Key("server", "verbose", "verbose", "bool", "log more detail"),
    Key("mitm", "enabled", "mitm", "bool", "decrypt HTTPS (CONNECT) traffic with the generated CA"),
    Key("mitm", "certPath", "ca_cert", "path", "CA certificate; null = <home>/ca/omniproxy-ca.crt"),
    Key("mitm", "keyPath", "ca_key", "path", "CA private key; null = <home>/ca/omniproxy-ca.key"),
    Key("mitm", "skipHosts", "skip_hosts", "list", "hosts tunnelled untouched, exact or wildcard",
        example='["*.pinned-app.com", "bank.example"]', flag="--skip-host"),
    Key("mitm", "sslInsecure", "ssl_insecure", "bool", "do not verify upstream certificates"),
    Key("mitm", "upstreamCa", "upstream_ca", "path", "extra CA file (PEM) trusted for upstream servers"),
    Key("capture", "output", "output", "path", "capture file; null = stdout in --no-ui mode",
        example="traffic.ndjson"),
    Key("capture", "format", "format", "format",
        "ndjson | json | har | ir; null = from the output file's extension, else ndjson"),
    Key("capture", "includeHeaders", "include_headers", "bool", "record headers"),
    Key("capture", "includeBody", "include_body", "bool", "record bodies"),
    Key("capture", "maxBodySize", "max_body_size", "size",
        "bytes of each body kept in the capture (512k, 1MiB ok); forwarded bytes are never cut", minimum=0),
    Key("capture", "filterHeaders", "filter_headers", "headers", "extra headers to redact (added to the defaults)",
        example='["x-session-id"]', flag="--filter-header",
        note=f"Always redacted unless redact is false: {_redact_list}.\n"
        "Unlike the original OmniProxy, filterHeaders adds to that list instead of replacing it."),
    Key("capture", "skipBinary", "skip_binary", "bool", "replace binary bodies with a placeholder"),
    Key("capture", "redact", "redact", "bool", "redact the sensitive headers above (false = keep them)",
        flag="--no-redact"),
    Key("capture", "sampleRate", "sample_rate", "float", "fraction of flows captured (0..1)",
        minimum=0.0, maximum=1.0),
    Key("capture", "alwaysHosts", "always_hosts", "list", "hosts always captured, whatever sampleRate",
        flag="--always-host"),
    Key("capture", "neverHosts", "never_hosts", "list", "hosts never captured", flag="--never-host"),
    Key("capture", "db", "db", "db", "database for flows: sqlite:///abs/path.db, sqlite::memory:",
        example="sqlite:///var/lib/omniproxy/flows.db"),
    Key("capture", "queueSize", "queue_size", "int", "records queued for the sinks before dropping", minimum=1),
    Key("capture", "batchSize", "batch_size", "int", "records written per batch", minimum=1),
    Key("capture", "flushInterval", "flush_interval", "float", "seconds between flushes of a partial batch",
        minimum=0.001),
    Key("filter", "includeHosts", "include_hosts", "list", "capture only these hosts (* and ? wildcards)",
        example="[api.example.com]", flag="--include-host"),
    Key("filter", "excludeHosts", "exclude_hosts", "list", "never capture these hosts",
        example='["*.example.org"]', flag="--exclude-host"),
    Key("filter", "includePaths", "include_paths", "list", "capture only these paths",
        example='["/api/*"]', flag="--include-path"),
    Key("filter", "excludePaths", "exclude_paths", "list", "never capture these paths",
        example='["*.js", "*.css", "*.png", "*.jpg"]', flag="--exclude-path"),
    Key("filter", "includeMethods", "include_methods", "list", "capture only these methods",
        example="[GET, POST]", flag="--include-method"),
    Key("filter", "excludeMethods", "exclude_methods", "list", "never capture these methods",
        example="[OPTIONS]", flag="--exclude-method"),
    Key(None, "upstream", "upstream", "url", "upstream proxy, http://[user:pass@]host:port; null = direct",
        example="http://user:pass@proxy.corp:3128"),
    Key("ui", "maxFlows", "max_flows", "int", "flows kept in memory by the UI (oldest dropped)", minimum=1),
)

BY_FIELD: dict[str, Key] = {k.field: k for k in KEYS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(k.section for k in KEYS if k.section))
_SECTION_KEYS: dict[str, dict[str, Key]] = {s: {k.name: k for k in KEYS if k.section == s} for s in SECTIONS}
_TOP_SCALARS: dict[str, Key] = {k.name: k for k in KEYS if k.section is None}
# Sections of the original OmniProxy we deliberately do not support: say so instead of "unknown".
_UNSUPPORTED = {"reverse": "the reverse-proxy mode of the original OmniProxy is not supported"}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)


def config_path_default() -> Path:
    return omniproxy_home() / "config.yaml"


def parse_size(text: str | int) -> int:
    """Bytes from 1048576, 512k, 1MiB, 10MB, 1.5m.

    k/m/g alone and KiB/MiB/GiB are powers of 1024 (as in mitmproxy's "3m"); KB/MB/GB are
    powers of 1000, as the SI prefixes say.
    """
    if isinstance(text, bool):
        raise ValueError("expected a size such as 1048576, 512k or 1MiB")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("expected a non-negative size")
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"expected a size such as 1048576, 512k or 1MiB, got {text!r}")
    number, unit, binary, b = m.groups()
    power = "kmgt".find(unit.lower()) + 1 if unit else 0
    base = 1000 if (unit and b and not binary) else 1024
    if binary and not unit:
        raise ValueError(f"expected a size such as 1048576, 512k or 1MiB, got {text!r}")
    value = float(number) * base**power
    if not unit and "." in number:
        raise ValueError(f"expected a whole number of bytes, got {text!r}")
    return int(value)


def _closest(name: str, candidates: list[str]) -> str | None:
    """The most likely intended key, comparing case- and underscore-insensitively."""

    def norm(s: str) -> str:
        return s.replace("_", "").replace("-", "").lower()

    by_norm = {norm(c): c for c in candidates}
    if norm(name) in by_norm:
        return by_norm[norm(name)]
    match = difflib.get_close_matches(norm(name), list(by_norm), n=1, cutoff=0.6)
    return by_norm[match[0]] if match else None


# ---------------------------------------------------------------- value checks


def _describe(key: Key) -> str:
    k = key.kind
    if k == "bool":
        return "true or false"
    if k == "int":
        if key.maximum is not None:
            return f"an integer {int(key.minimum or 0)}..{int(key.maximum)}"
        if key.minimum == 1:
            return "a positive integer"
        return "an integer"
    if k == "size":
        return "a non-negative integer (bytes; 512k, 1MiB, 10MB ok)"
    if k == "float":
        if key.maximum is not None:
            return f"a number {key.minimum:g}..{key.maximum:g}"
        return "a positive number"
    if k == "format":
        return "one of " + ", ".join(FORMATS)
    if k == "url":
        return "http://[user:pass@]host:port"
    if k in ("list", "headers"):
        return "a list of strings (or one comma-separated string)"
    return "a string"


def coerce(key: Key, value: Any, where: str) -> Any:
    """Check and normalise one value for `key`; `value` may be text (env) or YAML-typed."""

    def bad(detail: str | None = None) -> ConfigError:
        return ConfigError(f"{where}: {detail or 'expected ' + _describe(key)}, got {value!r}")

    kind = key.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad()
    if kind in ("int", "size"):
        if isinstance(value, bool):
            raise bad()
        try:
            if kind == "size":
                n = parse_size(value if isinstance(value, int) else str(value))
            elif isinstance(value, int):
                n = value
            elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
                n = int(value)
            else:
                raise ValueError
        except ValueError:
            raise bad() from None
        if (key.minimum is not None and n < key.minimum) or (key.maximum is not None and n > key.maximum):
            raise bad()
        return n
    if kind == "float":
        if isinstance(value, bool):
            raise bad()
        try:
            f = float(value) if isinstance(value, int | float | str) else None
        except ValueError:
            f = None
        if f is None or f != f:  # NaN never passes a range check, say so plainly
            raise bad()
        if (key.minimum is not None and f < key.minimum) or (key.maximum is not None and f > key.maximum):
            raise bad()
        return f
    if kind in ("list", "headers"):
        if value is None:
            return []
        if isinstance(value, str):
            items = value.split(",")
        elif isinstance(value, list | tuple):
            items = []
            for item in value:
                if not isinstance(item, str | int | float) or isinstance(item, bool):
                    raise bad()
                items.extend(str(item).split(","))
        else:
            raise bad()
        out = [i.strip() for i in items if i.strip()]
        if kind == "headers":
            for h in out:
                if not _HEADER_NAME.match(h):
                    raise ConfigError(f"{where}: {h!r} is not a valid header name")
        return out
    # string kinds; null or "" means "not set" for the optional ones
    if value is None or (isinstance(value, str) and not value.strip()):
        if kind == "str":
            raise bad()
        return None
    if not isinstance(value, str):
        raise bad()
    value = value.strip()
    if kind == "format":
        if value.lower() not in FORMATS:
            raise bad()
        return value.lower()
    if kind == "url":
        _check_upstream(value, bad)
    elif kind == "db":
        _check_db(value, where)
    return value


def _check_upstream(value: str, bad: Any) -> None:
    try:
        u = urlsplit(value)
        port = u.port
    except ValueError:
        raise bad() from None
    if u.scheme.lower() != "http" or not u.hostname or port is None or u.path not in ("", "/") or u.query:
        raise bad()


def _check_db(value: str, where: str) -> None:
    # dburl is another module (and may not exist yet); import lazily so config stays light.
    try:
        from . import dburl
    except ImportError:
        return
    # validate_db_url also refuses URLs this build cannot store to (say so at load, not mid-run)
    check = getattr(dburl, "validate_db_url", None) or dburl.parse_db_url
    try:
        check(value)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


# ---------------------------------------------------------------- the three sources


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a config file into {field: value}, checking every key and value."""
    label = str(path)
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{label}: cannot read the config file (permission denied)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: the config file is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{label}: cannot read the config file ({e.strerror or e})") from None
    return parse_config_text(text, label)


def parse_config_text(text: str, label: str = "config.yaml") -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = " ".join(str(p) for p in (e.context, e.problem) if p) or "invalid YAML"
        raise ConfigError(f"{label}{line}: YAML syntax error: {what}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{label}: YAML syntax error: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping of sections (server:, mitm:, capture: ...)")
    out: dict[str, Any] = {}
    for section, body in data.items():
        name = str(section)
        if name in _TOP_SCALARS:
            key = _TOP_SCALARS[name]
            out[key.field] = coerce(key, body, f"{label}: {key.path}")
            continue
        if name in _UNSUPPORTED:
            raise ConfigError(f"{label}: {name}: {_UNSUPPORTED[name]}")
        if name not in _SECTION_KEYS:
            raise ConfigError(f"{label}: unknown section {name}{_suggest_section(name)}")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"{label}: {name}: expected a mapping of keys, got {body!r}")
        keys = _SECTION_KEYS[name]
        for k, v in body.items():
            kname = str(k)
            if kname not in keys:
                raise ConfigError(f"{label}: unknown key {name}.{kname}{_suggest_key(name, kname)}")
            key = keys[kname]
            out[key.field] = coerce(key, v, f"{label}: {key.path}")
    return out


def _suggest_section(name: str) -> str:
    # A key written at the top level instead of in its section ("port:" for "server.port")?
    for key in KEYS:
        if key.section and key.name.lower() == name.lower():
            return f" (did you mean {key.path}?)"
    best = _closest(name, list(SECTIONS) + list(_TOP_SCALARS))
    return f" (did you mean {best}?)" if best else f" (valid sections: {', '.join(SECTIONS)}, upstream)"


def _suggest_key(section: str, name: str) -> str:
    best = _closest(name, list(_SECTION_KEYS[section]))
    if best:
        return f" (did you mean {section}.{best}?)"
    # The key exists, just in another section?
    other = _closest(name, [k.name for k in KEYS if k.section and k.section != section])
    if other:
        full = next(k.path for k in KEYS if k.name == other)
        return f" (did you mean {full}?)"
    return f" (valid keys: {', '.join(_SECTION_KEYS[section])})"


def read_env(env: Mapping[str, str]) -> dict[str, Any]:
    """{field: value} from OMNIPROXY_<FIELD> variables (bools 1/0/true/false/yes/no/on/off, lists a,b)."""
    out: dict[str, Any] = {}
    for key in KEYS:
        if key.env in env:
            out[key.field] = coerce(key, env[key.env], key.env)
    return out


def unknown_env_vars(env: Mapping[str, str]) -> list[str]:
    """OMNIPROXY_* variables that are not options, each with a suggestion when one is close."""
    known = {k.env for k in KEYS}
    out = []
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known and name not in NON_OPTION_ENV:
            best = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
            out.append(f"{name} (did you mean {best[0]}?)" if best else name)
    return out


def load_options(
    config_path: str | None, env: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> Options:
    """The effective Options: defaults < file < env < overrides ({field: value} from flags).

    `config_path` None means the default file, read only when it exists.
    """
    values: dict[str, Any] = {}
    if config_path is not None:
        values.update(read_config_file(config_path))
    else:
        default = config_path_default()
        if default.is_file():
            values.update(read_config_file(default))
    values.update(read_env(env))
    for field, value in (overrides or {}).items():
        key = BY_FIELD.get(field)
        if key is None:
            raise ConfigError(f"unknown option {field!r}")
        values[field] = coerce(key, value, key.flag_name)
    return Options(**values)


# ---------------------------------------------------------------- writing YAML


def _nested(opts: Options) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in KEYS:
        value = getattr(opts, key.field)
        if isinstance(value, list | tuple):
            value = list(value)
        if key.section is None:
            data[key.name] = value
        else:
            data.setdefault(key.section, {})[key.name] = value
    return data


class _Dumper(yaml.SafeDumper):
    """Block-style sections, flow-style lists: reads like the file `config init` writes."""


_Dumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def options_to_yaml(opts: Options) -> str:
    """The options as a config file that `load_options` reads back to the same Options."""
    return yaml.dump(_nested(opts), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=1000)


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    return text.removesuffix("...").strip()


def default_config_yaml() -> str:
    """A commented config file: every key with its default, plus commented examples."""
    defaults = Options()
    lines = [
        "# OmniProxy TUI configuration (YAML).",
        "#",
        "# Precedence: built-in defaults < this file < OMNIPROXY_* environment variables < flags.",
        "# Every key is shown with its default value. Each one also has an environment variable:",
        "# OMNIPROXY_<OPTION>, e.g. OMNIPROXY_PORT=9000, OMNIPROXY_MITM=false,",
        "# OMNIPROXY_SKIP_HOSTS=a.com,b.com (lists are comma-separated; booleans accept",
        "# 1/0/true/false/yes/no/on/off). OMNIPROXY_HOME moves the home directory (~/.omniproxy).",
        "# Lines starting with '# e.g.' are examples: uncomment and adapt.",
        "",
    ]
    width = max(len(f"  {k.name}: {_scalar(getattr(defaults, k.field))}") for k in KEYS) + 2
    current: str | None = ""
    for key in KEYS:
        if key.section != current:
            if current != "":
                lines.append("")
            if key.section is not None:
                lines.append(f"{key.section}:")
            current = key.section
        indent = "  " if key.section else ""
        for note in (key.note or "").splitlines():
            lines.append(f"{indent}# {note}")
        entry = f"{indent}{key.name}: {_scalar(getattr(defaults, key.field))}"
        lines.append(f"{entry.ljust(width)}# {key.help}")
        if key.example:
            lines.append(f"{indent}# e.g. {key.name}: {key.example}")
    lines.append("")
    return "\n".join(lines)


def option_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(Options)}
