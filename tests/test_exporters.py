"""Exports are checked by running them: curl and the Python script hit a real local server."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import h11
import pytest

from proxycore.capture.exporters import (
    EXPORT_FORMATS,
    to_curl,
    to_httpie,
    to_python_httpx,
    to_raw_request,
    to_raw_response,
)
from proxycore.flows.flow import Flow, Headers, Request, Response

ORIGIN_BODY = b"hello from origin"


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.server.received.put((self.command, self.path, list(self.headers.items()), body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(ORIGIN_BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(ORIGIN_BODY)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class Origin:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        self.server.received = queue.Queue()  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def next_request(self) -> tuple[str, str, list[tuple[str, str]], bytes]:
        return self.server.received.get(timeout=20)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    yield o
    o.close()


def make_flow(
    port: int,
    method: str = "GET",
    target: str = "/path?q=1",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    host: str = "127.0.0.1",
) -> Flow:
    pairs = headers if headers is not None else [("Host", f"{host}:{port}")]
    return Flow(Request(method, "http", host, port, target, headers=Headers.from_pairs(pairs), body=body))


def run_shell(cmd: str, shell: str = "bash") -> subprocess.CompletedProcess[bytes]:
    # From a script file, as if pasted: `sh -c` would hit the 128 KiB single-argument limit.
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as fh:
        fh.write(cmd + "\n")
    try:
        proc = subprocess.run([shell, fh.name], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        os.unlink(fh.name)
    assert proc.returncode == 0, (cmd[:500], proc.stderr.decode(errors="replace"))
    return proc


def assert_headers_sent(sent: list[tuple[str, str]], received: list[tuple[str, str]]) -> None:
    """Every exported header arrived with its value, repeated ones as many times."""
    got = [(k.lower(), v) for k, v in received]
    for name, value in sent:
        assert got.count((name.lower(), value)) == sent.count((name, value)), (name, value, received)


COMMON_HEADERS = [
    ("User-Agent", "OmniTest/1.0"),
    ("Accept", "application/json"),
    ("Authorization", "Bearer secret-token"),  # exports must not redact
    ("Cookie", "sid=abc; theme=dark"),
    ("X-Dup", "one"),
    ("X-Dup", "two"),
    ("X-Quote", "it's \"quoted\" $HOME `uname`"),
]


# --------------------------------------------------------------------------- curl

def test_curl_get_reproduces_method_path_headers(origin: Origin) -> None:
    headers = [("Host", f"127.0.0.1:{origin.port}"), *COMMON_HEADERS, ("Accept-Encoding", "gzip, br")]
    flow = make_flow(origin.port, headers=headers)
    cmd = to_curl(flow)
    assert cmd.startswith("curl 'http://127.0.0.1:")
    assert " -X " not in cmd and "--compressed" in cmd and "Host:" not in cmd
    assert "Bearer secret-token" in cmd
    proc = run_shell(cmd)
    assert proc.stdout == ORIGIN_BODY
    method, path, received, body = origin.next_request()
    assert (method, path, body) == ("GET", "/path?q=1", b"")
    assert_headers_sent(COMMON_HEADERS, received)
    ae = dict((k.lower(), v) for k, v in received)["accept-encoding"]
    assert "gzip" in ae


def test_curl_post_text_body_with_shell_metacharacters(origin: Origin, tmp_path) -> None:
    marker = tmp_path / "pwned"
    body = f'{{"q": "it\'s $(touch {marker}) `touch {marker}` \\n"}}\nline2\t%s\\x00'.encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    flow = make_flow(origin.port, method="POST", target="/api/items", headers=headers, body=body)
    cmd = to_curl(flow)
    assert " -X " not in cmd and "--data-binary" in cmd and "Content-Length" not in cmd
    run_shell(cmd)
    method, path, received, got = origin.next_request()
    assert (method, path, got) == ("POST", "/api/items", body)
    assert_headers_sent([("Content-Type", "application/json")], received)
    assert not marker.exists()


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_curl_binary_body_every_byte(origin: Origin, shell: str) -> None:
    body = bytes(range(256)) * 2 + b"\x00\x001\\%%s'\"\n"
    flow = make_flow(origin.port, method="PUT", target="/upload",
                     headers=[("Content-Type", "application/octet-stream")], body=body)
    cmd = to_curl(flow)
    assert cmd.startswith("printf ") and "--data-binary @-" in cmd and "-X PUT" in cmd
    run_shell(cmd, shell)
    method, path, _, got = origin.next_request()
    assert (method, path) == ("PUT", "/upload")
    assert got == body


def test_curl_large_text_body_goes_through_a_pipe(origin: Origin) -> None:
    body = b"abcdefghij\n" * 20000  # 220 kB, over the 128 KiB single-argument limit
    flow = make_flow(origin.port, method="POST", target="/big", headers=[], body=body)
    cmd = to_curl(flow)
    assert cmd.startswith("printf ")
    run_shell(cmd)
    assert origin.next_request()[3] == body


@pytest.mark.parametrize(
    ("method", "body", "expect_flag"),
    [
        ("DELETE", b"", "-X DELETE"),
        ("PATCH", b"a=1", "-X PATCH"),
        ("GET", b"search-body", "-X GET"),
        ("OPTIONS", b"", "-X OPTIONS"),
        ("HEAD", b"", "--head"),
    ],
)
def test_curl_methods(origin: Origin, method: str, body: bytes, expect_flag: str) -> None:
    flow = make_flow(origin.port, method=method, target="/m", headers=[("X-A", "1")], body=body)
    cmd = to_curl(flow)
    assert expect_flag in cmd
    run_shell(cmd)
    got_method, path, received, got_body = origin.next_request()
    assert (got_method, path, got_body) == (method, "/m", body)
    assert_headers_sent([("X-A", "1")], received)


def test_curl_post_with_empty_declared_body(origin: Origin) -> None:
    flow = make_flow(origin.port, method="POST", target="/empty", headers=[("Content-Length", "0")])
    cmd = to_curl(flow)
    assert "-X" not in cmd and "--data-binary ''" in cmd
    run_shell(cmd)
    method, _, received, body = origin.next_request()
    assert method == "POST" and body == b""
    assert ("content-length", "0") in [(k.lower(), v) for k, v in received]


def test_curl_keeps_a_host_header_that_differs_from_the_url(origin: Origin) -> None:
    flow = make_flow(origin.port, headers=[("Host", "virtual.example"), ("X-Empty", "")])
    cmd = to_curl(flow)
    assert "-H 'Host: virtual.example'" in cmd and "-H 'X-Empty;'" in cmd
    run_shell(cmd)
    _, _, received, _ = origin.next_request()
    lower = [(k.lower(), v) for k, v in received]
    assert ("host", "virtual.example") in lower
    assert ("x-empty", "") in lower


def test_curl_brackets_and_dot_segments(origin: Origin) -> None:
    flow = make_flow(origin.port, target="/a/../b/?ids[]=1&x={y}", headers=[])
    cmd = to_curl(flow)
    assert "--globoff" in cmd and "--path-as-is" in cmd
    run_shell(cmd)
    assert origin.next_request()[1] == "/a/../b/?ids[]=1&x={y}"


def test_curl_truncated_body_warns_and_still_runs(origin: Origin) -> None:
    flow = make_flow(origin.port, method="POST", target="/t", headers=[], body=b"partial")
    flow.request.body_truncated = True
    flow.request.body_size = 5_000_000
    cmd = to_curl(flow)
    first, rest = cmd.split("\n", 1)
    assert first.startswith("# WARNING") and "7 of 5000000 bytes" in first
    run_shell(cmd)
    assert origin.next_request()[3] == b"partial"


def test_curl_exact_text() -> None:
    flow = make_flow(8080, method="PUT", target="/x", headers=[
        ("Host", "127.0.0.1:8080"), ("Content-Type", "text/plain"), ("Content-Length", "2"),
        ("Proxy-Authorization", "Basic cHJveHk6cHc="),
    ], body=b"hi")
    assert to_curl(flow) == (
        "curl -X PUT http://127.0.0.1:8080/x -H 'Content-Type: text/plain' --data-binary hi"
    )


def test_connect_flows_are_refused() -> None:
    flow = Flow(Request("CONNECT", "https", "example.com", 443, "example.com:443"))
    for fn in (to_curl, to_httpie, to_python_httpx):
        with pytest.raises(ValueError, match="CONNECT"):
            fn(flow)


# --------------------------------------------------------------------------- python / httpx

def test_python_export_runs(origin: Origin) -> None:
    body = b'{"name": "caf\xc3\xa9"}'
    headers = [("Host", f"127.0.0.1:{origin.port}"), *COMMON_HEADERS, ("Content-Type", "application/json"),
               ("X-Latin", "d\xe9j\xe0")]
    flow = make_flow(origin.port, method="PATCH", target="/items/1?x=y", headers=headers, body=body)
    script = to_python_httpx(flow)
    compile(script, "<export>", "exec")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines()[:2] == ["200 OK", ORIGIN_BODY.decode()]
    method, path, received, got = origin.next_request()
    assert (method, path, got) == ("PATCH", "/items/1?x=y", body)
    assert_headers_sent([*COMMON_HEADERS, ("X-Latin", "d\xe9j\xe0")], received)


def test_python_export_binary_body_and_truncation(origin: Origin) -> None:
    body = bytes(range(256))
    flow = make_flow(origin.port, method="POST", target="/bin", headers=[], body=body)
    flow.request.body_truncated = True
    script = to_python_httpx(flow)
    assert "# WARNING: the request body was truncated" in script
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert origin.next_request()[3] == body


# --------------------------------------------------------------------------- httpie (text only)

def test_httpie_format() -> None:
    flow = make_flow(8080, method="POST", target="/api?a=1", headers=[
        ("Host", "127.0.0.1:8080"), ("Content-Type", "application/json"), ("Content-Length", "12"),
        ("Accept-Encoding", "gzip"), ("X-Empty", ""), ("X-Eq", "=x"), ("Cookie", "a=1; b=2"),
    ], body=b'{"a": "it\'s"}')
    assert to_httpie(flow) == (
        "http POST 'http://127.0.0.1:8080/api?a=1' Content-Type:application/json 'X-Empty;' "
        "'X-Eq:\\=x' 'Cookie:a=1; b=2' --raw '{\"a\": \"it'\"'\"'s\"}'"
    )


def test_httpie_binary_body_is_piped() -> None:
    flow = make_flow(8080, method="PUT", target="/b", headers=[("Host", "other.example")], body=b"\x00\xff")
    assert to_httpie(flow) == "printf '\\000\\377' | http PUT http://127.0.0.1:8080/b Host:other.example"


@pytest.mark.skipif(shutil.which("http") is None, reason="httpie not installed")
def test_httpie_runs(origin: Origin) -> None:  # pragma: no cover - only where httpie exists
    flow = make_flow(origin.port, method="POST", target="/h", headers=[("X-A", "1")], body=b"data")
    run_shell(to_httpie(flow))
    method, path, received, body = origin.next_request()
    assert (method, path, body) == ("POST", "/h", b"data")


# --------------------------------------------------------------------------- raw

def test_raw_request_parses_back_with_h11() -> None:
    body = b"\x00binary\xffbody"
    headers = [("Host", "example.com"), ("Content-Type", "application/octet-stream"),
               ("Content-Length", str(len(body))), ("X-Dup", "1"), ("X-Dup", "2")]
    flow = Flow(Request("POST", "https", "example.com", 443, "/up?x=1",
                        headers=Headers.from_pairs(headers), body=body))
    raw = to_raw_request(flow)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    ev = conn.next_event()
    assert isinstance(ev, h11.Request)
    assert (ev.method, ev.target) == (b"POST", b"/up?x=1")
    assert [(k.decode(), v.decode()) for k, v in ev.headers.raw_items()] == headers
    data = conn.next_event()
    assert isinstance(data, h11.Data) and bytes(data.data) == body
    assert isinstance(conn.next_event(), h11.EndOfMessage)


def test_raw_request_http2_gets_a_host_line() -> None:
    req = Request("GET", "https", "example.com", 443, "/", http_version="HTTP/2",
                  headers=Headers.from_pairs([(":authority", "example.com"), ("accept", "*/*")]))
    raw = to_raw_request(Flow(req))
    assert raw == b"GET / HTTP/2\r\nHost: example.com\r\naccept: */*\r\n\r\n"


def test_raw_response_parses_back_with_h11() -> None:
    flow = make_flow(80, headers=[("Host", "example.com")])
    body = b'{"ok": true}'
    flow.response = Response(404, "Not Found", headers=Headers.from_pairs(
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]), body=body)
    raw = to_raw_response(flow)
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "example.com")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    ev = conn.next_event()
    assert isinstance(ev, h11.Response)
    assert (ev.status_code, ev.reason) == (404, b"Not Found")
    data = conn.next_event()
    assert isinstance(data, h11.Data) and bytes(data.data) == body


def test_raw_response_without_response_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no response"):
        to_raw_response(make_flow(80))


# --------------------------------------------------------------------------- registry

def test_export_formats_all_return_str() -> None:
    flow = make_flow(8080, method="POST", headers=[("Host", "127.0.0.1:8080")], body=b"caf\xc3\xa9 \xff")
    flow.response = Response(200, "OK", headers=Headers.from_pairs([("Content-Length", "2")]), body=b"ok")
    assert set(EXPORT_FORMATS) == {"curl", "httpie", "raw_request", "raw_response", "python"}
    for name, fn in EXPORT_FORMATS.items():
        out = fn(flow)
        assert isinstance(out, str) and out, name
    raw = EXPORT_FORMATS["raw_request"](flow)
    assert raw.startswith("POST /path?q=1 HTTP/1.1\r\n") and raw.endswith("café \ufffd")
    assert EXPORT_FORMATS["raw_response"](flow) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
