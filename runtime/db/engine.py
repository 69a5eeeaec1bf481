"""Per-process SQLAlchemy engines and the ``Database`` handle modules use.

Workers are forked from the main process, and a connection inherited through
fork must never be used (or closed) by the child: engines are keyed by pid, a
child that finds its parent's engine drops it with ``dispose(close=False)``
and opens its own on first use. The main process calls ``dispose_all()``
after its start-up queries so there is nothing to inherit in the first place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import Executable

from .schema import version
from .url import DbUrl, DbUrlError, parse_db_url

CONNECT_TIMEOUT = 5  # seconds: a dead server must not block a worker for minutes

_ENGINES: dict[str, tuple[int, Engine]] = {}


class DbError(Exception):
    """A database operation failed (connection, missing table, driver, SQL error)."""


def get_engine(url: str) -> Engine:
    """The engine of this process for ``url`` (created on first use)."""
    pid = os.getpid()
    entry = _ENGINES.get(url)
    if entry is not None:
        if entry[0] == pid:
            return entry[1]
        entry[1].dispose(close=False)  # the parent's connections stay the parent's
    parsed = parse_db_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.backend == "sqlite":
        create_private_file(parsed.database)
        kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT}
    else:
        kwargs["pool_pre_ping"] = True  # survive server restarts and idle timeouts
        kwargs["pool_recycle"] = 3600
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        engine = create_engine(parsed.sqlalchemy_url(), **kwargs)
    except ImportError as exc:
        raise DbError(f"no driver for {parsed.backend} ({exc}); install it with pip") from exc
    except SQLAlchemyError as exc:
        raise DbError(f"cannot create engine for {parsed.redacted()}: {exc}") from exc
    _ENGINES[url] = (pid, engine)
    return engine


def create_private_file(path: str) -> None:
    """Create a missing SQLite file with mode 0600 (it holds password hashes) before SQLite
    would create it 0644; SQLite gives its journal files the database file's mode. An
    existing file is left alone, a missing directory is left for SQLite to report."""
    if not path or path == ":memory:":
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, 0o600))
    except OSError:
        return


def dispose_all() -> None:
    """Close this process's pooled connections (main process, before forking workers)."""
    pid = os.getpid()
    for url, (owner, engine) in list(_ENGINES.items()):
        if owner == pid:
            engine.dispose()
        else:
            engine.dispose(close=False)
        del _ENGINES[url]


class Database:
    """A module's database: the URL checked at start-up, the engine opened on demand."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.parsed: DbUrl = parse_db_url(url)  # DbUrlError at start-up, not per message

    def __repr__(self) -> str:
        return f"Database({self.parsed.redacted()!r})"

    @property
    def engine(self) -> Engine:
        return get_engine(self.url)

    def fetch_all(self, stmt: Executable) -> Sequence[Row[Any]]:
        """Rows of a SELECT; DbError on any failure."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(stmt).fetchall()
        except (SQLAlchemyError, OSError, DbUrlError, UnicodeError) as exc:
            raise DbError(self._describe(exc)) from exc

    def execute(self, stmt: Executable, params: Any = None) -> int:
        """Run a write statement in its own transaction; rows affected (-1 if unknown)."""
        try:
            with self.engine.begin() as conn:
                result = conn.execute(stmt, params) if params is not None else conn.execute(stmt)
                return int(getattr(result, "rowcount", -1))
        except (SQLAlchemyError, OSError, DbUrlError, UnicodeError) as exc:
            raise DbError(self._describe(exc)) from exc

    def table_version(self, table: str) -> int | None:
        """The ``version`` row of ``table`` (None when there is none)."""
        rows = self.fetch_all(select(version.c.table_version).where(version.c.table_name == table))
        return int(rows[0][0]) if rows else None

    def _describe(self, exc: BaseException) -> str:
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        first = text[0] if text else type(exc).__name__
        return f"{self.parsed.backend} {self.parsed.redacted()}: {first}"


def module_db(extra: dict[str, Any], module: str, url: str) -> Database:
    """The Database of ``module`` kept in a process's ``extra`` dict (DbUrlError if bad)."""
    key = "db." + module
    db = extra.get(key)
    if not isinstance(db, Database) or db.url != url:
        db = Database(url)
        extra[key] = db
    return db
