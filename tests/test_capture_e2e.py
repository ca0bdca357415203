"""Capture end to end: real traffic through the proxy, written by the real sinks, read back."""

from __future__ import annotations

import base64
import json
import sqlite3
import ssl
from pathlib import Path

import httpx
import jsonschema
import pytest
from conftest import proxy_url
from origin import PNG

from proxycore.capture.convert import read_records

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())


async def traffic(proxy, origin, tls_origin=None) -> None:
    ctx = ssl.create_default_context(cafile=str(proxy.ca.cert_path)) if proxy.ca else None
    async with httpx.AsyncClient(proxy=proxy_url(proxy), verify=ctx or True) as client:
        await client.get(origin.url("/json?limit=10&tag=a&tag=b"),
                         headers={"Authorization": "Bearer secret", "X-Api-Key": "k", "Accept": "application/json"})
        await client.post(origin.url("/echo"), json={"name": "omni", "n": 1},
                          headers={"Cookie": "session=abc", "X-Custom-Secret": "s3"})
        await client.get(origin.url("/png"))
        await client.get(origin.url("/gzip"))
        await client.get(origin.url("/cookies"))
        await client.get("http://127.0.0.1:1/refused")
        if tls_origin is not None:
            await client.get(tls_origin.url("/json", host="localhost"))


@pytest.mark.parametrize("fmt", ["ndjson", "json", "ir", "har"])
async def test_every_format_written_and_parsed_back(make_proxy, origin, tls_origin, tmp_path, fmt):
    out = tmp_path / f"capture.{fmt}"
    proxy = await make_proxy(output=str(out))
    await traffic(proxy, origin, tls_origin)
    await proxy.stop()
    if fmt == "har":
        har = json.loads(out.read_text())
        jsonschema.validate(har, SCHEMA)
        assert len(har["log"]["entries"]) == 7
    if fmt == "json":
        assert isinstance(json.loads(out.read_text()), list)
    records = list(read_records(out))
    assert len(records) == 7
    by_path = {r["request"]["path"]: r for r in records if r["request"]["scheme"] == "http"}
    j = by_path["/json"]
    assert j["request"]["method"] == "GET" and j["response"]["status"] == 200
    assert j["request"]["query"]["limit"] == "10"
    assert j["response"]["body"]["items"] == [1, 2, 3]  # JSON bodies stay JSON
    if fmt == "har":  # HAR carries binary bodies in base64, as browsers export them
        assert base64.b64decode(by_path["/png"]["response"]["body"]) == PNG
        assert by_path["/png"]["response"]["bodyEncoding"] == "base64"
    else:
        assert by_path["/png"]["response"]["isBinary"] is True
        assert by_path["/png"]["response"]["body"] == "[binary content]"
    assert by_path["/gzip"]["response"]["body"] == {"compressed": True, "n": 42}
    assert by_path["/echo"]["request"]["body"] == {"name": "omni", "n": 1}
    if fmt != "har":  # HAR has no place for these fields
        assert by_path["/refused"]["error"].startswith("connection to 127.0.0.1:1 refused")
        assert j["request"]["query"]["tag"] == ["a", "b"]
        # repeated headers are not lost (and set-cookie is redacted by default)
        assert by_path["/cookies"]["response"]["headers"]["set-cookie"] == ["[REDACTED]", "[REDACTED]"]
    https = [r for r in records if r["request"]["scheme"] == "https"]
    assert https and https[0]["request"]["url"].startswith("https://localhost:")


async def test_redaction_default_extra_and_off(make_proxy, origin, tmp_path):
    out = tmp_path / "r.ndjson"
    proxy = await make_proxy(output=str(out), filter_headers=["x-custom-secret"])
    await traffic(proxy, origin)
    await proxy.stop()
    # (the /echo origin copies request headers into its response body, so look at headers only)
    recs = {r["request"]["path"]: r for r in read_records(out)}
    assert recs["/json"]["request"]["headers"]["authorization"] == "[REDACTED]"
    assert recs["/json"]["request"]["headers"]["x-api-key"] == "[REDACTED]"
    assert recs["/json"]["request"]["headers"]["accept"] == "application/json"
    assert recs["/echo"]["request"]["headers"]["cookie"] == "[REDACTED]"
    assert recs["/echo"]["request"]["headers"]["x-custom-secret"] == "[REDACTED]"
    assert recs["/cookies"]["response"]["headers"]["set-cookie"] == ["[REDACTED]", "[REDACTED]"]

    out2 = tmp_path / "r2.ndjson"
    proxy = await make_proxy(output=str(out2), redact=False)
    await traffic(proxy, origin)
    await proxy.stop()
    recs = {r["request"]["path"]: r for r in read_records(out2)}
    assert recs["/json"]["request"]["headers"]["authorization"] == "Bearer secret"
    assert recs["/cookies"]["response"]["headers"]["set-cookie"] == ["a=1; Path=/", "b=2; Path=/"]


async def test_scope_filters_apply(make_proxy, origin, tmp_path):
    out = tmp_path / "f.ndjson"
    proxy = await make_proxy(output=str(out), exclude_paths=["*.png", "/png"], include_methods=["get"],
                             exclude_hosts=["127.0.0.2"])
    await traffic(proxy, origin)
    await proxy.stop()
    paths = sorted(r["request"]["path"] for r in read_records(out))
    assert paths == ["/cookies", "/gzip", "/json", "/refused"]

    out = tmp_path / "g.ndjson"
    proxy = await make_proxy(output=str(out), include_hosts=["localhost"])
    await traffic(proxy, origin)
    await proxy.stop()
    assert list(read_records(out)) == []


async def test_sampling_with_overrides(make_proxy, origin, tmp_path):
    out = tmp_path / "s.ndjson"
    proxy = await make_proxy(output=str(out), sample_rate=0.25)
    async with httpx.AsyncClient(proxy=proxy_url(proxy)) as client:
        for i in range(40):
            await client.get(origin.url(f"/json?i={i}"))
    await proxy.stop()
    assert len(list(read_records(out))) == 10

    out = tmp_path / "t.ndjson"
    proxy = await make_proxy(output=str(out), sample_rate=0.0, always_hosts=["127.0.0.1"])
    async with httpx.AsyncClient(proxy=proxy_url(proxy)) as client:
        for i in range(5):
            await client.get(origin.url(f"/json?i={i}"))
    await proxy.stop()
    assert len(list(read_records(out))) == 5


async def test_sqlite_rows_queried_back(make_proxy, origin, tmp_path):
    db = tmp_path / "flows.db"
    proxy = await make_proxy(db=f"sqlite:///{db}")
    await traffic(proxy, origin)
    await proxy.stop()
    con = sqlite3.connect(db)
    rows = con.execute("SELECT method, path, status FROM flows ORDER BY id").fetchall()
    assert ("GET", "/json", 200) in rows and ("POST", "/echo", 200) in rows
    assert len(rows) == 6
    (n,) = con.execute("SELECT count(*) FROM flows WHERE host LIKE '127.0.0.1%' AND status = 200").fetchone()
    assert n == 5
    indexes = {r[1] for r in con.execute("PRAGMA index_list(flows)")}
    assert any("host" in i for i in indexes) and any("status" in i for i in indexes)


async def test_unwritable_output_is_a_startup_error(make_proxy, tmp_path):
    from proxycore.proxy.server import StartupError

    with pytest.raises(StartupError) as ei:
        await make_proxy(output=str(tmp_path / "missing-dir" / "x.ndjson"))
    assert "x.ndjson" in str(ei.value)
    assert "\n" not in str(ei.value)


async def test_headless_keeps_only_the_head_of_binary_bodies(origin, tmp_path, origin_ca):
    from proxycore.options import Options
    from proxycore.proxy.server import Proxy

    out = tmp_path / "b.ndjson"
    proxy = Proxy(Options(port=0, output=str(out), upstream_ca=str(origin_ca.cert_path)),
                  retain_binary_bodies=False)
    await proxy.start()
    done = []
    proxy.subscribe(lambda k, f: done.append(f) if k == "done" else None)
    async with httpx.AsyncClient(proxy=proxy_url(proxy)) as client:
        r = await client.get(origin.url("/bytes?n=300000"))  # application/octet-stream
        assert len(r.content) == 300000
        await client.get(origin.url("/json"))
    await proxy.stop()
    binary, text = done
    assert len(binary.response.body) <= 1024 and binary.response.body_size == 300000
    assert not binary.response.body_truncated
    assert text.response.body.startswith(b"{")
    rec = {r["request"]["path"]: r for r in read_records(out)}
    assert rec["/bytes"]["response"]["body"] == "[binary content]"
    assert rec["/bytes"]["response"]["size"] == 300000
