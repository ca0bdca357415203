"""Capture files survive and stay private: 0600 when created, never written through a symlink,
FIFOs and devices written through (not replaced), HAR streamed, SIGHUP/SIGKILL of the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest

from proxycore.capture.convert import read_records
from proxycore.capture.har import write_har_atomic
from proxycore.capture.sinks import HarSink, JsonSink, NdjsonSink, SinkError
from proxycore.capture.sqlite import SqliteStore
from proxycore.control.commands import CommandContext, registry
from proxycore.flows.view import FlowView
from proxycore.safefile import SafeFileError, write_atomic

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())
REPO = Path(__file__).resolve().parent.parent
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
POSIX = sys.platform != "win32"
SINKS = {"ndjson": NdjsonSink, "json": JsonSink, "har": HarSink}
pytestmark = pytest.mark.skipif(not POSIX, reason="POSIX file modes, FIFOs and signals")


def rec(i: int) -> dict:
    return {
        "id": i,
        "request": {"method": "GET", "url": f"http://example.com/item/{i}", "host": "example.com",
                    "path": f"/item/{i}", "scheme": "http", "headers": {"cookie": ["sid=secret"]}},
        "response": {"status": 200, "statusText": "OK", "body": {"n": i}, "size": 8},
        "startTime": "2026-01-02T10:00:00.000001+00:00",
        "durationMs": 1.5,
    }


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual 022 umask, under which plain open() makes 0644 files."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def har_ids(path: Path) -> list[int]:
    har = json.loads(path.read_bytes())
    jsonschema.validate(har, SCHEMA)
    return [e["_id"] for e in har["log"]["entries"]]


# --- 0600 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ndjson", "ir", "json", "har"])
async def test_capture_files_are_created_0600(tmp_path: Path, loose_umask: None, fmt: str) -> None:
    path = tmp_path / f"cap.{fmt}"
    sink = HarSink(str(path)) if fmt == "har" else SINKS.get(fmt, NdjsonSink)(str(path))
    await sink.open()
    await sink.write_batch([rec(1)])
    await sink.close()
    assert mode(path) == 0o600
    assert [r["id"] for r in read_records(path)] == [1]


async def test_existing_regular_file_keeps_its_mode(tmp_path: Path, loose_umask: None) -> None:
    for fmt in ("ndjson", "har"):
        path = tmp_path / f"shared.{fmt}"
        path.write_text("old contents\n")
        path.chmod(0o640)  # the user's deliberate choice
        sink = SINKS[fmt](str(path))
        await sink.open()
        await sink.write_batch([rec(1)])
        await sink.close()
        assert mode(path) == 0o640 and [r["id"] for r in read_records(path)] == [1]
    target = tmp_path / "export.har"
    target.write_text("{}")
    target.chmod(0o640)
    write_atomic(target, b"{}\n")  # replaced atomically, the new file gets the old bits
    assert mode(target) == 0o640 and target.read_bytes() == b"{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.har", "shared.har", "shared.ndjson"]


async def test_sqlite_database_and_its_wal_files_are_0600(tmp_path: Path, loose_umask: None) -> None:
    db = tmp_path / "cap.db"
    store = SqliteStore(f"sqlite:///{db}")
    await store.open()
    await store.write_batch([rec(1), rec(2)])
    files = [p for p in tmp_path.iterdir() if p.name.startswith("cap.db")]
    assert {p.name for p in files} >= {"cap.db", "cap.db-wal"}  # WAL mode, still open
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    await store.close()
    assert mode(db) == 0o600


def _export_ctx(tmp_path: Path) -> CommandContext:
    from test_commands import mk  # the same flows the command tests use

    v = FlowView()
    v.add_many([mk(path="/a"), mk(path="/b")])
    return CommandContext(view=v, cwd=tmp_path)


def test_ui_exports_are_0600(tmp_path: Path, loose_umask: None) -> None:
    ctx = _export_ctx(tmp_path)
    registry.run(ctx, "export.har", str(tmp_path / "x.har"))
    registry.run(ctx, "export.ndjson", str(tmp_path / "x.ndjson"))
    assert mode(tmp_path / "x.har") == 0o600 and mode(tmp_path / "x.ndjson") == 0o600
    assert len(har_ids(tmp_path / "x.har")) == 2


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "omniproxy_tui.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env={**os.environ, "OMNIPROXY_HOME": str(home),
                                                                "PYTHONPATH": str(REPO)})


def test_cli_export_creates_0600_and_refuses_a_symlink(tmp_path: Path, omniproxy_home: Path,
                                                       loose_umask: None) -> None:
    src = tmp_path / "in.ndjson"
    src.write_text("".join(json.dumps(rec(i)) + "\n" for i in range(3)))
    out = run_cli("export", str(src), "-o", str(tmp_path / "out.har"), home=omniproxy_home)
    assert out.returncode == 0, out.stderr
    assert mode(tmp_path / "out.har") == 0o600 and har_ids(tmp_path / "out.har") == [0, 1, 2]

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.har"
    link.symlink_to(victim)
    out = run_cli("export", str(src), "-o", str(link), home=omniproxy_home)
    assert out.returncode != 0
    err = out.stderr.strip()
    assert "\n" not in err and "Traceback" not in err and "symbolic link" in err and str(link) in err
    assert link.is_symlink() and victim.read_text() == "keep me"


# --- what is at the path -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ndjson", "json", "har"])
async def test_a_symlink_is_refused_with_one_line(tmp_path: Path, fmt: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / f"cap.{fmt}"
    link.symlink_to(victim)
    with pytest.raises(SinkError) as exc:
        await SINKS[fmt](str(link)).open()
    msg = str(exc.value)
    assert "\n" not in msg and str(link) in msg and "symbolic link" in msg
    assert link.is_symlink() and victim.read_text() == "keep me"
    dangling = tmp_path / f"dangling.{fmt}"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(SinkError, match="symbolic link"):
        await SINKS[fmt](str(dangling)).open()
    assert not (tmp_path / "nowhere").exists()


def test_write_har_atomic_refuses_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "x.har"
    link.symlink_to(victim)
    with pytest.raises(SafeFileError, match="symbolic link"):
        write_har_atomic(link, {"log": {}})
    assert link.is_symlink() and victim.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.txt", "x.har"]  # no temp file left


class FifoReader:
    """A thread that reads a FIFO to its end (opening blocks until the writer comes)."""

    def __init__(self, path: Path) -> None:
        self.data = b""
        self.thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self.thread.start()

    def _run(self, path: Path) -> None:
        with open(path, "rb") as f:
            self.data = f.read()

    def result(self) -> bytes:
        self.thread.join(30)
        assert not self.thread.is_alive(), "the FIFO was never closed"
        return self.data


async def test_har_sink_streams_into_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "cap.har"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    sink = HarSink(str(fifo))
    await sink.open()
    for i in range(0, 30, 3):
        await sink.write_batch([rec(i), rec(i + 1), rec(i + 2)])
    await sink.close()
    har = json.loads(reader.result())
    jsonschema.validate(har, SCHEMA)
    assert [e["_id"] for e in har["log"]["entries"]] == list(range(30))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not replaced by a file


def test_atomic_writes_stream_into_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "export.har"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    registry.run(_export_ctx(tmp_path), "export.har", str(fifo))
    har = json.loads(reader.result())
    assert len(har["log"]["entries"]) == 2
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.har"]


def _null_device(tmp_path: Path) -> Path:
    """A /dev/null twin in tmp_path (never the real one); skips where that is impossible."""
    if not ROOT:
        pytest.skip("mknod of a character device needs root")
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with open(dev, "wb") as f:
            f.write(b"x")
    except OSError as e:  # no CAP_MKNOD (containers) or a nodev mount
        pytest.skip(f"cannot make or use a device node here: {e}")
    return dev


async def test_a_character_device_is_written_through_not_replaced(tmp_path: Path) -> None:
    dev = _null_device(tmp_path)
    for fmt in ("har", "ndjson"):
        sink = SINKS[fmt](str(dev))
        await sink.open()
        await sink.write_batch([rec(1)])
        await sink.close()
        assert sink.failed == 0
    write_har_atomic(dev, {"log": {}})
    st = os.lstat(dev)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_har_on_a_full_device_is_a_one_line_error_at_start() -> None:
    with pytest.raises(SinkError) as exc:
        await HarSink("/dev/full").open()  # written through (not replaced): the first write fails
    assert "No space left" in str(exc.value) and "\n" not in str(exc.value)


# --- HAR as a stream -----------------------------------------------------------------------------


async def test_har_is_complete_after_every_batch_and_only_the_tail_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "cap.har"
    sink = HarSink(str(path))
    await sink.open()
    assert har_ids(path) == []
    before = path.read_bytes()
    expected: list[int] = []
    for b in range(5):
        batch = [rec(b * 10 + k) for k in range(b + 1)]
        await sink.write_batch(batch)
        expected += [r["id"] for r in batch]
        now = path.read_bytes()
        assert har_ids(path) == expected  # no close, no checkpoint: a valid HAR already
        tail = len(b"\n    ]\n  }\n}\n")
        assert now.startswith(before[:-tail])  # what was written before the tail is never rewritten
        before = now
    assert not hasattr(sink, "records")  # nothing kept in memory
    await sink.close()
    assert har_ids(path) == expected
    assert [r["id"] for r in read_records(path)] == expected


def test_har_write_failing_half_way_keeps_the_file_valid(tmp_path: Path) -> None:
    """A file-size limit makes a batch fail half-way (EFBIG): reported once, counted, the tail put back."""
    path = tmp_path / "cap.har"
    script = textwrap.dedent(f"""
        import asyncio, json, resource, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from proxycore.capture.sinks import HarSink
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8000, 8000))
        errors = []
        def rec(i):
            return {{"id": i, "request": {{"method": "GET", "url": "http://e.com/", "headers": {{}}}},
                    "response": {{"status": 200, "body": "x" * 300}}, "durationMs": 1}}
        async def main():
            s = HarSink({str(path)!r}, errors.append)
            await s.open()
            for i in range(20):
                await s.write_batch([rec(i * 3 + k) for k in range(3)])
            ok = json.loads(open({str(path)!r}, "rb").read())  # valid before close too
            await s.close()
            print(json.dumps({{"count": s.count, "failed": s.failed, "errors": errors,
                              "before_close": len(ok["log"]["entries"])}}))
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["failed"] > 0 and res["count"] > 0 and len(res["errors"]) == 1
    assert "\n" not in res["errors"][0] and "cap.har" in res["errors"][0]
    assert res["before_close"] == res["count"] and har_ids(path) == list(range(res["count"]))


# --- the real CLI: SIGHUP and SIGKILL ------------------------------------------------------------


async def start_headless(out: Path, home: Path) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "omniproxy_tui.cli", "--no-ui", "-p", "0", "-o", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=REPO,
        env={**os.environ, "OMNIPROXY_HOME": str(home), "PYTHONPATH": str(REPO)})
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "the proxy exited before listening"
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))


async def send(port: int, origin, n: int) -> None:
    async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
        for i in range(n):
            r = await c.get(origin.url(f"/json?n={i}"))
            assert r.status_code == 200


async def test_sighup_flushes_the_har_and_exits_0(origin, tmp_path: Path, omniproxy_home: Path) -> None:
    out = tmp_path / "cap.har"
    proc, port = await start_headless(out, omniproxy_home)
    try:
        await send(port, origin, 40)
        proc.send_signal(signal.SIGHUP)  # the SSH session that ran it is gone
        err = (await asyncio.wait_for(proc.stderr.read(), 30)).decode()
        rc = await asyncio.wait_for(proc.wait(), 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert rc == 0, err
    assert re.search(r"stopped: 40 flows seen, 40 captured, 40 written, 0 dropped", err), err
    assert sorted(int(r["request"]["query"]["n"]) for r in read_records(out)) == list(range(40))
    assert len(har_ids(out)) == 40 and mode(out) == 0o600


async def test_sigkill_leaves_a_valid_har_with_what_was_written(origin, tmp_path: Path,
                                                                 omniproxy_home: Path) -> None:
    out = tmp_path / "cap.har"
    proc, port = await start_headless(out, omniproxy_home)
    log = asyncio.create_task(proc.stderr.read())  # keep the pipe flowing
    try:
        await send(port, origin, 60)

        def entries() -> int:
            with contextlib.suppress(ValueError):
                return len(json.loads(out.read_bytes())["log"]["entries"])
            return -1

        deadline = asyncio.get_running_loop().time() + 30
        while entries() < 60:  # every flow reaches the file within a batch interval or so
            assert asyncio.get_running_loop().time() < deadline, f"{entries()} entries in the HAR"
            await asyncio.sleep(0.02)
        proc.kill()
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await log
    assert len(har_ids(out)) == 60  # no close ran: the file is complete as it stands
