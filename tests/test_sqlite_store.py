"""SqliteStore and --db URLs: rows land in a documented schema that the sqlite3 module can read."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from proxycore.capture.dburl import mask_url, parse_db_url, validate_db_url
from proxycore.capture.queue import CaptureQueue
from proxycore.capture.sinks import SinkError
from proxycore.capture.sqlite import SqliteStore


def rec(i: int, host: str = "api.example.com", method: str = "GET", status: int | None = 200) -> dict:
    r: dict = {
        "id": i,
        "request": {"method": method, "url": f"https://{host}/v1/items/{i}?a=1", "host": host,
                    "path": f"/v1/items/{i}", "scheme": "https", "query": {"a": "1"},
                    "headers": {"accept": ["a/b", "c/d"], "authorization": "[REDACTED]"},
                    "body": {"q": i} if method == "POST" else None, "bodySize": 7 if method == "POST" else 0,
                    "contentType": "application/json" if method == "POST" else None},
        "startTime": f"2026-01-02T10:00:{i % 60:02d}.000001+00:00",
        "endTime": f"2026-01-02T10:00:{i % 60:02d}.002001+00:00",
        "durationMs": 2.0,
        "clientAddress": "127.0.0.1:5000",
        "tls": {"sni": host, "version": "TLSv1.3"},
    }
    r["request"] = {k: v for k, v in r["request"].items() if v is not None}
    if status is not None:
        r["response"] = {"status": status, "statusText": f"{status} OK", "headers": {"content-type": "image/png"},
                         "body": "[binary content]", "isBinary": True, "size": 99, "contentType": "image/png"}
    else:
        r["error"] = "connection refused"
    return r


async def test_rows_queried_back_with_sqlite3(tmp_path: Path) -> None:
    path = tmp_path / "cap.db"
    store = SqliteStore(f"sqlite:///{path}")
    await store.open()
    await store.write_batch([rec(1), rec(2, method="POST", status=201)])
    await store.write_batch([rec(3, host="other.test", status=None)])
    # a separate sqlite3 connection (like the sqlite3 shell) sees the committed rows while we are open
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    rows = con.execute("SELECT * FROM flows ORDER BY id").fetchall()
    assert [r["flow_id"] for r in rows] == [1, 2, 3]
    r1, r2, r3 = rows
    assert (r1["method"], r1["host"], r1["path"], r1["scheme"], r1["status"]) == (
        "GET", "api.example.com", "/v1/items/1", "https", 200)
    assert r1["url"] == "https://api.example.com/v1/items/1?a=1"
    assert json.loads(r1["query"]) == {"a": "1"}
    assert json.loads(r1["request_headers"])["accept"] == ["a/b", "c/d"]
    assert r1["response_is_binary"] == 1 and r1["response_body"] == "[binary content]"
    assert r1["response_body_size"] == 99 and r1["response_content_type"] == "image/png"
    assert r1["started_at"].startswith("2026-01-02T10:00:01") and r1["duration_ms"] == 2.0
    assert json.loads(r1["tls"])["sni"] == "api.example.com" and r1["client_address"] == "127.0.0.1:5000"
    assert json.loads(r1["record"]) == rec(1)
    assert json.loads(r2["request_body"]) == {"q": 2} and r2["request_body_size"] == 7
    assert r2["request_content_type"] == "application/json" and r2["status_text"] == "201 OK"
    assert r3["status"] is None and r3["error"] == "connection refused" and r3["response_headers"] is None
    # JSON functions work on the JSON columns; the indexes exist
    assert con.execute("SELECT json_extract(request_body, '$.q') FROM flows WHERE flow_id=2").fetchone()[0] == 2
    idx = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"flows_host", "flows_path", "flows_method", "flows_status", "flows_started_at",
            "flows_host_path"} <= idx
    plan = " ".join(str(tuple(r)) for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM flows WHERE host='x' AND path='/y'"))
    assert "flows_host_path" in plan
    con.close()
    await store.close()


async def test_query_and_count_in_memory() -> None:
    store = SqliteStore("sqlite::memory:")
    await store.open()
    await store.write_batch([rec(i, method="POST" if i % 3 == 0 else "GET",
                                 status=404 if i % 5 == 0 else 200) for i in range(1, 31)])
    assert await store.count() == 30
    assert await store.count(method="post") == 10
    assert await store.count(status=404) == 6
    assert await store.count(host="api.example.com", method="GET", status=200) == 16
    rows = await store.query(limit=5)
    assert [r["flow_id"] for r in rows] == [30, 29, 28, 27, 26]  # newest first
    page = await store.query(limit=5, offset=5, status=200)
    assert all(r["status"] == 200 for r in page) and len(page) == 5
    r = (await store.query(limit=1, method="POST"))[0]
    assert r["flow_id"] == 30 and r["request_body"] == json.dumps({"q": 30}, separators=(",", ":"))
    assert r["record"]["id"] == 30 and r["response_is_binary"] is True and r["query"] == {"a": "1"}
    await store.close()


async def test_through_the_capture_queue(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SqliteStore(parse_db_url(f"sqlite://{path}"))
    q = CaptureQueue([store], lambda i: rec(i), batch_size=50, flush_interval=0.01)
    await q.start()
    for i in range(1, 1001):
        q.put(i)
    await q.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*), MIN(flow_id), MAX(flow_id) FROM flows").fetchone() == (1000, 1, 1000)
    con.close()
    assert q.written == 1000 and q.failed == 0


async def test_unopenable_path_is_one_line_error(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path}/missing/dir/x.db")
    with pytest.raises(SinkError) as exc:
        await store.open()
    assert "cannot open database" in str(exc.value) and "x.db" in str(exc.value)
    assert "\n" not in str(exc.value)


async def test_write_errors_reported_once(tmp_path: Path) -> None:
    errors: list[str] = []
    path = tmp_path / "w.db"
    store = SqliteStore(f"sqlite:///{path}", errors.append)
    await store.open()
    await store.write_batch([rec(1)])
    # someone drops the table under us: inserts fail, the proxy must not
    con = sqlite3.connect(path)
    con.execute("DROP TABLE flows")
    con.commit()
    con.close()
    await store.write_batch([rec(2)])
    await store.write_batch([rec(3), rec(4)])
    assert store.failed == 3 and len(errors) == 1 and "no such table" in errors[0]
    await store.close()


async def test_relative_path_and_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SqliteStore("sqlite3://rel.db")
    await store.open()
    await store.write_batch([rec(1)])
    await store.close()
    assert (tmp_path / "rel.db").exists()
    # URI parameters are passed through: read-only mode cannot create the schema's tables
    ro = SqliteStore(f"sqlite://{tmp_path}/rel.db?mode=ro")
    with pytest.raises(SinkError, match="readonly|read-only|attempt to write"):
        await ro.open()


# --- dburl -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url,kind,path,query", [
    ("sqlite::memory:", "sqlite", ":memory:", ""),
    ("sqlite://:memory:", "sqlite", ":memory:", ""),
    ("sqlite://rel.db", "sqlite", "rel.db", ""),
    ("sqlite://dir/rel.db", "sqlite", "dir/rel.db", ""),
    ("sqlite3://rel.db", "sqlite", "rel.db", ""),
    ("sqlite:///abs/x.db", "sqlite", "/abs/x.db", ""),
    ("SQLite:///abs/x.db?mode=ro&cache=shared", "sqlite", "/abs/x.db", "mode=ro&cache=shared"),
    ("sqlite:rel.db", "sqlite", "rel.db", ""),
    ("sqlite:////abs/x.db", "sqlite", "/abs/x.db", ""),
])
def test_parse_sqlite_urls(url: str, kind: str, path: str, query: str) -> None:
    db = parse_db_url(url)
    assert (db.kind, db.path, db.query) == (kind, path, query)
    assert validate_db_url(url) == db
    assert db.is_memory == (path == ":memory:")


@pytest.mark.parametrize("url,host,port,user,password,database", [
    ("postgres://u:p@db.local:6543/cap", "db.local", 6543, "u", "p", "cap"),
    ("postgresql://u@db.local", "db.local", 5432, "u", "", "omniproxy"),
    ("postgres://u:p%40ss@10.0.0.1/", "10.0.0.1", 5432, "u", "p@ss", "omniproxy"),
])
def test_parse_postgres_urls(url: str, host: str, port: int, user: str, password: str, database: str) -> None:
    db = parse_db_url(url)
    assert (db.kind, db.host, db.port, db.user, db.password, db.database) == (
        "postgres", host, port, user, password, database)
    with pytest.raises(ValueError, match="PostgreSQL storage is not available yet"):
        validate_db_url(url)


@pytest.mark.parametrize("url,message", [
    ("", "required"),
    ("   ", "required"),
    (None, "required"),
    ("mysql://h/db", "unsupported scheme 'mysql' (use sqlite:///path.db or sqlite::memory:)"),
    ("cap.db", "not a database URL"),
    ("sqlite://", "no database path"),
    ("postgres:///db", "needs a host"),
    ("postgres://h:notaport/db", "bad PostgreSQL URL"),
])
def test_bad_db_urls(url: str | None, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_db_url(url)
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("url,masked", [
    ("postgres://user:secret@host:5433/db", "postgres://user:***@host:5433/db"),
    ("postgres://user:secret@host/db", "postgres://user:***@host:5432/db"),
    ("postgresql://user@host", "postgresql://user@host:5432/omniproxy"),
    ("postgres://h/db?sslmode=require&password=x", "postgres://h:5432/db?sslmode=require&password=***"),
    ("sqlite:///x.db", "sqlite:///x.db"),
    ("sqlite::memory:", "sqlite::memory:"),
    ("redis://u:pw@h:1/0", "redis://u:***@h:1/0"),  # unsupported, but still never echoes a password
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "secret" not in mask_url(url)
