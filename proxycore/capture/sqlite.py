"""SQLite capture store (``--db sqlite:///path.db`` or ``sqlite::memory:``) via aiosqlite.

The database is in WAL mode, so ``sqlite3 path.db`` can query it while the proxy writes. Schema
(``PRAGMA user_version = 1``)::

    CREATE TABLE flows (
        id                    INTEGER PRIMARY KEY,  -- row id, insertion order
        flow_id               INTEGER,              -- the record's "id" (unique within one proxy run)
        started_at            TEXT,                 -- RFC 3339, microseconds and UTC offset
        ended_at              TEXT,
        duration_ms           REAL,
        method                TEXT,
        url                   TEXT,                 -- absolute URL
        scheme                TEXT,
        host                  TEXT,                 -- Host header (may carry a port)
        path                  TEXT,                 -- without the query
        query                 TEXT,                 -- JSON object: name -> value or [values]
        status                INTEGER,              -- NULL when there is no response (see error)
        status_text           TEXT,                 -- "200 OK"
        request_headers       TEXT,                 -- JSON object: lower-case name -> value or [values]
        request_body          TEXT,                 -- JSON bodies as JSON text; "[binary content]" placeholder
        request_body_size     INTEGER,
        request_is_binary     INTEGER,              -- 0/1
        request_content_type  TEXT,
        response_headers      TEXT,
        response_body         TEXT,
        response_body_size    INTEGER,
        response_is_binary    INTEGER,
        response_content_type TEXT,
        error                 TEXT,
        client_address        TEXT,
        tls                   TEXT,                 -- JSON object: sni, alpn, version, cipher
        record                TEXT NOT NULL         -- the whole IR record as JSON
    );
    CREATE INDEX flows_host ON flows(host);
    CREATE INDEX flows_path ON flows(path);
    CREATE INDEX flows_method ON flows(method);
    CREATE INDEX flows_status ON flows(status);
    CREATE INDEX flows_started_at ON flows(started_at);
    CREATE INDEX flows_host_path ON flows(host, path);

Example: ``sqlite3 cap.db "SELECT method, url, status FROM flows WHERE host LIKE '%example.com'"``;
bodies of JSON APIs can be queried with ``json_extract(response_body, '$.field')``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from typing import Any

import aiosqlite

from proxycore.capture.dburl import DbUrl, parse_db_url
from proxycore.capture.sinks import ErrorCallback, SinkError, _Reporter
from proxycore.safefile import precreate

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY,
    flow_id INTEGER,
    started_at TEXT,
    ended_at TEXT,
    duration_ms REAL,
    method TEXT,
    url TEXT,
    scheme TEXT,
    host TEXT,
    path TEXT,
    query TEXT,
    status INTEGER,
    status_text TEXT,
    request_headers TEXT,
    request_body TEXT,
    request_body_size INTEGER,
    request_is_binary INTEGER,
    request_content_type TEXT,
    response_headers TEXT,
    response_body TEXT,
    response_body_size INTEGER,
    response_is_binary INTEGER,
    response_content_type TEXT,
    error TEXT,
    client_address TEXT,
    tls TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_host ON flows(host);
CREATE INDEX IF NOT EXISTS flows_path ON flows(path);
CREATE INDEX IF NOT EXISTS flows_method ON flows(method);
CREATE INDEX IF NOT EXISTS flows_status ON flows(status);
CREATE INDEX IF NOT EXISTS flows_started_at ON flows(started_at);
CREATE INDEX IF NOT EXISTS flows_host_path ON flows(host, path);
"""

COLUMNS = (
    "flow_id", "started_at", "ended_at", "duration_ms", "method", "url", "scheme", "host", "path",
    "query", "status", "status_text", "request_headers", "request_body", "request_body_size",
    "request_is_binary", "request_content_type", "response_headers", "response_body",
    "response_body_size", "response_is_binary", "response_content_type", "error", "client_address",
    "tls", "record",
)
_JSON_COLUMNS = ("query", "request_headers", "response_headers", "tls", "record")
_BOOL_COLUMNS = ("request_is_binary", "response_is_binary")
_INSERT = f"INSERT INTO flows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def _json(v: Any) -> str | None:
    if v is None:
        return None
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _body(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return _json(v)


def _flag(v: Any) -> int | None:
    return None if v is None else int(bool(v))


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return ":".join(str(x) for x in v)
    return str(v)


def record_row(rec: dict) -> tuple:
    """The INSERT parameters for one IR record (COLUMNS order)."""
    req = rec.get("request") or {}
    resp = rec.get("response") or {}
    return (
        rec.get("id"),
        rec.get("startTime"),
        rec.get("endTime"),
        rec.get("durationMs"),
        req.get("method"),
        req.get("url"),
        req.get("scheme"),
        req.get("host"),
        req.get("path"),
        _json(req.get("query")),
        resp.get("status") if resp else None,
        resp.get("statusText"),
        _json(req.get("headers")),
        _body(req.get("body")),
        req.get("bodySize"),
        _flag(req.get("isBinary")),
        req.get("contentType"),
        _json(resp.get("headers")) if resp else None,
        _body(resp.get("body")),
        resp.get("size"),
        _flag(resp.get("isBinary")),
        resp.get("contentType"),
        _text(rec.get("error")),
        _text(rec.get("clientAddress")),
        _json(rec.get("tls")),
        _json(rec) or "{}",
    )


class SqliteStore(_Reporter):
    """A capture sink that inserts each batch in one transaction."""

    name = "sqlite"

    def __init__(self, url: str | DbUrl, on_error: ErrorCallback | None = None) -> None:
        super().__init__(on_error)
        self.db = url if isinstance(url, DbUrl) else parse_db_url(url)
        if self.db.kind != "sqlite":
            raise ValueError(f"SqliteStore needs a sqlite URL, got {self.db.masked()}")
        self.conn: aiosqlite.Connection | None = None
        self.opened = False
        self.rows_written = 0  # rows inserted by this store

    @property
    def where(self) -> str:
        return self.db.path

    async def open(self) -> None:
        if self.opened:
            return
        target, uri = self.db.sqlite_target()
        if not self.db.is_memory and "mode=ro" not in self.db.query:
            # SQLite creates a database 0644 and its -wal/-shm/-journal files with the database's
            # mode: an empty 0600 file first makes them all 0600 (an existing one keeps its mode).
            with contextlib.suppress(OSError):  # unwritable: sqlite's own error says why, below
                precreate(self.db.path)
        pending = aiosqlite.connect(target, uri=uri)
        conn = None
        try:
            try:
                conn = await pending
            except BaseException:
                # aiosqlite stops its worker thread asynchronously after a failed connect; wait for
                # it, or it may try to call back into a loop that has been closed meanwhile.
                thread = getattr(pending, "_thread", None)
                if thread is not None and thread.is_alive():
                    await asyncio.to_thread(thread.join, 5)
                raise
            if not self.db.is_memory:
                await conn.execute("PRAGMA journal_mode=WAL")
                await conn.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash keeps commits
            await conn.execute("PRAGMA busy_timeout=5000")  # a sqlite3 shell reading must not fail us
            await conn.executescript(SCHEMA)
            await conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            await conn.commit()
        except (sqlite3.Error, OSError) as e:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise SinkError(f"cannot open database {self.where}: {e}") from None
        self.conn = conn
        self.opened = True

    async def write_batch(self, records: list[dict]) -> None:
        if not records:
            return
        conn = self.conn
        if conn is None:
            self._fail(len(records), "capture: the sqlite store is closed")
            return
        try:
            rows = [record_row(r) for r in records]
            await conn.executemany(_INSERT, rows)
            await conn.commit()
        except (sqlite3.Error, OSError) as e:
            with contextlib.suppress(Exception):
                await conn.rollback()
            self._fail(len(records), f"capture: cannot write to database {self.where}: {e} "
                                     f"(records are being dropped until it works again)")
            return
        self.rows_written += len(records)
        self._ok()

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        self.opened = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # --- reading (control API, UI) ------------------------------------------------------------

    @staticmethod
    def _where(host: str | None, method: str | None, status: int | None) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if host is not None:
            clauses.append("host = ?")
            args.append(host)
        if method is not None:
            clauses.append("method = ?")
            args.append(method.upper())
        if status is not None:
            clauses.append("status = ?")
            args.append(int(status))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    async def query(self, limit: int = 100, offset: int = 0, host: str | None = None,
                    method: str | None = None, status: int | None = None) -> list[dict]:
        """Rows newest first, as dicts (JSON columns decoded, 0/1 flags as bool)."""
        if self.conn is None:
            raise RuntimeError("the sqlite store is not open")
        where, args = self._where(host, method, status)
        sql = f"SELECT id, {', '.join(COLUMNS)} FROM flows{where} ORDER BY id DESC LIMIT ? OFFSET ?"
        async with self.conn.execute(sql, [*args, int(limit), int(offset)]) as cur:
            names = [d[0] for d in cur.description]
            rows = await cur.fetchall()
        out = []
        for row in rows:
            d = dict(zip(names, row, strict=True))
            for c in _JSON_COLUMNS:
                if d[c] is not None:
                    d[c] = json.loads(d[c])
            for c in _BOOL_COLUMNS:
                if d[c] is not None:
                    d[c] = bool(d[c])
            out.append(d)
        return out

    async def count(self, host: str | None = None, method: str | None = None,
                    status: int | None = None) -> int:
        if self.conn is None:
            raise RuntimeError("the sqlite store is not open")
        where, args = self._where(host, method, status)
        async with self.conn.execute(f"SELECT COUNT(*) FROM flows{where}", args) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
