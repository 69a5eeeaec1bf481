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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config.modparams import or_default
from ..core import log as klog
from ..core.timer import TIMERS
from ..modules import params as _params
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
    from ..core.context import ProcessState

__all__ = [
    "ALL_METHODS",
    "ON_EXPIRED",
    "Q_UNSPECIFIED",
    "Contact",
    "MemoryStore",
    "RedisStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "location_store",
    "matching_mode",
    "method_allowed",
    "methods_mask",
    "new_ruid",
    "open_store",
    "sort_contacts",
    "use_domain",
]

STORE_KEY = "usrloc.store"
# proc.extra: fn(table, contact) run for each contact the expiry timer removes (registrar's
# usrloc:contact-expired event route); without it the timer only purges
ON_EXPIRED = "usrloc.on_expired"


def open_store(values: Mapping[str, Any]) -> Store:
    """The store the usrloc parameters ask for (see the module docstring)."""
    url = str(values.get("db_url") or "")
    mode = int(values.get("db_mode") or 0)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, prefix=str(or_default(values, "usrloc", "redis_prefix")))
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


def setup(proc: ProcessState, values: Mapping[str, Any] | None = None) -> Store:
    """Create this instance's store (before the fork) and its expiry timer."""
    if values is None:
        values = _params.params(proc, "usrloc")
    store = open_store(values)
    proc.extra[STORE_KEY] = store
    interval = max(1, int(or_default(values, "usrloc", "timer_interval")))

    def purge() -> None:
        try:
            on_expired = proc.extra.get(ON_EXPIRED)
            if on_expired is None:
                n = store.purge()
            else:
                gone = store.expire()
                for table, contact in gone:
                    on_expired(table, contact)
                n = len(gone)
            if n:
                klog.dbg(f"usrloc: {n} expired contacts removed")
        except StoreError as exc:
            klog.err(f"usrloc: expiry timer failed: {exc}")
        TIMERS.call_later(interval, purge)

    TIMERS.call_later(interval, purge)
    return store


def use_domain(proc: ProcessState) -> bool:
    """Are AORs user@domain (modparam use_domain), or the user part alone?"""
    return bool(_params.params(proc, "usrloc")["use_domain"])


def matching_mode(proc: ProcessState) -> int:
    """What identifies a contact of an AOR (modparam matching_mode): 0 its URI, 1 with the
    Call-ID, 2 with the Path."""
    return int(_params.params(proc, "usrloc")["matching_mode"])


def location_store(proc: ProcessState) -> Store:
    store = proc.extra.get(STORE_KEY)
    if store is None:
        # no Router hook ran (unit tests, registrar without usrloc): one for this process
        store = setup(proc)
    assert isinstance(store, Store)
    return store


_params.register("usrloc", after=_startup)
