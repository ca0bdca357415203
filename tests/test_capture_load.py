"""Opening captures (proxycore.capture.load, `-r`): real traffic through the real proxy, written by
the project's own writers in every format, read back as flows."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import httpx
import pytest
from conftest import proxy_url
from origin import PNG

from omniproxy_tui.cli import run as cli_run
from proxycore.capture.load import CaptureError, IdAllocator, detect_capture, read_capture, record_to_flow
from proxycore.flows.flow import DONE, Flow, Request, next_id
from proxycore.flows.serialize import flow_to_dict, write_flows


async def traffic(proxy, origin) -> None:
    async with httpx.AsyncClient(proxy=proxy_url(proxy), trust_env=False, timeout=10) as client:
        await client.get(origin.url("/json?limit=10&tag=a&tag=b"), headers={"Accept": "application/json"})
        await client.post(origin.url("/echo"), content=b'{"name": "omni", "n": 1}',
                          headers={"Content-Type": "application/json", "X-Trace": "t-1"})
        await client.get(origin.url("/png"))
        await client.get(origin.url("/gzip"))
        await client.get(origin.url("/status/404"))
        await client.get("http://127.0.0.1:1/refused")


def key(f: Flow) -> tuple:
    """What a user recognises a flow by, in every format."""
    r = f.response
    return (f.request.method, f.request.url, r.status if r else None, bool(f.error))


async def capture(make_proxy, origin, tmp_path: Path, fmt: str) -> tuple[Path, list[Flow]]:
    """Real flows through the proxy, written in `fmt` by the project's writer for it; returns the file
    and the flows the proxy kept (what the file must give back)."""
    if fmt == "sqlite":
        out = tmp_path / "flows.db"
        proxy = await make_proxy(db=f"sqlite:///{out}", skip_binary=False)
    elif fmt == "flows":
        out = tmp_path / "capture.flows"
        proxy = await make_proxy()
    else:
        out = tmp_path / f"capture.{fmt}"
        proxy = await make_proxy(output=str(out), skip_binary=False)
    proxy.flows.max_flows = 100  # keep them, as the UI does
    await traffic(proxy, origin)
    kept = list(proxy.flows)
    await proxy.stop()
    if fmt == "flows":
        write_flows(out, kept)
    assert len(kept) == 6
    return out, kept


@pytest.mark.parametrize("fmt", ["ndjson", "ir", "json", "har", "sqlite", "flows"])
async def test_each_format_opens_with_the_same_flows(make_proxy, origin, tmp_path, fmt) -> None:
    path, kept = await capture(make_proxy, origin, tmp_path, fmt)
    renamed = tmp_path / "no-extension"  # the kind comes from the content, not the name
    os.link(path, renamed)
    assert detect_capture(renamed) == {"ir": "ndjson"}.get(fmt, fmt)
    loaded = read_capture(renamed)
    assert sorted(map(key, loaded)) == sorted(map(key, kept))
    assert all(f.state in ("done", "error") for f in loaded)
    by_path = {f.request.path: f for f in loaded}
    assert json.loads(by_path["/json"].response.body)["items"] == [1, 2, 3]
    assert by_path["/json"].request.query_string == "limit=10&tag=a&tag=b"
    echo = by_path["/echo"]
    assert echo.request.body == b'{"name": "omni", "n": 1}' and echo.request.headers.get("x-trace") == "t-1"
    # gzip: the records keep the decoded body, the flow file the bytes as sent; either reads as JSON
    gz = by_path["/gzip"].response
    body = gzip.decompress(gz.body) if gz.headers.get("content-encoding") == "gzip" else gz.body
    assert json.loads(body)
    if fmt != "ndjson" and fmt != "ir" and fmt != "json":  # binary kept: HAR (base64), SQLite, flows
        assert by_path["/png"].response.body == PNG
    assert by_path["/refused"].error
    if fmt == "flows":  # lossless: every field, ids included
        assert [flow_to_dict(f) for f in loaded] == [flow_to_dict(f) for f in kept]


def test_garbled_and_unreadable_files_are_one_line_errors(tmp_path, capsys) -> None:
    cases = {
        "binary.bin": b"\x00\x01\x02garbage\xff",
        "broken.har": b'{"log": {"entries": [ {"request": ',
        "bad.ndjson": b'{"id": 1, "request": {"method": "GET", "url": "http://a/"}}\nnot json\n{"id": 3}\n',
        "norequest.ndjson": b'{"id": 1}\n',
        "flows.flows": b'{"format": "omniproxy-flows", "version": 1}\n{"v": 1, "id": 2}\n',
        "fake.db": b"SQLite format 3\x00" + b"\x00" * 200,
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(CaptureError) as e:
            read_capture(p)
        assert "\n" not in str(e.value) and name in str(e.value), str(e.value)
        rc = cli_run(["-r", str(p)])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and err.startswith("omniproxy-tui: error: "), err
        assert "Traceback" not in err
    for args in (["-r", str(tmp_path / "missing.har")], ["-r", str(tmp_path)]):
        assert cli_run(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err


def test_read_with_no_ui_is_a_one_line_error(tmp_path, capsys) -> None:
    p = tmp_path / "x.ndjson"
    p.write_text('{"id": 1, "request": {"method": "GET", "url": "http://a/"}}\n')
    assert cli_run(["--no-ui", "-r", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the UI" in err
    # -o on the file being read would truncate it as the proxy starts: refused, the file untouched
    assert cli_run(["-r", str(p), "-o", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "overwrite" in err
    assert p.read_text().startswith('{"id": 1')


def _flow(fid: int) -> Flow:
    f = Flow(Request("GET", "http", "a.test", 80, f"/{fid}"), assign_id=False)
    f.id, f.state = fid, DONE
    return f


def test_loaded_ids_stay_unique_against_new_flows() -> None:
    start = next_id()
    alloc = IdAllocator()
    # ids not handed out yet are kept, and new flows come after them
    a = [_flow(start + 10), _flow(start + 11)]
    alloc.place(a)
    assert [f.id for f in a] == [start + 10, start + 11]
    new = Flow(Request("GET", "http", "a.test", 80, "/new"))  # the proxy's next flow
    assert new.id > start + 11
    # a later batch: an id the proxy used meanwhile, a repeat and an old one are renumbered
    b = [_flow(new.id), _flow(start + 10), _flow(1), _flow(start + 50)]
    alloc.place(b)
    ids = [f.id for f in b]
    assert ids[3] == start + 50
    assert len(set(ids) | {start + 10, start + 11, new.id}) == 7
    assert Flow(Request("GET", "http", "a.test", 80, "/n")).id > max(ids)


def _record(**response) -> dict:
    return {"id": 7, "request": {"method": "GET", "url": "https://a.test:8443/x?q=1", "host": "a.test:8443"},
            "response": {"status": 200, "statusText": "200 OK", **response},
            "startTime": "2026-01-01T12:00:00.000000+00:00", "durationMs": 12.5,
            "timings": {"connectMs": 1.0, "tlsMs": 2.0, "sendMs": 0.5, "waitMs": 8.0, "receiveMs": 1.0}}


def test_record_bodies_and_content_encoding() -> None:
    import base64
    import gzip as gz

    raw = gz.compress(b"\x00\x01binary")
    # still gzip (the recorder could not undo it): the header stays, the bytes are the wire's
    f = record_to_flow(_record(headers={"content-encoding": "gzip"}, body=base64.b64encode(raw).decode(),
                               bodyEncoding="base64"))
    assert f.response.body == raw and f.response.headers.get("content-encoding") == "gzip"
    # decoded already (a browser's HAR): the header no longer describes the bytes, so it goes
    f = record_to_flow(_record(headers={"content-encoding": "gzip"},
                               body=base64.b64encode(b"\x00\x01binary").decode(), bodyEncoding="base64"))
    assert f.response.body == b"\x00\x01binary" and "content-encoding" not in f.response.headers
    # text decoded by the recorder (bodyEncoding names the coding it undid)
    f = record_to_flow(_record(headers={"content-encoding": "br", "content-type": "application/json"},
                               body={"a": [1, 2]}, bodyText='{"a": [1, 2]}', bodyEncoding="br"))
    assert f.response.body == b'{"a": [1, 2]}' and "content-encoding" not in f.response.headers
    # skipped binary: empty, with the size seen on the wire
    f = record_to_flow(_record(body="[binary content]", isBinary=True, size=14300))
    assert f.response.body == b"" and f.response.body_size == 14300
    t = f.timings
    assert (f.id, f.request.host, f.request.port, f.request.target) == (7, "a.test", 8443, "/x?q=1")
    assert t.duration_ms == 12.5 and round((t.first_byte - t.request_sent) * 1000, 3) == 8.0


def test_sqlite_path_with_uri_characters(tmp_path) -> None:
    import sqlite3

    p = tmp_path / "a#b?c.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE flows (id INTEGER PRIMARY KEY, record TEXT NOT NULL)")
    conn.execute("INSERT INTO flows (record) VALUES (?)", (json.dumps(_record()),))
    conn.commit()
    conn.close()
    assert [f.request.url for f in read_capture(p)] == ["https://a.test:8443/x?q=1"]


def test_cli_r_n_opens_the_capture_in_the_terminal_ui(tmp_path) -> None:
    """The real command in a pseudo-terminal: `-r FILE -n` shows the flows without a proxy; q leaves."""
    import pty
    import re
    import select
    import subprocess
    import sys
    import time

    flows = [_flow(1), _flow(2)]
    write_flows(tmp_path / "two.flows", flows)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "omniproxy_tui.cli", "-r", "two.flows", "-n"], cwd=tmp_path,
                            stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "TERM": "xterm-256color",
                                                                         "COLUMNS": "100", "LINES": "30"})
    os.close(slave)
    screen = ""

    def wait_for(text: str, timeout: float = 30.0) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while text not in re.sub(r"\x1b\[[0-9;?<>=]*[A-Za-z]", "", screen):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise AssertionError(f"no {text!r} on the terminal; got {screen[-2000:]!r}")
            if select.select([master], [], [], min(left, 0.5))[0]:
                try:
                    screen += os.read(master, 65536).decode("utf-8", "replace")
                except OSError:
                    break

    try:
        wait_for("not proxying")
        wait_for("loaded 2 flows")
        os.write(master, b"q")  # loaded flows are in a file already: no question
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
