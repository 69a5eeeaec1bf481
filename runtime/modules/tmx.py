"""``KSR.tmx``: transaction extensions (Kamailio tmx module) on top of ``runtime/tm``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import log as klog
from ..core.context import (
    BRANCH_ROUTE,
    FAILURE_ROUTE,
    ONREPLY_ROUTE,
    REQUEST_ROUTE,
)
from ..tm import EXTRA_BRANCH, TM, current, get_tm
from ..tm.transaction import Transaction

if TYPE_CHECKING:
    from ..core.context import MsgContext

ORIGIN = "tmx"
TRUE, FALSE, ERROR = 1, -1, -1


def _tm(ctx: MsgContext) -> TM | None:
    tm = get_tm(ctx.proc)
    if tm is None:
        klog.log(klog.L_ERR, "tmx needs module tm loaded", ORIGIN)
    return tm


def _bool(value: bool) -> int:
    return TRUE if value else FALSE


def t_precheck_trans(ctx: MsgContext) -> int:
    """True when the request retransmits one already being processed (nothing is resent)."""
    tm = _tm(ctx)
    if tm is None or not ctx.msg.is_request:
        return FALSE
    if ctx.msg.method.upper() in ("ACK", "CANCEL"):
        return FALSE
    return _bool(tm.lookup(ctx) is not None)


def t_is_request_route(ctx: MsgContext) -> int:
    return _bool(ctx.route_type == REQUEST_ROUTE)


def t_is_reply_route(ctx: MsgContext) -> int:
    return _bool(bool(ctx.route_type & ONREPLY_ROUTE))


def t_is_failure_route(ctx: MsgContext) -> int:
    return _bool(ctx.route_type == FAILURE_ROUTE)


def t_is_branch_route(ctx: MsgContext) -> int:
    return _bool(ctx.route_type == BRANCH_ROUTE)


def t_suspend(ctx: MsgContext) -> int:
    klog.log(klog.L_ERR, "t_suspend: asynchronous processing is not supported in pykemi", ORIGIN)
    return ERROR


def t_continue(ctx: MsgContext, tindex: int, tlabel: int, callback: str) -> int:
    klog.log(klog.L_ERR, "t_continue: asynchronous processing is not supported in pykemi", ORIGIN)
    return ERROR


def t_flush_flags(ctx: MsgContext) -> int:
    txn = current(ctx)
    if txn is None:
        return ERROR
    txn.flags = ctx.flags
    return TRUE


def t_flush_xflags(ctx: MsgContext) -> int:
    txn = current(ctx)
    if txn is None:
        return ERROR
    txn.xflags = int(ctx.extra.get("xflags", 0) or 0)
    return TRUE


def t_cancel_branches(ctx: MsgContext, mode: str) -> int:
    """From an onreply route: CANCEL ``all`` open branches, the ``others`` or ``this`` one."""
    tm = _tm(ctx)
    txn = current(ctx)
    if tm is None or txn is None:
        return ERROR
    if not ctx.route_type & ONREPLY_ROUTE:
        klog.log(klog.L_ERR, "t_cancel_branches: only in an onreply route", ORIGIN)
        return ERROR
    idx = ctx.extra.get(EXTRA_BRANCH)
    m = mode.strip().lower()
    if m == "all":
        tm.cancel_branches(txn)
    elif m == "others":
        tm.cancel_branches(txn, lambda b: b.index != idx)
    elif m == "this":
        tm.cancel_branches(txn, lambda b: b.index == idx)
    else:
        klog.log(klog.L_ERR, f"t_cancel_branches: unknown mode [{mode}]", ORIGIN)
        return ERROR
    return TRUE


def t_reuse_branch(ctx: MsgContext) -> int:
    """Failure route: a new branch to the destination of the failed (selected) branch."""
    tm = _tm(ctx)
    txn = current(ctx)
    idx = ctx.extra.get(EXTRA_BRANCH)
    if tm is None or txn is None or not isinstance(idx, int) or not ctx.route_type & FAILURE_ROUTE:
        klog.log(klog.L_ERR, "t_reuse_branch: only in failure route", ORIGIN)
        return ERROR
    b = txn.branches[idx]
    ctx.extra.setdefault("branches", []).append(b.uri)
    if b.dst_uri:
        ctx.extra.setdefault("branch_dst", {})[b.uri] = b.dst_uri
    return TRUE


def _find(tm: TM, callid: str, cseq: str, method: str = "") -> Transaction | None:
    try:
        num = int(cseq.strip().split()[0])
    except (ValueError, IndexError):
        klog.log(klog.L_ERR, f"invalid CSeq [{cseq}]", ORIGIN)
        return None
    found = [t for t in tm.table.by_call(callid, num, method) if not t.replicate]
    if not found:
        klog.log(klog.L_DBG, f"no transaction for Call-ID [{callid}] CSeq [{cseq}]", ORIGIN)
        return None
    return found[-1]


def t_cancel_callid(ctx: MsgContext, callid: str, cseq: str, flag: int) -> int:
    return t_cancel_callid_reason(ctx, callid, cseq, flag, 0)


def t_cancel_callid_reason(ctx: MsgContext, callid: str, cseq: str, flag: int, rcode: int) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    txn = _find(tm, callid, cseq, "INVITE")
    if txn is None:
        return ERROR
    txn.canceled = True
    if flag:
        txn.flags |= flag
    if rcode and not txn.cancel_reason:
        txn.cancel_reason = f"SIP;cause={rcode}"
    tm.cancel_branches(txn)
    return TRUE


def t_reply_callid(ctx: MsgContext, callid: str, cseq: str, code: int, reason: str) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    txn = _find(tm, callid, cseq)
    if txn is None:
        return ERROR
    return tm.reply(txn.ctx, txn, code, reason)


def t_drop(ctx: MsgContext) -> int:
    return t_drop_rcode(ctx, 0)


def t_drop_rcode(ctx: MsgContext, rcode: int) -> int:
    """End the transaction here without a reply (its timers stop; retransmissions restart it)."""
    tm = _tm(ctx)
    txn = current(ctx)
    if tm is None or txn is None:
        return ERROR
    txn.drop_rcode = rcode
    tm.remove(txn)
    return TRUE
