"""What every SVG snapshot test shares: snapshots stored in <repo>/snapshots/<test module>/,
a fixed environment, synthetic flows with fixed ids and timings, and helpers to drive the app.

A snapshot module imports the fixtures it needs by name (`from snapshot_kit import snapshot,
fixed_environment`) so pytest finds them, and the helpers it uses. Regenerate after an intended
UI change with `python3 -m pytest tests/ui/<module> --snapshot-update` and look at the diff.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy import SnapshotAssertion

from omniproxy_tui.app import OmniProxyApp
from proxycore.flows.flow import DONE, ERROR, PENDING, Flow, Headers, Request, Response, TLSInfo
from proxycore.options import Options

SNAPSHOT_DIR = Path(__file__).resolve().parents[2] / "snapshots"
T0 = 1767268800.0  # 2026-01-01 12:00:00 UTC: every flow starts at a fixed offset from here
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
THEME = "textual-dark"
JSON_FLOW_ID = 101  # the flow the detail snapshots show
TIMEOUT = 10.0


# --------------------------------------------------------------------------- snapshots in <repo>/snapshots


class RepoSVGExtension(SVGImageExtension):
    """The plugin's SVG extension, storing under <repo>/snapshots/<test module>/.

    The sub-directory named after the module is what lets syrupy relate each file to its test
    (no "can not relate snapshot location" warnings) and find obsolete snapshots to delete on
    `--snapshot-update`."""

    @classmethod
    def dirname(cls, *, test_location) -> str:  # type: ignore[override]
        return str(SNAPSHOT_DIR / test_location.basename)


class RepoSnapshotAssertion(SnapshotAssertion):
    """`snap_compare` calls `snapshot.use_extension(SVGImageExtension)`: swap in ours there."""

    def use_extension(self, extension_class=None) -> SnapshotAssertion:  # type: ignore[override]
        if extension_class is SVGImageExtension:
            extension_class = RepoSVGExtension
        return super().use_extension(extension_class)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return RepoSnapshotAssertion(update_snapshots=snapshot.update_snapshots, extension_class=RepoSVGExtension,
                                 test_location=snapshot.test_location, session=snapshot.session)


@pytest.fixture(autouse=True)
def fixed_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """UTC wall clock for the time column and the Timing tab; colours regardless of the caller's env."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --------------------------------------------------------------------------- synthetic flows


def _flow(fid: int, method: str, url: str, *, status: int | None = None, reason: str = "",
          ctype: str | None = None, body: bytes = b"", start: float = 0.0, duration: float | None = 0.05,
          req_headers: list[tuple[str, str]] | None = None, req_body: bytes = b"",
          resp_headers: list[tuple[str, str]] | None = None) -> Flow:
    """One finished exchange at T0 + `start`, with plausible timings (connect, TLS, wait, receive)."""
    scheme, rest = url.split("://", 1)
    netloc, _, path = rest.partition("/")
    host, _, port_s = netloc.partition(":")
    port = int(port_s) if port_s else (443 if scheme == "https" else 80)
    headers = [("Host", netloc), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")] + (req_headers or [])
    if req_body:
        headers.append(("Content-Length", str(len(req_body))))
    req = Request(method, scheme, host, port, "/" + path, headers=Headers.from_pairs(headers), body=req_body)
    flow = Flow(req, client_addr=("127.0.0.1", 50000 + fid))
    flow.id = fid
    flow.server_addr = ("93.184.216.34", port)
    t = flow.timings
    t.start = T0 + start
    if duration is not None:
        t.connect_start, t.connect_end = t.start + 0.001, t.start + duration * 0.15
        t.tls_end = t.start + duration * 0.35 if scheme == "https" else None
        t.request_sent = t.start + duration * 0.40
        t.first_byte, t.end = t.start + duration * 0.85, t.start + duration
    if scheme == "https":
        tls = TLSInfo()
        tls.version, tls.alpn, tls.sni = "TLSv1.3", "http/1.1", host
        tls.cipher = "TLS_AES_256_GCM_SHA384"
        tls.cert_subject, tls.cert_issuer = f"CN={host}", "CN=Example Issuing CA"
        tls.cert_not_after = "2026-12-31T23:59:59Z"
        tls.cert_sans = [host]
        flow.server_tls = tls
    if status is not None:
        rh = [("Content-Type", ctype)] if ctype else []
        rh += [("Content-Length", str(len(body))), ("Date", "Thu, 01 Jan 2026 12:00:00 GMT")] + (resp_headers or [])
        flow.response = Response(status, reason, headers=Headers.from_pairs(rh), body=body)
    flow.state = DONE if duration is not None else PENDING
    return flow


def sample_flows() -> list[Flow]:
    """A realistic mix: GET/POST, 200/304/404/500, an error, a tunnel, JSON/HTML/PNG, a marked flow."""
    users = {"page": 2, "per_page": 3, "total": 12, "data": [
        {"id": 4, "email": "ada@example.com", "name": "Ada Lovelace", "active": True, "roles": ["admin"]},
        {"id": 5, "email": "alan@example.com", "name": "Alan Turing", "active": True, "roles": []},
        {"id": 6, "email": "grace@example.com", "name": "Grace Hopper", "active": False, "roles": ["ops"]},
    ], "next": "/v1/users?page=3"}
    html = (b"<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Example Domain</title>"
            b"</head>\n<body><h1>Example Domain</h1><p>This domain is for use in examples.</p></body>\n</html>\n")
    png = (bytes.fromhex("89504e470d0a1a0a0000000d49484452000000c8000000640806000000")
           + b"\x00" * 14_300)  # a 200×100 PNG header, padded to a realistic size
    order = json.dumps({"sku": "WID-42", "qty": 3, "note": "gift wrap"}).encode()
    flows = [
        _flow(101, "GET", "https://api.example.com/v1/users?page=2", status=200, reason="OK",
              ctype="application/json; charset=utf-8", body=json.dumps(users).encode(), start=0.120,
              duration=0.084, req_headers=[("Accept", "application/json")]),
        _flow(102, "POST", "https://api.example.com/v1/orders", status=200, reason="OK",
              ctype="application/json", body=b'{"id": "ord_8f2k", "status": "created"}', start=0.480,
              duration=0.212, req_headers=[("Content-Type", "application/json")], req_body=order),
        _flow(103, "GET", "http://example.org/", status=200, reason="OK", ctype="text/html; charset=UTF-8",
              body=html, start=1.020, duration=0.031),
        _flow(104, "GET", "https://cdn.example.net/img/hero-banner.png", status=200, reason="OK",
              ctype="image/png", body=png, start=1.350, duration=0.460),
        _flow(105, "GET", "https://example.org/static/app.css", status=304, reason="Not Modified",
              start=1.400, duration=0.018, req_headers=[("If-None-Match", '"5f3a-1b2c"')]),
        _flow(106, "GET", "https://api.example.com/v1/users/999", status=404, reason="Not Found",
              ctype="application/json", body=b'{"error": "user 999 not found"}', start=2.010, duration=0.062),
        _flow(107, "POST", "https://api.example.com/v1/reports/generate?format=pdf&range=last-quarter",
              status=500, reason="Internal Server Error", ctype="text/plain",
              body=b"upstream worker crashed\n", start=2.600, duration=2.410,
              req_headers=[("Content-Type", "application/json")], req_body=b'{"range": "last-quarter"}'),
        _flow(108, "GET", "http://127.0.0.1:1/health", start=3.100, duration=0.002),
        _flow(109, "CONNECT", "https://bank.example.com:443", status=200, reason="Connection Established",
              start=3.500, duration=1.250),
        _flow(110, "GET", "https://api.example.com/v1/search?q=proxy+tui&limit=50&sort=relevance",
              status=200, reason="OK", ctype="application/json", body=b'{"hits": [], "took_ms": 12}',
              start=4.200, duration=None),
    ]
    err = flows[7]
    err.error = "cannot connect to 127.0.0.1:1: Connection refused"
    body = (err.error + "\n").encode()
    err.response = Response(502, "Bad Gateway", headers=Headers.from_pairs([
        ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]), body=body)
    err.server_addr, err.server_tls = None, None
    err.state = ERROR
    tunnel = flows[8]
    tunnel.request.target = "bank.example.com:443"
    tunnel.passthrough, tunnel.server_tls = True, None
    tunnel.response.body_size = 48_213  # bytes relayed, never captured
    flows[3].marked = True  # the PNG
    flows[9].response = None  # still waiting for the origin
    return flows


# --------------------------------------------------------------------------- driving the app


def make_app() -> OmniProxyApp:
    app = OmniProxyApp(Options(host="127.0.0.1", port=8080), start_proxy=False, clock=lambda: T0 + 60)
    app.theme = THEME
    return app


async def until(pilot, cond: Callable[[], object], what: str) -> None:
    """Let the app run until `cond()` holds (no fixed sleeps)."""
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def feed(pilot) -> None:
    app: OmniProxyApp = pilot.app
    flows = sample_flows()
    app._snapshot_flows = flows  # the app tracks flows weakly; keep them alive
    for f in flows:
        app.on_flow_event("done", f)
    await until(pilot, lambda: app.view.total == len(flows) and app._drawn_version == app.view.version,
                "the flows in the table")


async def type_text(pilot, text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text])


def size_params() -> list:
    return [pytest.param(size, id=name) for name, size in SIZES.items()]
