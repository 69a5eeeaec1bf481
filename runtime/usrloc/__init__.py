"""User location storage (Kamailio's usrloc), used by the registrar module.

``location_store(proc)`` is the store of this router instance, chosen from
the usrloc modparams when the Router is built (before the workers fork):

* ``db_url`` ``redis://...`` -> ``RedisStore`` (any db_mode): shared by
  several pykemi instances;
* ``db_url`` of a database (mysql://, postgres://, sqlite:///) and ``db_mode``
  1..3 -> ``SqlLocationStore`` on ``pykemi.runtime.db`` (Kamailio's location
  schema). Every db_mode is served as db_mode 3 (the database is the only
  copy), which is also what keeps the forked workers consistent. Without that
  layer a sqlite:/// URL falls back to ``SqliteStore`` on the file, other URLs
  to the shared memory store (with an error logged);
* otherwise ("memory", db_mode 0) -> ``SqliteStore`` on a tmpfs file private
  to this router instance and shared by its workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pykemi.runtime.core import log as klog

from . import params as _params
from .contact import (
    ALL_METHODS,
    Q_UNSPECIFIED,
    Contact,
    method_allowed,
    methods_mask,
    new_ruid,
    sort_contacts,
)
from .store import MemoryStore, RedisStore, SqliteStore, Store, StoreError, new_shared_file

if TYPE_CHECKING:
    from pykemi.runtime.core.context import ProcessState

__all__ = [
    "ALL_METHODS",
    "DEFAULTS",
    "Q_UNSPECIFIED",
    "Contact",
    "MemoryStore",
    "RedisStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "location_store",
    "method_allowed",
    "methods_mask",
    "new_ruid",
    "open_store",
    "sort_contacts",
]

STORE_KEY = "usrloc.store"

# Kamailio usrloc modparams (accepted; the ones pykemi acts on are marked in spec/usrloc.yaml)
DEFAULTS: dict[str, Any] = {
    "db_url": "",
    "db_mode": 0,
    "timer_interval": 60,
    "use_domain": 0,
    "desc_time_order": 0,
    "matching_mode": 0,
    "cseq_delay": 20,
    "nat_bflag": -1,
    "preload": "",
    "fetch_rows": 2000,
    "hash_size": 10,
    "db_update_as_insert": 0,
    "db_check_update": 0,
    "db_ops_ruid": 1,
    "db_timer_clean": 0,
    "timer_procs": 0,
    "handle_lost_tcp": 0,
    "close_expired_tcp": 0,
    "skip_remote_socket": 0,
    "expires_type": 0,
    "db_raw_fetch_type": 0,
    "db_insert_null": 0,
    "server_id_filter": 0,
    "rm_expired_delay": 0,
    "version_table": 1,
    "xavp_contact": "",
    "load_rank": 0,
    "db_clean_tcp": 0,
    "ka_mode": 0,
    "ka_filter": 0,
    "ka_timeout": 0,
    "ka_loglevel": 255,
    "ka_logmsg": "",
    "ka_domain": "",
    "ka_method": "",
    "ka_from": "",
    "ruid_column": "ruid",
    "user_column": "username",
    "domain_column": "domain",
    "contact_column": "contact",
    "expires_column": "expires",
    "q_column": "q",
    "callid_column": "callid",
    "cseq_column": "cseq",
    "methods_column": "methods",
    "flags_column": "flags",
    "cflags_column": "cflags",
    "user_agent_column": "user_agent",
    "received_column": "received",
    "path_column": "path",
    "socket_column": "socket",
    "instance_column": "instance",
    "reg_id_column": "reg_id",
    "server_id_column": "server_id",
    "connection_id_column": "connection_id",
    "keepalive_column": "keepalive",
    "partition_column": "partition",
    "last_modified_column": "last_modified",
    "redis_prefix": "pykemi:ul",
}
MULTI = ("preload",)


def open_store(values: dict[str, Any]) -> Store:
    """The store the usrloc parameters ask for (see the module docstring)."""
    url = str(values.get("db_url") or "")
    mode = int(values.get("db_mode") or 0)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, prefix=str(values.get("redis_prefix") or "pykemi:ul"))
    if url and mode > 0:
        adapter = db_adapter(url)
        if adapter is not None:
            return adapter
        if url.startswith("sqlite:///"):
            return SqliteStore(url[len("sqlite://") :])
        klog.err(
            f"usrloc: no database layer for db_url {url!r}; "
            "registrations are kept in shared memory only"
        )
    return SqliteStore(new_shared_file("usrloc"))


def db_adapter(url: str) -> Store | None:
    """A store on ``pykemi.runtime.db`` (SQLAlchemy, Kamailio's location schema), when
    that layer and its driver are installed; None otherwise."""
    try:
        from .dbstore import SqlLocationStore

        return SqlLocationStore(url)
    except ImportError:
        return None
    except Exception as exc:  # noqa: BLE001 - bad URL or driver: fall back, never crash
        klog.err(f"usrloc: cannot use database {url!r}: {exc}")
        return None


def _startup(router: Any, values: dict[str, Any]) -> None:
    setup(router.proc, values)


def setup(proc: ProcessState, values: dict[str, Any] | None = None) -> Store:
    """Create this instance's store (before the fork) and its expiry timer."""
    from pykemi.runtime.core.timer import TIMERS

    if values is None:
        values = _params.params(proc, "usrloc", DEFAULTS)
    store = open_store(values)
    proc.extra[STORE_KEY] = store
    interval = max(1, int(values.get("timer_interval") or 60))

    def purge() -> None:
        try:
            n = store.purge()
            if n:
                klog.dbg(f"usrloc: {n} expired contacts removed")
        except StoreError as exc:
            klog.err(f"usrloc: expiry timer failed: {exc}")
        TIMERS.call_later(interval, purge)

    TIMERS.call_later(interval, purge)
    return store


def location_store(proc: ProcessState) -> Store:
    store = proc.extra.get(STORE_KEY)
    if store is None:
        # no Router hook ran (unit tests, registrar without usrloc): one for this process
        store = setup(proc)
    assert isinstance(store, Store)
    return store


_params.register("usrloc", DEFAULTS, MULTI, after=_startup)
