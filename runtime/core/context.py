"""The per-message context every export implementation receives.

One worker handles one message at a time, so the context being processed
is also published in ``CURRENT`` for invokers, which must not look anything
up by name on the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dns import DnsCache

if TYPE_CHECKING:
    from ..sip.message import SipMessage

Address = tuple[str, int]
SendFn = Callable[[bytes, Address], None]

# route types, as Kamailio's route_type flags
REQUEST_ROUTE = 1
FAILURE_ROUTE = 2
TM_ONREPLY_ROUTE = 4
BRANCH_ROUTE = 8
ONSEND_ROUTE = 16
ERROR_ROUTE = 32
LOCAL_ROUTE = 64
CORE_ONREPLY_ROUTE = 128
BRANCH_FAILURE_ROUTE = 256
ONREPLY_ROUTE = TM_ONREPLY_ROUTE | CORE_ONREPLY_ROUTE
EVENT_ROUTE = 512


@dataclass
class ProcessState:
    """State that lives for the whole worker process (Kamailio's per-process data)."""

    rank: int = 0
    vars: dict[str, Any] = field(default_factory=dict)  # $var(name)
    shared: dict[str, Any] = field(default_factory=dict)  # $shv(name); per process until shm exists
    defines: dict[str, str] = field(default_factory=dict)  # #!define values, for kx.ifdef
    listen: list[tuple[str, str, int]] = field(default_factory=list)  # (proto, ip, port)
    aliases: list[tuple[str, int]] = field(default_factory=list)  # (host, port or 0)
    server_header: str = "Server: pykemi (0.1.0 (x86_64/linux))"
    user_agent_header: str = "User-Agent: pykemi (0.1.0 (x86_64/linux))"
    extra: dict[str, Any] = field(default_factory=dict)  # module-private state, keyed by module
    # set by the router: runs a script function by name (KSR.route; event callbacks, with
    # their arguments: core/events.py)
    run_route: Callable[..., int] | None = None
    debug: int = 0  # current debug level (core get_debug)
    # transport: send(proto, (host, port), data, conn_id=-1) -> bool; set by the server
    send_to: Callable[..., bool] | None = None
    local_addresses: list[tuple[str, str, int]] = field(default_factory=list)  # bound sockets
    reply_to_via: bool = False  # core reply_to_via: local replies go to the top Via host
    dns: DnsCache = field(default_factory=DnsCache)  # names resolved by this process


@dataclass
class MsgContext:
    """A received SIP message and everything the routing logic may change about it."""

    msg: SipMessage
    src: Address
    dst: Address  # local address the message arrived on
    proto: str  # "udp" | "tcp" | "tls" | "ws" | "wss" | "sctp"
    send: SendFn  # transport send to an address (replies, forwarding)
    proc: ProcessState
    route_type: int = REQUEST_ROUTE
    flags: int = 0  # message flags (setflag)
    bflags: int = 0  # branch 0 flags (setbflag)
    dst_uri: str | None = None  # $du
    new_uri: str | None = None  # R-URI after rewrite ($ru); None = unchanged
    drop: bool = False  # set by KSR.drop()/set_drop()/x.drop()
    replied: int = 0  # status code of the last stateless reply sent, 0 if none
    force_rport: bool = False
    received_at: float = field(default_factory=time.time)
    msg_id: int = 0
    # per-message data of modules (avoid attributes so modules stay independent)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ruri(self) -> str:
        """The current Request-URI ($ru), after any rewrite."""
        if self.new_uri is not None:
            return self.new_uri
        return self.msg.ruri


class Current:
    """Holder of the context being routed in this process (a single slot, no lookups)."""

    __slots__ = ("ctx",)

    def __init__(self) -> None:
        self.ctx: MsgContext | None = None


CURRENT = Current()
