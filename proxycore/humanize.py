"""Short human-readable forms of sizes, durations and content types (log lines, the flow table)."""

from __future__ import annotations

_SHORT_TYPES = {
    "application/json": "json",
    "application/javascript": "js",
    "text/javascript": "js",
    "application/x-www-form-urlencoded": "form",
    "multipart/form-data": "multipart",
    "application/octet-stream": "binary",
    "text/plain": "text",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/grpc": "grpc",
    "application/grpc+proto": "grpc",
    "application/grpc-web": "grpc-web",
    "application/grpc-web+proto": "grpc-web",
    "application/grpc-web-text": "grpc-web",
    "application/grpc-web-text+proto": "grpc-web",
    "text/event-stream": "sse",
    "application/x-ndjson": "ndjson",
}


def short_content_type(value: str | None) -> str:
    """'application/json; charset=utf-8' -> 'json', 'image/png' -> 'png', None -> '-'."""
    if not value:
        return "-"
    mime = value.split(";", 1)[0].strip().lower()
    if mime in _SHORT_TYPES:
        return _SHORT_TYPES[mime]
    sub = mime.rsplit("/", 1)[-1]
    if "+" in sub:  # application/vnd.api+json, image/svg+xml
        suffix = sub.rsplit("+", 1)[1]
        return "svg" if sub.startswith("svg") else suffix
    sub = sub.removeprefix("x-").removeprefix("vnd.")
    return sub[:12] or "-"


def human_size(n: int | None) -> str:
    """512B, 1.2k, 34k, 3.4M, 1.1G (powers of 1024)."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n}B"
    for unit in ("k", "M", "G", "T"):
        n /= 1024
        if n < 9.95:
            return f"{n:.1f}{unit}"
        if n < 1024 or unit == "T":
            return f"{n:.0f}{unit}"
    return f"{n:.0f}T"  # unreachable; keeps type checkers quiet


def human_duration(ms: float | None) -> str:
    """12ms, 1.3s, 95s; '-' when the flow has no end."""
    if ms is None:
        return "-"
    if ms < 9.95:
        return f"{ms:.1f}ms"  # local exchanges take well under a millisecond: "0ms" says nothing
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 9950:
        return f"{ms / 1000:.1f}s"
    if ms < 600_000:
        return f"{ms / 1000:.0f}s"
    return f"{ms / 60_000:.0f}m"
