"""Creating Kamailio's tables and adding the rows tests and docs need.

``ha1`` / ``ha1b`` are computed like ``kamctl add``: MD5("user:domain:password")
and MD5("user@domain:domain:password"). The plain password is stored only on request
(kamctl's STORE_PLAINTEXT_PW=1), for configs using auth_db ``calculate_ha1``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import stat
from collections.abc import Callable

from sqlalchemy import delete, insert, select, update

from . import schema
from .engine import Database, DbError


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def ha1(user: str, realm: str, password: str) -> str:
    """RFC 2617 HA1 for MD5: MD5(username:realm:password)."""
    return md5_hex(f"{user}:{realm}:{password}")


def ha1b(user: str, domain: str, password: str) -> str:
    """Kamailio's ha1b column: HA1 for clients sending username "user@domain"."""
    return md5_hex(f"{user}@{domain}:{domain}:{password}")


def init_db(
    url: str, tables: list[str] | None = None, progress: Callable[[str], None] = lambda _: None
) -> list[str]:
    """Create the tables (existing ones are kept) and set their ``version`` rows.

    Returns the names of the tables handled. ``tables`` limits the set (the
    ``version`` table is always created). ``progress`` is told each step.
    """
    db = Database(url)
    names = list(schema.VERSIONS) if not tables else ["version", *tables]
    unknown = [n for n in names if n not in schema.metadata.tables]
    if unknown:
        raise DbError(
            f"unknown table(s): {', '.join(unknown)} (known: {', '.join(schema.VERSIONS)})"
        )
    objs = [schema.metadata.tables[n] for n in dict.fromkeys(names)]
    progress(f"creating {len(objs)} tables in {db.parsed.redacted()} (existing ones are kept)")
    try:
        schema.metadata.create_all(db.engine, tables=objs, checkfirst=True)
    except Exception as exc:  # any driver error is reported the same way
        raise DbError(db._describe(exc)) from exc
    ver = schema.version
    progress("writing their rows of the version table")
    for t in objs:
        db.execute(delete(ver).where(ver.c.table_name == t.name))
        db.execute(insert(ver).values(table_name=t.name, table_version=schema.VERSIONS[t.name]))
    return [t.name for t in objs]


def loose_permissions(url: str) -> str | None:
    """For an SQLite URL whose file other users can access: a warning naming it, else None."""
    db = Database(url)
    if db.parsed.backend != "sqlite":
        return None
    try:
        mode = stat.S_IMODE(os.stat(db.parsed.database).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"{db.parsed.database} has mode {mode:04o}: other users can read the password "
        "hashes; chmod 600 it"
    )


def add_user(url: str, user: str, domain: str, password: str, plaintext: bool = False) -> str:
    """Insert or update a subscriber (ha1, ha1b, and the plain password only with
    ``plaintext``; else the password column is empty); "added" or "updated"."""
    db = Database(url)
    sub = schema.subscriber
    values = {
        "password": password if plaintext else "",
        "ha1": ha1(user, domain, password),
        "ha1b": ha1b(user, domain, password),
    }
    where = (sub.c.username == user) & (sub.c.domain == domain)
    if db.fetch_all(select(sub.c.id).where(where)):
        db.execute(update(sub).where(where).values(**values))
        return "updated"
    db.execute(insert(sub).values(username=user, domain=domain, **values))
    return "added"


def add_address(
    url: str, grp: int, ip: str, mask: int = 32, port: int = 0, tag: str | None = None
) -> None:
    """Insert an ``address`` row (permissions module)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise DbError(f"invalid IP address '{ip}'") from None
    if not 0 <= mask <= addr.max_prefixlen:
        raise DbError(f"invalid mask {mask} for {ip}")
    if not 0 <= port <= 65535:
        raise DbError(f"invalid port {port}")
    Database(url).execute(
        insert(schema.address).values(grp=grp, ip_addr=ip, mask=mask, port=port, tag=tag)
    )
