"""Sections of the detail documents beyond the raw heads: the query string and the cookies as
tables, and the server's certificate chain. Pure functions that add lines to a Document.

At 80×24 these are sections of the existing tabs rather than more tabs: the query and the cookies
sit between the headers and the body of the Request/Response tab (where the user already looks),
the certificate chain in the Timing tab beside the TLS facts it belongs to.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse

from rich.text import Text

from omniproxy_tui.views.contentviews import clean_line
from omniproxy_tui.widgets.lineview import Document
from proxycore.certinfo import describe_chain
from proxycore.cookies import parse_cookie_header, parse_set_cookie
from proxycore.flows.flow import Request, Response, TLSInfo

S_TITLE = "bold"
S_NAME = "bold #61afef"
S_DIM = "dim"
S_WARN = "bold #e5c07b"
S_OK = "green"
MAX_ROWS = 500  # a 40 KiB query or a cookie jar gone wild: the rest is counted, not listed
NAME_WIDTH = 24


def _table(doc: Document, title: str, rows: list[tuple[str, str]]) -> None:
    """A titled name/value table; long values wrap under the value column."""
    doc.add("")
    doc.add(Text.assemble((title, S_TITLE), (f"  {len(rows):,}", S_DIM)))
    width = min(max((len(n) for n, _ in rows[:MAX_ROWS]), default=0), NAME_WIDTH)
    for name, value in rows[:MAX_ROWS]:
        line = Text.assemble((f"{clean_line(name) or '(no name)':<{width}}  ", S_NAME if name else S_DIM))
        line.append(clean_line(value))
        doc.add(line, hang=width + 2)
    if len(rows) > MAX_ROWS:
        doc.add(Text(f"… {len(rows) - MAX_ROWS:,} more", S_DIM))


def query_rows(req: Request) -> list[tuple[str, str]]:
    """The query string's pairs, percent- and plus-decoded; blank values kept."""
    qs = req.query_string if req.method != "CONNECT" else ""
    if not qs:
        return []
    return urllib.parse.parse_qsl(qs, keep_blank_values=True, errors="replace")


def add_query(doc: Document, req: Request) -> None:
    rows = query_rows(req)
    if rows:
        _table(doc, "Query", rows)


def cookie_rows(req: Request) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for value in req.headers.get_all("cookie"):
        rows.extend(parse_cookie_header(value))
    return rows


def add_request_cookies(doc: Document, req: Request) -> None:
    rows = cookie_rows(req)
    if rows:
        _table(doc, "Cookies", rows)


def add_set_cookies(doc: Document, resp: Response) -> None:
    """Each Set-Cookie: name and value, then when it expires and its other attributes."""
    values = resp.headers.get_all("set-cookie")
    if not values:
        return
    cookies = [parse_set_cookie(v) for v in values[:MAX_ROWS]]
    doc.add("")
    doc.add(Text.assemble(("Set-Cookie", S_TITLE), (f"  {len(values):,}", S_DIM)))
    width = min(max((len(c.name) for c in cookies), default=0), NAME_WIDTH)
    pad = " " * (width + 2)
    for c in cookies:
        line = Text.assemble((f"{clean_line(c.name) or '(no name)':<{width}}  ", S_NAME if c.name else S_DIM))
        line.append(clean_line(c.value) if c.value else "(empty)", "" if c.value else S_DIM)
        doc.add(line, hang=width + 2)
        facts = [("expires", c.expiry() or "")]
        for key in ("Domain", "Path", "SameSite"):
            v = c.get(key)
            if v is not None:
                facts.append((key.lower(), v or "(empty)"))
        flags = [k for k in ("Secure", "HttpOnly", "Partitioned") if c.get(k) is not None]
        known = {"Expires", "Max-Age", "Domain", "Path", "SameSite", "Secure", "HttpOnly", "Partitioned"}
        others = [f"{k}={v}" if v is not None else k for k, v in c.attrs if k not in known]
        attrs = Text(pad)
        for i, (k, v) in enumerate(facts):
            if i:
                attrs.append(" · ", S_DIM)
            attrs.append(f"{k} ", S_DIM)
            attrs.append(clean_line(v))
        for flag in flags:
            attrs.append(" · ", S_DIM)
            attrs.append(flag, S_OK)
        for other in others:
            attrs.append(" · ", S_DIM)
            attrs.append(clean_line(other))
        doc.add(attrs, hang=width + 2)
    if len(values) > MAX_ROWS:
        doc.add(Text(f"… {len(values) - MAX_ROWS:,} more", S_DIM))


def add_cert_chain(doc: Document, tls: TLSInfo | None, at: float) -> None:
    """The certificates the server sent, leaf first: subject, issuer, validity, names, key and
    fingerprints (SHA-256 and SHA-1, as browsers show them). Validity is judged at `at` (the
    flow's start): what matters is whether the certificate was valid for that exchange."""
    if tls is None or not tls.cert_chain:
        return
    facts, error = describe_chain(tls.cert_chain)
    when = dt.datetime.fromtimestamp(at, dt.UTC)
    doc.add("")
    doc.add(Text.assemble(("Certificate chain", S_TITLE),
                          (f"  {len(facts)} as sent by the server · validity when the flow ran", S_DIM)))
    for i, cert in enumerate(facts, 1):
        title = Text(f"[{i}] ", S_DIM)
        title.append(clean_line(cert.subject), "bold")
        doc.add(title, hang=4)
        state = cert.validity(when)
        rows = [
            ("issuer", Text(clean_line(cert.issuer) + ("  (self-signed)" if cert.self_signed else ""))),
            ("valid", Text.assemble(f"{cert.not_before:%Y-%m-%d} → {cert.not_after:%Y-%m-%d}  ",
                                    (state, S_OK if state.startswith("valid") else S_WARN))),
            ("names", Text(", ".join(cert.sans) or "—", "" if cert.sans else S_DIM)),
            ("key", Text(f"{cert.key}{' · CA' if cert.is_ca else ''} · serial {cert.serial}")),
            ("SHA-256", Text(cert.sha256)),
            ("SHA-1", Text(cert.sha1)),
        ]
        for name, value in rows:
            line = Text.assemble((f"    {name:<8} ", S_NAME))
            line.append_text(value)
            doc.add(line, hang=13)
    if error:
        doc.add(Text(f"⚠ {error}", S_WARN))
