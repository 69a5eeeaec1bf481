"""Server transaction (the received request) and its client branches (RFC 3261 17)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..sip.message import SipMessage, SipParseError
from .timers import TmTimer

if TYPE_CHECKING:
    from ..core.context import Address, MsgContext, SendFn

MAGIC = "z9hG4bK"

# branch final codes generated locally (no reply received)
LOCAL_TIMEOUT = 408


@dataclass
class Branch:
    """One client transaction: a copy of the request sent to one destination."""

    index: int
    leg: int  # serial forking leg (0 = branches created in request route)
    uri: str  # R-URI of the copy
    dst_uri: str | None  # $du used for it
    proto: str
    addr: Address
    branch_id: str  # Via branch parameter
    request: SipMessage | None = None  # as sent (ACK/CANCEL are built from it)
    data: bytes = b""  # wire copy, for retransmissions
    sent: bool = False
    provisional: int = 0  # highest provisional code received
    final_code: int = 0  # 0 until a final reply (or a local 408)
    reply: SipMessage | None = None  # final reply received (None for a local one)
    last_code: int = 0  # last reply code received (any)
    replied: bool = False  # at least one reply received
    timed_out: bool = False
    canceled: bool = False  # CANCEL sent (or pending, see cancel_pending)
    cancel_pending: bool = False  # cancel once the first provisional arrives
    cancel_data: bytes = b""
    dropped: bool = False  # reply no longer eligible (t_drop_replies / failure_reply_mode)
    ack_data: bytes = b""  # hop-by-hop ACK sent for a negative final reply
    retr: TmTimer | None = None
    fr: TmTimer | None = None
    cancel_retr: TmTimer | None = None
    retr_interval: float = 0.0
    bflags: int = 0

    @property
    def is_final(self) -> bool:
        return self.final_code >= 200

    def stop_timers(self) -> None:
        for t in (self.retr, self.fr):
            if t is not None:
                t.cancel()
        self.retr = self.fr = None


@dataclass
class Transaction:
    """A server transaction plus everything tm needs to relay and reply for it."""

    tid: int
    label: int
    key: tuple[Any, ...]
    method: str
    ctx: MsgContext  # the request context (kept: failure route and replies use it)
    request: SipMessage  # the received request (with script changes made before relaying)
    src: Address
    proto: str
    send: SendFn  # transport of the received request (replies go back this way)
    reply_addr: Address
    call_id: str
    cseq_num: int
    created: float = 0.0  # on the TM clock (TmTimers.now)
    branches: list[Branch] = field(default_factory=list)
    leg: int = 0
    relayed: bool = False  # t_relay ran at least once
    on_branch: str = ""
    on_reply: str = ""
    on_failure: str = ""
    on_branch_failure: str = ""
    flags: int = 0
    xflags: int = 0
    status: int = 0  # code of the last reply sent upstream (0: none)
    status_reason: str = ""
    last_received: int = 0  # code of the last reply received on any branch
    final_sent: bool = False
    last_reply: bytes = b""  # last reply sent upstream, resent on retransmissions
    to_tag: str = ""
    canceled: bool = False
    cancel_reason: str = ""  # Reason header of the received CANCEL
    ack_received: bool = False
    in_failure: bool = False
    fr: float = 30.0
    fr_inv: float = 120.0
    t1: float = 0.5
    t2: float = 4.0
    lifetime: float = 180.0
    auto_100: bool = True
    disable_6xx: bool = False
    no_e2e_cancel_reason: bool = False
    disable_internal_reply: bool = False
    use_uac_headers: bool = False
    replicate: bool = False  # t_replicate / t_uac_send: replies absorbed, nothing upstream
    saved_request: SipMessage | None = None  # t_save_lumps snapshot
    failure_uri: str | None = None  # R-URI of the first relay (failure route starts from it)
    failure_dst: str | None = None
    reply_timer: TmTimer | None = None  # timer G: final negative reply retransmission
    wait: TmTimer | None = None
    done: bool = False  # removed from the table
    winner: int = -1  # branch picked as best reply (failure route)
    drop_rcode: int = 0

    @property
    def is_invite(self) -> bool:
        return self.method == "INVITE"

    def open_branches(self) -> list[Branch]:
        return [b for b in self.branches if b.sent and not b.is_final]


def server_key(msg: SipMessage) -> tuple[Any, ...] | None:
    """Matching key of a request (RFC 3261 17.2.3; ACK matches its INVITE).

    CANCEL keeps its own method: it is a transaction of its own, matched to
    the INVITE by ``invite_key``. RFC 2543 requests (no magic cookie) fall back
    to Call-ID, CSeq number, From tag and the top Via.
    """
    try:
        via = msg.top_via
        cseq = msg.cseq
    except SipParseError:
        return None
    if via is None or cseq is None:
        return None
    method = msg.method.upper()
    if method == "ACK":
        method = "INVITE"
    branch = via.branch or ""
    if branch.startswith(MAGIC):
        return ("3261", branch, via.host.lower(), via.port or 0, method)
    try:
        ftag = msg.from_tag or ""
    except SipParseError:
        ftag = ""
    return ("2543", msg.call_id or "", cseq[0], ftag, via.host.lower(), via.port or 0, method)


def invite_key(cancel_key: tuple[Any, ...]) -> tuple[Any, ...]:
    """The key of the INVITE a CANCEL (or ACK) with ``cancel_key`` refers to."""
    return (*cancel_key[:-1], "INVITE")
