"""`--db` URLs: parse, validate and mask.

Accepted forms::

    sqlite::memory:            sqlite://:memory:          an in-memory database (gone on exit)
    sqlite://rel/path.db       sqlite:rel/path.db         relative to the working directory
    sqlite:///abs/path.db                                 absolute
    sqlite3://...                                         same as sqlite://...
    sqlite:///x.db?mode=ro     the query is kept and handed to SQLite as URI parameters
    postgres://user:pass@host:5432/db  (postgresql:// too) parsed, but not available yet

Errors are one-line ``ValueError`` messages meant for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

SQLITE_SCHEMES = ("sqlite", "sqlite3")
POSTGRES_SCHEMES = ("postgres", "postgresql")
POSTGRES_DEFAULT_PORT = 5432
POSTGRES_DEFAULT_DB = "omniproxy"
MEMORY = ":memory:"
_HINT = "use sqlite:///path.db or sqlite::memory:"
_SECRET_PARAMS = ("password", "pass", "pwd", "secret", "token", "sslpassword")


@dataclass(frozen=True)
class DbUrl:
    """A parsed `--db` URL. `kind` is "sqlite" or "postgres"."""

    kind: str
    raw: str
    path: str = ""  # sqlite: file path or ":memory:"
    query: str = ""  # kept verbatim (sqlite URI parameters / postgres options)
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    database: str = ""

    @property
    def is_memory(self) -> bool:
        return self.kind == "sqlite" and self.path == MEMORY

    def sqlite_target(self) -> tuple[str, bool]:
        """(database argument, uri flag) for ``sqlite3.connect`` / ``aiosqlite.connect``."""
        if self.is_memory:
            return (f"file::memory:?{self.query}", True) if self.query else (MEMORY, False)
        if self.query:
            # SQLite URI filenames need a percent-encoded absolute path.
            return f"file:{quote(str(Path(self.path).absolute()))}?{self.query}", True
        return self.path, False

    def masked(self) -> str:
        return mask_url(self.raw)


def parse_db_url(url: str | None) -> DbUrl:
    """Parse a `--db` URL (see the module docstring); raise ValueError on bad input."""
    if url is None or not url.strip():
        raise ValueError(f"a database URL is required ({_HINT})")
    raw = url.strip()
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", raw)
    if not m:
        raise ValueError(f"'{raw}' is not a database URL ({_HINT})")
    scheme = m.group(1).lower()
    rest = raw[m.end():]
    if scheme in SQLITE_SCHEMES:
        return _parse_sqlite(raw, rest)
    if scheme in POSTGRES_SCHEMES:
        return _parse_postgres(raw)
    raise ValueError(f"unsupported scheme '{scheme}' ({_HINT})")


def _parse_sqlite(raw: str, rest: str) -> DbUrl:
    if rest.startswith("//"):
        rest = rest[2:]  # sqlite://rel.db, sqlite:///abs.db (leaves "/abs.db")
    path, _, query = rest.partition("?")
    path = unquote(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")  # sqlite:////abs.db (SQLAlchemy's spelling) is absolute too
    if path in (MEMORY, ""):
        if path == "":
            raise ValueError(f"'{raw}' has no database path ({_HINT})")
        return DbUrl(kind="sqlite", raw=raw, path=MEMORY, query=query)
    return DbUrl(kind="sqlite", raw=raw, path=str(Path(path).expanduser()), query=query)


def _parse_postgres(raw: str) -> DbUrl:
    try:
        u = urlsplit(raw)
        port = u.port or POSTGRES_DEFAULT_PORT
    except ValueError as e:
        raise ValueError(f"bad PostgreSQL URL ({e})") from None
    if not u.hostname:
        raise ValueError("a PostgreSQL URL needs a host (postgres://user:pass@host:5432/db)")
    return DbUrl(
        kind="postgres",
        raw=raw,
        query=u.query,
        host=u.hostname,
        port=port,
        user=unquote(u.username or ""),
        password=unquote(u.password or ""),
        database=unquote(u.path.lstrip("/")) or POSTGRES_DEFAULT_DB,
    )


def validate_db_url(url: str | None) -> DbUrl:
    """Parse and check that this build can store to it (the CLI calls this at start-up)."""
    db = parse_db_url(url)
    if db.kind == "postgres":
        raise ValueError(f"PostgreSQL storage is not available yet ({_HINT})")
    return db


def mask_url(url: str) -> str:
    """The URL with its password hidden, for logs and status output.

    PostgreSQL URLs come back normalised: ``postgres://user:***@host:port/db`` (a password in the
    query string is masked too). SQLite URLs carry no secrets and come back unchanged.
    """
    try:
        db = parse_db_url(url)
    except ValueError:
        # Unparseable: still never echo a password.
        return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url or "")
    if db.kind != "postgres":
        return db.raw
    scheme = db.raw.split(":", 1)[0].lower()
    user = db.user
    if db.password:
        user = f"{user}:***"
    auth = f"{user}@" if user else ""
    host = f"[{db.host}]" if ":" in db.host else db.host
    out = f"{scheme}://{auth}{host}:{db.port}/{db.database}"
    if db.query:
        pairs = [
            (k, "***" if k.lower() in _SECRET_PARAMS else v)
            for k, v in parse_qsl(db.query, keep_blank_values=True)
        ]
        out += "?" + urlencode(pairs, safe="*")
    return out
