"""Location store on pykemi's database layer (``pykemi.runtime.db``, SQLAlchemy Core).

Imported only for a SQL ``db_url`` (``usrloc.db_adapter``), so SQLAlchemy is loaded by
routers that use a database only.

Rows use Kamailio's ``location`` schema (username/domain, DATETIME expires),
so a database prepared with ``kemi db init`` (or Kamailio's kamdbctl) is
shared with Kamailio's tools. The table is created when it is missing.
Every db_mode is served like db_mode 3: reads and writes go to the database.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

from sqlalchemy import MetaData, and_, delete, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError

from ..db.engine import Database, DbError
from ..db.schema import location
from .contact import Contact, sort_contacts
from .store import R, Store, StoreError, UpdateFn, check_table

_EPOCH_LIMIT = 86400 * 2  # expires stored at (or near) the epoch mean "permanent"


def _to_dt(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch)


def _from_dt(value: Any) -> int:
    if isinstance(value, dt.datetime):
        ts = int(value.timestamp())
    elif isinstance(value, str):
        ts = int(dt.datetime.fromisoformat(value).timestamp())
    else:
        ts = int(value or 0)
    return 0 if ts < _EPOCH_LIMIT else ts


def split_aor(aor: str) -> tuple[str, str | None]:
    user, sep, domain = aor.partition("@")
    return (user, domain) if sep else (aor, None)


class SqlLocationStore(Store):
    kind = "sql"

    def __init__(self, url: str) -> None:
        self.db = Database(url)  # DbUrlError (ValueError) for a bad URL, at start-up
        self._meta = MetaData()
        self._tables: dict[str, Any] = {}
        self._created: set[tuple[int, str]] = set()

    def _table(self, name: str) -> Any:
        check_table(name)
        tbl = self._tables.get(name)
        if tbl is None:
            tbl = location.to_metadata(self._meta, name=name)
            self._tables[name] = tbl
        key = (os.getpid(), name)
        if key not in self._created:
            self._meta.create_all(self.db.engine, tables=[tbl], checkfirst=True)
            self._created.add(key)
        return tbl

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (SQLAlchemyError, DbError, OSError, ValueError)

    @staticmethod
    def _contact(row: Any) -> Contact:
        m = row._mapping
        aor = m["username"] + ("@" + m["domain"] if m["domain"] else "")
        return Contact(
            aor=aor,
            contact=m["contact"],
            expires=_from_dt(m["expires"]),
            q=float(m["q"]),
            callid=m["callid"] or "",
            cseq=int(m["cseq"] or 0),
            received=m["received"] or "",
            path=m["path"] or "",
            flags=int(m["flags"] or 0),
            cflags=int(m["cflags"] or 0),
            user_agent=m["user_agent"] or "",
            socket=m["socket"] or "",
            methods=-1 if m["methods"] is None else int(m["methods"]),
            instance=m["instance"] or "",
            reg_id=int(m["reg_id"] or 0),
            last_modified=_from_dt(m["last_modified"]),
            ruid=m["ruid"] or "",
            server_id=int(m["server_id"] or 0),
            connection_id=int(m["connection_id"] or 0),
            keepalive=int(m["keepalive"] or 0),
        )

    @staticmethod
    def _row(c: Contact) -> dict[str, Any]:
        user, domain = split_aor(c.aor)
        return {
            "ruid": c.ruid, "username": user, "domain": domain, "contact": c.contact,
            "received": c.received or None, "path": c.path or None,
            "expires": _to_dt(c.expires), "q": c.q, "callid": c.callid, "cseq": c.cseq,
            "last_modified": _to_dt(c.last_modified), "flags": c.flags, "cflags": c.cflags,
            "user_agent": c.user_agent, "socket": c.socket or None,
            "methods": None if c.methods < 0 else c.methods, "instance": c.instance or None,
            "reg_id": c.reg_id, "server_id": c.server_id,
            "connection_id": max(0, c.connection_id), "keepalive": c.keepalive, "partition": 0,
        }  # fmt: skip

    def _where(self, tbl: Any, aor: str) -> Any:
        user, domain = split_aor(aor)
        if domain is None:
            return and_(tbl.c.username == user, tbl.c.domain.is_(None))
        return and_(tbl.c.username == user, tbl.c.domain == domain)

    def _live(self, rows: Any) -> list[Contact]:
        now = time.time()
        return sort_contacts([c for c in map(self._contact, rows) if c.alive(now)])

    def get(self, table: str, aor: str) -> list[Contact]:
        try:
            tbl = self._table(table)
            return self._live(self.db.fetch_all(select(tbl).where(self._where(tbl, aor))))
        except self._errors() as exc:
            raise StoreError(str(exc)) from exc

    def update(self, table: str, aor: str, fn: UpdateFn[R]) -> R:
        try:
            tbl = self._table(table)
            with self.db.engine.begin() as conn:
                stmt = select(tbl).where(self._where(tbl, aor))
                if self.db.parsed.backend != "sqlite":
                    stmt = stmt.with_for_update()
                new, result = fn(self._live(conn.execute(stmt).fetchall()))
                conn.execute(delete(tbl).where(self._where(tbl, aor)))
                if new:
                    conn.execute(insert(tbl), [self._row(c) for c in new])
                return result
        except self._errors() as exc:
            raise StoreError(str(exc)) from exc

    def aors(self, table: str) -> list[str]:
        try:
            tbl = self._table(table)
            rows = self.db.fetch_all(
                select(tbl.c.username, tbl.c.domain)
                .where(
                    or_(
                        tbl.c.expires > _to_dt(int(time.time())),
                        tbl.c.expires < _to_dt(_EPOCH_LIMIT),
                    )
                )
                .distinct()
            )
        except self._errors() as exc:
            raise StoreError(str(exc)) from exc
        out = []
        for r in rows:
            user, domain = r._mapping["username"], r._mapping["domain"]
            out.append(str(user) + ("@" + str(domain) if domain else ""))
        return sorted(out)

    def find_ruid(self, table: str, ruid: str) -> Contact | None:
        try:
            tbl = self._table(table)
            rows = self._live(self.db.fetch_all(select(tbl).where(tbl.c.ruid == ruid)))
        except self._errors() as exc:
            raise StoreError(str(exc)) from exc
        return rows[0] if rows else None

    def purge(self) -> int:
        n = 0
        try:
            for name in list(self._tables):
                tbl = self._table(name)
                n += self.db.execute(
                    delete(tbl).where(
                        and_(
                            tbl.c.expires <= _to_dt(int(time.time())),
                            tbl.c.expires >= _to_dt(_EPOCH_LIMIT),
                        )
                    )
                )
        except self._errors() as exc:
            raise StoreError(str(exc)) from exc
        return n
