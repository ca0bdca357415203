"""Options at run time: which ones the running engine takes at once, how a typed value is checked
(each option's own parser, `proxycore.config.coerce`), and saving to the config file.

The UI's options screen (`O`) and the `:` prompt both go through the commands here:

    option.set connect_timeout 5     # checked, applied live, saved to ~/.omniproxy/config.yaml
    option.reset connect_timeout     # back to the default (and removed from the file)

Saving keeps every other key of the user's file (their values; YAML comments are not kept) and
writes it through `proxycore.safefile` (atomic, 0600 when new, never through a symlink).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from proxycore.config import BY_FIELD, KEYS, ConfigError, _Dumper, coerce, config_path_default, mask_secret
from proxycore.control.commands import Arg, CommandContext, CommandError, command
from proxycore.options import Key, Options

# Options the running engine reads where it uses them (each new connection, request or deadline),
# so a change applies at once. Every other option is read at start: saved, it applies at the next.
LIVE_OPTIONS = frozenset({
    "connect_timeout", "client_head_timeout", "keepalive_timeout", "response_timeout", "body_idle_timeout",
    "max_head_size", "max_pipelined", "body_buffer_limit",
})


def option_key(name: str) -> Key:
    """An option by its field name (`connect_timeout`) or config path (`server.connectTimeout`)."""
    key = BY_FIELD.get(name.replace("-", "_")) or next((k for k in KEYS if k.path == name), None)
    if key is None:
        import difflib

        best = difflib.get_close_matches(name, [k.field for k in KEYS], n=1)
        raise CommandError(f"unknown option {name!r}" + (f" (did you mean {best[0]}?)" if best else ""))
    return key


def format_value(key: Key, value: Any, show_secrets: bool = False) -> str:
    """An option value as the user would type it back."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if key.secret and isinstance(value, str) and not show_secrets:
        return mask_secret(key, value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_value(key: Key, text: str) -> Any:
    """Check typed text with the option's own parser; one-line CommandError when it is wrong."""
    try:
        return coerce(key, text, key.path)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def save_option(path: Path, key: Key, value: Any, remove: bool = False) -> None:
    """Set (or remove) one key in the YAML config file at `path`, keeping the other keys."""
    from proxycore.safefile import write_atomic

    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CommandError(f"cannot read {path} to update it: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise CommandError(f"{path}: not a mapping of sections; fix or remove it first")
        data = loaded or {}
    if isinstance(value, tuple):
        value = list(value)
    if key.section is None:
        if remove:
            data.pop(key.name, None)
        else:
            data[key.name] = value
    else:
        section = data.get(key.section)
        if not isinstance(section, dict):
            section = data[key.section] = {}
        if remove:
            section.pop(key.name, None)
            if not section:
                data.pop(key.section)
        else:
            section[key.name] = value
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=1000) if data else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))


def _config_path(ctx: CommandContext) -> Path:
    return Path(ctx.config_path) if ctx.config_path is not None else config_path_default()


def _apply(ctx: CommandContext, key: Key, value: Any, remove: bool) -> str:
    path = _config_path(ctx)
    try:
        save_option(path, key, value, remove=remove)
    except OSError as exc:
        raise CommandError(f"cannot save {path}: {exc.strerror or exc}") from None
    live = ctx.engine.set_option(key.field, value) if ctx.engine is not None else key.field in LIVE_OPTIONS
    if ctx.engine is None and live:
        setattr(ctx.options, key.field, value)
    shown = format_value(key, value) or "(unset)"
    if live:
        ctx.pending_options.pop(key.field, None)
        return f"{key.path} = {shown} (applied; saved to {path})"
    if value == getattr(ctx.options, key.field):
        ctx.pending_options.pop(key.field, None)
    else:
        ctx.pending_options[key.field] = value
    return f"{key.path} = {shown} (saved to {path}; takes effect at the next start)"


def _option_names(*_: str) -> list[str]:
    return [k.field for k in KEYS]


def _option_values(name: str = "", *_: str) -> list[str]:
    """What completion offers for an option's value: on/off, its choices, its default."""
    key = BY_FIELD.get(name)
    if key is None:
        return []
    if key.kind == "bool":
        return ["true", "false"]
    if key.choices:
        return list(key.choices)
    default = format_value(key, key.default)
    return [default] if default else []


@command("option.set", "Set an option (checked, applied live where the engine allows, saved to the config file)",
         Arg("name", str, "option name, e.g. connect_timeout", complete=_option_names),
         Arg("value", str, "the value as in the config file (lists: a,b)", "", complete=_option_values))
def _option_set(ctx: CommandContext, name: str, text: str) -> str:
    key = option_key(name)
    return _apply(ctx, key, parse_value(key, text), remove=False)


@command("option.reset", "Set an option back to its default (removed from the config file)",
         Arg("name", str, "option name", complete=_option_names))
def _option_reset(ctx: CommandContext, name: str) -> str:
    key = option_key(name)
    default = getattr(Options(), key.field)
    return _apply(ctx, key, default, remove=True)


def current_value(ctx: CommandContext, key: Key) -> Any:
    """What the option will be: a value waiting for a restart, else the running one."""
    return ctx.pending_options.get(key.field, getattr(ctx.options, key.field))
