"""One location record (a row of Kamailio's ``location`` table)."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

Q_UNSPECIFIED = -1.0  # no q given: sorted last, not printed in the 200 OK
ALL_METHODS = -1  # no Allow header: every method is accepted

# Kamailio's METHOD_* bits (parser/msg_parser.h), used for the `methods` column
METHOD_BITS: dict[str, int] = {
    "INVITE": 1,
    "CANCEL": 2,
    "ACK": 4,
    "BYE": 8,
    "INFO": 16,
    "REGISTER": 32,
    "SUBSCRIBE": 64,
    "NOTIFY": 128,
    "MESSAGE": 256,
    "OPTIONS": 512,
    "PRACK": 1024,
    "UPDATE": 2048,
    "REFER": 4096,
    "PUBLISH": 8192,
    "KDMQ": 16384,
    "GET": 32768,
    "POST": 65536,
    "PUT": 131072,
    "DELETE": 262144,
}
METHOD_OTHER = 1 << 19

_ruid_seq = itertools.count(1)


def new_ruid() -> str:
    """Record unique id, like Kamailio's sruid ("uloc-<time>-<pid>-<n>")."""
    return f"uloc-{int(time.time()):x}-{os.getpid():x}-{next(_ruid_seq)}"


def methods_mask(allow: list[str] | None) -> int:
    """Bitmask of an Allow header's methods (ALL_METHODS when there is none)."""
    if allow is None:
        return ALL_METHODS
    mask = 0
    for m in allow:
        m = m.strip().upper()
        if m:
            mask |= METHOD_BITS.get(m, METHOD_OTHER)
    return mask


def method_allowed(mask: int, method: str) -> bool:
    if mask == ALL_METHODS or mask < 0:
        return True
    return bool(mask & METHOD_BITS.get(method.upper(), METHOD_OTHER))


@dataclass
class Contact:
    """A registered contact of an AOR; ``expires`` is absolute (epoch s), 0 = permanent."""

    aor: str
    contact: str
    expires: int = 0
    q: float = Q_UNSPECIFIED
    callid: str = ""
    cseq: int = 0
    received: str = ""
    path: str = ""
    flags: int = 0
    cflags: int = 0
    user_agent: str = ""
    socket: str = ""
    methods: int = ALL_METHODS
    instance: str = ""
    reg_id: int = 0
    last_modified: int = 0
    ruid: str = ""
    server_id: int = 0
    connection_id: int = -1
    keepalive: int = 0

    def alive(self, now: float) -> bool:
        return self.expires == 0 or self.expires > now

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contact:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def sort_contacts(contacts: list[Contact]) -> list[Contact]:
    """Highest q first; equal q: most recently modified first (Kamailio's order)."""
    return sorted(contacts, key=lambda c: (-c.q, -c.last_modified))
