"""``KSR.tm``: stateful relaying and replies (Kamailio tm module); logic in ``runtime/tm``.

Return codes follow Kamailio: positive = success/true, negative = false/error,
0 = "stop the script" (t_check_trans / t_newtran: retransmission absorbed, ACK
consumed; t_relay returns 1 for those, as Kamailio's t_relay_to). Functions
needing what pykemi does not have (XAVP contact loading without
``contacts_avp``, async replies) log the reason and return -1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import log as klog
from ..core.context import (
    BRANCH_FAILURE_ROUTE,
    BRANCH_ROUTE,
    FAILURE_ROUTE,
    ONREPLY_ROUTE,
    REQUEST_ROUTE,
    TM_ONREPLY_ROUTE,
)
from ..sip.message import SipParseError
from ..sip.uri import parse_uri
from ..tm import EXTRA_BRANCH, TM, Transaction, current, get_tm
from ..tm.core import status_regex
from ..tm.pvs import status_code

if TYPE_CHECKING:
    from ..core.context import MsgContext

ORIGIN = "tm"
TRUE, FALSE, ERROR = 1, -1, -1


def _tm(ctx: MsgContext) -> TM | None:
    tm = get_tm(ctx.proc)
    if tm is None:
        klog.log(klog.L_ERR, "tm is not initialized in this process", ORIGIN)
    return tm


def _bool(value: bool) -> int:
    return TRUE if value else FALSE


def _err(text: str) -> int:
    klog.log(klog.L_ERR, text, ORIGIN)
    return ERROR


# ---------------------------------------------------------------------------
# relaying


def t_relay(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    return ERROR if tm is None else tm.relay(ctx)


def t_relay_to_flags(ctx: MsgContext, flags: int) -> int:
    tm = _tm(ctx)
    return ERROR if tm is None else tm.relay(ctx, flags=flags)


def _parse_proxy(proxy: str) -> tuple[str | None, tuple[str, int]] | None:
    """``[proto:]host[:port]`` (also a sip: URI) -> (proto, (host, port))."""
    text = proxy.strip()
    if not text:
        return None
    if text.lower().startswith(("sip:", "sips:")):
        try:
            u = parse_uri(text)
        except ValueError:
            return None
        return u.transport, (u.host, int(u.port or 5060))
    proto: str | None = None
    head, sep, rest = text.partition(":")
    if sep and head.lower() in ("udp", "tcp", "tls", "sctp", "ws", "wss"):
        proto, text = head.lower(), rest
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, tail = text[: end + 1], text[end + 1 :]
        port_s = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_s = text.partition(":")
    try:
        port = int(port_s) if port_s else 5060
    except ValueError:
        return None
    if not host or not 0 < port < 65536:
        return None
    return proto, (host, port)


def t_relay_to_proxy(ctx: MsgContext, proxy: str) -> int:
    return t_relay_to_proxy_flags(ctx, proxy, 0)


def t_relay_to_proxy_flags(ctx: MsgContext, proxy: str, flags: int) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    parsed = _parse_proxy(proxy)
    if parsed is None:
        return _err(f"t_relay_to_proxy: invalid proxy address [{proxy}]")
    proto, addr = parsed
    return tm.relay(ctx, proto=proto, addr=addr, flags=flags)


def t_relay_to_proto(ctx: MsgContext, proto: str) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    p = proto.strip().lower()
    return tm.relay(ctx, proto=p or None)


def t_relay_to_proto_addr(ctx: MsgContext, proto: str, host: str, port: int) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if not host or not 0 < port < 65536:
        return _err(f"t_relay_to_proto_addr: invalid address [{host}:{port}]")
    return tm.relay(ctx, proto=proto.strip().lower() or None, addr=(host, port))


def t_replicate(ctx: MsgContext, uri: str) -> int:
    tm = _tm(ctx)
    return ERROR if tm is None else tm.replicate(ctx, uri)


def t_uac_send(
    ctx: MsgContext, method: str, ruri: str, nexthop: str, ssock: str, hdrs: str, body: str
) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if ssock:
        klog.log(klog.L_DBG, f"t_uac_send: send socket [{ssock}] ignored", ORIGIN)
    return tm.uac_send(ctx, method, ruri, nexthop, hdrs, body)


# ---------------------------------------------------------------------------
# callbacks


def _set_cb(ctx: MsgContext, attr: str, name: str) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    tm.set_option(ctx, **{attr: name or ""})
    return TRUE


def t_on_branch(ctx: MsgContext, callback: str) -> int:
    return _set_cb(ctx, "on_branch", callback)


def t_on_failure(ctx: MsgContext, callback: str) -> int:
    return _set_cb(ctx, "on_failure", callback)


def t_on_branch_failure(ctx: MsgContext, callback: str) -> int:
    return _set_cb(ctx, "on_branch_failure", callback)


def t_on_reply(ctx: MsgContext, callback: str) -> int:
    return _set_cb(ctx, "on_reply", callback)


_IS_SET = {
    "branch_route": "on_branch",
    "failure_route": "on_failure",
    "onreply_route": "on_reply",
    "branch_failure_route": "on_branch_failure",
}


def t_is_set(ctx: MsgContext, target: str) -> int:
    attr = _IS_SET.get(target.strip())
    if attr is None:
        return _err(f"t_is_set: unknown target [{target}]")
    txn = current(ctx)
    if txn is not None:
        return _bool(bool(getattr(txn, attr)))
    pending = ctx.extra.get("tm_pending") or {}
    return _bool(bool(pending.get(attr)))


# ---------------------------------------------------------------------------
# transactions and replies


def t_newtran(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if current(ctx) is not None:
        return _err("t_newtran: transaction already in process")
    rc, _ = tm.new_transaction(ctx)
    return rc


def t_reply(ctx: MsgContext, code: int, reason: str) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    msg = ctx.msg
    if msg.is_request and msg.method.upper() == "ACK":
        klog.log(klog.L_DBG, "ACKs are not replied", ORIGIN)
        return ERROR
    # Kamailio ki_t_reply: in a reply route the reply answers the transaction's request
    txn = current(ctx) or (None if msg.is_request else _reply_txn(tm, ctx))
    if txn is None:
        return _err("cannot send a t_reply to a message for which no T-state has been established")
    return tm.reply(ctx, txn, code, reason)


def t_send_reply(ctx: MsgContext, code: int, reason: str) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    txn = current(ctx)
    if txn is None:
        rc, txn = tm.new_transaction(ctx)
        if rc == 0:
            return 0
        if txn is None:
            return ERROR
    return tm.reply(ctx, txn, code, reason)


def t_retransmit_reply(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    txn = current(ctx) or tm.lookup(ctx)
    if txn is None:
        return _err("t_retransmit_reply: no transaction")
    return _bool(tm.retransmit_reply(txn))


def t_release(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    txn = current(ctx)
    if tm is None or txn is None:
        return ERROR
    tm.schedule_wait(txn)
    return TRUE


def t_check_trans(ctx: MsgContext) -> int:
    """As Kamailio's t_check_trans: 1 in routes that already have the transaction."""
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if ctx.route_type & (FAILURE_ROUTE | BRANCH_ROUTE | BRANCH_FAILURE_ROUTE | TM_ONREPLY_ROUTE):
        return TRUE
    msg = ctx.msg
    if not msg.is_request:
        return _bool(_reply_txn(tm, ctx) is not None)
    method = msg.method.upper()
    if method == "CANCEL":
        return _bool(tm.invite_for_cancel(ctx) is not None)
    txn = tm.lookup(ctx)
    if method == "ACK":
        if txn is None or not txn.is_invite:
            return FALSE
        if txn.final_sent and txn.status >= 300:
            tm.absorb_ack(txn)
            return 0  # ACK to a negative reply: consumed, stop the script
        return TRUE  # end-to-end ACK of a live INVITE transaction
    if txn is None:
        return FALSE
    tm.retransmit_reply(txn)
    return 0  # retransmission: last reply resent, stop the script


def _reply_txn(tm: TM, ctx: MsgContext) -> Transaction | None:
    """The live transaction a received reply belongs to (Kamailio t_reply_matching)."""
    try:
        via, cseq = ctx.msg.top_via, ctx.msg.cseq
    except SipParseError:
        return None
    found = tm.table.parse_branch(via.branch or "") if via is not None else None
    if found is None or cseq is None:
        return None
    txn = found[0]
    return txn if not txn.done and cseq[1].upper() in (txn.method, "CANCEL") else None


def t_lookup_request(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    return ERROR if tm is None else _bool(tm.lookup(ctx) is not None)


def t_lookup_cancel(ctx: MsgContext) -> int:
    return t_lookup_cancel_flags(ctx, 0)


def t_lookup_cancel_flags(ctx: MsgContext, flags: int) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    inv = tm.invite_for_cancel(ctx)
    if inv is None:
        return FALSE
    if flags & 1:
        ctx.flags = inv.flags
    return TRUE


# ---------------------------------------------------------------------------
# timers


def t_set_fr_inv(ctx: MsgContext, fr_inv: int) -> int:
    return t_set_fr(ctx, fr_inv, 0)


def t_set_fr(ctx: MsgContext, fr_inv: int, fr: int) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if fr_inv < 0 or fr < 0:
        return _err("t_set_fr: negative timeout")
    values: dict[str, float] = {}
    if fr_inv:
        values["fr_inv"] = fr_inv / 1000.0
    if fr:
        values["fr"] = fr / 1000.0
    if values:
        txn = tm.set_option(ctx, **values)
        if txn is not None:
            tm.restart_fr(txn)
    return TRUE


def t_reset_fr(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    txn = tm.set_option(ctx, fr=tm.fr, fr_inv=tm.fr_inv)
    if txn is not None:
        tm.restart_fr(txn)
    return TRUE


def t_set_max_lifetime(ctx: MsgContext, inv: int, noninv: int) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if inv < 0 or noninv < 0:
        return _err("t_set_max_lifetime: negative value")
    txn = current(ctx)
    is_inv = ctx.msg.is_request and ctx.msg.method.upper() == "INVITE"
    value = inv if (txn.is_invite if txn is not None else is_inv) else noninv
    if value:
        tm.set_option(ctx, lifetime=value / 1000.0)
    return TRUE


def t_reset_max_lifetime(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    txn = current(ctx)
    is_inv = txn.is_invite if txn is not None else ctx.msg.method.upper() == "INVITE"
    tm.set_option(ctx, lifetime=tm.max_inv if is_inv else tm.max_noninv)
    return TRUE


def t_set_retr(ctx: MsgContext, t1: int, t2: int) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if t1 < 0 or t2 < 0:
        return _err("t_set_retr: negative value")
    values: dict[str, float] = {}
    if t1:
        values["t1"] = t1 / 1000.0
    if t2:
        values["t2"] = t2 / 1000.0
    if values:
        tm.set_option(ctx, **values)
    return TRUE


def t_reset_retr(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    tm.set_option(ctx, t1=tm.t1, t2=tm.t2)
    return TRUE


# ---------------------------------------------------------------------------
# contacts (q-value forking over XAVPs)


def t_load_contacts(ctx: MsgContext) -> int:
    return ki_t_load_contacts_mode(ctx, 0)


def ki_t_load_contacts_mode(ctx: MsgContext, mode: int) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if not ctx.extra.get("branches"):
        return TRUE  # a single destination: nothing to do
    if not tm.contacts_avp:
        return _err(
            "t_load_contacts: feature disabled - set modparam contacts_avp (XAVPs are not "
            "available in pykemi yet)"
        )
    return _err("t_load_contacts: XAVP storage is not implemented in pykemi yet")


def t_next_contacts(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if not tm.contacts_avp:
        return _err("t_next_contacts: feature disabled - set modparam contacts_avp")
    return _err("t_next_contacts: XAVP storage is not implemented in pykemi yet")


def t_next_contact_flow(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    if not tm.contact_flows_avp:
        return _err("t_next_contact_flow: feature disabled - set modparam contact_flows_avp")
    return _err("t_next_contact_flow: XAVP storage is not implemented in pykemi yet")


# ---------------------------------------------------------------------------
# failure route helpers and status


def _in_failure(ctx: MsgContext) -> bool:
    return bool(ctx.route_type & (FAILURE_ROUTE | BRANCH_FAILURE_ROUTE))


def t_drop_replies_all(ctx: MsgContext) -> int:
    return t_drop_replies(ctx, "a")


def t_drop_replies(ctx: MsgContext, mode: str) -> int:
    txn = current(ctx)
    if txn is None:
        return ERROR
    m = (mode or "a").strip().lower()[:1]
    if m == "n":
        return TRUE
    last = txn.leg
    for b in txn.branches:
        if b.is_final and (m != "l" or b.leg == last):
            b.dropped = True
    return TRUE


def t_use_uac_headers(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    tm.set_option(ctx, use_uac_headers=True)
    return TRUE


def t_save_lumps(ctx: MsgContext) -> int:
    txn = current(ctx)
    if txn is None or ctx.route_type != REQUEST_ROUTE:
        return _err("t_save_lumps: needs a transaction (t_newtran) in request route")
    txn.saved_request = ctx.msg.copy()
    return TRUE


def t_is_expired(ctx: MsgContext) -> int:
    tm = get_tm(ctx.proc)
    txn = current(ctx)
    return FALSE if txn is None or tm is None else _bool(tm.expired(txn))


def t_is_canceled(ctx: MsgContext) -> int:
    txn = current(ctx)
    return FALSE if txn is None else _bool(txn.canceled)


def t_check_status(ctx: MsgContext, regex: str) -> int:
    code = status_code(ctx)
    if code < 0:
        return FALSE
    rx = status_regex(regex)
    if rx is None:
        return ERROR
    return _bool(rx.match(str(code)) is not None)


def t_grep_status(ctx: MsgContext, code: int) -> int:
    txn = current(ctx)
    if txn is None:
        return FALSE
    return _bool(any(b.final_code == code for b in txn.branches))


def t_is_retr_async_reply(ctx: MsgContext) -> int:
    return FALSE  # no async suspension in pykemi: never a reply of a suspended transaction


def _prev(ctx: MsgContext) -> tuple[bool, bool] | None:
    prev = ctx.extra.get("tm_prev")
    if isinstance(prev, tuple) and ctx.route_type & ONREPLY_ROUTE:
        return bool(prev[0]), bool(prev[1])
    return None


def t_any_replied(ctx: MsgContext) -> int:
    txn = current(ctx)
    if txn is None:
        return FALSE
    prev = _prev(ctx)
    if prev is not None:
        return _bool(prev[1])
    idx = ctx.extra.get(EXTRA_BRANCH) if _in_failure(ctx) else None
    # failure routes: the current (selected) reply does not count
    return _bool(any(b.replied and b.index != idx for b in txn.branches))


def t_any_timeout(ctx: MsgContext) -> int:
    txn = current(ctx)
    return FALSE if txn is None else _bool(any(b.timed_out for b in txn.branches))


def _cur_branch(ctx: MsgContext) -> int | None:
    idx = ctx.extra.get(EXTRA_BRANCH)
    return idx if isinstance(idx, int) else None


def t_branch_replied(ctx: MsgContext) -> int:
    txn = current(ctx)
    idx = _cur_branch(ctx)
    if txn is None or idx is None:
        return FALSE
    prev = _prev(ctx)
    if prev is not None:
        return _bool(prev[0])
    b = txn.branches[idx]
    # a timed-out branch's replies are all "past"; a replied final counts its provisionals
    return _bool(b.replied and (b.timed_out or b.provisional > 0))


def t_branch_timeout(ctx: MsgContext) -> int:
    txn = current(ctx)
    idx = _cur_branch(ctx)
    if txn is None or idx is None:
        return FALSE
    return _bool(txn.branches[idx].timed_out)


def t_get_status_code(ctx: MsgContext) -> int:
    return status_code(ctx)


def t_get_branch_index(ctx: MsgContext) -> int:
    idx = _cur_branch(ctx)
    return -1 if idx is None else idx


def t_clean(ctx: MsgContext) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    tm.clean()
    return TRUE


# ---------------------------------------------------------------------------
# per-transaction switches


def _switch(ctx: MsgContext, attr: str, state: int) -> int:
    tm = _tm(ctx)
    if tm is None:
        return ERROR
    tm.set_option(ctx, **{attr: bool(state)})
    return TRUE


def t_set_auto_inv_100(ctx: MsgContext, state: int) -> int:
    return _switch(ctx, "auto_100", state)


def t_set_disable_6xx(ctx: MsgContext, state: int) -> int:
    return _switch(ctx, "disable_6xx", state)


def t_set_disable_failover(ctx: MsgContext, state: int) -> int:
    klog.log(klog.L_DBG, "t_set_disable_failover: no DNS failover in pykemi", ORIGIN)
    return TRUE


def t_set_no_e2e_cancel_reason(ctx: MsgContext, state: int) -> int:
    return _switch(ctx, "no_e2e_cancel_reason", state)


def t_set_disable_internal_reply(ctx: MsgContext, state: int) -> int:
    return _switch(ctx, "disable_internal_reply", state)
