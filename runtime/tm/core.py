"""The transaction manager of one worker: relaying, reply processing, CANCEL, timers.

Flow of a stateful relay (RFC 3261 16 and 17):

* ``relay`` creates the server transaction (INVITE: 100 Trying at once),
  then one client branch per target (R-URI/$du plus appended branches). Each
  branch copy goes through the branch callback, gets our Via and is sent
  (after ``ksr_onsend_route``); over UDP it is retransmitted (timer A/E) until
  a reply arrives; fr_timer / fr_inv_timer bound the wait for a final reply.
* ``on_reply`` (a Router reply hook) matches replies by our Via branch and
  CSeq method, runs the onreply callback and relays: 1xx (not 100) and every
  2xx at once; negative finals are ACKed hop by hop and kept until every
  branch is final, then the best one (16.7) goes to the failure callback,
  which may relay again (serial forking) or reply; otherwise it is relayed.
* A branch without final reply after fr_timer gets a local 408.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config.modparams import PROC_KEY, collect, spec_defaults
from ..core.context import (
    BRANCH_FAILURE_ROUTE,
    BRANCH_ROUTE,
    EVENT_ROUTE,
    FAILURE_ROUTE,
    LOCAL_ROUTE,
    REQUEST_ROUTE,
    TM_ONREPLY_ROUTE,
    Address,
    MsgContext,
    ProcessState,
)
from ..core.events import callback_name, run_event
from ..core.local_reply import local_reply_address, reply_body, reply_headers
from ..core.log import L_CRIT, L_DBG, L_ERR, L_WARN, log
from ..core.onsend import onsend_ok
from ..sip.headers import parse_header_lines
from ..sip.message import SipMessage, SipParseError, Via
from ..sip.reply import gen_to_tag, make_reply
from ..sip.route_set import BRANCH_PATH, RURI_PATH, swap_path
from ..sip.uri import parse_uri
from .stats import TmStats
from .table import Tombstone, TransactionTable
from .timers import TmTimer, TmTimers
from .transaction import MAGIC, Branch, Transaction, invite_key, server_key

if TYPE_CHECKING:
    from ..router import Router

ORIGIN = "tm"
EXTRA_T = "tm_t"  # ctx.extra: the transaction of this context
EXTRA_BRANCH = "tm_branch"  # ctx.extra: branch index (branch/onreply/failure routes)
EXTRA_REPLY = "tm_reply"  # ctx.extra: stateful reply hook used by sl.send_reply
EXTRA_PENDING = "tm_pending"  # ctx.extra: settings made before the transaction exists
EXTRA_PREV = "tm_prev"  # ctx.extra: (branch replied before, any replied before)
EXTRA_START = "tm_failure_start"  # ctx.extra: (R-URI, $du) when failure route started

SUPPORTED_PROTOS = ("udp", "tcp")
REASONS = {
    100: "Trying",
    408: "Request Timeout",
    477: "Unfortunately error on sending to next hop occurred",
    487: "Request Terminated",
    500: "Server Internal Error",
}
# 4xx codes RFC 3261 16.7 step 6 prefers (they carry information the UAC can act on)
_PREFERRED_4XX = frozenset((401, 407, 415, 420, 484))
_SWEEP_EVERY = 5.0
_CONSUMED = ("branches", "branch_dst", "branch_q", BRANCH_PATH)
TM_KEY = "tm"  # proc.extra: the TM of this router instance (a Router init hook sets it)


def get_tm(proc: ProcessState) -> TM | None:
    tm = proc.extra.get(TM_KEY)
    return tm if isinstance(tm, TM) else None


def current(ctx: MsgContext) -> Transaction | None:
    """The transaction of this context, if it has one."""
    txn = ctx.extra.get(EXTRA_T)
    return txn if isinstance(txn, Transaction) else None


def _ms(value: int | str | None) -> float:
    """A modparam in milliseconds, in seconds (negative values count as 0)."""
    return max(0, int(value or 0)) / 1000.0


class TM:
    """Transactions of one worker process (state is per worker; dispatch keeps affinity)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.proc = router.proc
        p = collect(router.cfg, ORIGIN, router.api)
        spec = spec_defaults(ORIGIN, router.api)
        router.proc.extra[PROC_KEY + ORIGIN] = self.params = p
        self.fr = _ms(p["fr_timer"])
        self.fr_inv = _ms(p["fr_inv_timer"])
        # T1/T2 of 0 would retransmit in a busy loop: the spec's values instead
        self.t1 = _ms(p["retr_timer1"]) or _ms(spec["retr_timer1"])
        self.t2 = _ms(p["retr_timer2"]) or _ms(spec["retr_timer2"])
        self.wt = _ms(p["wt_timer"])
        self.max_inv = _ms(p["max_inv_lifetime"])
        self.max_noninv = _ms(p["max_noninv_lifetime"])
        self.auto_100 = bool(p["auto_inv_100"])
        self.reason_100 = str(p["auto_inv_100_reason"] or spec["auto_inv_100_reason"])
        self.restart_fr_each = bool(p["restart_fr_on_each_reply"])
        self.failure_reply_mode = int(p["failure_reply_mode"])
        self.disable_6xx = bool(p["disable_6xx_block"])
        self.e2e_reason = bool(p["e2e_cancel_reason"])
        self.contacts_avp = str(p["contacts_avp"])
        self.contact_flows_avp = str(p["contact_flows_avp"])
        # event routes: tm:local-request (event_callback), tm:local-response-sent
        self.event_callback = callback_name(p.get("event_callback"))
        self.lres_callback = callback_name(p.get("event_callback_lres_sent"))
        self.table = TransactionTable()
        self.timers = TmTimers()
        self.stats = TmStats(router.stats)
        self._pid = 0
        self._sweep: TmTimer | None = None
        self._labels = 0
        # branches per transaction, all serial forking legs together
        self.max_total_branches = max(1, router.cfg.get_int("max_branches", 12)) * 4

    # -- helpers ----------------------------------------------------------------------------

    def _owner(self) -> None:
        """Per-process branch tag, chosen lazily after fork (workers share the parent copy)."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self.table.tag = secrets.token_hex(3)

    def run(self, name: str, ctx: MsgContext) -> int:
        try:
            return int(self.router.engine.run(name, ctx))
        except Exception as exc:  # noqa: BLE001 - a callback must not break the transaction
            log(L_ERR, f"callback {name} failed: {exc!r}", ORIGIN)
            return -1

    def send(self, proto: str, addr: Address, data: bytes, fallback: Any = None) -> bool:
        send_to = self.proc.send_to
        try:
            if send_to is not None:
                return bool(send_to(proto, addr, data))
            if fallback is not None:  # no server (in-process tests): the receiving transport
                fallback(data, addr)
                return True
        except (OSError, ValueError) as exc:
            log(L_ERR, f"send to {proto}:{addr[0]}:{addr[1]} failed: {exc}", ORIGIN)
            return False
        log(L_ERR, "no transport to send with", ORIGIN)
        return False

    def expired(self, txn: Transaction) -> bool:
        return self.timers.now() - txn.created > txn.lifetime

    def resolve(self, host: str) -> str | None:
        """IP of a next hop: the process's bounded, expiring DNS cache (a bounded wait)."""
        return self.proc.dns.resolve(host)

    def next_hop(self, uri: str, proto: str | None = None) -> tuple[str, Address] | None:
        """(proto, address) for a SIP URI (transport param, sips -> tls, default ports)."""
        try:
            u = parse_uri(uri)
        except (SipParseError, ValueError) as exc:
            log(L_ERR, f"bad next hop uri [{uri}]: {exc}", ORIGIN)
            return None
        if u.scheme == "tel" or not u.host:
            log(L_ERR, f"cannot relay to [{uri}]: no host", ORIGIN)
            return None
        use = (proto or u.transport or ("tls" if u.scheme == "sips" else "udp")).lower()
        port = u.port or (5061 if use == "tls" else 5060)
        ip = self.resolve(u.host)
        if ip is None:
            return None
        return use, (ip, int(port))

    def local_sent_by(self, ctx: MsgContext, proto: str) -> str:
        ip: str | None = None
        port: int | str | None = None
        for p, lip, lport in self.proc.local_addresses or self.proc.listen:
            if p == proto or p == "any":
                ip, port = lip, lport
                break
        if ip is None:
            ip, port = ctx.dst
        ip = str(ctx.extra.get("advertised_address") or ip)
        port = ctx.extra.get("advertised_port") or port
        if ":" in ip and not ip.startswith("["):
            ip = f"[{ip}]"
        return f"{ip}:{port}"

    # -- transactions -----------------------------------------------------------------------

    def lookup(self, ctx: MsgContext) -> Transaction | None:
        if not ctx.msg.is_request:
            return None
        txn = self.table.get(server_key(ctx.msg))
        return None if txn is None or txn.done else txn

    def invite_for_cancel(self, ctx: MsgContext) -> Transaction | None:
        if not ctx.msg.is_request or ctx.msg.method.upper() != "CANCEL":
            return None
        key = server_key(ctx.msg)
        if key is None:
            return None
        txn = self.table.get(invite_key(key))
        return None if txn is None or txn.done or txn.replicate else txn

    def new_transaction(
        self, ctx: MsgContext, auto100: bool = True
    ) -> tuple[int, Transaction | None]:
        """(1, new) | (0, existing: retransmission, last reply resent) | (-1, None)."""
        msg = ctx.msg
        if not msg.is_request:
            log(L_ERR, "cannot create a transaction for a reply", ORIGIN)
            return -1, None
        current = ctx.extra.get(EXTRA_T)
        if isinstance(current, Transaction):
            return 1, current
        method = msg.method.upper()
        if method == "ACK":
            log(L_ERR, "no transaction is created for ACK", ORIGIN)
            return -1, None
        key = server_key(msg)
        try:
            cseq = msg.cseq
        except SipParseError:
            cseq = None
        if key is None or cseq is None or not msg.call_id:
            log(L_ERR, "cannot create a transaction: bad Via, CSeq or Call-ID", ORIGIN)
            return -1, None
        existing = self.table.get(key)
        if existing is not None and not existing.done:
            self.retransmit_reply(existing)
            return 0, existing
        if self.late_retransmission(key):
            return 0, None
        self._owner()
        txn = Transaction(
            tid=self.table.next_id(),
            label=self._next_label(),
            key=key,
            method=method,
            ctx=ctx,
            request=msg,
            src=ctx.src,
            proto=ctx.proto,
            send=ctx.send,
            reply_addr=local_reply_address(ctx),
            call_id=str(msg.call_id),
            cseq_num=cseq[0],
            created=self.timers.now(),
            fr=self.fr,
            fr_inv=self.fr_inv,
            t1=self.t1,
            t2=self.t2,
            lifetime=self.max_inv if method == "INVITE" else self.max_noninv,
            auto_100=self.auto_100,
            disable_6xx=self.disable_6xx,
            no_e2e_cancel_reason=not self.e2e_reason,
            flags=ctx.flags,
        )
        try:
            txn.to_tag = gen_to_tag(msg)
        except (SipParseError, ValueError):
            txn.to_tag = secrets.token_hex(16)
        self._apply_pending(ctx, txn)
        self.attach(ctx, txn)
        self.table.add(txn)
        self.stats.add(self.stats.created)
        self._ensure_sweep()
        if method == "INVITE" and auto100 and txn.auto_100:
            self.reply(ctx, txn, 100, self.reason_100)
        return 1, txn

    def _next_label(self) -> int:
        self._labels = (self._labels + 1) & 0x7FFFFFFF
        return self._labels

    def attach(self, ctx: MsgContext, txn: Transaction) -> None:
        """Make ``txn`` the transaction of ``ctx`` (sl.send_reply then replies statefully)."""
        ctx.extra[EXTRA_T] = txn

        def tm_reply(code: int, reason: str) -> int:
            return self.reply(ctx, txn, code, reason)

        ctx.extra[EXTRA_REPLY] = tm_reply

    def _apply_pending(self, ctx: MsgContext, txn: Transaction) -> None:
        pending: dict[str, Any] = ctx.extra.pop(EXTRA_PENDING, None) or {}
        for name, value in pending.items():
            if hasattr(txn, name):
                setattr(txn, name, value)

    def set_option(self, ctx: MsgContext, **values: Any) -> Transaction | None:
        """Per-transaction settings: on the transaction, or kept until it is created."""
        txn = ctx.extra.get(EXTRA_T)
        if isinstance(txn, Transaction):
            for name, value in values.items():
                setattr(txn, name, value)
            return txn
        ctx.extra.setdefault(EXTRA_PENDING, {}).update(values)
        return None

    # -- replies sent upstream ---------------------------------------------------------------

    def reply(self, ctx: MsgContext, txn: Transaction, code: int, reason: str) -> int:
        """Stateful local reply (t_reply); 1 or -1."""
        if txn.replicate:
            log(L_ERR, "cannot reply to a local (replicated) transaction", ORIGIN)
            return -1
        if not 100 <= code <= 699:
            log(L_ERR, f"invalid reply code {code}", ORIGIN)
            return -1
        if txn.final_sent:
            log(L_ERR, f"transaction already replied with {txn.status}: {code} not sent", ORIGIN)
            return -1
        if txn.method == "ACK":
            return 1
        try:
            rpl = make_reply(
                txn.request,
                code,
                reason,
                to_tag=txn.to_tag or None,
                extra_headers=reply_headers(ctx, code),
                body=reply_body(ctx),
                server=self.proc.server_header or None,
            )
            data = rpl.to_bytes()
        except (ValueError, SipParseError) as exc:
            log(L_ERR, f"cannot build reply {code}: {exc}", ORIGIN)
            return -1
        if code >= 200:
            self.cancel_branches(txn)  # a local final reply ends the open branches
        self.stats.add(self.stats.rpl_generated)
        ok = self.send_upstream(txn, data, code, reason)
        ctx.replied = code
        if ok and self.lres_callback:
            self._local_response_sent(ctx, rpl)
        return 1 if ok else -1

    def _local_response_sent(self, ctx: MsgContext, rpl: SipMessage) -> None:
        """Kamailio's tm:local-response-sent: a reply tm generated (t_reply, the automatic
        100) was sent; the callback gets that reply as its message."""
        rctx = _clone(ctx, rpl, EVENT_ROUTE, {})
        run_event(self.proc, self.lres_callback, "tm:local-response-sent", rctx)

    def send_upstream(self, txn: Transaction, data: bytes, code: int, reason: str = "") -> bool:
        st = self.stats
        try:
            txn.send(data, txn.reply_addr)
            ok = True
            st.add(st.rpl_sent)
        except (OSError, ValueError) as exc:
            log(L_ERR, f"sending reply {code} failed: {exc}", ORIGIN)
            ok = False
        txn.status = code
        txn.last_reply = data
        txn.status_reason = reason
        if code >= 200 and not txn.final_sent:
            txn.final_sent = True
            st.final(code)
            if txn.is_invite and code >= 300:
                self._await_ack(txn)
            else:
                self.schedule_wait(txn)
        return ok

    def late_retransmission(self, key: tuple[Any, ...] | None) -> bool:
        """A retransmission of a completed transaction already removed: absorbed."""
        stone = self.table.tombstone(key, self.timers.now())
        if stone is None:
            return False
        # RFC 6026: an accepted INVITE (2xx, end-to-end) absorbs; others get the reply again
        if stone.last_reply and not (stone.is_invite and 200 <= stone.status < 300):
            try:
                stone.send(stone.last_reply, stone.reply_addr)
            except (OSError, ValueError) as exc:
                log(L_ERR, f"reply retransmission failed: {exc}", ORIGIN)
        return True

    def retransmit_reply(self, txn: Transaction) -> bool:
        if not txn.last_reply:
            return False
        try:
            txn.send(txn.last_reply, txn.reply_addr)
        except (OSError, ValueError) as exc:
            log(L_ERR, f"reply retransmission failed: {exc}", ORIGIN)
            return False
        return True

    def _await_ack(self, txn: Transaction) -> None:
        """Negative final reply to INVITE: retransmit it (UDP, timer G) until the ACK comes."""
        deadline = self.timers.now() + 64 * txn.t1
        if txn.proto != "udp":
            txn.reply_timer = self.timers.call_later(64 * txn.t1, lambda: self.remove(txn))
            return
        interval = [txn.t1]

        def fire() -> None:
            if txn.done or txn.ack_received:
                return
            if self.timers.now() >= deadline:
                self.remove(txn)  # timer H: no ACK
                return
            self.retransmit_reply(txn)
            interval[0] = min(interval[0] * 2, txn.t2)
            txn.reply_timer = self.timers.call_later(interval[0], fire)

        txn.reply_timer = self.timers.call_later(interval[0], fire)

    def schedule_wait(self, txn: Transaction, delay: float | None = None) -> None:
        if txn.wait is None and not txn.done:
            txn.wait = self.timers.call_later(
                self.wt if delay is None else delay, lambda: self.remove(txn)
            )
            self.stats.add(self.stats.waiting)

    def remove(self, txn: Transaction) -> None:
        for b in txn.branches:
            b.stop_timers()
            if b.cancel_retr is not None:
                b.cancel_retr.cancel()
        for t in (txn.reply_timer, txn.wait):
            if t is not None:
                t.cancel()
        if self.table.remove(txn):
            st = self.stats
            st.add(st.freed)
            if txn.wait is not None:
                st.add(st.waiting, -1)
        if txn.key and txn.final_sent and not txn.replicate:
            # timer J / L (64*T1) for late retransmissions, minus the wait already spent
            left = 64 * txn.t1 - self.wt
            if left > 0:
                stone = Tombstone(
                    self.timers.now() + left,
                    txn.status,
                    txn.last_reply,
                    txn.send,
                    txn.reply_addr,
                    txn.is_invite,
                )
                self.table.bury(txn.key, stone)

    def _ensure_sweep(self) -> None:
        if self._sweep is None:
            self._sweep = self.timers.call_later(_SWEEP_EVERY, self._do_sweep)

    def _do_sweep(self) -> None:
        """Remove transactions past their lifetime (never-replied t_newtran, lost timers)."""
        self._sweep = None
        self.clean()
        self.table.expire_tombstones(self.timers.now())
        if len(self.table) or self.table.tombstones:
            self._ensure_sweep()

    def clean(self) -> int:
        now = self.timers.now()
        removed = 0
        for txn in self.table:
            if now - txn.created <= txn.lifetime + self.wt:
                continue
            if not txn.final_sent and not txn.replicate and txn.method != "CANCEL":
                self.reply(txn.ctx, txn, 408, REASONS[408])
            self.remove(txn)
            removed += 1
        return removed

    # -- relaying requests -----------------------------------------------------------------

    def relay(
        self,
        ctx: MsgContext,
        proto: str | None = None,
        addr: tuple[str, int] | None = None,
        flags: int = 0,
    ) -> int:
        """t_relay and variants, as Kamailio's _w_t_relay_to: 1 relayed (also a retransmission
        or an ACK absorbed: "happily done"), -1 error, 0 outside request and failure routes."""
        msg = ctx.msg
        if not ctx.route_type & (REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_FAILURE_ROUTE):
            log(L_CRIT, f"t_relay: unsupported route type: {ctx.route_type}", ORIGIN)
            return 0
        if not msg.is_request:
            log(L_ERR, "t_relay: cannot relay a reply", ORIGIN)
            return -1
        if proto is not None and proto not in SUPPORTED_PROTOS:
            log(L_ERR, f"t_relay: transport {proto} is not supported", ORIGIN)
            return -1
        method = msg.method.upper()
        if method == "ACK":
            return self._relay_ack(ctx, proto, addr)
        if method == "CANCEL" and not isinstance(ctx.extra.get(EXTRA_T), Transaction):
            inv = self.invite_for_cancel(ctx)
            if inv is not None:
                return self._relay_cancel(ctx, inv)
        in_failure = bool(ctx.route_type & (FAILURE_ROUTE | BRANCH_FAILURE_ROUTE))
        txn = ctx.extra.get(EXTRA_T)
        if not isinstance(txn, Transaction):
            rc, new = self.new_transaction(ctx, auto100=not flags & 1)
            if rc <= 0 or new is None:
                return 1 if rc == 0 else -1
            txn = new
        if txn.final_sent and not txn.is_invite:
            log(L_ERR, "t_relay: transaction already completed", ORIGIN)
            return -1
        if txn.final_sent and txn.status >= 200:
            log(L_ERR, f"t_relay: transaction already replied with {txn.status}", ORIGIN)
            return -1
        if flags & 2:
            txn.disable_internal_reply = True
        targets = self._targets(ctx, txn, in_failure)
        if not targets:
            log(L_ERR, "t_relay: no branches for forwarding", ORIGIN)
            return -1
        if txn.relayed:
            self._new_leg(txn)
        else:
            txn.failure_uri = ctx.ruri
            txn.failure_dst = ctx.dst_uri
            txn.flags = ctx.flags
            if txn.saved_request is None:
                txn.saved_request = msg.copy()  # failure-route branches start from this
        for key in _CONSUMED:
            ctx.extra.pop(key, None)
        txn.relayed = True
        sent = 0
        for uri, dst, path in targets:
            b = self._add_branch(txn, ctx, uri, dst, proto, addr, path)
            sent += b is not None and b.sent
        if sent:
            return 1
        if not in_failure and not txn.final_sent and not txn.disable_internal_reply:
            self.reply(ctx, txn, 477, REASONS[477])
        return -1

    def _targets(
        self, ctx: MsgContext, txn: Transaction, in_failure: bool
    ) -> list[tuple[str, str | None, str | None]]:
        """(URI, dst URI, Path) per branch: Path None for the R-URI (the request as it is),
        the branch's own Path ("" for none) for the destination set."""
        extra = list(ctx.extra.get("branches") or ())
        bdst: dict[str, str] = ctx.extra.get("branch_dst") or {}
        bpath: dict[str, str] = ctx.extra.get(BRANCH_PATH) or {}
        out: list[tuple[str, str | None, str | None]] = []
        include_ruri = True
        if in_failure:
            # as Kamailio: a new leg retries the R-URI only when it was changed there
            start = ctx.extra.get(EXTRA_START)
            unchanged = start is not None and start == (ctx.ruri, ctx.dst_uri)
            include_ruri = not (unchanged and extra)
        if include_ruri:
            out.append((ctx.ruri, ctx.dst_uri, None))
        for item in extra:
            if isinstance(item, dict):
                uri = str(item.get("uri") or "")
                dst, path = item.get("dst_uri"), item.get("path")
            else:
                uri, dst, path = str(item), bdst.get(str(item)), bpath.get(str(item))
            if uri:
                out.append((uri, str(dst) if dst else None, str(path or "")))
        return out

    def _new_leg(self, txn: Transaction) -> None:
        """Serial forking: a new set of branches; older replies per failure_reply_mode."""
        txn.leg += 1
        mode = self.failure_reply_mode
        old = [b for b in txn.branches if b.is_final]
        if mode in (1, 3):
            for b in old:
                b.dropped = True
        elif mode == 2:
            last_leg = max((b.leg for b in old), default=-1)
            for b in old:
                if b.leg != last_leg:
                    b.dropped = True

    def _add_branch(
        self,
        txn: Transaction,
        ctx: MsgContext,
        uri: str,
        dst: str | None,
        proto: str | None,
        addr: tuple[str, int] | None,
        path: str | None = None,
    ) -> Branch | None:
        if len(txn.branches) >= self.max_total_branches:
            log(L_ERR, "too many branches", ORIGIN)
            return None
        idx = len(txn.branches)
        b = Branch(
            index=idx,
            leg=txn.leg,
            uri=uri,
            dst_uri=dst,
            proto=proto or "udp",
            addr=("", 0),
            branch_id=self.table.branch_id(txn, idx),
            bflags=ctx.bflags if idx == 0 else 0,
        )
        txn.branches.append(b)
        # failure routes: ctx.msg is already a copy of the request saved at the first relay
        out = ctx.msg.copy()
        if path is not None:
            try:
                swap_path(out, str(ctx.extra.get(RURI_PATH) or ""), path)
            except ValueError as exc:
                log(L_ERR, f"branch {idx}: bad Path {path!r}: {exc}", ORIGIN)
                return b
        if txn.on_branch:
            bctx = self._branch_ctx(ctx, txn, b, out, uri, dst)
            self.run(txn.on_branch, bctx)
            if bctx.drop:
                log(L_DBG, f"branch {idx} dropped in branch route", ORIGIN)
                return b
            out = bctx.msg
            uri = bctx.ruri
            dst = bctx.dst_uri
            b.uri, b.dst_uri, b.bflags = uri, dst, bctx.bflags
        if addr is not None:
            use = proto or (ctx.proto if ctx.proto in SUPPORTED_PROTOS else "udp")
            ip = self.resolve(addr[0])
            hop: tuple[str, Address] | None = None if ip is None else (use, (ip, int(addr[1])))
        else:
            hop = self.next_hop(dst or uri, proto)
        if hop is None:
            return b
        use, dest = hop
        if use not in SUPPORTED_PROTOS:
            log(L_ERR, f"cannot relay over {use}: transport not supported", ORIGIN)
            return b
        b.proto, b.addr = use, dest
        try:
            out.ruri = uri
            _fix_received(ctx, out)
            out.insert_header(
                "Via", f"SIP/2.0/{use.upper()} {self.local_sent_by(ctx, use)};branch={b.branch_id}"
            )
            data = out.to_bytes()
        except (ValueError, SipParseError) as exc:
            log(L_ERR, f"cannot build branch {idx}: {exc}", ORIGIN)
            return b
        b.request, b.data = out, data
        if not self.onsend_ok(ctx, use, dest, data):
            log(L_DBG, f"branch {idx} dropped in onsend route", ORIGIN)
            return b
        if not self.send(use, dest, data, ctx.send):
            return b
        b.sent = True
        if use == "udp":
            b.retr_interval = txn.t1
            b.retr = self.timers.call_later(txn.t1, lambda: self._retransmit(txn, b))
        self.start_fr(txn, b, txn.fr)
        return b

    def _branch_ctx(
        self,
        ctx: MsgContext,
        txn: Transaction,
        b: Branch,
        out: SipMessage,
        uri: str,
        dst: str | None,
    ) -> MsgContext:
        extra = {k: v for k, v in ctx.extra.items() if k not in _CONSUMED and k != EXTRA_REPLY}
        bctx = _clone(ctx, out, BRANCH_ROUTE, extra)
        bctx.new_uri = uri if uri != out.ruri else None
        bctx.dst_uri = dst
        bctx.bflags = b.bflags
        bctx.extra[EXTRA_T] = txn
        bctx.extra[EXTRA_BRANCH] = b.index
        return bctx

    def onsend_ok(self, ctx: MsgContext, proto: str, addr: Address, data: bytes) -> bool:
        """Run ksr_onsend_route with the received message; False when it dropped the send."""
        return onsend_ok(ctx, proto, addr, data)

    def start_fr(self, txn: Transaction, b: Branch, delay: float) -> None:
        if b.fr is not None:
            b.fr.cancel()
        left = txn.lifetime - (self.timers.now() - txn.created)
        b.fr = self.timers.call_later(max(0.0, min(delay, left)), lambda: self._fr_timeout(txn, b))

    def restart_fr(self, txn: Transaction) -> None:
        """Running branches take a new final response timeout (t_set_fr) at once."""
        for b in txn.branches:
            if b.sent and not b.is_final and b.fr is not None:
                self.start_fr(txn, b, txn.fr_inv if (txn.is_invite and b.provisional) else txn.fr)

    def _retransmit(self, txn: Transaction, b: Branch) -> None:
        if txn.done or b.is_final or not b.sent:
            return
        if b.provisional:
            if txn.is_invite:
                return  # timer A stops on a provisional reply
            b.retr_interval = txn.t2  # timer E continues at T2
        else:
            b.retr_interval = min(b.retr_interval * 2, txn.t2)
        self.send(b.proto, b.addr, b.data)
        b.retr = self.timers.call_later(b.retr_interval, lambda: self._retransmit(txn, b))

    def _fr_timeout(self, txn: Transaction, b: Branch) -> None:
        if txn.done or b.is_final:
            return
        log(L_DBG, f"branch {b.index} of {txn.method} {txn.call_id} timed out", ORIGIN)
        b.timed_out = True
        if txn.is_invite and b.provisional and not b.cancel_data:
            self._send_cancel(txn, b)
        code = 487 if txn.canceled else 408
        self._branch_final(txn, b, code, None)

    # -- ACK and CANCEL ------------------------------------------------------------------------

    def _relay_ack(self, ctx: MsgContext, proto: str | None, addr: tuple[str, int] | None) -> int:
        key = server_key(ctx.msg)
        txn = self.table.get(key)
        if txn is not None and not txn.done and txn.is_invite:
            if txn.final_sent and txn.status >= 300:
                self.absorb_ack(txn)
                return 1  # Kamailio t_relay_to: ACK to a negative reply absorbed, "done"
        stone = self.table.tombstone(key, self.timers.now())
        if stone is not None and stone.status >= 300:
            return 1  # late ACK of a negative reply
        # end-to-end ACK (2xx) or unknown: forwarded statelessly
        if addr is not None:
            ip = self.resolve(addr[0])
            hop = None if ip is None else (proto or ctx.proto, (ip, int(addr[1])))
        else:
            hop = self.next_hop(ctx.dst_uri or ctx.ruri, proto)
        if hop is None:
            return -1
        use, dest = hop
        if use not in SUPPORTED_PROTOS:
            log(L_ERR, f"cannot relay over {use}", ORIGIN)
            return -1
        try:
            out = ctx.msg.copy()
            out.ruri = ctx.ruri
            _fix_received(ctx, out)
            out.insert_header(
                "Via",
                f"SIP/2.0/{use.upper()} {self.local_sent_by(ctx, use)};branch={_ack_branch(ctx)}",
            )
            data = out.to_bytes()
        except (ValueError, SipParseError) as exc:
            log(L_ERR, f"cannot relay ACK: {exc}", ORIGIN)
            return -1
        if not self.onsend_ok(ctx, use, dest, data):
            return -1
        return 1 if self.send(use, dest, data, ctx.send) else -1

    def absorb_ack(self, txn: Transaction) -> None:
        """ACK to our negative final reply: stop timer G, keep the transaction a while (I)."""
        txn.ack_received = True
        if txn.reply_timer is not None:
            txn.reply_timer.cancel()
            txn.reply_timer = None
        self.schedule_wait(txn, 0.0 if txn.proto != "udp" else None)

    def _relay_cancel(self, ctx: MsgContext, inv: Transaction) -> int:
        rc, ctxn = self.new_transaction(ctx, auto100=False)
        if rc == 0:
            return 1  # Kamailio t_forward_cancel: a retransmission, nothing to do
        if ctxn is None:
            return -1
        reason = ctx.msg.get("Reason")
        inv.canceled = True
        if reason and not inv.no_e2e_cancel_reason:
            inv.cancel_reason = reason
        self.cancel_branches(inv)
        self.reply(ctx, ctxn, 200, "canceling")
        return 1

    def cancel_branches(
        self, txn: Transaction, which: Callable[[Branch], bool] | None = None
    ) -> int:
        """CANCEL open INVITE branches (without a provisional: once one arrives). Count."""
        if not txn.is_invite:
            return 0
        n = 0
        for b in txn.branches:
            if not b.sent or b.is_final or b.canceled or (which is not None and not which(b)):
                continue
            b.canceled = True
            n += 1
            if b.provisional:
                self._send_cancel(txn, b)
            else:
                b.cancel_pending = True
                if b.retr is not None:  # cancel_b_method 1: stop retransmitting the INVITE
                    b.retr.cancel()
                    b.retr = None
        return n

    def _send_cancel(self, txn: Transaction, b: Branch) -> None:
        req = b.request
        if req is None:
            return
        b.canceled = True
        b.cancel_pending = False
        headers: list[tuple[str, str]] = []
        try:
            top = req.top_via
            if top is None:
                return
            headers.append(("Via", str(top)))
            for name in ("From", "To", "Call-ID"):
                value = req.get(name)
                if value is not None:
                    headers.append((name, value))
            headers.append(("CSeq", f"{txn.cseq_num} CANCEL"))
            headers.extend(("Route", r) for r in req.get_all("Route"))
            headers.append(("Max-Forwards", "70"))
            if txn.cancel_reason:
                headers.append(("Reason", txn.cancel_reason))
            cancel = SipMessage.request("CANCEL", b.uri, headers)
            b.cancel_data = cancel.to_bytes()
        except (ValueError, SipParseError) as exc:
            log(L_ERR, f"cannot build CANCEL: {exc}", ORIGIN)
            return
        self.send(b.proto, b.addr, b.cancel_data)
        if b.proto == "udp":
            deadline = self.timers.now() + txn.fr
            interval = [txn.t1]

            def fire() -> None:
                if txn.done or not b.cancel_data or self.timers.now() >= deadline:
                    return
                self.send(b.proto, b.addr, b.cancel_data)
                interval[0] = min(interval[0] * 2, txn.t2)
                b.cancel_retr = self.timers.call_later(interval[0], fire)

            b.cancel_retr = self.timers.call_later(interval[0], fire)

    def _send_ack(self, txn: Transaction, b: Branch, reply: SipMessage) -> None:
        """Hop-by-hop ACK for a negative final reply to an INVITE branch (RFC 3261 17.1.1.3)."""
        req = b.request
        if req is None:
            return
        try:
            top = req.top_via
            if top is None:
                return
            headers: list[tuple[str, str]] = [("Via", str(top))]
            frm = req.get("From")
            if frm is not None:
                headers.append(("From", frm))
            to = reply.get("To") or req.get("To")
            if to is not None:
                headers.append(("To", to))
            headers.append(("Call-ID", txn.call_id))
            headers.append(("CSeq", f"{txn.cseq_num} ACK"))
            headers.extend(("Route", r) for r in req.get_all("Route"))
            headers.append(("Max-Forwards", "70"))
            b.ack_data = SipMessage.request("ACK", b.uri, headers).to_bytes()
        except (ValueError, SipParseError) as exc:
            log(L_ERR, f"cannot build ACK: {exc}", ORIGIN)
            return
        self.send(b.proto, b.addr, b.ack_data)

    # -- replies received ------------------------------------------------------------------

    def on_reply(self, ctx: MsgContext) -> bool:
        """Router reply hook: True when the reply belonged to one of our transactions."""
        msg = ctx.msg
        try:
            via = msg.top_via
            cseq = msg.cseq
        except SipParseError:
            return False
        if via is None or cseq is None or not via.branch:
            return False
        found = self.table.parse_branch(via.branch)
        if found is None:
            return False
        txn, idx = found
        b = txn.branches[idx]
        self.stats.add(self.stats.rpl_received)
        method = cseq[1].upper()
        if method == "CANCEL":
            b.cancel_data = b""  # our CANCEL was answered: stop retransmitting it
            if b.cancel_retr is not None:
                b.cancel_retr.cancel()
                b.cancel_retr = None
            return True
        if method != txn.method or cseq[0] != txn.cseq_num:
            log(L_DBG, f"reply for {method} does not match {txn.method}: absorbed", ORIGIN)
            return True
        code = int(msg.status)
        if b.is_final and code >= 300:
            if b.ack_data:  # our ACK got lost: the UAS retransmits its final reply
                self.send(b.proto, b.addr, b.ack_data)
            return True
        if b.is_final and code < 200:
            return True
        ctx.route_type = TM_ONREPLY_ROUTE
        ctx.flags = txn.flags
        ctx.extra[EXTRA_T] = txn
        ctx.extra[EXTRA_BRANCH] = idx
        ctx.extra[EXTRA_PREV] = (b.replied, any(x.replied for x in txn.branches))
        if txn.on_reply and not txn.replicate:
            self.run(txn.on_reply, ctx)
        b.replied = True
        b.last_code = code
        txn.last_received = code
        if code < 200:
            self._provisional(txn, b, ctx, code)
        elif code < 300:
            self._success(txn, b, ctx, code)
        else:
            if txn.is_invite:
                self._send_ack(txn, b, msg)
            if ctx.drop:
                log(L_WARN, f"drop of final reply {code} ignored", ORIGIN)
            self._branch_final(txn, b, code, msg)
        return True

    def _provisional(self, txn: Transaction, b: Branch, ctx: MsgContext, code: int) -> None:
        first = not b.provisional
        b.provisional = max(b.provisional, code)
        if txn.is_invite:
            if b.retr is not None:
                b.retr.cancel()
                b.retr = None
            if first or self.restart_fr_each:
                self.start_fr(txn, b, txn.fr_inv)
            if b.cancel_pending:
                self._send_cancel(txn, b)
                return
        if code == 100 or ctx.drop or txn.final_sent or txn.replicate:
            return
        self._relay_reply(txn, ctx, code)

    def _success(self, txn: Transaction, b: Branch, ctx: MsgContext, code: int) -> None:
        first = not b.is_final
        if first:
            b.final_code = code
            b.reply = ctx.msg
            b.stop_timers()
        if txn.replicate:
            if not txn.final_sent:
                txn.final_sent = True
                self.schedule_wait(txn)
            return
        if txn.is_invite or not txn.final_sent:
            # every 2xx to an INVITE goes upstream (forking, retransmissions): ACK is end-to-end
            self._relay_reply(txn, ctx, code)
        if first and txn.is_invite:
            self.cancel_branches(txn, lambda x: x is not b)

    def _relay_reply(self, txn: Transaction, ctx: MsgContext, code: int) -> None:
        try:
            out = ctx.msg.copy()
            out.remove_top_via()
            if out.top_via is None:
                log(L_ERR, f"reply {code} has no Via left: not relayed", ORIGIN)
                return
            data = out.to_bytes()
        except (ValueError, SipParseError) as exc:
            log(L_ERR, f"cannot relay reply {code}: {exc}", ORIGIN)
            return
        if not self.onsend_ok(ctx, txn.proto, txn.reply_addr, data):
            log(L_DBG, f"reply {code} dropped in onsend route", ORIGIN)
            return
        self.send_upstream(txn, data, int(out.status), str(out.reason))

    def _branch_final(
        self, txn: Transaction, b: Branch, code: int, reply: SipMessage | None
    ) -> None:
        b.final_code = code
        b.reply = reply
        b.stop_timers()
        if code < 300 or txn.replicate:
            if txn.replicate and not any(x.sent and not x.is_final for x in txn.branches):
                txn.final_sent = True
                self.schedule_wait(txn)
            return
        if txn.on_branch_failure:
            bctx = self.failure_ctx(txn, b, BRANCH_FAILURE_ROUTE)
            self.run(txn.on_branch_failure, bctx)
        self.check_completion(txn)

    def check_completion(self, txn: Transaction) -> None:
        """All branches final and nothing sent upstream: failure route, then the best reply."""
        if txn.final_sent or txn.in_failure or txn.done:
            return
        if any(b.sent and not b.is_final for b in txn.branches):
            return
        winner = self.pick(txn)
        if winner is None:
            if txn.relayed:
                self.reply(txn.ctx, txn, 500, REASONS[500])
            return
        txn.winner = winner.index
        if txn.on_failure:
            name, txn.on_failure = txn.on_failure, ""  # re-armed only by t_on_failure there
            fctx = self.failure_ctx(txn, winner, FAILURE_ROUTE)
            txn.in_failure = True
            try:
                self.run(name, fctx)
            finally:
                txn.in_failure = False
            if txn.final_sent or txn.done:
                return
            if any(b.sent and not b.is_final for b in txn.branches):
                return  # serial forking: a new leg is running
            winner = self.pick(txn) or winner
        self.relay_final(txn, winner)

    def pick(self, txn: Transaction, include_dropped: bool = True) -> Branch | None:
        """Best negative reply (RFC 3261 16.7 step 6): 6xx, then 3xx < 4xx < 5xx."""
        finals = [b for b in txn.branches if b.final_code >= 300]
        live = [b for b in finals if not b.dropped]
        cands = live or (finals if include_dropped else [])
        if not cands:
            return None
        six = not txn.disable_6xx

        def rank(b: Branch) -> tuple[int, int, int]:
            code = b.final_code
            cls = code // 100
            if six and cls == 6:
                return (0, 0, code)
            sub = 1
            if cls == 4:
                sub = 0 if code in _PREFERRED_4XX else (2 if code == 408 and b.reply is None else 1)
            return (cls, sub, code)

        return min(cands, key=rank)

    def relay_final(self, txn: Transaction, b: Branch) -> None:
        if txn.final_sent:
            return
        if b.reply is None:
            code = b.final_code
            self.reply(txn.ctx, txn, code, REASONS.get(code, "Request Failed"))
            return
        try:
            out = b.reply.copy()
            out.remove_top_via()
            if out.status == 503:
                out.status, out.reason = 500, REASONS[500]  # RFC 3261 16.7 step 6
            data = out.to_bytes()
        except (ValueError, SipParseError) as exc:
            log(L_ERR, f"cannot relay final reply: {exc}", ORIGIN)
            self.reply(txn.ctx, txn, 500, REASONS[500])
            return
        self.send_upstream(txn, data, int(out.status), str(out.reason))

    def failure_ctx(self, txn: Transaction, b: Branch, route_type: int) -> MsgContext:
        """Context of failure / branch-failure routes: the request as relayed, not the reply."""
        base = txn.saved_request or txn.request
        msg = base.copy()
        orig = txn.ctx
        extra = {
            k: v
            for k, v in orig.extra.items()
            if k not in _CONSUMED
            and k not in ("reply_headers", "reply_body", EXTRA_REPLY, EXTRA_PENDING)
        }
        fctx = MsgContext(
            msg,
            txn.src,
            orig.dst,
            txn.proto,
            txn.send,
            self.proc,
            route_type=route_type,
            flags=txn.flags,
            bflags=b.bflags,
            msg_id=orig.msg_id,
            extra=extra,
        )
        fctx.force_rport = orig.force_rport
        uri = txn.failure_uri
        fctx.new_uri = uri if uri is not None and uri != msg.ruri else None
        fctx.dst_uri = txn.failure_dst
        self.attach(fctx, txn)
        fctx.extra[EXTRA_BRANCH] = b.index
        fctx.extra[EXTRA_START] = (fctx.ruri, fctx.dst_uri)
        return fctx

    # -- local requests (t_replicate, t_uac_send) ---------------------------------------------

    def replicate(self, ctx: MsgContext, uri: str) -> int:
        """Stateful copy of the request to ``uri`` ($du / R-URI when empty); replies absorbed."""
        msg = ctx.msg
        if not msg.is_request or msg.method.upper() in ("ACK", "CANCEL"):
            log(L_ERR, "t_replicate: needs a request other than ACK/CANCEL", ORIGIN)
            return -1
        return self._local_txn(ctx, msg, uri or ctx.dst_uri or ctx.ruri, ctx.ruri)

    def _local_txn(self, ctx: MsgContext, msg: SipMessage, hop_uri: str, ruri: str) -> int:
        try:
            cseq = msg.cseq
        except SipParseError:
            cseq = None
        if cseq is None:
            log(L_ERR, "local transaction: bad CSeq", ORIGIN)
            return -1
        self._owner()
        txn = Transaction(
            tid=self.table.next_id(),
            label=self._next_label(),
            key=(),
            method=msg.method.upper(),
            ctx=ctx,
            request=msg,
            src=ctx.src,
            proto=ctx.proto,
            send=ctx.send,
            reply_addr=ctx.src,
            call_id=str(msg.call_id or ""),
            cseq_num=cseq[0],
            created=self.timers.now(),
            fr=self.fr,
            fr_inv=self.fr_inv,
            t1=self.t1,
            t2=self.t2,
            lifetime=self.max_inv if msg.method.upper() == "INVITE" else self.max_noninv,
            replicate=True,
        )
        self.table.add(txn)
        st = self.stats
        st.add(st.created)
        st.add(st.total_local)
        self._ensure_sweep()
        lctx = _clone(ctx, msg, ctx.route_type, {})
        lctx.extra[EXTRA_T] = txn
        txn.relayed = True
        b = self._add_branch(txn, lctx, ruri, hop_uri if hop_uri != ruri else None, None, None)
        if b is None or not b.sent:
            self.remove(txn)
            return -1
        return 1

    def uac_send(
        self, ctx: MsgContext, method: str, ruri: str, nexthop: str, hdrs: str, body: str
    ) -> int:
        method = method.strip().upper()
        if not method or not ruri or method in ("ACK", "CANCEL"):
            log(L_ERR, "t_uac_send: bad method or R-URI", ORIGIN)
            return -1
        pairs = parse_header_lines(hdrs) if hdrs else []
        if pairs is None:
            return -1
        names = {n.lower() for n, _ in pairs}
        try:
            msg = SipMessage.request(method, ruri, [])
            if "from" not in names and "f" not in names:
                msg.append_header("From", f"<sip:pykemi@{ctx.dst[0]}>;tag={secrets.token_hex(8)}")
            if "to" not in names and "t" not in names:
                msg.append_header("To", f"<{ruri}>")
            if "call-id" not in names and "i" not in names:
                msg.append_header("Call-ID", f"{secrets.token_hex(12)}@{ctx.dst[0]}")
            if "cseq" not in names:
                msg.append_header("CSeq", f"10 {method}")
            if "max-forwards" not in names:
                msg.append_header("Max-Forwards", "70")
            for name, value in pairs:
                msg.append_header(name, value)
            msg.body = body.encode("utf-8", "surrogateescape")
        except (ValueError, SipParseError) as exc:
            log(L_ERR, f"t_uac_send: {exc}", ORIGIN)
            return -1
        if self.event_callback and self._local_request_dropped(ctx, msg):
            return -1
        return self._local_txn(ctx, msg, nexthop or ruri, ruri)

    def _local_request_dropped(self, ctx: MsgContext, msg: SipMessage) -> bool:
        """tm:local-request (Kamailio's t_uac): the callback sees the request tm is about to
        send; what it changes is sent, a drop cancels the sending."""
        lctx = _clone(ctx, msg, LOCAL_ROUTE, {})
        done = run_event(self.proc, self.event_callback, "tm:local-request", lctx, LOCAL_ROUTE)
        if done is None or not done.drop:
            return False
        log(L_DBG, f"tm:local-request dropped {msg.method} to {msg.ruri}", ORIGIN)
        return True


def _clone(ctx: MsgContext, msg: SipMessage, route_type: int, extra: dict[str, Any]) -> MsgContext:
    """A context for a callback on ``msg`` (flags and addresses kept; $ru/$du/drop reset)."""
    out = MsgContext(
        msg,
        ctx.src,
        ctx.dst,
        ctx.proto,
        ctx.send,
        ctx.proc,
        route_type=route_type,
        flags=ctx.flags,
        bflags=ctx.bflags,
        msg_id=ctx.msg_id,
        extra=extra,
    )
    out.force_rport = ctx.force_rport
    out.received_at = ctx.received_at
    return out


def _fix_received(ctx: MsgContext, out: SipMessage) -> None:
    """received/rport on the sender's Via of the copy we relay (RFC 3261 18.2.1, RFC 3581)."""
    via = out.top_via
    if via is None:
        return
    src_ip, src_port = ctx.src
    want_rport = via.rport is not None or ctx.force_rport
    host = via.host.strip("[]").lower()
    if host == src_ip.lower() and not want_rport:
        return
    params = {k: v for k, v in via.params.items() if k.lower() not in ("received", "rport")}
    params["received"] = src_ip
    if want_rport:
        params["rport"] = str(src_port)
    out.replace_top_via(Via(via.protocol, via.host, via.port, params))


def _ack_branch(ctx: MsgContext) -> str:
    """Stateless branch for a forwarded ACK: the same for its retransmissions."""
    msg = ctx.msg
    try:
        top = msg.top_via
        cseq = msg.cseq
    except SipParseError:
        top, cseq = None, None
    material = "\x00".join(
        (
            str(msg.call_id or ""),
            "" if cseq is None else str(cseq[0]),
            "" if top is None else str(top.branch or ""),
            ctx.ruri,
        )
    )
    digest = hashlib.md5(material.encode("utf-8", "surrogateescape"), usedforsecurity=False)
    return MAGIC + "sl" + digest.hexdigest()


_STATUS_RE: dict[str, re.Pattern[str] | None] = {}


def status_regex(text: str) -> re.Pattern[str] | None:
    """Compiled t_check_status regex (cached; None when invalid)."""
    if text in _STATUS_RE:
        return _STATUS_RE[text]
    try:
        rx: re.Pattern[str] | None = re.compile(text)
    except re.error as exc:
        log(L_ERR, f"bad regular expression [{text}]: {exc}", ORIGIN)
        rx = None
    if len(_STATUS_RE) < 1024:
        _STATUS_RE[text] = rx
    return rx
