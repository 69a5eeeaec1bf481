"""Shared key/value tables with per-item expiry (htable items, pike counters).

Same choice as the location store: a SQLite file on tmpfs per router
instance, created before the fork and opened lazily by every worker, or
Redis (``redis://...``) to share between instances. Values are ``str`` or
``int``; ``expires`` is absolute (epoch seconds), 0 = never.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from .store import StoreError, _from_sql, _to_sql  # non-UTF-8 message bytes, as usrloc

Value = str | int
Item = tuple[Value, int]  # (value, expires)
UpdateFn = Callable[[Item | None], Item | None]


class KvStore:
    kind = "abstract"

    def get(self, table: str, key: str) -> Item | None:
        raise NotImplementedError

    def set(self, table: str, key: str, value: Value, expires: int) -> None:
        raise NotImplementedError

    def delete(self, table: str, keys: list[str]) -> int:
        raise NotImplementedError

    def items(self, table: str) -> list[tuple[str, Value, int]]:
        raise NotImplementedError

    def reset(self, table: str) -> None:
        self.delete(table, [k for k, _v, _e in self.items(table)])

    def update(self, table: str, key: str, fn: UpdateFn) -> Item | None:
        """Atomic read-modify-write of one item: ``fn(old) -> new`` (None deletes)."""
        raise NotImplementedError

    def purge(self) -> int:
        return 0

    def expire(self) -> list[tuple[str, str, Value]]:
        """Remove the expired items, returning them as (table, key, value): each one to
        exactly one caller, so an expiry event runs once whichever worker purges. A store
        that expires items by itself (Redis) returns none."""
        self.purge()
        return []


class SqliteKv(KvStore):
    kind = "sqlite"

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def _db(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._conn is None or self._pid != pid:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS kv (tname TEXT, k TEXT, isint INTEGER, v TEXT, "
                    "expires INTEGER, PRIMARY KEY (tname, k))"
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {self.path}: {exc}") from exc
            self._conn, self._pid = conn, pid
        return self._conn

    @staticmethod
    def _row(isint: int, v: str | bytes) -> Value:
        return int(v) if isint else str(_from_sql(v))

    def get(self, table: str, key: str) -> Item | None:
        try:
            row = (
                self._db()
                .execute(
                    "SELECT isint, v, expires FROM kv WHERE tname = ? AND k = ? "
                    "AND (expires = 0 OR expires > ?)",
                    (table, _to_sql(key), int(time.time())),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return None if row is None else (self._row(row[0], row[1]), int(row[2]))

    def set(self, table: str, key: str, value: Value, expires: int) -> None:
        try:
            self._db().execute(
                "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?)",
                (table, _to_sql(key), int(isinstance(value, int)), _to_sql(str(value)), expires),
            )
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def delete(self, table: str, keys: list[str]) -> int:
        try:
            db = self._db()
            n = 0
            for k in keys:
                n += db.execute(
                    "DELETE FROM kv WHERE tname = ? AND k = ?", (table, _to_sql(k))
                ).rowcount
            return n
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def reset(self, table: str) -> None:
        try:
            self._db().execute("DELETE FROM kv WHERE tname = ?", (table,))
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def items(self, table: str) -> list[tuple[str, Value, int]]:
        try:
            cur = self._db().execute(
                "SELECT k, isint, v, expires FROM kv WHERE tname = ? "
                "AND (expires = 0 OR expires > ?) ORDER BY k",
                (table, int(time.time())),
            )
            return [(str(_from_sql(r[0])), self._row(r[1], r[2]), int(r[3])) for r in cur]
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def update(self, table: str, key: str, fn: UpdateFn) -> Item | None:
        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        try:
            new = fn(self.get(table, key))
            skey = _to_sql(key)
            if new is None:
                db.execute("DELETE FROM kv WHERE tname = ? AND k = ?", (table, skey))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?)",
                    (table, skey, int(isinstance(new[0], int)), _to_sql(str(new[0])), new[1]),
                )
            db.execute("COMMIT")
            return new
        except BaseException as exc:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.Error):
                raise StoreError(str(exc)) from exc
            raise

    def purge(self) -> int:
        try:
            return int(
                self._db()
                .execute("DELETE FROM kv WHERE expires != 0 AND expires <= ?", (int(time.time()),))
                .rowcount
            )
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def expire(self) -> list[tuple[str, str, Value]]:
        try:
            rows = (
                self._db()
                .execute(
                    "DELETE FROM kv WHERE expires != 0 AND expires <= ? "
                    "RETURNING tname, k, isint, v",
                    (int(time.time()),),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return [(str(r[0]), str(_from_sql(r[1])), self._row(r[2], r[3])) for r in rows]


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisKv(KvStore):
    """Key ``<prefix>:<table>:<key>`` = JSON ``[value]``; Redis expires it (EXPIREAT)."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "pykemi:ht", retries: int = 50) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover
            raise StoreError("the 'redis' Python package is not installed") from exc
        self.url, self.prefix, self.retries = url, prefix, retries
        self._mod = redis
        self._client: Any = None
        self._pid = 0

    def _r(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            self._client = self._mod.Redis.from_url(
                self.url,
                socket_timeout=2.0,
                socket_connect_timeout=2.0,
                encoding_errors="surrogateescape",  # keys with non-UTF-8 message bytes
            )
            self._pid = os.getpid()
        return self._client

    def _key(self, table: str, key: str) -> str:
        return f"{self.prefix}:{table}:{key}"

    @staticmethod
    def _decode(raw: Any) -> Value | None:
        if raw is None:
            return None
        data = json.loads(raw)
        v = data[0]
        return v if isinstance(v, int | str) else str(v)

    def _write(self, r: Any, k: str, value: Value, expires: int) -> None:
        r.set(k, json.dumps([value]))
        if expires:
            r.expireat(k, expires)

    def get(self, table: str, key: str) -> Item | None:
        try:
            r = self._r()
            k = self._key(table, key)
            with r.pipeline() as p:
                p.get(k)
                p.expiretime(k)
                raw, exp = p.execute()
            v = self._decode(raw)
            return None if v is None else (v, int(exp) if exp and exp > 0 else 0)
        except (self._mod.RedisError, ValueError, TypeError, IndexError) as exc:
            raise StoreError(f"redis: {exc}") from exc

    def set(self, table: str, key: str, value: Value, expires: int) -> None:
        try:
            with self._r().pipeline() as p:
                self._write(p, self._key(table, key), value, expires)
                p.execute()
        except self._mod.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    def delete(self, table: str, keys: list[str]) -> int:
        if not keys:
            return 0
        try:
            return int(self._r().delete(*[self._key(table, k) for k in keys]))
        except self._mod.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    def items(self, table: str) -> list[tuple[str, Value, int]]:
        head = f"{self.prefix}:{table}:"
        out: list[tuple[str, Value, int]] = []
        try:
            for raw in self._r().scan_iter(match=_glob_escape(head) + "*", count=500):
                name = (
                    raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)
                )
                item = self.get(table, name[len(head) :])
                if item is not None:
                    out.append((name[len(head) :], item[0], item[1]))
        except self._mod.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc
        return sorted(out, key=lambda t: t[0])

    def update(self, table: str, key: str, fn: UpdateFn) -> Item | None:
        k = self._key(table, key)
        try:
            with self._r().pipeline() as p:
                for _ in range(self.retries):
                    try:
                        p.watch(k)
                        v = self._decode(p.get(k))
                        exp = p.expiretime(k) if v is not None else 0
                        new = fn(None if v is None else (v, int(exp) if exp and exp > 0 else 0))
                        p.multi()
                        if new is None:
                            p.delete(k)
                        else:
                            self._write(p, k, new[0], new[1])
                        p.execute()
                        return new
                    except self._mod.WatchError:
                        continue
        except (self._mod.RedisError, ValueError, TypeError, IndexError) as exc:
            raise StoreError(f"redis: {exc}") from exc
        raise StoreError(f"redis: too much contention on {k}")
