"""A bounded, expiring per-process cache of host name -> IP address (Kamailio's DNS cache).

A worker handles one message at a time, so a name lookup stops the worker. The cache keeps
that cost bounded:

* each lookup (``getaddrinfo``, so /etc/hosts still works) runs in a helper thread and the
  worker waits at most ``dns_retr_time`` x ``dns_retr_no`` seconds for it; a few lookups at
  most are in flight at once, further ones fail at once;
* failures are cached for ``dns_cache_negative_ttl`` seconds (Kamailio: 60), answers for a
  TTL clamped to [``dns_cache_min_ttl``, ``dns_cache_max_ttl``] (``getaddrinfo`` gives no
  record TTL: ``ASSUMED_TTL`` is used);
* the cache holds at most ``dns_cache_mem`` KB (Kamailio: 500), counted per entry; when full,
  expired entries go first, then (``dns_cache_del_nonexp=1``) the least recently used ones,
  else the new answer is not cached;
* IP literals are never looked up nor cached; ``peek`` answers from the cache only (the
  reply path never resolves).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .log import L_ERR, log

__all__ = ["ASSUMED_TTL", "DnsCache", "DnsSettings", "is_ip"]

ASSUMED_TTL = 300  # seconds an answer is kept when the resolver gives no TTL (getaddrinfo)
ENTRY_OVERHEAD = 256  # bytes one cached entry costs besides its name (dict slot, tuple, str)
MAX_NAME = 253  # longest DNS name (RFC 1035): longer ones fail without a lookup
MAX_IN_FLIGHT = 4  # lookup threads that may be stuck at once in one process
DEFAULT_WAIT = 2  # seconds per try when dns_retr_time is unset (the resolver's own is 5 x 2)


class _Config(Protocol):
    def get_int(self, name: str, default: int) -> int: ...


@dataclass(frozen=True)
class DnsSettings:
    """Kamailio's core parameters for the cache (names and defaults of Kamailio 5.6)."""

    dns_cache_negative_ttl: int = 60
    dns_cache_min_ttl: int = 0
    dns_cache_max_ttl: int = 2**32 - 1
    dns_cache_mem: int = 500  # KB
    dns_cache_del_nonexp: int = 0
    dns_retr_time: int = -1  # seconds per try; -1 = DEFAULT_WAIT
    dns_retr_no: int = -1  # tries; -1 = 1

    @classmethod
    def from_cfg(cls, cfg: _Config) -> DnsSettings:
        """The values set in the configuration file, Kamailio's defaults otherwise."""
        base = cls()
        return cls(**{name: cfg.get_int(name, value) for name, value in vars(base).items()})

    @property
    def wait(self) -> float:
        """Longest time the worker waits for one lookup."""
        per_try = self.dns_retr_time if self.dns_retr_time > 0 else DEFAULT_WAIT
        return float(per_try * max(1, self.dns_retr_no))

    @property
    def max_bytes(self) -> int:
        return max(0, self.dns_cache_mem) * 1024

    def ttl(self, found: bool) -> float:
        if not found:
            return float(max(0, self.dns_cache_negative_ttl))
        return float(min(max(ASSUMED_TTL, self.dns_cache_min_ttl), self.dns_cache_max_ttl))


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _first_address(host: str) -> str | None:
    for fam, _t, _p, _c, sa in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM):
        if fam in (socket.AF_INET, socket.AF_INET6):
            return str(sa[0])
    return None


class DnsCache:
    """Name -> address (None = does not resolve) with expiry and a size bound."""

    def __init__(
        self,
        settings: DnsSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        resolver: Callable[[str], str | None] = _first_address,
    ) -> None:
        self.settings = settings or DnsSettings()
        self.clock = clock
        self.resolver = resolver
        # name -> (address or None, expiry time); order = least recently used first
        self._entries: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._bytes = 0
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """What the entries count against ``dns_cache_mem``."""
        return self._bytes

    @staticmethod
    def _cost(name: str) -> int:
        return ENTRY_OVERHEAD + len(name)

    def peek(self, host: str) -> str | None:
        """The address of ``host`` if it is an IP literal or cached and fresh; never resolves."""
        host = host.strip("[]")
        if is_ip(host):
            return host
        entry = self._fresh(host.lower())
        return entry[0] if entry is not None else None

    def resolve(self, host: str) -> str | None:
        """The address of ``host`` (cached, else looked up with a bounded wait); None if none."""
        host = host.strip("[]")
        if is_ip(host):
            return host
        key = host.lower()
        entry = self._fresh(key)
        if entry is not None:
            return entry[0]
        ip = self._lookup(host) if len(host) <= MAX_NAME else None
        self._store(key, ip)
        return ip

    def _fresh(self, key: str) -> tuple[str | None, float] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _drop(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self._bytes -= self._cost(key)

    def _store(self, key: str, ip: str | None) -> None:
        ttl = self.settings.ttl(ip is not None)
        cost = self._cost(key)
        if ttl <= 0 or cost > self.settings.max_bytes or not self._make_room(cost):
            return
        self._entries[key] = (ip, self.clock() + ttl)
        self._bytes += cost

    def _make_room(self, cost: int) -> bool:
        limit = self.settings.max_bytes
        if self._bytes + cost <= limit:
            return True
        now = self.clock()
        for key in [k for k, (_ip, expires) in self._entries.items() if expires <= now]:
            self._drop(key)
        if self.settings.dns_cache_del_nonexp:
            while self._entries and self._bytes + cost > limit:
                self._drop(next(iter(self._entries)))
        return self._bytes + cost <= limit

    def _lookup(self, host: str) -> str | None:
        """Resolve in a daemon thread; give up after ``settings.wait`` (the thread may go on)."""
        if not self._in_flight.acquire(blocking=False):
            log(L_ERR, f"cannot resolve [{host}]: {MAX_IN_FLIGHT} lookups already pending")
            return None
        answer: list[str | None] = []
        error: list[str] = []
        done = threading.Event()

        def run() -> None:  # no logging here: the worker's log is not shared with threads
            try:
                answer.append(self.resolver(host))
            except (OSError, UnicodeError) as exc:
                error.append(str(exc))
            finally:
                self._in_flight.release()
                done.set()

        threading.Thread(target=run, name="dns", daemon=True).start()
        if not done.wait(self.settings.wait):
            log(L_ERR, f"cannot resolve [{host}]: no answer in {self.settings.wait:g} s")
            return None
        ip = answer[0] if answer else None
        if ip is None:
            log(L_ERR, f"cannot resolve [{host}]: {error[0] if error else 'no address'}")
        return ip
