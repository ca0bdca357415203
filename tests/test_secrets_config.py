"""Secrets in what we print (one mask, ***, everywhere) and bad access options, through the real CLI."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_cli import LISTENING, Running, clean_env, cli

SECRET = "hunter2-Zq"


def _one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


@pytest.fixture
def headless(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(*args: str) -> Running:
        started.append(Running(["--no-ui", "-p", "0", *args], clean_env(tmp_path), tmp_path))
        return started[-1]

    yield start
    for r in started:
        r.stop()


def test_headless_line_masks_the_upstream_password(tmp_path: Path, headless: Callable[..., Running]) -> None:
    # nothing listens on the upstream's port: the line is printed at start, before any request
    proxy = headless("--no-mitm", "-o", str(tmp_path / "cap.ndjson"), "--upstream", f"http://carol:{SECRET}@127.0.0.1:9")
    m = LISTENING.match(proxy.wait_line("err", LISTENING.match))
    assert m and m.group(2) == "MITM off, upstream: http://carol:***@127.0.0.1:9", m.group(2) if m else proxy.seen
    proxy.proc.send_signal(signal.SIGTERM)
    assert proxy.proc.wait(timeout=20) == 0
    proxy.rest("err")  # adds the remaining lines to proxy.seen
    assert not any(SECRET in s for s in proxy.seen["err"])


def test_bad_upstream_error_does_not_echo_the_password(tmp_path: Path) -> None:
    line = _one_line_error(cli(tmp_path, "--no-ui", "--upstream", f"socks5://carol:{SECRET}@proxy.corp:1080"))
    assert SECRET not in line and "carol:***@proxy.corp" in line, line
    (tmp_path / "c.yaml").write_text(f'upstream: "ftp://carol:{SECRET}@proxy.corp:21"\n')
    line = _one_line_error(cli(tmp_path, "--config", str(tmp_path / "c.yaml"), "config", "show"))
    assert SECRET not in line and "carol:***@proxy.corp" in line, line


def test_config_show_masks_proxy_auth(tmp_path: Path) -> None:
    r = cli(tmp_path, "--proxy-auth", f"alice:{SECRET}", "config", "show")
    assert r.returncode == 0, r.stderr
    assert "proxyAuth: alice:***" in r.stdout and SECRET not in r.stdout
    r = cli(tmp_path, "--proxy-auth", f"alice:{SECRET}", "config", "show", "--show-secrets")
    assert f"proxyAuth: alice:{SECRET}" in r.stdout


def test_bad_access_options_are_one_line(tmp_path: Path) -> None:
    line = _one_line_error(cli(tmp_path, "--no-ui", "-p", "0", "--no-mitm", "--proxy-auth", "alice"))
    assert "--proxy-auth" in line and "user:pass or @FILE" in line, line
    (tmp_path / "ht").write_text("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    line = _one_line_error(cli(tmp_path, "--no-ui", "-p", "0", "--no-mitm", "--proxy-auth", f"@{tmp_path / 'ht'}"))
    assert "line 1" in line and "not bcrypt" in line and "htpasswd -B" in line, line
    line = _one_line_error(cli(tmp_path, "--no-ui", "-p", "0", "--no-mitm", "--host", "0.0.0.0",
                               "--allow-client", "10.0.0.0/8,nonsense"))
    assert "--allow-client" in line and "'nonsense'" in line, line
