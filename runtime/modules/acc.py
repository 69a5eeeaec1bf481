"""``KSR.acc``: accounting to the log and to a database (Kamailio acc module).

Automatic (flag-driven) accounting needs the moment a transaction's final
reply goes upstream. pykemi's tm has no callback list for it, so when both
modules are loaded the Router hook wraps the tm instance's ``send_upstream``
(every reply sent upstream, relayed or local, passes through it); the wrapper
calls the original first and never lets an accounting error reach tm.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import column, insert, table

from .. import router as _router
from .. import tm as _tm  # noqa: F401 - registers tm's Router hook before ours (wrapping order)
from ..config.modparams import or_default
from ..core import log as klog
from ..core.pv import format_pv, get_pv
from ..db.engine import DbError, module_db
from ..db.url import DbUrlError
from ..dispatch import StartupError
from ..sip.message import SipParseError, parse_message
from . import params as _modparams

if TYPE_CHECKING:
    from ..core.context import MsgContext, ProcessState

ORIGIN = "acc"

ACC_REQUEST = "ACC: request accounted: "
ACC_MISSED = "ACC: call missed: "
ACC_ANSWERED = "ACC: transaction answered: "

_modparams.register("acc")

MAX_FLAG = 31  # script flags 0..31


def _params(proc: ProcessState) -> Mapping[str, Any]:
    return _modparams.params(proc, "acc")


def parse_extra(text: str) -> list[tuple[str, str]]:
    """``"name=$pv;name2=$pv2"`` -> [(name, pv)] (ValueError when malformed)."""
    out: list[tuple[str, str]] = []
    for item in (x.strip() for x in text.split(";")):
        if not item:
            continue
        name, eq, spec = item.partition("=")
        name, spec = name.strip(), spec.strip()
        if not eq or not name or not spec:
            raise ValueError(f"invalid extra definition [{item}] (expected name=$pv)")
        out.append((name, spec))
    return out


def parse_failed_filter(text: str) -> frozenset[int]:
    codes: set[int] = set()
    for item in (x.strip() for x in text.split(",") if text.strip()):
        if len(item) != 3 or not item.isdigit() or int(item) < 300:
            raise ValueError(f"invalid code [{item}] in failed_filter (3 digits, >= 300)")
        codes.add(int(item))
    return frozenset(codes)


def parse_comment(comment: str) -> tuple[str, str] | None:
    """``"CODE reason"`` -> (code, reason); a comment without code -> ("", comment)."""
    if not comment or "$" in comment:
        return None
    if len(comment) >= 3 and comment[:3].isdigit():
        return comment[:3], comment[3:].lstrip()
    return "", comment


# ---------------------------------------------------------------------------
# records


@dataclass
class Record:
    """The core attributes of one accounting event."""

    method: str
    from_tag: str
    to_tag: str
    call_id: str
    code: str
    reason: str
    when: float


def _request_record(ctx: MsgContext, code: str, reason: str, to_tag: str | None) -> Record:
    msg = ctx.msg
    try:
        cseq = msg.cseq
        method = cseq[1] if cseq else str(msg.method)
        from_tag = msg.from_tag or ""
        req_to_tag = msg.to_tag or ""
    except SipParseError:
        method, from_tag, req_to_tag = str(msg.method), "", ""
    return Record(
        method,
        from_tag,
        req_to_tag if to_tag is None else to_tag,
        str(msg.call_id or ""),
        code,
        reason,
        time.time(),
    )


def _extra_values(ctx: MsgContext, extra: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name, spec in extra:
        try:
            value: Any = get_pv(ctx, spec) if spec.startswith("$") else format_pv(ctx, spec)
        except Exception as exc:  # noqa: BLE001 - a bad PV must not lose the record
            klog.err(f"cannot get value of {spec} for {name}: {exc}", ORIGIN)
            value = None
        out.append((name, value))
    return out


def _time_attrs(p: Mapping[str, Any], when: float, for_db: bool) -> list[tuple[str, Any]]:
    mode = int(p.get("time_mode") or 0)
    attr = str(or_default(p, "acc", "time_attr"))
    if mode == 1:
        usec = round((when - int(when)) * 1_000_000) % 1_000_000
        if for_db:
            return [(attr, int(when)), (str(or_default(p, "acc", "time_exten")), usec)]
        return [(str(or_default(p, "acc", "time_exten")), usec)]
    if mode == 2:
        return [(attr, round(when, 3) if not for_db else when)]
    if mode in (3, 4):
        t = time.localtime(when) if mode == 3 else time.gmtime(when)
        return [(attr, time.strftime(str(or_default(p, "acc", "time_format")), t))]
    return []


def log_record(ctx: MsgContext, text: str, rec: Record) -> int:
    p = _params(ctx.proc)
    try:
        extra = parse_extra(str(p.get("log_extra") or ""))
    except ValueError as exc:
        klog.err(str(exc), ORIGIN)
        extra = []
    pairs: list[tuple[str, Any]] = [
        ("method", rec.method),
        ("from_tag", rec.from_tag),
        ("to_tag", rec.to_tag),
        ("call_id", rec.call_id),
        ("code", rec.code),
        ("reason", rec.reason),
        *_extra_values(ctx, extra),
    ]
    head = f"{text}timestamp={int(rec.when)}"
    tattrs = _time_attrs(p, rec.when, for_db=False)
    if tattrs:
        name, value = tattrs[0]
        head += f";{name}={value:.3f}" if isinstance(value, float) else f";{name}={value}"
    body = "".join(f";{k}={'' if v is None else v}" for k, v in pairs)
    klog.log(int(p["log_level"]), head + body, ORIGIN)
    return 1


def db_ready(proc: ProcessState) -> bool:
    return bool(_params(proc).get("db_url"))


def db_record(ctx: MsgContext, tname: str, rec: Record) -> int:
    """Insert the record into ``tname``; 1, or -1 (logged) on any error."""
    p = _params(ctx.proc)
    url = str(p.get("db_url") or "")
    if not url:
        klog.err("db support not configured (acc db_url is not set)", ORIGIN)
        return -1
    if "$" in tname:
        tname = format_pv(ctx, tname)
    try:
        extra = parse_extra(str(p.get("db_extra") or ""))
    except ValueError as exc:
        klog.err(str(exc), ORIGIN)
        return -1
    values: dict[str, Any] = {
        str(p["acc_method_column"]): rec.method,
        str(p["acc_from_tag_column"]): rec.from_tag,
        str(p["acc_to_tag_column"]): rec.to_tag,
        str(p["acc_callid_column"]): rec.call_id,
        str(p["acc_sip_code_column"]): rec.code,
        str(p["acc_sip_reason_column"]): rec.reason,
        str(p["acc_time_column"]): dt.datetime.fromtimestamp(int(rec.when)),
    }
    values.update(_time_attrs(p, rec.when, for_db=True))
    for name, value in _extra_values(ctx, extra):
        values[name] = None if value is None else str(value)
    t = table(tname, *(column(c) for c in values))
    try:
        module_db(ctx.proc.extra, "acc", url).execute(insert(t).values(**values))
    except (DbError, DbUrlError) as exc:
        klog.err(f"failed to insert into database: {exc}", ORIGIN)
        return -1
    return 1


# ---------------------------------------------------------------------------
# exports


def _comment(comment: str) -> tuple[str, str] | None:
    parsed = parse_comment(comment)
    if parsed is None:
        if "$" in (comment or ""):
            klog.err("cfg variable detected in the comment - not supported", ORIGIN)
        else:
            klog.err("empty comment", ORIGIN)
    return parsed


def acc_log_request(ctx: MsgContext, comment: str) -> int:
    parsed = _comment(comment)
    if parsed is None or not ctx.msg.is_request:
        return -1
    return log_record(ctx, ACC_REQUEST, _request_record(ctx, *parsed, None))


def acc_db_request(ctx: MsgContext, comment: str, dbtable: str) -> int:
    parsed = _comment(comment)
    if parsed is None or not ctx.msg.is_request:
        return -1
    if not dbtable:
        klog.err("no acc table name", ORIGIN)
        return -1
    return db_record(ctx, dbtable, _request_record(ctx, *parsed, None))


def acc_request(ctx: MsgContext, comment: str, dbtable: str) -> int:
    parsed = _comment(comment)
    if parsed is None or not ctx.msg.is_request:
        return -1
    if not dbtable:
        klog.err("no acc table name", ORIGIN)
        return -1
    rec = _request_record(ctx, *parsed, None)
    rc = log_record(ctx, ACC_REQUEST, rec)
    if db_ready(ctx.proc):
        rc = db_record(ctx, dbtable, rec)
        if rc < 0:
            klog.err("acc db request failed", ORIGIN)
    return rc


# ---------------------------------------------------------------------------
# transaction accounting (tm)


def _flag_on(flags: int, flag: Any) -> bool:
    f = int(flag if flag is not None else -1)
    return 0 <= f <= MAX_FLAG and bool(flags & (1 << f))


def account_reply(proc: ProcessState, txn: Any, data: bytes, code: int, reason: str) -> None:
    """Kamailio's acc_onreply (+ on_missed) for a reply sent upstream for ``txn``."""
    p = _params(proc)
    ctx: MsgContext = txn.ctx
    flags = int(txn.flags) | int(ctx.flags)
    if txn.method == "CANCEL" and not p.get("report_cancels"):
        return
    log_on, db_on = _flag_on(flags, p["log_flag"]), _flag_on(flags, p["db_flag"])
    missed_log = txn.is_invite and code >= 300 and _flag_on(flags, p["log_missed_flag"])
    missed_db = txn.is_invite and code >= 300 and _flag_on(flags, p["db_missed_flag"])
    if code >= 300:
        account = _flag_on(flags, p["failed_transaction_flag"])
        account = account and code not in parse_failed_filter(str(p.get("failed_filter") or ""))
    elif code >= 200:
        account = log_on or db_on
    else:
        account = (log_on or db_on) and bool(p.get("early_media"))
    if not (account or missed_log or missed_db):
        return
    to_tag = txn.to_tag
    try:
        reply = parse_message(data)
        if code < 200 and not reply.body:
            account = False  # early media: only 1xx with a body
        to_tag = reply.to_tag or to_tag
        reason = reason or str(reply.reason)
        if p.get("reason_from_hf") and reply.get("Reason"):
            reason = str(reply.get("Reason"))
    except (SipParseError, ValueError):
        pass
    rec = _request_record(ctx, str(code), reason, to_tag)
    if missed_log or missed_db:
        if missed_log:
            log_record(ctx, ACC_MISSED, rec)
        if missed_db:
            db_record(ctx, str(p["db_table_missed_calls"]), rec)
        # reported once: the first failure of the call, like Kamailio's resetflags
        for name, on in (("log_missed_flag", missed_log), ("db_missed_flag", missed_db)):
            if on:
                mask = ~(1 << int(p[name]))
                txn.flags &= mask
                ctx.flags &= mask
    if not account:
        return
    if log_on:
        log_record(ctx, ACC_ANSWERED, rec)
    if db_on:
        db_record(ctx, str(p["db_table_acc"]), rec)


def hook_tm(proc: ProcessState, tm: Any) -> None:
    """Account the replies tm sends upstream (see the module docstring)."""
    orig: Callable[..., bool] = tm.send_upstream
    early = bool(_params(proc).get("early_media"))

    def send_upstream(txn: Any, data: bytes, code: int, reason: str = "") -> bool:
        final_first = code >= 200 and not txn.final_sent
        ok = orig(txn, data, code, reason)
        if final_first or (early and 100 < code < 200):
            try:
                account_reply(proc, txn, data, code, reason)
            except Exception as exc:  # noqa: BLE001 - accounting must never break tm
                klog.err(f"accounting failed: {exc!r}", ORIGIN)
        return ok

    tm.send_upstream = send_upstream


def _init_router(router: Any) -> None:
    if "acc" not in router.registry.bases:
        return
    proc = router.proc
    p = _params(proc)
    try:
        parse_extra(str(p.get("log_extra") or ""))
        parse_extra(str(p.get("db_extra") or ""))
        parse_failed_filter(str(p.get("failed_filter") or ""))
        if p.get("db_url"):
            module_db(proc.extra, "acc", str(p["db_url"]))
    except (ValueError, DbUrlError) as exc:
        raise StartupError(f"acc: {exc}") from exc
    for name in (
        "log_flag",
        "log_missed_flag",
        "db_flag",
        "db_missed_flag",
        "failed_transaction_flag",
    ):
        value = int(p.get(name, -1))
        if value != -1 and not 0 <= value <= MAX_FLAG:
            raise StartupError(f"acc: {name} set to invalid value {value}")
    tm = proc.extra.get("tm")
    if tm is None:
        if "tm" not in router.registry.bases:
            klog.warn(
                'acc: tm is not loaded: flag-based accounting is off (loadmodule "tm.so")', ORIGIN
            )
        return
    hook_tm(proc, tm)


def _install() -> None:
    if _init_router not in _router.ROUTER_INIT_HOOKS:
        _router.ROUTER_INIT_HOOKS.append(_init_router)


_install()
