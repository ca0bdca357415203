"""File sinks: every format written and parsed back; disk errors reported once, never raised."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from proxycore.capture.convert import read_records
from proxycore.capture.sinks import HarSink, JsonSink, NdjsonSink, SinkError, make_sinks, open_sinks
from proxycore.capture.sqlite import SqliteStore
from proxycore.options import Options

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
REPO = Path(__file__).resolve().parent.parent


def rec(i: int, **extra: object) -> dict:
    r = {
        "id": i,
        "request": {"method": "GET", "url": f"http://example.com/item/{i}?q=ü", "host": "example.com",
                    "path": f"/item/{i}", "scheme": "http", "headers": {"accept": ["a/b", "c/d"]}},
        "response": {"status": 200, "statusText": "200 OK", "body": {"n": i, "s": "é"}, "size": 20},
        "startTime": "2026-01-02T10:00:00.000001+00:00",
        "durationMs": 1.5,
    }
    r.update(extra)
    return r


@pytest.mark.parametrize("fmt", ["ndjson", "ir"])
async def test_ndjson_and_ir_lines(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"cap.{fmt}"
    path.write_text("stale contents from a previous run\n")
    sink = NdjsonSink(str(path), fmt=fmt)
    assert sink.name == fmt
    await sink.open()
    assert path.read_bytes() == b""  # truncated on start
    await sink.write_batch([rec(1), rec(2)])
    # flushed per batch: another reader sees complete lines before close
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert json.loads(lines[0]) == rec(1)
    assert "é".encode() in lines[0] and b'":{"' in lines[0] and b'": ' not in lines[0]  # compact, UTF-8
    await sink.write_batch([rec(3)])
    await sink.close()
    assert list(read_records(path)) == [rec(1), rec(2), rec(3)]


async def test_ndjson_and_ir_are_identical(tmp_path: Path) -> None:
    for fmt in ("ndjson", "ir"):
        s = NdjsonSink(str(tmp_path / fmt), fmt=fmt)
        await s.open()
        await s.write_batch([rec(1), rec(2)])
        await s.close()
    assert (tmp_path / "ndjson").read_bytes() == (tmp_path / "ir").read_bytes()


async def test_json_array_zero_and_many(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    s = JsonSink(str(empty))
    await s.open()
    await s.close()
    assert json.loads(empty.read_text()) == []

    full = tmp_path / "full.json"
    s = JsonSink(str(full))
    await s.open()
    await s.write_batch([rec(1)])
    await s.write_batch([rec(2), rec(3)])
    # killed -9 now: no closing bracket, but the reader tolerates it
    assert list(read_records(full)) == [rec(1), rec(2), rec(3)]
    await s.close()
    assert json.loads(full.read_text()) == [rec(1), rec(2), rec(3)]
    assert list(read_records(full)) == [rec(1), rec(2), rec(3)]


async def test_har_sink_valid_after_each_batch_and_close(tmp_path: Path) -> None:
    path = tmp_path / "cap.har"
    path.write_text("stale contents from a previous run\n")
    sink = HarSink(str(path))
    await sink.open()
    har = json.loads(path.read_text())  # a valid, empty HAR exists from the start
    jsonschema.validate(har, SCHEMA)
    assert har["log"]["entries"] == []
    await sink.write_batch([rec(1), rec(2)])
    har = json.loads(path.read_text())  # streamed: complete after the batch, before close
    jsonschema.validate(har, SCHEMA)
    assert [e["_id"] for e in har["log"]["entries"]] == [1, 2]
    await sink.write_batch([rec(3)])
    await sink.close()
    har = json.loads(path.read_text())
    jsonschema.validate(har, SCHEMA)
    assert [e["_id"] for e in har["log"]["entries"]] == [1, 2, 3]
    assert har["log"]["creator"]["name"] == "OmniProxy TUI"
    assert sorted(os.listdir(tmp_path)) == ["cap.har"]  # no temp files
    assert [r["id"] for r in read_records(path)] == [1, 2, 3]
    assert sink.count == 3 and sink.failed == 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("cls", [NdjsonSink, JsonSink])
async def test_disk_full_reported_once_and_counted(cls: type) -> None:
    errors: list[str] = []
    sink = cls("/dev/full", errors.append)
    await sink.open()  # opening /dev/full works; every write fails with ENOSPC
    for i in range(3):
        await sink.write_batch([rec(i), rec(i + 10)])  # never raises
    await sink.close()
    assert sink.failed == 6
    assert len(errors) == 1
    assert "/dev/full" in errors[0] and "No space left" in errors[0] and "\n" not in errors[0]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("fmt", ["ndjson", "json", "har"])
def test_partial_write_is_cut_back_so_the_file_stays_parseable(tmp_path: Path, fmt: str) -> None:
    """A file-size limit makes a batch fail half-way (EFBIG); the half batch must not stay behind."""
    path = tmp_path / f"cap.{fmt}"
    script = textwrap.dedent(f"""
        import asyncio, resource, signal, sys, json
        sys.path.insert(0, {str(REPO)!r})
        from proxycore.capture.sinks import NdjsonSink, JsonSink, HarSink
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
        errors = []
        async def main():
            s = ({dict(ndjson='NdjsonSink', json='JsonSink', har='HarSink')[fmt]})({str(path)!r}, errors.append)
            await s.open()
            for i in range(20):
                await s.write_batch([{{"id": i * 3 + k, "request": {{"method": "GET", "url": "http://e/"}},
                                       "pad": "x" * 150}}
                                     for k in range(3)])
            print(json.dumps({{"count": s.count, "failed": s.failed, "errors": errors}}))
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["failed"] > 0 and res["count"] > 0 and len(res["errors"]) == 1
    got = list(read_records(path))  # no half line / half batch in the file
    assert [r["id"] for r in got] == list(range(res["count"]))


async def test_unwritable_output_path_is_one_line_error(tmp_path: Path) -> None:
    for cls in (NdjsonSink, JsonSink, HarSink):
        sink = cls(str(tmp_path / "no" / "such" / "dir" / "cap.out"))
        with pytest.raises(SinkError) as exc:
            await sink.open()
        msg = str(exc.value)
        assert "cap.out" in msg and "No such file" in msg and "\n" not in msg


@pytest.mark.skipif(ROOT, reason="root ignores directory permissions")
async def test_read_only_directory_har(tmp_path: Path) -> None:
    """Streamed in place: a directory made read-only after the start does not stop the capture."""
    d = tmp_path / "ro"
    d.mkdir()
    errors: list[str] = []
    sink = HarSink(str(d / "cap.har"), errors.append)
    await sink.open()
    d.chmod(0o500)
    try:
        await sink.write_batch([rec(1)])
        await sink.close()
    finally:
        d.chmod(0o700)
    assert errors == [] and len(json.loads((d / "cap.har").read_text())["log"]["entries"]) == 1


def test_stdout_sink_writes_ndjson_lines() -> None:
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(REPO)!r})
        from proxycore.options import Options
        from proxycore.capture.sinks import open_sinks
        async def main():
            (s,) = await open_sinks(Options(), stdout_fallback=True)
            await s.write_batch([{{"id": 1, "t": "é"}}, {{"id": 2}}])
            await s.write_batch([{{"id": 3}}])
            await s.close()
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == '{"id":1,"t":"é"}\n{"id":2}\n{"id":3}\n'.encode()


def test_make_sinks_selection(tmp_path: Path) -> None:
    out = str(tmp_path / "x")
    kinds = lambda o, fb=False: [type(s).__name__ for s in make_sinks(o, fb)]  # noqa: E731
    assert kinds(Options(output=out + ".har")) == ["HarSink"]
    assert kinds(Options(output=out + ".json")) == ["JsonSink"]
    assert kinds(Options(output=out + ".ndjson")) == ["NdjsonSink"]
    assert make_sinks(Options(output=out + ".ir"), False)[0].name == "ir"
    assert kinds(Options(output=out, format="har")) == ["HarSink"]
    assert kinds(Options(output=out)) == ["NdjsonSink"]
    assert kinds(Options(), True) == ["NdjsonSink"]  # stdout
    assert make_sinks(Options(), True)[0].path is None
    assert kinds(Options(), False) == []
    assert kinds(Options(db="sqlite::memory:"), True) == ["SqliteStore"]  # db replaces stdout
    assert kinds(Options(output=out, db="sqlite::memory:")) == ["NdjsonSink", "SqliteStore"]
    with pytest.raises(ValueError, match="unknown capture format 'xml'.*ndjson, json, har, ir"):
        make_sinks(Options(output=out, format="xml"), False)
    with pytest.raises(ValueError, match="PostgreSQL storage is not available yet"):
        make_sinks(Options(db="postgres://u:p@h/db"), False)
    with pytest.raises(ValueError, match="unsupported scheme 'mysql'"):
        make_sinks(Options(db="mysql://h/db"), False)
    with pytest.raises(ValueError, match="needs an output file"):
        make_sinks(Options(format="har"), True)


async def test_open_sinks_opens_and_fails_cleanly(tmp_path: Path) -> None:
    sinks = await open_sinks(Options(output=str(tmp_path / "a.json"), db="sqlite::memory:"), False)
    assert isinstance(sinks[1], SqliteStore) and sinks[1].opened
    for s in sinks:
        await s.write_batch([rec(1)])
        await s.close()
    assert json.loads((tmp_path / "a.json").read_text()) == [rec(1)]
    with pytest.raises(SinkError, match="cannot write capture file"):
        await open_sinks(Options(output=str(tmp_path / "missing" / "a.har")), False)
