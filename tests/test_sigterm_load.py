"""SIGTERM in the middle of a load: every exchange a client saw complete is in the capture."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import jsonschema
import pytest

from proxycore.capture.convert import read_records

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())


async def start_headless(out: Path, home: Path) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "omniproxy_tui.cli", "--no-ui", "-p", "0", "-o", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OMNIPROXY_HOME": str(home)})
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "the proxy exited before listening"
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))


@pytest.mark.parametrize("fmt", ["ndjson", "har"])
async def test_sigterm_mid_load_loses_no_completed_flow(origin, tmp_path, omniproxy_home, fmt):
    out = tmp_path / f"capture.{fmt}"
    proc, port = await start_headless(out, omniproxy_home)
    completed: set[int] = set()
    stop = asyncio.Event()

    async def client(worker: int) -> None:
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
            i = 0
            while not stop.is_set() and i < 2000:  # bounded even if SIGTERM were ignored
                n = worker * 100000 + i
                i += 1
                try:
                    r = await c.get(origin.url(f"/json?n={n}"))
                except httpx.HTTPError:
                    return  # the proxy is going away
                if r.status_code == 200 and r.json()["hello"] == "world":
                    completed.add(n)

    async def drain_stderr() -> bytes:  # keep the pipe flowing: a full pipe would stall the proxy's log
        return await proc.stderr.read()

    log = asyncio.create_task(drain_stderr())
    workers = [asyncio.create_task(client(w)) for w in range(10)]
    deadline = asyncio.get_running_loop().time() + 30
    while len(completed) < 300 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert len(completed) >= 300, "load did not get going"
    proc.send_signal(signal.SIGTERM)
    rc = await asyncio.wait_for(proc.wait(), 30)
    stop.set()
    await asyncio.gather(*workers)
    err = (await log).decode()
    assert rc == 0, err
    assert re.search(r"stopped: \d+ flows seen, \d+ captured, \d+ written, 0 dropped", err), err
    if fmt == "har":
        jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    captured = {int(r["request"]["query"]["n"]) for r in read_records(out) if r.get("response")}
    missing = completed - captured
    assert not missing, f"{len(missing)} completed exchanges missing from the capture"
