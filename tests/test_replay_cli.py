"""`omniproxy-tui replay FILE`: each capture format against real origins (HTTP, and HTTPS with the
test origin CA), --filter, --concurrency, --via-proxy through a real proxy that captures the
results, and the exit code when a request fails.

The command runs in a thread (it has its own event loop, as from a shell) while the origins and
the capturing proxy run on the test's loop."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import pytest
from conftest import collect_done, proxy_url, wait_for

from omniproxy_tui.cli import run as cli_run
from proxycore.capture.har import records_to_har
from proxycore.capture.record import RecordOptions, flow_to_record, record_to_json_line
from proxycore.flows.serialize import write_flows
from proxycore.options import Options


async def _captured(make_proxy, urls: list[tuple[str, str, bytes | None]]) -> list:
    """Real flows: each (method, url, body) sent by httpx through a real proxy."""
    proxy = await make_proxy()
    done = collect_done(proxy)
    verify = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    async with httpx.AsyncClient(proxy=proxy_url(proxy), verify=verify, trust_env=False, timeout=10) as c:
        for method, url, body in urls:
            await c.request(method, url, content=body, headers={"Content-Type": "application/json"} if body else {})
    await wait_for(lambda: len(done) == len(urls), what="captured flows")
    return sorted(done, key=lambda f: f.id)


def _write(fmt: str, flows: list, path: Path) -> Path:
    ro = RecordOptions.from_options(Options(), for_har=fmt == "har")
    records = [flow_to_record(f, ro) for f in flows]
    if fmt == "ndjson":
        path.write_bytes(b"".join(record_to_json_line(r).rstrip(b"\n") + b"\n" for r in records))
    elif fmt == "json":
        path.write_text(json.dumps(records))
    elif fmt == "har":
        path.write_text(json.dumps(records_to_har(records, "test")))
    else:
        write_flows(path, flows)
    return path


async def _replay(capsys, *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli_run, ["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["ndjson", "json", "har", "flows"])
async def test_replay_each_format_http_and_https(fmt, make_proxy, origin, tls_origin, origin_ca, tmp_path, capsys):
    flows = await _captured(make_proxy, [
        ("GET", origin.url("/json?q=1"), None),
        ("POST", origin.url("/echo"), b'{"a": [1, 2], "b": "x"}'),
        ("GET", tls_origin.url("/echo?tls=1", host="localhost"), None),
    ])
    del origin.requests[:], tls_origin.requests[:]
    path = _write(fmt, flows, tmp_path / f"capture.{fmt}")
    code, out, err = await _replay(capsys, str(path), "--ca", str(origin_ca.cert_path))
    assert code == 0, out + err
    lines = out.splitlines()
    assert len(lines) == 3 and all(" 200 " in ln for ln in lines), out
    assert "GET " + origin.url("/json?q=1") in lines[0] and "ms" in lines[0]
    assert "3 requests: 3 ok, 0 failed" in err
    assert [r["target"] for r in origin.requests] == ["/json?q=1", "/echo"]
    assert origin.requests[1]["method"] == "POST"
    assert json.loads(origin.requests[1]["body"]) == {"a": [1, 2], "b": "x"}
    assert [r["target"] for r in tls_origin.requests] == ["/echo?tls=1"]


async def test_filter_concurrency_and_insecure(make_proxy, origin, tls_origin, tmp_path, capsys):
    flows = await _captured(make_proxy, [(("GET", origin.url(f"/echo?n={i}"), None)) for i in range(4)] + [
        ("GET", tls_origin.url("/json", host="localhost"), None)])
    del origin.requests[:]
    path = _write("ndjson", flows, tmp_path / "c.ndjson")
    code, out, err = await _replay(capsys, str(path), "--filter", "~u n=[13]", "--concurrency", "4")
    assert code == 0, out + err
    assert sorted(r["target"] for r in origin.requests) == ["/echo?n=1", "/echo?n=3"]
    assert "2 requests: 2 ok" in err
    # the origin's CA is not trusted: verified by default, so it fails; --insecure sends it
    code, out, err = await _replay(capsys, str(path), "--filter", "~d localhost")
    assert code == 1 and " ERR " in out and "certificate" in out.lower()
    code, out, err = await _replay(capsys, str(path), "--filter", "~d localhost", "--insecure")
    assert code == 0 and " 200 " in out


async def test_via_proxy_captures_the_results(make_proxy, origin, tls_origin, origin_ca, tmp_path, capsys):
    flows = await _captured(make_proxy, [("GET", origin.url("/json"), None),
                                         ("GET", tls_origin.url("/json", host="localhost"), None)])
    path = _write("har", flows, tmp_path / "c.har")
    capturing = await make_proxy()  # trusts the origin CA (conftest), decrypts HTTPS with its own CA
    seen = collect_done(capturing)
    code, out, err = await _replay(capsys, str(path), "--via-proxy", proxy_url(capturing),
                                   "--ca", str(capturing.ca.cert_path))
    assert code == 0, out + err
    await wait_for(lambda: len(seen) == 2, what="the capturing proxy's flows")
    assert sorted(f.request.url for f in seen) == sorted([origin.url("/json"), tls_origin.url("/json", host="localhost")])
    assert all(f.response.status == 200 for f in seen)


async def test_failing_request_gives_nonzero_exit(make_proxy, origin, tmp_path, capsys):
    flows = await _captured(make_proxy, [("GET", origin.url("/json"), None)])
    path = _write("ndjson", flows, tmp_path / "c.ndjson")
    await origin.stop()  # nothing listens on that port any more
    code, out, err = await _replay(capsys, str(path), "--timeout", "5")
    assert code == 1
    assert " ERR " in out and "Traceback" not in out + err
    assert "1 requests: 0 ok, 1 failed" in err or "1 request: 0 ok, 1 failed" in err


async def test_bad_input_is_one_line(tmp_path, capsys):
    code, out, err = await _replay(capsys, str(tmp_path / "missing.har"))
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.ndjson"
    bad.write_text("not json\n")
    code, out, err = await _replay(capsys, str(bad))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    bad.write_text('{"request": {"method": "GET", "url": "http://127.0.0.1:9/"}}\n')
    code, out, err = await _replay(capsys, str(bad), "--filter", "~q ((")
    assert code == 2 and "--filter" in err
    code, out, err = await _replay(capsys, str(bad), "--via-proxy", "socks5://x")
    assert code == 2 and "upstream proxy" in err and "Traceback" not in err

