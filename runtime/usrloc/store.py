"""Where location records live: one interface, three backends.

* ``SqliteStore`` -- the default. pykemi forks its workers, so "in memory"
  must be visible to every worker: the store is a SQLite file in a private
  (0700) directory under /dev/shm (tmpfs, i.e. RAM) created per router
  instance before the fork, in WAL mode
  with ``synchronous=OFF``; every process opens its own connection lazily
  (after the fork). A read-modify-write of one AOR runs in ``BEGIN IMMEDIATE``
  so two workers saving the same AOR serialise. Given a ``sqlite:///path`` URL
  it is also the durable database backend.
* ``RedisStore`` -- ``db_url = "redis://host:port/db"``: one JSON value per
  AOR, updated with WATCH/MULTI (optimistic, retried), expiring with the last
  contact; several pykemi instances share registrations through it.
* ``MemoryStore`` -- a plain dict for one process (tests, tools).

All backends implement ``update(table, aor, fn)``: ``fn`` gets the live
contacts of the AOR and returns ``(new_contacts, result)``; the store writes
``new_contacts`` atomically and returns ``result``.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..core.fsperm import private_dir
from .contact import Contact, sort_contacts

R = TypeVar("R")
UpdateFn = Callable[[list[Contact]], tuple[list[Contact], R]]


class StoreError(Exception):
    """The backend failed (connection, lock timeout, corrupt data)."""


class Store:
    """Interface of a location store (see the module docstring)."""

    kind = "abstract"

    def get(self, table: str, aor: str) -> list[Contact]:
        """Live contacts of ``aor``, highest q first."""
        raise NotImplementedError

    def update(self, table: str, aor: str, fn: UpdateFn[R]) -> R:
        raise NotImplementedError

    def aors(self, table: str) -> list[str]:
        """Every AOR with at least one live contact."""
        raise NotImplementedError

    def find_ruid(self, table: str, ruid: str) -> Contact | None:
        for aor in self.aors(table):
            for c in self.get(table, aor):
                if c.ruid == ruid:
                    return c
        return None

    def purge(self) -> int:
        """Drop expired contacts; how many."""
        return 0

    def expire(self) -> list[tuple[str, Contact]]:
        """Drop expired contacts and return them as (table, contact), each to exactly one
        caller (usrloc:contact-expired runs once whichever worker purges). Stores that
        cannot tell which contacts they dropped return none."""
        self.purge()
        return []

    def close(self) -> None:
        return None


# ---------------------------------------------------------------------------
# memory (one process)


class MemoryStore(Store):
    kind = "memory"

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], list[Contact]] = {}
        self._lock = threading.Lock()

    def get(self, table: str, aor: str) -> list[Contact]:
        now = time.time()
        return sort_contacts([c for c in self._data.get((table, aor), []) if c.alive(now)])

    def update(self, table: str, aor: str, fn: UpdateFn[R]) -> R:
        with self._lock:
            new, result = fn(self.get(table, aor))
            if new:
                self._data[(table, aor)] = list(new)
            else:
                self._data.pop((table, aor), None)
            return result

    def aors(self, table: str) -> list[str]:
        now = time.time()
        return sorted(
            a for (t, a), cs in self._data.items() if t == table and any(c.alive(now) for c in cs)
        )

    def purge(self) -> int:
        return len(self.expire())

    def expire(self) -> list[tuple[str, Contact]]:
        now = time.time()
        gone: list[tuple[str, Contact]] = []
        with self._lock:
            for key in list(self._data):
                live = [c for c in self._data[key] if c.alive(now)]
                gone.extend((key[0], c) for c in self._data[key] if not c.alive(now))
                if live:
                    self._data[key] = live
                else:
                    del self._data[key]
        return gone


# ---------------------------------------------------------------------------
# SQLite (shared by the forked workers; durable with a sqlite:/// URL)

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_COLUMNS = (
    "ruid", "aor", "contact", "expires", "q", "callid", "cseq", "received", "path", "flags",
    "cflags", "user_agent", "socket", "methods", "instance", "reg_id", "last_modified",
    "server_id", "connection_id", "keepalive",
)  # fmt: skip


def check_table(table: str) -> str:
    if not _TABLE_NAME.fullmatch(table):
        raise StoreError(f"invalid location table name {table!r}")
    return table


class SqliteStore(Store):
    """Rows like Kamailio's ``location`` table (aor instead of username/domain)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, timeout: float = 5.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._tables: set[str] = set()

    # one connection per process: a SQLite connection must not cross a fork
    def _db(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._conn is None or self._pid != pid:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(
                    "PRAGMA synchronous=OFF" if _is_tmp(self.path) else "PRAGMA synchronous=NORMAL"
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {self.path}: {exc}") from exc
            self._conn, self._pid, self._tables = conn, pid, set()
        return self._conn

    def _ensure(self, db: sqlite3.Connection, table: str) -> str:
        check_table(table)
        if table not in self._tables:
            cols = ", ".join(
                f"{c} {'REAL' if c == 'q' else 'INTEGER' if c in _INT_COLS else 'TEXT'}"
                for c in _COLUMNS
            )
            db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, {cols})")
            db.execute(f"CREATE INDEX IF NOT EXISTS {table}_aor ON {table} (aor)")
            db.execute(f"CREATE INDEX IF NOT EXISTS {table}_expires ON {table} (expires)")
            self._tables.add(table)
        return table

    def _rows(self, db: sqlite3.Connection, table: str, aor: str) -> list[Contact]:
        now = int(time.time())
        cur = db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM {table} WHERE aor = ? "
            "AND (expires = 0 OR expires > ?)",
            (_to_sql(aor), now),
        )
        return sort_contacts([_contact(row) for row in cur])

    def get(self, table: str, aor: str) -> list[Contact]:
        try:
            db = self._db()
            return self._rows(db, self._ensure(db, table), aor)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def update(self, table: str, aor: str, fn: UpdateFn[R]) -> R:
        try:
            db = self._db()
            self._ensure(db, table)
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        try:
            new, result = fn(self._rows(db, table, aor))
            db.execute(f"DELETE FROM {table} WHERE aor = ?", (_to_sql(aor),))
            if new:
                marks = ", ".join("?" for _ in _COLUMNS)
                db.executemany(
                    f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES ({marks})",
                    [tuple(_to_sql(getattr(c, k)) for k in _COLUMNS) for c in new],
                )
            db.execute("COMMIT")
            return result
        except BaseException as exc:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.Error):
                raise StoreError(str(exc)) from exc
            raise

    def aors(self, table: str) -> list[str]:
        try:
            db = self._db()
            self._ensure(db, table)
            cur = db.execute(
                f"SELECT DISTINCT aor FROM {table} WHERE expires = 0 OR expires > ? ORDER BY aor",
                (int(time.time()),),
            )
            return [_from_sql(r[0]) for r in cur]
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def find_ruid(self, table: str, ruid: str) -> Contact | None:
        try:
            db = self._db()
            self._ensure(db, table)
            row = db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM {table} WHERE ruid = ?", (_to_sql(ruid),)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        if row is None:
            return None
        c = _contact(row)
        return c if c.alive(time.time()) else None

    def _table_names(self, db: sqlite3.Connection) -> list[str]:
        return [
            r[0]
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if _TABLE_NAME.fullmatch(str(r[0]))
        ]

    def purge(self) -> int:
        try:
            db = self._db()
            now = int(time.time())
            return sum(
                db.execute(f"DELETE FROM {t} WHERE expires != 0 AND expires <= ?", (now,)).rowcount
                for t in self._table_names(db)
            )
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def expire(self) -> list[tuple[str, Contact]]:
        try:
            db = self._db()
            now = int(time.time())
            return [
                (t, _contact(row))
                for t in self._table_names(db)
                for row in db.execute(
                    f"DELETE FROM {t} WHERE expires != 0 AND expires <= ? "
                    f"RETURNING {', '.join(_COLUMNS)}",
                    (now,),
                ).fetchall()
            ]
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


_INT_COLS = {
    "expires", "cseq", "flags", "cflags", "methods", "reg_id", "last_modified", "server_id",
    "connection_id", "keepalive",
}  # fmt: skip


def _to_sql(value: Any) -> Any:
    """SQLite text must be UTF-8: a string carrying message bytes that are not (the parser
    hands them over surrogate-escaped) is stored as a BLOB of exactly those bytes."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def _from_sql(value: Any) -> Any:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _contact(row: tuple[Any, ...]) -> Contact:
    return Contact(**{k: _from_sql(v) for k, v in zip(_COLUMNS, row, strict=True)})


# ---------------------------------------------------------------------------
# Redis (shared by several pykemi instances)


class RedisStore(Store):
    """Key ``<prefix>:<table>:<aor>`` holds the AOR's contacts as a JSON list."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "pykemi:ul", retries: int = 50) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - redis is a dependency
            raise StoreError("the 'redis' Python package is not installed") from exc
        self.url = url
        self.prefix = prefix
        self.retries = retries
        self._redis_mod = redis
        self._client: Any = None
        self._pid = 0

    def _r(self) -> Any:
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            self._client = self._redis_mod.Redis.from_url(
                self.url,
                socket_timeout=2.0,
                socket_connect_timeout=2.0,
                encoding_errors="surrogateescape",  # AORs with non-UTF-8 message bytes
            )
            self._pid = pid
        return self._client

    def _key(self, table: str, aor: str) -> str:
        return f"{self.prefix}:{table}:{aor}"

    @staticmethod
    def _decode(raw: Any) -> list[Contact]:
        if not raw:
            return []
        now = time.time()
        items = json.loads(raw)
        return sort_contacts([c for c in map(Contact.from_dict, items) if c.alive(now)])

    def get(self, table: str, aor: str) -> list[Contact]:
        try:
            return self._decode(self._r().get(self._key(table, aor)))
        except (self._redis_mod.RedisError, ValueError, TypeError) as exc:
            raise StoreError(f"redis: {exc}") from exc

    def update(self, table: str, aor: str, fn: UpdateFn[R]) -> R:
        key = self._key(table, aor)
        errors = self._redis_mod
        try:
            with self._r().pipeline() as pipe:
                for _ in range(self.retries):
                    try:
                        pipe.watch(key)
                        new, result = fn(self._decode(pipe.get(key)))
                        pipe.multi()
                        if new:
                            pipe.set(key, json.dumps([c.to_dict() for c in new]))
                            if all(c.expires for c in new):
                                # the key goes away with its last contact
                                pipe.expireat(key, max(c.expires for c in new) + 1)
                            else:
                                pipe.persist(key)
                        else:
                            pipe.delete(key)
                        pipe.execute()
                        return result
                    except errors.WatchError:
                        continue
        except (errors.RedisError, ValueError, TypeError) as exc:
            raise StoreError(f"redis: {exc}") from exc
        raise StoreError(f"redis: too much contention on {key}")

    def aors(self, table: str) -> list[str]:
        head = f"{self.prefix}:{table}:"
        try:
            out = []
            for k in self._r().scan_iter(match=head.replace("*", r"\*") + "*", count=500):
                key = k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else str(k)
                out.append(key[len(head) :])
            return sorted(a for a in out if self.get(table, a))
        except self._redis_mod.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None


# ---------------------------------------------------------------------------
# where the shared files go


def shm_dir() -> str:
    """RAM-backed directory when there is one (/dev/shm), else the temp dir."""
    d = "/dev/shm"
    if os.path.isdir(d) and os.access(d, os.W_OK):
        return d
    return tempfile.gettempdir()


_private: list[tuple[int, Path]] = []  # (creating pid, its 0700 directory of shared files)
_created: set[str] = set()


def _private_dir() -> Path:
    """This router instance's 0700 directory of shared files, made on first use by the main
    process (before the fork; workers inherit it). Another local user can neither list the
    files in it nor plant their SQLite ``-wal``/``-shm`` side files."""
    if not _private:
        made = tempfile.mkdtemp(prefix=f"pykemi-{os.geteuid()}-{os.getpid()}-", dir=shm_dir())
        _private.append((os.getpid(), private_dir(made)))  # mkdtemp made it 0700: verified
    return _private[0][1]


def shared_dir() -> Path | None:
    """The directory of shared files when this process made one (the server hands it to
    ``user=`` before dropping root: the workers open its files again)."""
    return _private[0][1] if _private and _private[0][0] == os.getpid() else None


def _is_tmp(path: str) -> bool:
    return path in _created


def new_shared_file(what: str) -> str:
    """A fresh SQLite path for this router instance, in its private directory (removed with
    the directory when the creating process exits)."""
    fd, path = tempfile.mkstemp(prefix=f"{what}-", suffix=".db", dir=_private_dir())
    os.close(fd)
    _created.add(path)
    return path


@atexit.register
def _cleanup() -> None:
    # forked workers leave with os._exit (no atexit); only the creator removes the directory
    for pid, made in _private:
        if pid == os.getpid():
            shutil.rmtree(made, ignore_errors=True)
