"""Cookies as a user reads them: the pairs of a request's Cookie headers and each Set-Cookie of a
response with its attributes parsed (RFC 6265 §5.2, leniently: real servers bend the rules).

Pure functions of header values; the detail view shows them as tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

# Attribute names as RFC 6265bis spells them; unknown attributes are kept as written.
_KNOWN = {"domain": "Domain", "path": "Path", "expires": "Expires", "max-age": "Max-Age",
          "secure": "Secure", "httponly": "HttpOnly", "samesite": "SameSite",
          "partitioned": "Partitioned", "priority": "Priority"}


def parse_cookie_header(value: str) -> list[tuple[str, str]]:
    """`a=1; b=2` -> [("a", "1"), ("b", "2")]; a piece without "=" is a value with no name, as
    browsers read it."""
    out: list[tuple[str, str]] = []
    for piece in value.split(";"):
        piece = piece.strip()
        if not piece:
            continue
        name, eq, val = piece.partition("=")
        out.append((name.strip(), val.strip()) if eq else ("", name.strip()))
    return out


@dataclass
class SetCookie:
    name: str
    value: str
    attrs: list[tuple[str, str | None]] = field(default_factory=list)  # (canonical name, value)

    def get(self, name: str) -> str | None:
        """The last value of an attribute (the one that counts); "" for a flag that is present."""
        key = _KNOWN.get(name.lower(), name)
        found: str | None = None
        for k, v in self.attrs:
            if k == key:
                found = "" if v is None else v
        return found

    def expiry(self) -> str | None:
        """When it expires in words: Max-Age wins over Expires (RFC 6265 §5.3)."""
        max_age = self.get("max-age")
        if max_age is not None:
            try:
                n = int(max_age)
            except ValueError:
                return f"Max-Age={max_age} (not a number: ignored)"
            return "now (deleted)" if n <= 0 else f"in {_duration(n)}"
        expires = self.get("expires")
        if expires is None:
            return "end of session"
        try:
            when = parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            return f"{expires} (unparsable date)"
        return when.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            return f"{whole} {unit}" if not rest else f"{seconds:,} s ({whole} {unit}+)"
    return f"{seconds} s"


def parse_set_cookie(value: str) -> SetCookie:
    """One Set-Cookie header value. Never raises: a nameless cookie gets an empty name."""
    first, _, rest = value.partition(";")
    name, eq, val = first.partition("=")
    cookie = SetCookie(name.strip(), val.strip()) if eq else SetCookie("", name.strip())
    for piece in rest.split(";"):
        piece = piece.strip()
        if not piece:
            continue
        k, eq, v = piece.partition("=")
        k = k.strip()
        cookie.attrs.append((_KNOWN.get(k.lower(), k), v.strip() if eq else None))
    return cookie
