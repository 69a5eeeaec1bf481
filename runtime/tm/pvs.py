"""``$T_*`` pseudo-variables (Kamailio tm/tmx): transaction, branch and reply attributes."""

from __future__ import annotations

from ..core.context import (
    BRANCH_FAILURE_ROUTE,
    FAILURE_ROUTE,
    ONREPLY_ROUTE,
    MsgContext,
)
from ..core.pv import PvSpec, PvValue, get_pv, register_pv
from .core import EXTRA_BRANCH, REASONS, current, get_tm
from .transaction import Branch


def _branch(ctx: MsgContext) -> Branch | None:
    txn = current(ctx)
    idx = ctx.extra.get(EXTRA_BRANCH)
    if txn is None or not isinstance(idx, int) or not 0 <= idx < len(txn.branches):
        return None
    return txn.branches[idx]


def status_code(ctx: MsgContext) -> int:
    """The reply code tm functions refer to (t_check_status semantics); -1 when none."""
    if ctx.route_type & ONREPLY_ROUTE and not ctx.msg.is_request:
        return int(ctx.msg.status)
    if ctx.route_type & (FAILURE_ROUTE | BRANCH_FAILURE_ROUTE):
        b = _branch(ctx)
        return b.final_code if b is not None else -1
    txn = current(ctx)
    if txn is not None and txn.status:
        return txn.status
    return int(ctx.replied) if ctx.replied else -1


def status_reason(ctx: MsgContext) -> str | None:
    if ctx.route_type & ONREPLY_ROUTE and not ctx.msg.is_request:
        return str(ctx.msg.reason)
    if ctx.route_type & (FAILURE_ROUTE | BRANCH_FAILURE_ROUTE):
        b = _branch(ctx)
        if b is None:
            return None
        if b.reply is not None:
            return str(b.reply.reason)
        return REASONS.get(b.final_code, "")
    txn = current(ctx)
    return txn.status_reason if txn is not None and txn.status else None


def _reply_code(ctx: MsgContext) -> PvValue:
    code = status_code(ctx)
    return code if code >= 0 else 0


def _branch_idx(ctx: MsgContext) -> PvValue:
    idx = ctx.extra.get(EXTRA_BRANCH)
    return idx if isinstance(idx, int) else 0


def _reply_last(ctx: MsgContext) -> PvValue:
    txn = current(ctx)
    return txn.last_received if txn is not None else 0


def _reply_ctx(ctx: MsgContext) -> MsgContext | None:
    """A context whose message is the relevant reply (onreply: itself; failure: the winner)."""
    if not ctx.msg.is_request:
        return ctx
    b = _branch(ctx)
    if b is None or b.reply is None:
        return None
    return MsgContext(b.reply, ctx.src, ctx.dst, ctx.proto, ctx.send, ctx.proc, ctx.route_type)


def _t_rpl(ctx: MsgContext, spec: PvSpec) -> PvValue:
    rctx = _reply_ctx(ctx)
    return None if rctx is None else get_pv(rctx, spec.inner or "")


def _t_req(ctx: MsgContext, spec: PvSpec) -> PvValue:
    txn = current(ctx)
    if txn is None:
        return None
    return get_pv(txn.ctx, spec.inner or "")


def _t_inv(ctx: MsgContext, spec: PvSpec) -> PvValue:
    tm = get_tm(ctx.proc)
    inv = None if tm is None else tm.invite_for_cancel(ctx)
    return None if inv is None else get_pv(inv.ctx, spec.inner or "")


def _t_attr(ctx: MsgContext, spec: PvSpec) -> PvValue:
    name = (spec.inner or "").strip()
    txn = current(ctx)
    if name in ("id_index", "id_label", "id_index_n", "id_label_n"):
        if txn is None:
            return None
        return txn.tid if name.startswith("id_index") else txn.label
    if name == "reply_code":
        return _reply_code(ctx)
    if name == "reply_reason":
        return status_reason(ctx)
    if name == "reply_last":
        return _reply_last(ctx)
    if name == "branch_index":
        return _branch_idx(ctx)
    if name == "reply_type":
        b = _branch(ctx)
        return 1 if b is not None and b.reply is None and b.final_code else 0
    if name == "ruid":
        return ""
    return None


def _t_branch(ctx: MsgContext, spec: PvSpec) -> PvValue:
    b = _branch(ctx)
    if b is None:
        return None
    name = (spec.inner or "").strip()
    if name == "uri":
        return b.uri
    if name == "dst_uri":
        return b.dst_uri
    if name == "flags":
        return b.bflags
    if name == "ruid":
        return ""
    return None


def register() -> None:
    register_pv("T_branch_idx", _branch_idx)
    register_pv("T_reply_code", _reply_code)
    register_pv("T_reply_reason", lambda c: status_reason(c))
    register_pv("T_reply_last", _reply_last)
    register_pv("T_reply_ruid", lambda c: "")
    register_pv("T_req", inner_getter=_t_req)
    register_pv("T_rpl", inner_getter=_t_rpl)
    register_pv("T_inv", inner_getter=_t_inv)
    register_pv("T", inner_getter=_t_attr)
    register_pv("T_branch", inner_getter=_t_branch)
