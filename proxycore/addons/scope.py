"""Capture scope (include/exclude by host, path and method), sampling and skip-host matching.

Wildcards: `*` is any run of characters (it crosses `/` and `.`), `?` is exactly one character,
everything else is literal, and a pattern must match the whole value. Hosts compare
case-insensitively (DNS names are) and without their port; paths compare case-sensitively;
methods case-insensitively. `*.example.com` matches `api.example.com` but not `example.com`.

Each list is compiled into one alternation regex, and `from_options` returns None when nothing
is configured, so a proxy without filters does no work per flow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxycore.options import Options

Matcher = Callable[[str], bool]


def split_list(values: Iterable[str] | str | None, name: str | None = None) -> list[str]:
    """Repeated values and/or comma-separated strings -> one flat list.

    Blank items are dropped, or, when `name` is given, an error naming the option.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        for item in str(v).split(","):
            item = item.strip()
            if item:
                out.append(item)
            elif name is not None:
                raise ValueError(f"{name}: empty pattern in {v!r} (expected e.g. 'api.example.com' or '*.example.com')")
    return out


def validate_patterns(name: str, values: Iterable[str] | str | None) -> list[str]:
    """Like split_list, but an empty pattern is an error naming the option."""
    return split_list(values, name)


def validate_sample_rate(value: object, name: str = "sample_rate") -> float:
    """A number from 0 to 1 (0 keeps nothing, 1 keeps everything)."""
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number (expected 0..1, e.g. 0.1)") from None
    if math.isnan(rate) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name}: {value!r} is out of range (expected 0..1, e.g. 0.1)")
    return rate


def strip_port(host: str) -> str:
    """'example.com:443' -> 'example.com', '[::1]:8080' -> '::1'; bare IPv6 is left alone."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end != -1 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def wildcard_to_regex(pattern: str) -> str:
    """Translate one wildcard pattern to (unanchored) regex source."""
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return "".join(parts)


def compile_patterns(patterns: Iterable[str], ignore_case: bool) -> re.Pattern[str] | None:
    """One anchored alternation for the whole list (None for an empty list)."""
    sources = [wildcard_to_regex(p) for p in patterns]
    if not sources:
        return None
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("(?:" + "|".join(sources) + ")", flags)


def _host_patterns(values: Iterable[str] | str | None) -> list[str]:
    # a pattern written with a port ("api.x.com:8443") still means the host
    return [strip_port(p) for p in split_list(values)]


def host_matcher(patterns: Iterable[str] | str | None) -> Matcher:
    """A predicate over host names (with or without port) for a list of host patterns."""
    rx = compile_patterns(_host_patterns(patterns), ignore_case=True)
    if rx is None:
        return lambda host: False
    fullmatch = rx.fullmatch
    return lambda host: fullmatch(strip_port(host)) is not None


def skip_host_matcher(patterns: list[str]) -> Matcher:
    """For --skip-host: True when a CONNECT/SNI host (port ignored) should be tunnelled untouched."""
    return host_matcher(patterns)


class Scope:
    """Which flows are captured: include lists need one match per dimension, excludes none."""

    __slots__ = ("_inc_host", "_exc_host", "_inc_path", "_exc_path", "_inc_method", "_exc_method")

    def __init__(
        self,
        include_hosts: Iterable[str] = (),
        exclude_hosts: Iterable[str] = (),
        include_paths: Iterable[str] = (),
        exclude_paths: Iterable[str] = (),
        include_methods: Iterable[str] = (),
        exclude_methods: Iterable[str] = (),
    ) -> None:
        self._inc_host = compile_patterns(_host_patterns(include_hosts), ignore_case=True)
        self._exc_host = compile_patterns(_host_patterns(exclude_hosts), ignore_case=True)
        self._inc_path = compile_patterns(split_list(include_paths), ignore_case=False)
        self._exc_path = compile_patterns(split_list(exclude_paths), ignore_case=False)
        self._inc_method = compile_patterns(split_list(include_methods), ignore_case=True)
        self._exc_method = compile_patterns(split_list(exclude_methods), ignore_case=True)

    @classmethod
    def from_options(cls, opts: Options) -> Scope | None:
        """None when no filter is set, so the caller can skip scope checks entirely."""
        lists = {
            "include_hosts": validate_patterns("include_hosts", opts.include_hosts),
            "exclude_hosts": validate_patterns("exclude_hosts", opts.exclude_hosts),
            "include_paths": validate_patterns("include_paths", opts.include_paths),
            "exclude_paths": validate_patterns("exclude_paths", opts.exclude_paths),
            "include_methods": validate_patterns("include_methods", opts.include_methods),
            "exclude_methods": validate_patterns("exclude_methods", opts.exclude_methods),
        }
        if not any(lists.values()):
            return None
        return cls(**lists)

    def matches(self, host: str, path: str, method: str) -> bool:
        """True when the flow is in scope. `host` may carry a port; `path` a query (ignored)."""
        if self._inc_host is not None or self._exc_host is not None:
            h = strip_port(host)
            if self._inc_host is not None and self._inc_host.fullmatch(h) is None:
                return False
            if self._exc_host is not None and self._exc_host.fullmatch(h) is not None:
                return False
        if self._inc_path is not None or self._exc_path is not None:
            if "?" in path:
                path = path.split("?", 1)[0]
            if self._inc_path is not None and self._inc_path.fullmatch(path) is None:
                return False
            if self._exc_path is not None and self._exc_path.fullmatch(path) is not None:
                return False
        if self._inc_method is not None and self._inc_method.fullmatch(method) is None:
            return False
        if self._exc_method is not None and self._exc_method.fullmatch(method) is not None:
            return False
        return True


class Sampler:
    """Keeps a deterministic fraction of flows, with per-host overrides.

    never_hosts are always dropped, always_hosts always kept; the rest count through a
    counter and record N is kept when floor(N * rate) increases, so 0.1 keeps exactly every
    10th, 0.25 every 4th and 0 none. The rate is held as an exact fraction so float rounding
    cannot shift which records are kept.
    """

    __slots__ = ("_num", "_den", "_count", "_always", "_never", "kept", "dropped")

    def __init__(
        self,
        rate: float = 1.0,
        always_hosts: Iterable[str] = (),
        never_hosts: Iterable[str] = (),
    ) -> None:
        frac = Fraction(validate_sample_rate(rate)).limit_denominator(1_000_000)
        self._num = frac.numerator
        self._den = frac.denominator
        self._count = 0
        self._always = compile_patterns(_host_patterns(always_hosts), ignore_case=True)
        self._never = compile_patterns(_host_patterns(never_hosts), ignore_case=True)
        self.kept = 0
        self.dropped = 0

    @classmethod
    def from_options(cls, opts: Options) -> Sampler | None:
        """None when every flow would be kept anyway."""
        rate = validate_sample_rate(opts.sample_rate)
        always = validate_patterns("always_hosts", opts.always_hosts)
        never = validate_patterns("never_hosts", opts.never_hosts)
        if rate >= 1.0 and not always and not never:
            return None
        return cls(rate, always, never)

    @property
    def rate(self) -> float:
        return self._num / self._den

    def keep(self, host: str) -> bool:
        keep = self._decide(host)
        if keep:
            self.kept += 1
        else:
            self.dropped += 1
        return keep

    def _decide(self, host: str) -> bool:
        if self._never is not None or self._always is not None:
            h = strip_port(host)
            if self._never is not None and self._never.fullmatch(h) is not None:
                return False
            if self._always is not None and self._always.fullmatch(h) is not None:
                return True
        if self._num == self._den:
            return True
        n = self._count = self._count + 1
        return (n * self._num) // self._den > ((n - 1) * self._num) // self._den
