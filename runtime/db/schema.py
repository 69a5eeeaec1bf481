"""Kamailio's tables (srdb schema, Kamailio 5.6) as SQLAlchemy Core tables.

Column names, types, defaults and indexes follow Kamailio's generated
``*-create.sql`` scripts so a database created by ``kemi db init`` works with
Kamailio and one created by ``kamdbctl`` works with pykemi. Index names carry
the table name, as in Kamailio's PostgreSQL scripts (index names are global there). ``VERSIONS`` are
the ``version`` table rows Kamailio's modules check.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


version = Table(
    "version",
    metadata,
    _id(),
    Column("table_name", String(32), nullable=False),
    Column("table_version", Integer, nullable=False, server_default="0"),
    UniqueConstraint("table_name", name="version_table_name_idx"),
)

subscriber = Table(
    "subscriber",
    metadata,
    _id(),
    Column("username", String(64), nullable=False, server_default=""),
    Column("domain", String(64), nullable=False, server_default=""),
    Column("password", String(64), nullable=False, server_default=""),
    Column("ha1", String(128), nullable=False, server_default=""),
    Column("ha1b", String(128), nullable=False, server_default=""),
    UniqueConstraint("username", "domain", name="subscriber_account_idx"),
    Index("subscriber_username_idx", "username"),
)

address = Table(
    "address",
    metadata,
    _id(),
    Column("grp", Integer, nullable=False, server_default="1"),
    Column("ip_addr", String(50), nullable=False),
    Column("mask", Integer, nullable=False, server_default="32"),
    Column("port", SmallInteger, nullable=False, server_default="0"),
    Column("tag", String(64)),
)

trusted = Table(
    "trusted",
    metadata,
    _id(),
    Column("src_ip", String(50), nullable=False),
    Column("proto", String(4), nullable=False),
    Column("from_pattern", String(64), server_default=None),
    Column("ruri_pattern", String(64), server_default=None),
    Column("tag", String(64)),
    Column("priority", Integer, nullable=False, server_default="0"),
    Index("trusted_peer_idx", "src_ip"),
)

location = Table(
    "location",
    metadata,
    _id(),
    Column("ruid", String(64), nullable=False, server_default=""),
    Column("username", String(64), nullable=False, server_default=""),
    Column("domain", String(64), server_default=None),
    Column("contact", String(512), nullable=False, server_default=""),
    Column("received", String(128), server_default=None),
    Column("path", String(512), server_default=None),
    Column("expires", DateTime, nullable=False, default=dt.datetime(2030, 5, 28, 21, 32, 15)),
    Column("q", Float, nullable=False, server_default="1.0"),
    Column("callid", String(255), nullable=False, server_default="Default-Call-ID"),
    Column("cseq", Integer, nullable=False, server_default="1"),
    Column("last_modified", DateTime, nullable=False, default=dt.datetime(2000, 1, 1, 0, 0, 1)),
    Column("flags", Integer, nullable=False, server_default="0"),
    Column("cflags", Integer, nullable=False, server_default="0"),
    Column("user_agent", String(255), nullable=False, server_default=""),
    Column("socket", String(64), server_default=None),
    Column("methods", Integer, server_default=None),
    Column("instance", String(255), server_default=None),
    Column("reg_id", Integer, nullable=False, server_default="0"),
    Column("server_id", Integer, nullable=False, server_default="0"),
    Column("connection_id", Integer, nullable=False, server_default="0"),
    Column("keepalive", Integer, nullable=False, server_default="0"),
    Column("partition", Integer, nullable=False, server_default="0"),
    UniqueConstraint("ruid", name="location_ruid_idx"),
    Index("location_account_contact_idx", "username", "domain", "contact"),
    Index("location_expires_idx", "expires"),
    Index("location_connection_idx", "server_id", "connection_id"),
)


def _acc_like(name: str) -> Table:
    # acc and missed_calls share their columns (acc_method_column & co. rename them)
    return Table(
        name,
        metadata,
        _id(),
        Column("method", String(16), nullable=False, server_default=""),
        Column("from_tag", String(128), nullable=False, server_default=""),
        Column("to_tag", String(128), nullable=False, server_default=""),
        Column("callid", String(255), nullable=False, server_default=""),
        Column("sip_code", String(3), nullable=False, server_default=""),
        Column("sip_reason", String(128), nullable=False, server_default=""),
        Column("time", DateTime, nullable=False),
        Index(f"{name}_callid_idx", "callid"),
    )


acc = _acc_like("acc")
missed_calls = _acc_like("missed_calls")

# table -> version row value (Kamailio 5.6 srdb schema)
VERSIONS: dict[str, int] = {
    "version": 1,
    "subscriber": 7,
    "address": 6,
    "trusted": 6,
    "location": 9,
    "acc": 5,
    "missed_calls": 4,
}
