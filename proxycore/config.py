"""Loading the one `Options` object: defaults < YAML file < OMNIPROXY_* environment < flags.

The keys come from the option declarations in `proxycore.options` (`KEYS`), so the file layout,
the env names, the flags, `config show` and `config init` can never drift apart. Every value from
every source goes through the same checks, and an error names where the bad value came from
(`config.yaml: capture.maxBodySize`, `OMNIPROXY_PORT`, `--sample-rate`).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from proxycore.capture.dburl import validate_db_url
from proxycore.options import ENV_PREFIX, FORMATS, LIST_KINDS, OPTION_KEYS, Key, Options, omniproxy_home

# OMNIPROXY_* variables that are not options (OMNIPROXY_HOME moves the home directory).
NON_OPTION_ENV = frozenset({"OMNIPROXY_HOME", "OMNIPROXY_DEBUG"})
SECRET_MASK = "***"


class ConfigError(Exception):
    """A bad configuration value; the message is one user-facing line naming the key."""


KEYS: tuple[Key, ...] = OPTION_KEYS
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
    """What `key` accepts, for "expected ..., got ..." messages."""
    k = key.kind
    if k == "bool":
        return "true or false"
    if k == "count":
        return "a non-negative integer, or true/false"
    if k == "int":
        if key.maximum is not None:
            return f"an integer {int(key.minimum or 0)}..{int(key.maximum)}"
        if key.minimum == 1:
            return "a positive integer"
        return "an integer"
    if k == "size":
        what = "a positive integer" if key.minimum == 1 else "a non-negative integer"
        return f"{what} (bytes; 512k, 1MiB, 10MB ok)"
    if k == "float":
        if key.maximum is not None:
            return f"a number {key.minimum:g}..{key.maximum:g}"
        return "a positive number"
    if k == "format":
        return "one of " + ", ".join(key.choices or FORMATS)
    if k == "url":
        return "http://[user:pass@]host:port"
    if k in LIST_KINDS:
        return "a list of strings (or one comma-separated string)"
    return "a string"


def _in_range(key: Key, n: float) -> bool:
    return ((key.minimum is None or n >= key.minimum) and (key.maximum is None or n <= key.maximum)
            and (key.above is None or n > key.above))


def coerce(key: Key, value: Any, where: str) -> Any:
    """Check and normalise one value for `key`; `value` may be text (env) or YAML-typed."""

    def bad(detail: str | None = None) -> ConfigError:
        # an error must not print the password it is complaining about
        shown = mask_secret(key, value) if key.secret and isinstance(value, str) else value
        return ConfigError(f"{where}: {detail or 'expected ' + _describe(key)}, got {shown!r}")

    kind = key.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad()
    if kind == "count":
        # `verbose: true` predates -v counting: a bool still means "on" (1) / "off" (0)
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE - {"1", "0"}:
            return int(value.strip().lower() in _TRUE)
        if (isinstance(value, int) and value < 0) or (isinstance(value, str) and value.strip().startswith("-")):
            raise bad()
        kind = "int"
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
        if not _in_range(key, n):
            raise bad()
        return n
    if kind == "float":
        if isinstance(value, bool):
            raise bad()
        try:
            f = float(value) if isinstance(value, int | float | str) else None
        except ValueError:
            f = None
        # NaN never passes a range check and an infinite timeout or interval is no timeout at all
        if f is None or not math.isfinite(f) or not _in_range(key, f):
            raise bad()
        return f
    if kind == "rules":
        return _coerce_rules(value, where)
    if kind in LIST_KINDS:
        return _coerce_list(key, value, where, bad)
    if kind in ("preset", "rate", "ms"):  # throttling values: their parsers say what is wrong
        from proxycore.throttle import check_option

        try:
            return check_option(kind, value)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    # string kinds; null or "" means "not set" for the optional ones
    if value is None or (isinstance(value, str) and not value.strip()):
        if kind == "str":
            raise bad()
        return None
    if not isinstance(value, str):
        raise bad()
    value = value.strip()
    if kind == "format":
        if value.lower() not in (key.choices or FORMATS):
            raise bad()
        return value.lower()
    if kind == "mode":
        from proxycore.wgconf import parse_mode

        try:
            parse_mode(value)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    elif kind == "url":
        _check_upstream(value, bad)
    elif kind == "db":
        try:
            validate_db_url(value)  # also refuses URLs this build cannot store to: say so at load
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    return value


def _coerce_list(key: Key, value: Any, where: str, bad: Any) -> list[str]:
    if value is None:
        return []
    # a YAML list of files is taken item by item (a file name may hold a comma); text is a,b,c
    split = key.kind not in ("files", "specs")
    if isinstance(value, str):
        items = [value] if key.kind == "specs" else value.split(",")  # a spec may hold commas
    elif isinstance(value, list | tuple):
        items = []
        for item in value:
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise bad()
            items.extend(str(item).split(",") if split else [str(item)])
    else:
        raise bad()
    out = [i.strip() for i in items if i.strip()]
    if key.kind == "headers":
        for h in out:
            if not _HEADER_NAME.match(h):
                raise ConfigError(f"{where}: {h!r} is not a valid header name")
    elif key.kind == "files":
        out = [os.path.expanduser(p) for p in out]
        for p in out:
            if not os.path.isfile(p):
                what = "is a directory, not a file" if os.path.isdir(p) else "no such file"
                raise ConfigError(f"{where}: {p!r}: {what}")
    elif key.kind == "specs":
        from proxycore.addons.rules import RuleError, parse_flag

        for spec in out:
            try:
                parse_flag(key.field, spec, f"{where} {spec!r}")
            except RuleError as exc:
                raise ConfigError(str(exc)) from None
    if key.choices is not None:
        for item in out:
            if item not in key.choices:
                raise ConfigError(f"{where}: {item!r} is not supported (allowed: {', '.join(key.choices)}), "
                                  f"got {value!r}")
    return out


def _coerce_rules(value: Any, where: str) -> list[dict]:
    """The config's `rules:` list, each rule checked (proxycore.addons.rules)."""
    from proxycore.addons.rules import RuleError, rule_from_dict

    if isinstance(value, str):  # OMNIPROXY_RULES: the list as YAML text
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{where}: expected a YAML list of rules") from None
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of rules, e.g. [{{kind: block, filter: '~d ads', status: 404}}]")
    for i, d in enumerate(value, 1):
        try:
            rule_from_dict(d, f"{where}[{i}]", source="config")
        except RuleError as exc:
            raise ConfigError(str(exc)) from None
    return [dict(d) for d in value]


def _check_upstream(value: str, bad: Any) -> None:
    try:
        u = urlsplit(value)
        port = u.port
    except ValueError:
        raise bad() from None
    if u.scheme.lower() != "http" or not u.hostname or port is None or u.path not in ("", "/") or u.query:
        raise bad()


def mask_password(url: str) -> str:
    """http://user:secret@host:3128 -> http://user:***@host:3128 (and ?password=... -> ***);
    anything else unchanged. The one helper for every URL shown to the user: config show, the
    headless start-up line, error messages."""
    url = _SECRET_QUERY.sub(rf"\1{SECRET_MASK}", url)
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        has_password = False
    if not has_password:
        # unparseable, or no URL: still never echo what looks like a password
        return re.sub(r"(//[^/:@]*:)[^@/]*@", rf"\1{SECRET_MASK}@", url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{SECRET_MASK}@{hostport}"))


_SECRET_QUERY = re.compile(r"([?&](?:password|pass|pwd|secret|token|sslpassword)=)[^&#]*", re.IGNORECASE)


def mask_secret(key: Key, value: str) -> str:
    """A secret option's value as shown: URLs through mask_password; a user:pass spec
    (--proxy-auth) as user:***; an @FILE reference is a file name, shown as is."""
    if key.kind in ("url", "db"):
        return mask_password(value)
    if value.startswith("@"):
        return value
    user, sep, _ = value.partition(":")
    return f"{user}:{SECRET_MASK}" if sep else SECRET_MASK


# ---------------------------------------------------------------- the three sources


class _AliasRefused(yaml.MarkedYAMLError):
    """An alias (*name, or a merge `<<: *name`) in a config file."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice (PyYAML silently keeps the last one) and any
    alias. A config file has no need for anchors and aliases, and aliases are how a few lines
    expand exponentially (the "billion laughs"): printing or walking such a value never ends.
    Refusing them when the document is composed costs nothing and bounds the work by the size
    of the text."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(None, None, f"*{event.anchor}", event.start_mark)
        return super().compose_node(parent, index)


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


def parse_yaml_value(text: str, label: str) -> Any:
    """YAML text as a value, with the config file's rules (no aliases, no duplicate keys) and
    one-line errors (ConfigError)."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _AliasRefused as e:
        line = f":{e.problem_mark.line + 1}" if e.problem_mark is not None else ""
        raise ConfigError(f"{label}{line}: YAML aliases ({e.problem}) are not allowed in a config file; "
                          "write the value out in full") from None
    except RecursionError:
        raise ConfigError(f"{label}: the YAML is nested too deeply to be a config file") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = " ".join(str(p) for p in (e.context, e.problem) if p) or "invalid YAML"
        raise ConfigError(f"{label}{line}: YAML syntax error: {what}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{label}: YAML syntax error: {' '.join(str(e).split())}") from None
    return data


def parse_config_text(text: str, label: str = "config.yaml") -> dict[str, Any]:
    data = parse_yaml_value(text, label)
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
    return f" (did you mean {best}?)" if best else f" (valid sections: {', '.join([*SECTIONS, *_TOP_SCALARS])})"


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


def _nested(opts: Options, mask_secrets: bool) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in KEYS:
        value = getattr(opts, key.field)
        if isinstance(value, list | tuple):
            value = list(value)
        elif mask_secrets and key.secret and isinstance(value, str):
            value = mask_secret(key, value)
        if key.section is None:
            data[key.name] = value
        else:
            data.setdefault(key.section, {})[key.name] = value
    return data


class _Dumper(yaml.SafeDumper):
    """Block-style sections, flow-style lists: reads like the file `config init` writes."""


_Dumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def options_to_yaml(opts: Options, mask_secrets: bool = False) -> str:
    """The options as a config file that `load_options` reads back to the same Options (with
    `mask_secrets`, passwords in URLs are replaced by *** and the file no longer round-trips)."""
    return yaml.dump(_nested(opts, mask_secrets), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
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
        "# 1/0/true/false/yes/no/on/off; sizes 512k, 1MiB). OMNIPROXY_HOME moves the home",
        "# directory (~/.omniproxy).",
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

