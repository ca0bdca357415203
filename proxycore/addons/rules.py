"""Rewrite rules: an ordered list of rules, each selecting flows with a filter expression
(`proxycore.flows.filter`) and changing them.

Kinds (one-line form: the kind, then a spec in mitmproxy's style, whose first character is the
separator; the filter may be left out where the number of parts says so, as mitmproxy does):

    set_header      /[filter]/Name/value       set a header (replaces every field of that name)
    remove_header   /[filter]/Name             remove a header
    replace_body    /[filter]/regex/replacement  regex replace in the (decoded) body
    map_remote      |[filter]|url-regex|replacement   rewrite the URL before it goes upstream
    map_local       |[filter]|url-regex|file-or-dir   answer from a local file or directory
    block           :[filter]:status           answer with a status; 444 hangs up (no response)
    mock            /filter/status/body        a fixed response (filter may be empty: //200/ok)

The header and body kinds take a side: `set_header@request`, `...@response`, or, as mitmproxy's
--modify-headers/--modify-body do, both (the default): the filter decides (`~q` matches a request
before its response, `~s` a flow with a response).

`RuleSet` holds the rules (with their hit counters) and saves the user's to the rules file;
`RulesAddon` applies them. The proxy registers the addon only while the set has an enabled
rule, so with no rules nothing runs per flow.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxycore.flows.filter import FilterError, parse
from proxycore.flows.flow import Flow, Headers, Request, Response

KINDS = ("set_header", "remove_header", "replace_body", "map_remote", "map_local", "block", "mock")
SIDES = ("both", "request", "response")
SIDED = frozenset({"set_header", "remove_header", "replace_body"})
HANG_UP = 444  # as mitmproxy's block_list: close the connection without a response
# Where a rule came from. Only "file" rules (the rules file and the ones added at run time) are
# saved to the rules file; flag and config rules are given again on every start.
SOURCES = ("file", "config", "flag")
# The option fields that take mitmproxy-style specs, and the rule kind each makes.
FLAG_KINDS = {"modify_headers": "modify_headers", "modify_body": "replace_body", "map_remote": "map_remote",
              "map_local": "map_local", "block_list": "block"}


class RuleError(ValueError):
    """A rule that cannot be used; the message is one line naming the rule."""


@dataclass(eq=False)
class Rule:
    kind: str
    filter: str = ""  # filter expression; empty: every flow
    side: str = "both"  # set/remove header, replace body: request, response or both
    name: str = ""  # header name
    value: str = ""  # header value; replacement (body, URL); file or directory (map_local)
    pattern: str = ""  # body regex; URL regex (map remote/local)
    status: int = 0  # block, mock
    body: str = ""  # mock
    headers: list[tuple[str, str]] = field(default_factory=list)  # mock
    enabled: bool = True
    source: str = "file"
    hits: int = 0
    # compiled
    match: Callable[[Flow], bool] | None = field(default=None, repr=False)
    rx: re.Pattern[str] | None = field(default=None, repr=False)
    rxb: re.Pattern[bytes] | None = field(default=None, repr=False)

    # ------------------------------------------------------------- building and checking
    def compile(self, label: str = "rule") -> Rule:
        """Check every part and compile the filter and regexes; RuleError names `label`."""
        def bad(msg: str) -> RuleError:
            return RuleError(f"{label} ({self.kind}): {msg}")

        if self.kind not in KINDS:
            raise RuleError(f"{label}: unknown kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.side not in SIDES:
            raise bad(f"side {self.side!r} is not one of {', '.join(SIDES)}")
        if self.kind not in SIDED:
            self.side = "both"
        try:
            self.match = parse(self.filter).predicate if self.filter.strip() else None
        except FilterError as exc:
            raise bad(f"filter {self.filter!r}: {exc}") from None
        if self.kind in ("set_header", "remove_header"):
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", self.name or ""):
                raise bad(f"{self.name!r} is not a header name")
            if any(c in self.value for c in "\r\n\0"):
                raise bad("a header value cannot hold line breaks")
        elif self.kind in ("replace_body", "map_remote", "map_local"):
            if not self.pattern:
                raise bad("the regex is empty")
            try:
                self.rx = re.compile(self.pattern)
                if self.kind == "replace_body":
                    self.rxb = re.compile(self.pattern.encode("utf-8"))
            except re.error as exc:
                raise bad(f"bad regex {self.pattern!r}: {exc}") from None
            except UnicodeError:
                raise bad(f"bad regex {self.pattern!r}") from None
            if self.kind == "map_local":
                if not self.value:
                    raise bad("no file or directory given")
                p = Path(self.value).expanduser()
                if not p.exists():
                    raise bad(f"{self.value}: no such file or directory")
            if self.kind == "map_remote":
                try:
                    self.rx.sub(self.value, "http://example.com/")
                except (re.error, IndexError) as exc:
                    raise bad(f"bad replacement {self.value!r}: {exc}") from None
        elif self.kind in ("block", "mock"):
            if not 100 <= self.status <= 999:
                raise bad(f"status {self.status!r} is not an HTTP status (100..999)")
        return self

    @property
    def summary(self) -> str:
        """What the rule does, without its filter (for tables and the flow's record)."""
        k = self.kind
        if k == "set_header":
            return f"{self.name}: {self.value}"
        if k == "remove_header":
            return self.name
        if k in ("replace_body", "map_remote", "map_local"):
            return f"{self.pattern} → {self.value}"
        if k == "block":
            return "hang up" if self.status == HANG_UP else str(self.status)
        return f"{self.status} {len(self.body.encode('utf-8'))} bytes"

    @property
    def label(self) -> str:
        side = f"@{self.side}" if self.kind in SIDED and self.side != "both" else ""
        return f"{self.kind}{side} {self.summary}"

    def to_line(self) -> str:
        """The one-line form (`kind[@side] SPEC`) that `parse_line` reads back."""
        k = self.kind
        parts = {"set_header": [self.name, self.value], "remove_header": [self.name],
                 "replace_body": [self.pattern, self.value], "map_remote": [self.pattern, self.value],
                 "map_local": [self.pattern, self.value], "block": [str(self.status)],
                 "mock": [str(self.status), self.body]}[k]
        text = self.filter + "".join(parts)
        sep = next((c for c in "/|:#!,;%" if c not in text), "\x1f")
        side = f"@{self.side}" if k in SIDED and self.side != "both" else ""
        return f"{k}{side} {sep}{self.filter}{sep}{sep.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.filter:
            d["filter"] = self.filter
        if self.kind in SIDED and self.side != "both":
            d["side"] = self.side
        if self.kind in ("set_header", "remove_header"):
            d["name"] = self.name
        if self.kind == "set_header":
            d["value"] = self.value
        if self.kind in ("replace_body", "map_remote", "map_local"):
            d["pattern"] = self.pattern
            d["path" if self.kind == "map_local" else "replacement"] = self.value
        if self.kind in ("block", "mock"):
            d["status"] = self.status
        if self.kind == "mock":
            if self.headers:
                d["headers"] = [[k, v] for k, v in self.headers]
            d["body"] = self.body
        if not self.enabled:
            d["enabled"] = False
        return d


_DICT_KEYS = {"kind", "filter", "side", "name", "value", "pattern", "replacement", "path", "status", "body",
              "headers", "enabled"}


def rule_from_dict(d: Any, label: str, source: str = "file") -> Rule:
    """A rule from its YAML mapping (see Rule.to_dict)."""
    if not isinstance(d, dict):
        raise RuleError(f"{label}: expected a mapping such as {{kind: block, filter: '~d ads', status: 404}}")
    unknown = set(map(str, d)) - _DICT_KEYS
    if unknown:
        raise RuleError(f"{label}: unknown key {sorted(unknown)[0]!r} (keys: {', '.join(sorted(_DICT_KEYS))})")
    kind = str(d.get("kind", ""))

    def text(key: str) -> str:
        v = d.get(key, "")
        if v is None:
            return ""
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise RuleError(f"{label} ({kind}): {key} must be text, got {v!r}")
        return str(v)

    status = d.get("status", 0)
    if kind == "block" and isinstance(status, str) and status.strip().lower() in ("hangup", "hang up"):
        status = HANG_UP
    if isinstance(status, bool) or not isinstance(status, int | str) or not str(status).strip().isdigit():
        raise RuleError(f"{label} ({kind}): status must be a number, got {status!r}")
    headers = d.get("headers") or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    if not isinstance(headers, list) or not all(isinstance(h, list | tuple) and len(h) == 2 for h in headers):
        raise RuleError(f"{label} ({kind}): headers must be a mapping or a list of [name, value]")
    enabled = d.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{label} ({kind}): enabled must be true or false, got {enabled!r}")
    value = text("path") if kind == "map_local" else (text("replacement") if kind in (
        "replace_body", "map_remote") else text("value"))
    rule = Rule(kind=kind, filter=text("filter"), side=text("side") or "both", name=text("name"), value=value,
                pattern=text("pattern"), status=int(str(status)), body=text("body"),
                headers=[(str(k), str(v)) for k, v in headers], enabled=enabled, source=source)
    return rule.compile(label)


def _split(spec: str, label: str, what: str) -> list[str]:
    if len(spec) < 2:
        raise RuleError(f"{label}: {spec!r} is not a rule: expected {what}, the first character being the separator")
    sep, rest = spec[0], spec[1:]
    return rest.split(sep)


def parse_flag(field_name: str, spec: str, label: str | None = None, source: str = "flag") -> Rule:
    """A rule from a mitmproxy-style flag value (`--modify-headers '/~d example.com/X-Debug/1'`)."""
    kind = FLAG_KINDS[field_name]
    label = label or f"--{field_name.replace('_', '-')} {spec!r}"
    if kind == "modify_headers":
        rule = _parse_parts("set_header", spec, label, source)
        if not rule.value:  # as mitmproxy: an empty value removes the header
            rule.kind = "remove_header"
        return rule.compile(label)
    return _parse_parts(kind, spec, label, source).compile(label)


_SHAPES = {
    "set_header": "/[filter]/Name/value", "remove_header": "/[filter]/Name",
    "replace_body": "/[filter]/regex/replacement", "map_remote": "|[filter]|url-regex|replacement",
    "map_local": "|[filter]|url-regex|file-or-directory", "block": ":[filter]:status (444 hangs up)",
    "mock": "/filter/status/body",
}


def _read_at(value: str, label: str) -> str:
    """mitmproxy's `@file`: the replacement is read from a file."""
    if not value.startswith("@"):
        return value
    p = Path(value[1:]).expanduser()
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise RuleError(f"{label}: cannot read {p}: {getattr(exc, 'strerror', None) or exc}") from None


def _parse_parts(kind: str, spec: str, label: str, source: str) -> Rule:
    shape = _SHAPES[kind]
    parts = _split(spec, label, shape)
    flt = ""

    def need(n_without: int) -> list[str]:
        nonlocal flt
        # a filter is optional: one part more than the arguments means the first is the filter;
        # the last argument takes the rest (so a body or replacement may hold the separator)
        if len(parts) < n_without:
            raise RuleError(f"{label}: expected {shape}")
        if len(parts) == n_without:
            return parts
        flt = parts[0]
        args = parts[1:n_without] + [spec[0].join(parts[n_without:])]
        return args

    if kind == "set_header":
        name, value = need(2)
        return Rule(kind, flt, name=name, value=_read_at(value, label), source=source)
    if kind == "remove_header":
        if len(parts) > 2:
            raise RuleError(f"{label}: expected {shape}")
        (name,) = need(1)
        return Rule(kind, flt, name=name, source=source)
    if kind in ("replace_body", "map_remote", "map_local"):
        pattern, value = need(2)
        if kind == "replace_body":
            value = _read_at(value, label)
        return Rule(kind, flt, pattern=pattern, value=value, source=source)
    if kind == "block":
        if len(parts) > 2:
            raise RuleError(f"{label}: expected {shape}")
        (status,) = need(1)
        if not status.strip().isdigit():
            raise RuleError(f"{label}: status {status!r} is not a number (444 hangs up)")
        return Rule(kind, flt, status=int(status), source=source)
    # mock: the filter is always there (maybe empty), the body takes the rest
    if len(parts) < 3:
        raise RuleError(f"{label}: expected {shape}")
    flt, status, body = parts[0], parts[1], spec[0].join(parts[2:])
    if not status.strip().isdigit():
        raise RuleError(f"{label}: status {status!r} is not a number")
    return Rule(kind, flt, status=int(status), body=_read_at(body, label), source=source)


def parse_line(line: str, label: str = "rule", source: str = "file") -> Rule:
    """A rule from its one-line form, `kind[@side] SPEC` (see the module docstring)."""
    line = line.strip()
    head, _, spec = line.partition(" ")
    kind, _, side = head.partition("@")
    kind = kind.replace("-", "_")
    aliases = {"modify_headers": "set_header", "modify_body": "replace_body", "header": "set_header",
               "block_list": "block"}
    kind = aliases.get(kind, kind)
    if kind not in KINDS:
        raise RuleError(f"{label}: unknown kind {kind or line!r}: expected KIND SPEC, KIND one of {', '.join(KINDS)}")
    spec = spec.strip()
    rule = _parse_parts(kind, spec, label, source)
    if side:
        rule.side = side
    return rule.compile(label)


# ------------------------------------------------------------------ applying


def _set_url(req: Request, url: str) -> bool:
    """Point the request at `url` (map remote). False when it is not an http(s) URL."""
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
    except ValueError:
        return False
    if u.scheme not in ("http", "https") or not u.hostname:
        return False
    req.scheme = u.scheme
    req.host = u.hostname.lower()
    req.port = port or (443 if u.scheme == "https" else 80)
    req.target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    # as mitmproxy, the Host header follows the new host
    req.authority = req.netloc
    if "host" in req.headers:
        req.headers.set("Host", req.netloc)
    return True


def safe_local_file(root: Path, suffix: str) -> Path | None:
    """The file under directory `root` that `suffix` (a URL path piece, percent-encoded) names, or
    None when it would leave `root`: `..` (also encoded as %2e%2e), an absolute path, a backslash,
    a NUL, or a symlink that points outside."""
    decoded = urllib.parse.unquote(suffix)
    if "\0" in decoded or "\\" in decoded or decoded.startswith("/"):
        return None
    parts = [p for p in decoded.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    base = root.resolve()
    target = base.joinpath(*parts) if parts else base
    try:
        real = target.resolve(strict=False)
    except (OSError, RuntimeError):
        return None
    if real != base and base not in real.parents:
        return None  # a symlink somewhere on the way points out of the directory
    return real


def _local_response(rule: Rule, flow: Flow) -> Response:
    root = Path(rule.value).expanduser()
    url = flow.request.url
    candidates: list[Path] = []
    refused = False
    if root.is_file():
        candidates.append(root)
    else:
        m = rule.rx.search(url.split("?", 1)[0]) if rule.rx is not None else None
        suffix = ""
        if m is not None:
            suffix = m.group(1) or "" if m.re.groups else url.split("?", 1)[0][m.end():]
        suffix = suffix.strip("/")
        for cand in ([suffix, f"{suffix}/index.html"] if suffix else ["index.html"]):
            p = safe_local_file(root, cand)
            if p is None:
                refused = True
                break
            candidates.append(p)
    if refused:
        return _text_response(403, "map local: the path leaves the mapped directory\n")
    for p in candidates:
        if p.is_file():
            try:
                data = p.read_bytes()
            except OSError as exc:
                return _text_response(500, f"map local: cannot read {p.name}: {exc.strerror}\n")
            ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            return Response(200, "OK", headers=Headers.from_pairs([("Content-Type", ctype)]), body=data)
    return _text_response(404, "map local: no such file\n")


def _text_response(status: int, text: str) -> Response:
    return Response(status, _reason(status), headers=Headers.from_pairs(
        [("Content-Type", "text/plain; charset=utf-8")]), body=text.encode("utf-8"))


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _mock_response(rule: Rule) -> Response:
    body = rule.body.encode("utf-8")
    headers = Headers.from_pairs(rule.headers)
    if "content-type" not in headers and body:
        try:
            json.loads(rule.body)
            ctype = "application/json"
        except ValueError:
            ctype = "text/plain; charset=utf-8"
        headers.set("Content-Type", ctype)
    for h in ("content-length", "transfer-encoding", "content-encoding"):
        headers.remove(h)  # the proxy frames the body it sends
    return Response(rule.status, _reason(rule.status), headers=headers, body=body)


def _replace_body(rule: Rule, msg: Request | Response) -> bool:
    from proxycore.encoding import decode_body

    body = msg.body
    if not body:
        # nothing buffered: an empty body, or one too big for --body-buffer-limit that was
        # streamed past the hooks (as mitmproxy, streamed bodies are not rewritten)
        return False
    ce = msg.headers.get("content-encoding")
    if ce:
        decoded, note = decode_body(body, ce)
        if note is not None:
            return False  # cannot see the text: leave it alone
        body = decoded
    assert rule.rxb is not None
    new, n = rule.rxb.subn(rule.value.encode("utf-8"), body)
    if not n:
        return False
    if ce:
        msg.headers.remove("Content-Encoding")  # sent decoded; the proxy sets Content-Length
    msg.body = new
    return True


def _edit_headers(r: Rule, headers: Headers, flow: Flow) -> None:
    """A set_header / remove_header rule on one message's headers (counted only if it changed them)."""
    if r.kind == "set_header":
        if headers.get(r.name) != r.value or len(headers.get_all(r.name)) != 1:
            headers.set(r.name, r.value)
            _touch(r, flow)
    elif r.name in headers:
        headers.remove(r.name)
        _touch(r, flow)


def _touch(rule: Rule, flow: Flow) -> None:
    label = rule.label
    if label in flow.rules_applied:
        return  # one rule, both sides: one flow touched
    rule.hits += 1
    flow.modified = True
    flow.rules_applied = (*flow.rules_applied, label)


class RulesAddon:
    """Applies a RuleSet to flows, in order. Its hooks read the set's current list each time, so
    edits apply to the next flow at once."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules

    def requestheaders(self, flow: Flow) -> None:
        for r in self.rules.active:
            if r.kind == "replace_body" and r.side != "response" and (r.match is None or r.match(flow)):
                flow.request.stream = False  # buffer the body so `request` can rewrite it

    def request(self, flow: Flow) -> None:
        req = flow.request
        for r in self.rules.active:
            k = r.kind
            if k in SIDED and r.side == "response":
                continue
            if r.match is not None and not r.match(flow):
                continue
            if k == "set_header" or k == "remove_header":
                _edit_headers(r, req.headers, flow)
            elif k == "replace_body":
                if not req.stream and _replace_body(r, req):
                    _touch(r, flow)
            elif k == "map_remote":
                assert r.rx is not None
                url = req.url
                new = r.rx.sub(r.value, url)
                if new != url and _set_url(req, new):
                    _touch(r, flow)
            elif k == "map_local":
                assert r.rx is not None
                if r.rx.search(req.url):
                    flow.response = _local_response(r, flow)
                    _touch(r, flow)
                    return
            elif k == "block":
                _touch(r, flow)
                if r.status == HANG_UP:
                    flow.kill()
                else:
                    flow.response = Response(r.status, _reason(r.status))
                return
            elif k == "mock":
                flow.response = _mock_response(r)
                _touch(r, flow)
                return

    def responseheaders(self, flow: Flow) -> None:
        resp = flow.response
        if resp is None:
            return
        for r in self.rules.active:
            k = r.kind
            if k not in SIDED or r.side == "request" or (r.match is not None and not r.match(flow)):
                continue
            if k == "set_header" or k == "remove_header":
                _edit_headers(r, resp.headers, flow)
            elif k == "replace_body":
                resp.stream = False

    def response(self, flow: Flow) -> None:
        resp = flow.response
        if resp is None or resp.stream:
            return
        for r in self.rules.active:
            if r.kind == "replace_body" and r.side != "request" and (r.match is None or r.match(flow)):
                if _replace_body(r, resp):
                    _touch(r, flow)


class RuleSet:
    """The ordered rules, their counters, and the rules file the user's rules are saved to.

    `on_change(has_active)` is called after every change (the proxy registers or removes the
    addon with it)."""

    def __init__(self, path: Path | None = None) -> None:
        self.rules: list[Rule] = []
        self.active: list[Rule] = []  # the enabled ones, in order: what the addon iterates
        self.path = path
        self.on_change: Callable[[bool], None] | None = None

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self):  # noqa: ANN204 - Iterator[Rule]
        return iter(self.rules)

    def changed(self, save: bool = True) -> None:
        self.active = [r for r in self.rules if r.enabled]
        if save:
            self.save()
        if self.on_change is not None:
            self.on_change(bool(self.active))

    # ------------------------------------------------------------- loading and saving
    def load(self, config_rules: Iterable[Any] = (), flags: dict[str, Iterable[str]] | None = None,
             read_file: bool = True) -> None:
        """Rules from the rules file (when it exists), then the config's `rules:`, then the flags.
        RuleError (one line naming the rule) on the first bad one."""
        rules: list[Rule] = []
        if read_file and self.path is not None and self.path.exists():
            rules += load_rules_file(self.path)
        for i, d in enumerate(config_rules, 1):
            rules.append(rule_from_dict(d, f"config rules[{i}]", source="config"))
        for fld, specs in (flags or {}).items():
            for spec in specs:
                rules.append(parse_flag(fld, spec))
        self.rules = rules
        self.changed(save=False)

    def save(self) -> None:
        """Write the file rules to the rules file (atomically, 0600, never through a symlink)."""
        if self.path is None:
            return
        from proxycore.safefile import write_atomic

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, dump_rules([r for r in self.rules if r.source == "file"]).encode("utf-8"))

    # ------------------------------------------------------------- editing (1-based numbers)
    def _index(self, n: int) -> int:
        if not 1 <= n <= len(self.rules):
            raise RuleError(f"no rule {n} (there {'is' if len(self.rules) == 1 else 'are'} {len(self.rules)})")
        return n - 1

    def add(self, rule: Rule, at: int | None = None) -> int:
        if at is None:
            self.rules.append(rule)
            n = len(self.rules)
        else:
            self.rules.insert(at, rule)
            n = at + 1
        self.changed()
        return n

    def replace(self, n: int, rule: Rule) -> None:
        i = self._index(n)
        old = self.rules[i]
        rule.hits, rule.enabled = old.hits, old.enabled
        if rule.kind == "mock" and old.kind == "mock" and not rule.headers:
            rule.headers = old.headers  # the one-line form has no headers: keep them
        rule.source = "file"  # an edited rule is the user's: saved from now on
        self.rules[i] = rule
        self.changed()

    def toggle(self, n: int) -> Rule:
        r = self.rules[self._index(n)]
        r.enabled = not r.enabled
        self.changed()
        return r

    def move(self, n: int, delta: int) -> int:
        i = self._index(n)
        j = max(0, min(len(self.rules) - 1, i + delta))
        self.rules.insert(j, self.rules.pop(i))
        self.changed()
        return j + 1

    def delete(self, n: int) -> Rule:
        r = self.rules.pop(self._index(n))
        self.changed()
        return r


def dump_rules(rules: Iterable[Rule]) -> str:
    import yaml

    return "# OmniProxy rewrite rules (applied in order). Edited by the rules screen (R).\n" + yaml.safe_dump(
        {"rules": [r.to_dict() for r in rules]}, sort_keys=False, allow_unicode=True, width=1000)


def load_rules_file(path: str | os.PathLike[str]) -> list[Rule]:
    """Rules from a YAML file: `rules: [...]` (or a bare list). RuleError, one line, on any problem."""
    from proxycore.config import ConfigError, parse_yaml_value

    label = str(path)
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleError(f"{label}: rules file not found") from None
    except (OSError, UnicodeError) as exc:
        raise RuleError(f"{label}: cannot read the rules file ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = parse_yaml_value(text, label)
    except ConfigError as exc:
        raise RuleError(str(exc)) from None
    if isinstance(data, dict) and set(data) <= {"rules"}:
        data = data.get("rules") or []
    if data is None:
        data = []
    if not isinstance(data, list):
        raise RuleError(f"{label}: expected `rules:` followed by a list of rules")
    return [rule_from_dict(d, f"{label}: rules[{i}]", source="file") for i, d in enumerate(data, 1)]


# ------------------------------------------------------------------ edits into rules


def _quote_rx(text: str) -> str:
    """A filter argument matching exactly `text` (regex-escaped, double-quoted)."""
    return '"^' + re.escape(text).replace('"', '\\"') + '$"'


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RuleError(f"the {what} is binary; a rule can only hold text") from None


def _repl(text: str) -> str:
    return text.replace("\\", "\\\\")  # a literal replacement for re.sub


_FRAMING = ("content-length", "transfer-encoding", "host")


def rules_from_edit(flow: Flow) -> list[Rule]:
    """Rules that make later flows with this flow's method and URL look like its edit: a response
    edit becomes a mock; a request edit becomes header set/remove rules, a body replace, and a map
    remote when the URL changed (last, so the other rules still see the URL they match)."""
    from proxycore.encoding import decode_body

    orig_req = flow.original_request or flow.request
    flt = f"~m {_quote_rx(orig_req.method)} & ~u {_quote_rx(orig_req.url)}"
    out: list[Rule] = []
    req = flow.request
    if flow.original_request is not None:
        old, new = flow.original_request, req
        names = dict.fromkeys(k.lower() for k, _ in [*old.headers.items(), *new.headers.items()])
        for name in names:
            if name in _FRAMING:
                continue
            before, after = old.headers.get_all(name), new.headers.get_all(name)
            if before == after:
                continue
            shown = next((k for k, _ in new.headers.items() if k.lower() == name), name)
            if after:
                out.append(Rule("set_header", flt, side="request", name=shown, value=after[-1]))
            else:
                out.append(Rule("remove_header", flt, side="request", name=shown))
        if old.body != new.body:
            out.append(Rule("replace_body", flt, side="request",
                            pattern=r"\A" + re.escape(_text(old.body, "original request body")) + r"\Z",
                            value=_repl(_text(new.body, "edited request body"))))
    if flow.original_response is not None and flow.response is not None:
        resp = flow.response
        body = resp.body
        ce = resp.headers.get("content-encoding")
        headers = [(k, v) for k, v in resp.headers.items() if k.lower() not in _FRAMING]
        if ce:
            decoded, note = decode_body(body, ce)
            if note is None:
                body = decoded
                headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
        out.append(Rule("mock", flt, status=resp.status, headers=headers,
                        body=_text(body, "edited response body")))
    if flow.original_request is not None and flow.original_request.url != req.url:
        out.append(Rule("map_remote", flt, pattern="^" + re.escape(flow.original_request.url) + "$",
                        value=_repl(req.url)))
    return [r.compile(f"rule from flow {flow.id}") for r in out]
