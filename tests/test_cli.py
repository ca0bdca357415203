"""The `omniproxy-tui` command: CA management, headless runs, errors and import hygiene.

Runs the real console script (pip install -e .) in subprocesses with OMNIPROXY_HOME set to a
temporary directory; the headless tests send real requests with curl through the proxy.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxycore.flows.flow import Flow, Headers, Request, Response
from proxycore.headless import format_flow_line, human_duration, human_size, short_content_type

EXE = shutil.which("omniproxy-tui")
CMD = [EXE] if EXE else [sys.executable, "-m", "omniproxy_tui.cli"]
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OMNIPROXY_") and k.lower() not in PROXY_VARS}
    env["OMNIPROXY_HOME"] = str(home)
    env.update(extra)
    return env


def cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, env=clean_env(home, **extra),
                          cwd=home, timeout=60)


# ------------------------------------------------------------------ running processes


class Running:
    """A running omniproxy-tui whose stdout/stderr lines are read by threads, awaited with deadlines."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen([*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, cwd=cwd, bufsize=1)
        self.lines: dict[str, queue.Queue[str | None]] = {"out": queue.Queue(), "err": queue.Queue()}
        self.seen: dict[str, list[str]] = {"out": [], "err": []}
        for name, pipe in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(pipe, self.lines[name]), daemon=True).start()

    @staticmethod
    def _pump(pipe, q: queue.Queue[str | None]) -> None:
        for line in pipe:
            q.put(line.rstrip("\n"))
        q.put(None)

    def wait_line(self, stream: str, pred: Callable[[str], bool], timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        q = self.lines[stream]
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = q.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                q.put(None)  # keep the end marker for later waits
                break
            self.seen[stream].append(line)
            if pred(line):
                return line
        raise AssertionError(f"no matching line on std{stream} within {timeout}s; saw: {self.seen}")

    def rest(self, stream: str) -> list[str]:
        """Every remaining line (after the process ended)."""
        out = []
        while True:
            line = self.lines[stream].get(timeout=10)
            if line is None:
                return out
            self.seen[stream].append(line)
            out.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def run_proxy(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Running:
        r = Running(list(args), env or clean_env(tmp_path), tmp_path)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


class _Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.path.startswith("/close"):
            # ends the tunnel from the origin's side, so the tunnel flow finishes now
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


LISTENING = re.compile(r"^proxy listening on http://127\.0\.0\.1:(\d+) \((.*)\) — capture: (.*)$")
SUMMARY = re.compile(r"^stopped: (\d+) flows seen, (\d+) captured, (\d+) written, (\d+) dropped")


def curl(proxy_port: int, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
    return subprocess.run(["curl", "-sS", "--max-time", "20", "-x", f"http://127.0.0.1:{proxy_port}", *extra, url],
                          capture_output=True, text=True, env=env, timeout=30)


def fake_ui_modules(tmp_path: Path) -> tuple[Path, Path]:
    """A PYTHONPATH dir whose `textual` and `rich` leave a marker file when imported."""
    d = tmp_path / "fake_modules"
    d.mkdir()
    marker = tmp_path / "ui-imported"
    for name in ("textual", "rich"):
        (d / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\nraise ImportError('{name} must not be imported')\n")
    return d, marker


# ------------------------------------------------------------------ headless runs


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_no_ui_logs_flows_writes_ndjson_to_stdout_and_stops_on_sigterm(
        tmp_path: Path, run_proxy: Callable[..., Running], origin: int) -> None:
    fake, marker = fake_ui_modules(tmp_path)
    # prepend, not replace: a PYTHONPATH pointing at the tree under test (a git worktree) must stay
    env = clean_env(tmp_path, PYTHONPATH=os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")])))
    proxy = run_proxy("--no-ui", "-p", "0", "--skip-host", "127.0.0.1", env=env)
    m = LISTENING.match(proxy.wait_line("err", LISTENING.match))
    assert m, proxy.seen
    port = int(m.group(1))
    assert m.group(2) == f"MITM on, CA: {tmp_path / 'ca' / 'omniproxy-ca.crt'}"
    assert m.group(3) == "stdout (ndjson)"
    assert (tmp_path / "ca" / "omniproxy-ca.crt").exists()  # created on first start

    r = curl(port, f"http://127.0.0.1:{origin}/hello?x=1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"path": "/hello?x=1"}

    line = proxy.wait_line("err", lambda s: f"http://127.0.0.1:{origin}/hello?x=1" in s)
    assert re.match(rf"^\d\d:\d\d:\d\d\.\d{{3}} 127\.0\.0\.1:\d+ +GET +http://127\.0\.0\.1:{origin}/hello\?x=1 "
                    r"200 json \d+B [\d.]+ms$", line), line
    record = json.loads(proxy.wait_line("out", lambda s: "/hello" in s))
    assert record["request"]["method"] == "GET"
    assert record["request"]["url"] == f"http://127.0.0.1:{origin}/hello?x=1"
    assert record["response"]["status"] == 200

    # a CONNECT to a skip-host is relayed untouched and logged as a tunnel
    r = curl(port, f"http://127.0.0.1:{origin}/close", "-p")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"path": "/close"}
    line = proxy.wait_line("err", lambda s: "CONNECT" in s)
    assert f"127.0.0.1:{origin}" in line and "[tunnel]" in line, line

    proxy.proc.send_signal(signal.SIGTERM)
    assert proxy.proc.wait(timeout=20) == 0
    tail = proxy.rest("err")
    summary = [s for s in tail if SUMMARY.match(s)]
    assert summary, proxy.seen
    flows, captured, written, dropped = map(int, SUMMARY.match(summary[0]).groups())
    assert flows >= 2 and captured >= 1 and written == captured and dropped == 0
    # stdout is nothing but NDJSON records
    for out_line in proxy.seen["out"] + proxy.rest("out"):
        assert isinstance(json.loads(out_line), dict)
    assert not any("Traceback" in s for s in proxy.seen["err"])
    assert not marker.exists(), marker.read_text()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_no_ui_verbose_logs_connections(tmp_path: Path, run_proxy: Callable[..., Running], origin: int) -> None:
    proxy = run_proxy("--no-ui", "-p", "0", "--no-mitm", "-v", "-o", str(tmp_path / "cap.ndjson"))
    port = int(LISTENING.match(proxy.wait_line("err", LISTENING.match)).group(1))
    r = curl(port, f"http://127.0.0.1:{origin}/hello")
    assert r.returncode == 0, r.stderr
    opened = proxy.wait_line("err", lambda s: " connected" in s)
    assert re.search(r"client 127\.0\.0\.1:\d+ connected$", opened), opened
    closed = proxy.wait_line("err", lambda s: " disconnected " in s)
    assert re.search(r"client 127\.0\.0\.1:\d+ disconnected after [\d.]+ s, 1 request$", closed), closed
    proxy.proc.send_signal(signal.SIGTERM)
    assert proxy.proc.wait(timeout=20) == 0


def test_no_ui_sigint_with_output_file(tmp_path: Path, run_proxy: Callable[..., Running]) -> None:
    out = tmp_path / "cap.har"
    proxy = run_proxy("--no-ui", "-p", "0", "--no-mitm", "-o", str(out))
    m = LISTENING.match(proxy.wait_line("err", LISTENING.match))
    assert m and m.group(2) == "MITM off" and m.group(3) == f"{out} (har)"
    proxy.proc.send_signal(signal.SIGINT)
    assert proxy.proc.wait(timeout=20) == 0
    assert any(SUMMARY.match(s) for s in proxy.rest("err")), proxy.seen
    assert proxy.rest("out") == []
    assert json.loads(out.read_text())["log"]["version"] == "1.2"  # HAR written on a graceful stop


def test_no_ui_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = cli(tmp_path, "--no-ui", "-p", str(port), "--no-mitm")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"omniproxy-tui: error: port {port} on 127.0.0.1 is already in use"), lines
    assert r.stdout == ""


def test_bad_flag_values_are_one_line(tmp_path: Path) -> None:
    for args, needle in [
        (["--no-ui", "--sample-rate", "3"], "omniproxy-tui: error: --sample-rate: expected a number 0..1, got 3.0"),
        (["--no-ui", "-p", "70000"], "omniproxy-tui: error: --port: expected an integer 0..65535, got 70000"),
        (["--no-ui", "--upstream", "ftp://x"], "omniproxy-tui: error: --upstream: expected http://"),
        (["--no-ui", "--max-body-size", "lots"], "omniproxy-tui: error: Invalid value for '--max-body-size'"),
        (["--no-ui", "-f", "xml"], "omniproxy-tui: error: Invalid value for '-f' / '--format'"),
        (["--prot", "1"], "omniproxy-tui: error: No such option '--prot'"),
        (["--no-ui", "--db", "mysql://x/y"], "omniproxy-tui: error: --db: "),
    ]:
        r = cli(tmp_path, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith(needle), (args, r.stderr)
        assert r.stderr.count("\n") == 1, (args, r.stderr)


def test_version(tmp_path: Path) -> None:
    r = cli(tmp_path, "--version")
    assert r.returncode == 0 and r.stdout.strip() == "omniproxy-tui 0.1.0"


# ------------------------------------------------------------------ import hygiene


def test_cli_and_engine_do_not_import_textual(tmp_path: Path) -> None:
    code = ("import sys, omniproxy_tui.cli, proxycore, proxycore.config, proxycore.headless, proxycore.proxy.server\n"
            "assert 'textual' not in sys.modules, 'textual imported'\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(tmp_path),
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_engine_imports_no_ui_libraries(tmp_path: Path) -> None:
    code = ("import sys, proxycore, proxycore.proxy.server, proxycore.config, proxycore.headless\n"
            "bad = [m for m in ('textual', 'click', 'rich') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(tmp_path),
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# ------------------------------------------------------------------ ca


def test_ca_generate_info_path(tmp_path: Path) -> None:
    cert, key = tmp_path / "ca" / "omniproxy-ca.crt", tmp_path / "ca" / "omniproxy-ca.key"
    r = cli(tmp_path, "ca", "path")
    assert r.returncode == 0 and r.stdout.strip() == str(cert)
    r = cli(tmp_path, "ca", "path", "--key")
    assert r.stdout.strip() == str(key)

    r = cli(tmp_path, "ca", "info")
    assert r.returncode == 2 and "no CA certificate at" in r.stderr and "ca generate" in r.stderr

    r = cli(tmp_path, "ca", "generate", "--org", "Acme", "--cn", "Acme Test CA")
    assert r.returncode == 0, r.stderr
    assert cert.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    fp = re.search(r"SHA-256: +([0-9A-F:]{95})", r.stdout)
    assert fp, r.stdout

    r = cli(tmp_path, "ca", "info")
    assert r.returncode == 0, r.stderr
    assert f"File:        {cert}" in r.stdout
    assert "CN=Acme Test CA" in r.stdout and "O=Acme" in r.stdout
    assert re.search(r"Valid until: +20\d\d-", r.stdout)
    assert fp.group(1) in r.stdout  # the same fingerprint generate printed
    assert "update-ca-certificates" in r.stdout and "certutil" in r.stdout  # how to trust it

    # refuses to replace the CA without --force (the original silently overwrote it)
    before = cert.read_bytes()
    r = cli(tmp_path, "ca", "generate")
    assert r.returncode == 2
    assert r.stderr.strip().startswith(f"omniproxy-tui: error: {cert} already exists (use --force")
    assert cert.read_bytes() == before
    r = cli(tmp_path, "ca", "generate", "--force")
    assert r.returncode == 0 and cert.read_bytes() != before


def test_ca_commands_follow_config_env_and_flags(tmp_path: Path) -> None:
    other = tmp_path / "other"
    (tmp_path / "config.yaml").write_text(f"mitm:\n  certPath: {other / 'c.pem'}\n  keyPath: {other / 'k.pem'}\n")
    r = cli(tmp_path, "ca", "path")
    assert r.stdout.strip() == str(other / "c.pem")
    r = cli(tmp_path, "ca", "path", OMNIPROXY_CA_CERT=str(tmp_path / "env.pem"))
    assert r.stdout.strip() == str(tmp_path / "env.pem")
    r = cli(tmp_path, "--ca-cert", str(tmp_path / "flag.pem"), "ca", "path")
    assert r.stdout.strip() == str(tmp_path / "flag.pem")
    r = cli(tmp_path, "ca", "generate")
    assert r.returncode == 0, r.stderr
    assert (other / "c.pem").exists() and (other / "k.pem").exists()
    # an explicit --cert/--key pair
    r = cli(tmp_path, "ca", "generate", "--cert", str(tmp_path / "x.crt"), "--key", str(tmp_path / "x.key"))
    assert r.returncode == 0 and (tmp_path / "x.crt").exists()
    r = cli(tmp_path, "ca", "info", "--cert", str(tmp_path / "x.crt"))
    assert r.returncode == 0 and "CN=OmniProxy Root CA" in r.stdout


def test_ca_info_bad_certificate_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate\n")
    r = cli(tmp_path, "ca", "info", "--cert", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip() == f"omniproxy-tui: error: {bad} is not a PEM certificate"


# ------------------------------------------------------------------ export


def test_export_missing_input_is_one_line(tmp_path: Path) -> None:
    r = cli(tmp_path, "export", str(tmp_path / "nope.ndjson"), "-f", "har", "-o", str(tmp_path / "o.har"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"omniproxy-tui: error: {tmp_path / 'nope.ndjson'}: no such file"
    src = tmp_path / "in.ndjson"
    src.write_text("")
    r = cli(tmp_path, "export", str(src), "-o", str(tmp_path / "out.txt"))
    assert r.returncode == 2 and "cannot tell the format" in r.stderr


def test_export_converts_ndjson_to_har(tmp_path: Path) -> None:
    src = tmp_path / "in.ndjson"
    src.write_text(json.dumps({
        "request": {"method": "GET", "url": "http://example.com/a", "host": "example.com", "path": "/a",
                    "scheme": "http"},
        "response": {"status": 200, "statusText": "200 OK"},
        "startTime": "2026-01-04T10:00:00.000000+00:00", "endTime": "2026-01-04T10:00:00.010000+00:00",
        "durationMs": 10.0,
    }) + "\n")
    out = tmp_path / "out.har"
    r = cli(tmp_path, "export", str(src), "-f", "har", "-o", str(out))
    assert r.returncode == 0, r.stderr
    har = json.loads(out.read_text())
    assert [e["request"]["url"] for e in har["log"]["entries"]] == ["http://example.com/a"]
    assert r.stderr.strip() == f"wrote 1 records to {out} (har)"
    # to stdout, and back from the HAR (format inferred from the extension)
    r = cli(tmp_path, "export", str(out), "-f", "ndjson", "-o", "-")
    assert r.returncode == 0 and json.loads(r.stdout)["request"]["url"] == "http://example.com/a"
    r = cli(tmp_path, "export", str(out), "-o", str(tmp_path / "back.ndjson"))
    assert r.returncode == 0, r.stderr
    # garbage in: one line, exit 2
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b"\x00\x01garbage\n")
    r = cli(tmp_path, "export", str(bad), "-f", "har", "-o", str(tmp_path / "x.har"))
    assert r.returncode == 2 and r.stderr.startswith("omniproxy-tui: error: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr and not (tmp_path / "x.har").exists()


# ------------------------------------------------------------------ the flow line


def _flow(url_target: str = "/a?b=1", status: int | None = 200, ctype: str = "application/json; charset=utf-8",
          size: int = 1234, ms: float | None = 12.0) -> Flow:
    req = Request("GET", "http", "example.com", 80, url_target)
    flow = Flow(req, ("127.0.0.1", 5555))
    flow.timings.start = 1_700_000_000.123
    if ms is not None:
        flow.timings.end = flow.timings.start + ms / 1000
    if status is not None:
        flow.response = Response(status, "OK", headers=Headers.from_pairs([("Content-Type", ctype)]))
        flow.response.body_size = size
    return flow


def test_format_flow_line() -> None:
    line = format_flow_line(_flow())
    clock = time.strftime("%H:%M:%S", time.localtime(1_700_000_000.123)) + ".123"
    assert line == f"{clock} 127.0.0.1:5555        GET     http://example.com/a?b=1 200 json 1.2k 12ms"


def test_format_flow_line_error_tunnel_and_long_url() -> None:
    f = _flow(status=None, ms=3400)
    f.error = "cannot connect to example.com:80: connection refused"
    assert format_flow_line(f).endswith(" ERR cannot connect to example.com:80: connection refused - - 3.4s")

    f = _flow(status=None, ms=None)
    f.request = Request("CONNECT", "https", "example.com", 443, "example.com:443")
    f.response = Response(200, "Connection Established")
    f.response.body_size = 5 * 1024 * 1024
    f.passthrough = True
    line = format_flow_line(f)
    assert " CONNECT example.com:443 200 [tunnel] 5.0M -" in line

    f = _flow(url_target="/" + "p" * 300 + "?" + "q=1&" * 50)
    line = format_flow_line(f)
    assert len(line) <= 160
    assert "http://example.com/ppp" in line and "..." in line and line.endswith(" 200 json 1.2k 12ms")


@pytest.mark.parametrize(("value", "short"), [
    ("application/json", "json"), ("text/html; charset=utf-8", "html"), ("image/png", "png"),
    ("application/vnd.api+json", "json"), ("image/svg+xml", "svg"), ("application/x-protobuf", "protobuf"),
    ("application/x-www-form-urlencoded", "form"), (None, "-"),
])
def test_short_content_type(value: str | None, short: str) -> None:
    assert short_content_type(value) == short


@pytest.mark.parametrize(("n", "text"), [(0, "0B"), (512, "512B"), (1024, "1.0k"), (1229, "1.2k"),
                                         (34 * 1024, "34k"), (int(3.4 * 1024 * 1024), "3.4M"), (None, "-")])
def test_human_size(n: int | None, text: str) -> None:
    assert human_size(n) == text


@pytest.mark.parametrize(("ms", "text"), [(0.4, "0.4ms"), (12.3, "12ms"), (999, "999ms"), (1300, "1.3s"),
                                          (95_000, "95s"), (None, "-")])
def test_human_duration(ms: float | None, text: str) -> None:
    assert human_duration(ms) == text
