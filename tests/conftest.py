"""Shared fixtures: real origin servers (HTTP and HTTPS) and real proxies on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from origin import Origin  # noqa: E402


@pytest.fixture(autouse=True)
def omniproxy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ~/.omniproxy, so no test touches the user's real CA or config."""
    home = tmp_path / "omniproxy-home"
    monkeypatch.setenv("OMNIPROXY_HOME", str(home))
    for var in [v for v in os.environ if v.startswith("OMNIPROXY_") and v != "OMNIPROXY_HOME"]:
        monkeypatch.delenv(var)
    return home


@pytest.fixture(scope="session")
def origin_ca(tmp_path_factory: pytest.TempPathFactory):
    """A CA for the test origins, distinct from the proxy's CA (the proxy must verify it)."""
    from proxycore.certs import CertificateAuthority

    d = tmp_path_factory.mktemp("origin-ca")
    return CertificateAuthority.generate(d / "origin-ca.crt", d / "origin-ca.key", cn="Test Origin CA")


@pytest.fixture
async def origin():
    o = await Origin().start()
    yield o
    await o.stop()


@pytest.fixture
async def tls_origin(origin_ca):
    o = await Origin(origin_ca.server_context("localhost")).start()
    yield o
    await o.stop()


@pytest.fixture
async def make_proxy(origin_ca):
    """Factory: `await make_proxy(**option_overrides)` returns a started Proxy on an OS-chosen port."""
    from proxycore.options import Options
    from proxycore.proxy.server import Proxy

    proxies = []

    async def make(**overrides):
        overrides.setdefault("port", 0)
        overrides.setdefault("upstream_ca", str(origin_ca.cert_path))
        p = Proxy(Options(**overrides), on_error=lambda m: errors.append(m))
        await p.start()
        proxies.append(p)
        return p

    errors: list[str] = []
    make.errors = errors  # type: ignore[attr-defined]
    yield make
    for p in proxies:
        await p.stop()


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound once by the OS, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_url(proxy) -> str:
    return f"http://127.0.0.1:{proxy.address[1]}"


async def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll `cond` on the running loop until it is truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def collect_done(proxy) -> list:
    """Subscribe and return the list that receives every finished flow."""
    done: list = []
    proxy.subscribe(lambda kind, flow: done.append(flow) if kind == "done" else None)
    return done


async def run(*args: str, timeout: float = 60, input: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run a real client (curl ...) without blocking the event loop the proxy runs on."""
    if args[0] == "curl":  # a stuck exchange then fails with curl's own account of where it stuck
        args = (args[0], "--max-time", str(int(timeout) - 10), "-v", *args[1:])
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    return proc.returncode or 0, out, err


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh current directory, where the UI saves files under their default names."""
    d = tmp_path / "cwd"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


class HeadlessProxy:
    """`omniproxy-tui --no-ui ARGS` run as users run it (its own process, uvloop) on an OS-chosen
    port, its home in `tmp_path`. `async with` starts it and sets `port`; leaving stops it with
    SIGINT and sets `stderr` (everything it wrote there)."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.home = tmp_path / "home"
        self.args = args
        self.cwd = tmp_path
        self.port = 0
        self.stderr = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._lines: list[bytes] = []

    async def __aenter__(self) -> HeadlessProxy:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMNIPROXY_HOME": str(self.home)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "omniproxy_tui.cli", "--no-ui", "-p", "0", *self.args, cwd=str(self.cwd), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(30):
                while True:
                    line = await self.proc.stderr.readline()
                    assert line, b"".join(self._lines).decode(errors="replace")
                    self._lines.append(line)
                    m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", line)
                    if m:
                        self.port = int(m.group(1))
                        return self
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: object) -> None:
        proc = self.proc
        assert proc is not None
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            rest = await asyncio.wait_for(proc.stderr.read(), 20)
        except TimeoutError:
            proc.kill()
            rest = b""
        await proc.wait()
        self.stderr = (b"".join(self._lines) + rest).decode("utf-8", "replace")
