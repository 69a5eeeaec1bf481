"""Kamailio ``db_url`` strings -> SQLAlchemy URLs.

Kamailio forms accepted::

    mysql://user:pass@host[:port]/db        (PyMySQL)
    postgres://user:pass@host[:port]/db     (psycopg 3, else psycopg2; also postgresql://)
    sqlite:///abs/path/file.db              (pykemi's embedded default; Kamailio db_sqlite form)
    sqlite://relative/file.db               (relative to the working directory, like db_sqlite)

Components are taken literally (Kamailio does not percent-decode them), so a
password with ``@`` or ``/`` works when the last ``@`` separates it from the host.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import URL


class DbUrlError(ValueError):
    """A db_url that pykemi cannot use (bad syntax or unsupported backend)."""


# schemes of Kamailio drivers pykemi does not provide
_UNSUPPORTED = {
    "text": "db_text (text://) is not supported by pykemi; use sqlite:///path/to/file.db",
    "dbtext": "db_text is not supported by pykemi; use sqlite:///path/to/file.db",
    "redis": "db_redis is not supported by pykemi as an SQL backend",
    "mongodb": "db_mongodb is not supported by pykemi",
    "cassandra": "db_cassandra is not supported by pykemi",
    "unixodbc": "db_unixodbc is not supported by pykemi",
    "oracle": "db_oracle is not supported by pykemi",
    "flatstore": "db_flatstore is not supported by pykemi",
    "berkeley": "db_berkeley is not supported by pykemi",
}


@dataclass(frozen=True)
class DbUrl:
    """A parsed db_url: ``backend`` is "mysql", "postgres" or "sqlite"."""

    raw: str
    backend: str
    user: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str = ""

    def sqlalchemy_url(self) -> URL:
        if self.backend == "sqlite":
            return URL.create("sqlite", database=self.database)
        if self.backend == "mysql":
            driver = "mysql+pymysql"
        else:
            driver = "postgresql+" + _pg_driver()
        return URL.create(
            driver,
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=self.database or None,
        )

    def redacted(self) -> str:
        """The URL without its password, for logs."""
        return redact_url(self.raw)


def redact_url(text: str) -> str:
    """``text`` with any password replaced by ``***`` (``scheme://user:***@host/db``).

    Works on strings that do not parse, so error messages can quote them: everything
    between ``user:`` and the last ``@`` goes (more rather than less).
    """
    scheme, sep, rest = text.partition("://")
    if not sep:  # no scheme: may still be "user:password@host/db"
        scheme, rest = "", text
    if scheme.strip().lower() == "sqlite":
        return text
    userinfo, at, host = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not at or not colon:
        return text
    return f"{scheme}{sep}{user}:***@{host}"


def _pg_driver() -> str:
    try:
        import psycopg  # noqa: F401

        return "psycopg"
    except ImportError:
        return "psycopg2"


def parse_db_url(text: str) -> DbUrl:
    """Parse a Kamailio db_url; DbUrlError names what is wrong."""
    raw = text.strip()
    shown = redact_url(raw)  # error messages never echo the password
    scheme, sep, rest = raw.partition("://")
    if not sep or not scheme:
        raise DbUrlError(f"invalid db_url [{shown}]: expected scheme://...")
    scheme = scheme.lower()
    if scheme in _UNSUPPORTED:
        raise DbUrlError(f"db_url [{shown}]: {_UNSUPPORTED[scheme]}")
    if scheme == "sqlite":
        if not rest:
            raise DbUrlError(f"invalid db_url [{shown}]: no database file")
        # db_sqlite takes what follows "sqlite://" as the file name ("/abs" or "rel")
        path = rest if not rest.startswith("//") else "/" + rest.lstrip("/")
        return DbUrl(raw, "sqlite", database=path)
    if scheme in ("mysql", "mariadb"):
        backend = "mysql"
    elif scheme in ("postgres", "postgresql", "pgsql"):
        backend = "postgres"
    else:
        raise DbUrlError(
            f"db_url [{shown}]: unknown database scheme '{scheme}' "
            "(supported: mysql://, postgres://, sqlite://)"
        )
    netloc, slash, database = rest.partition("/")
    if not slash or not database:
        raise DbUrlError(f"invalid db_url [{shown}]: no database name after the host")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        hostport, userinfo = netloc, ""
    user: str | None = None
    password: str | None = None
    if userinfo:
        u, colon, p = userinfo.partition(":")
        user = u or None
        password = p if colon else None
    host, port = _host_port(hostport, shown)
    return DbUrl(raw, backend, user, password, host, port, database)


def _host_port(hostport: str, shown: str) -> tuple[str | None, int | None]:
    if not hostport:
        return None, None
    if hostport.startswith("["):  # [IPv6]:port
        end = hostport.find("]")
        if end < 0:
            raise DbUrlError(f"invalid db_url [{shown}]: unclosed '[' in host")
        host, tail = hostport[1:end], hostport[end + 1 :]
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not port_text:
        return host or None, None
    try:
        port = int(port_text)
    except ValueError:
        raise DbUrlError(f"invalid db_url [{shown}]: bad port '{port_text}'") from None
    if not 0 < port < 65536:
        raise DbUrlError(f"invalid db_url [{shown}]: port {port} out of range")
    return host or None, port
