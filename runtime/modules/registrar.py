"""``KSR.registrar``: REGISTER processing and location lookups (Kamailio registrar).

Contacts live in the usrloc store of the router instance
(``pykemi.runtime.usrloc``: shared by the forked workers, durable in a
database or shared between instances through Redis). ``save`` follows RFC
3261 10.3 and Kamailio's replies (200 OK listing the bindings, errors with a
``P-Registrar-Error`` header); ``lookup`` rewrites the R-URI to the highest-q
contact, appends the others as branches (``ctx.extra["branches"]``) and sets
``$du`` from the Path or the received address.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core import log as klog
from ..core.context import FAILURE_ROUTE, REQUEST_ROUTE
from ..core.events import callback_name, faked_context, run_event
from ..core.pv import parse_pv_name, register_pv
from ..sip.message import _split_list
from ..sip.nameaddr import NameAddr, SipParseError, get_param, parse_name_addr
from ..sip.route_set import BRANCH_PATH, RURI_PATH, prepend_route
from ..sip.uri import parse_uri
from ..usrloc import (
    ON_EXPIRED,
    Q_UNSPECIFIED,
    STORE_KEY,
    Contact,
    Store,
    StoreError,
    location_store,
    matching_mode,
    method_allowed,
    methods_mask,
    new_ruid,
    setup,
    use_domain,
)
from . import params as _params
from . import sl

if TYPE_CHECKING:
    from ..core.context import MsgContext, ProcessState

MOD = "registrar"


# save() flags
SAVE_MEMORY_ONLY = 0x01
SAVE_NOREPLY = 0x02
SAVE_SOCKET_ONE = 0x04  # one contact per AOR
SAVE_NO_RANGE = 0x08

# (code, P-Registrar-Error text) of Kamailio's rerrno values
R_FINE = (200, "")
R_INV_CSEQ = (400, "Invalid CSeq number")
R_TO_USER = (400, "No username in To URI")
R_AOR_PARSE = (400, "Error while parsing AOR")
R_INV_EXP = (400, "Invalid expires param in contact")
R_INV_Q = (400, "Invalid q param in contact")
R_TO_MISS = (400, "To header not found")
R_CID_MISS = (400, "Call-ID header not found")
R_CS_MISS = (400, "CSeq header not found")
R_PARSE_EXP = (400, "Expires parse error")
R_PARSE_CONT = (400, "Contact parse error")
R_STAR_EXP = (400, "* used in contact and expires is not zero")
R_STAR_CONT = (400, "* used in contact and more than 1 contact")
R_TOO_MANY = (503, "Too many registered contacts")
R_CONTACT_LEN = (400, "Contact/received too long")
R_PATH_UNSUP = (420, "No support for found Path indicated")
R_UL_ERR = (500, "Usrloc record update failed")
REASONS = {
    200: "OK",
    400: "Bad Request",
    420: "Bad Extension",
    500: "Server Internal Error",
    503: "Service Unavailable",
}
SAVED_REPLY = "registrar.reply"
ULC = "registrar.ulc"


def _p(ctx: MsgContext) -> Mapping[str, Any]:
    return _params.params(ctx.proc, MOD)


class RegError(Exception):
    def __init__(self, err: tuple[int, str], rc: int = -1) -> None:
        super().__init__(err[1])
        self.err = err
        self.rc = rc


# ---------------------------------------------------------------------------
# AOR


def aor_of(ctx: MsgContext, uri: str) -> str:
    """Kamailio's extract_aor: user[@domain], lower-cased unless case_sensitive."""
    p = _p(ctx)
    try:
        u = parse_uri(uri)
    except SipParseError as exc:
        raise RegError(R_AOR_PARSE) from exc
    user = u.user_unescaped or ""
    host = u.host.lower()
    prefix = str(p.get("realm_prefix") or "")
    if prefix and host.startswith(prefix.lower()) and len(host) > len(prefix):
        host = host[len(prefix) :]
    if use_domain(ctx.proc):
        aor = f"{user}@{host}" if user else host
    else:
        if not user:
            raise RegError(R_TO_USER)
        aor = user
    return aor if int(p.get("case_sensitive") or 0) else aor.lower()


def _store(ctx: MsgContext) -> Store:
    return location_store(ctx.proc)


def _avp_key(spec: str) -> str:
    parsed = parse_pv_name(spec)
    if parsed is not None and parsed.inner:
        return parsed.inner
    return spec.strip("$").removeprefix("avp(").rstrip(")")


def received_avp_value(ctx: MsgContext, param: str) -> str:
    if not param:
        return ""
    values = ctx.extra.get("avps", {}).get(_avp_key(param), [])
    return str(values[-1]) if values else ""


def _socket_str(ctx: MsgContext) -> str:
    host = ctx.dst[0]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{ctx.proto}:{host}:{ctx.dst[1]}"


# ---------------------------------------------------------------------------
# save


def _expires_of(ctx: MsgContext, c: NameAddr | None, hdr: int | None, flags: int) -> int:
    p = _p(ctx)
    raw = get_param(c.params, "expires") if c is not None else None
    if raw is not None:
        try:
            e = int(raw)
        except ValueError:
            e = -1
        if e < 0:
            # Kamailio falls back to the Expires header / default for a bad param
            e = hdr if hdr is not None else _default_expires(p, flags)
        else:
            e = _apply_range(e, int(p.get("expires_range") or 0), flags)
    elif hdr is not None:
        e = _apply_range(hdr, int(p.get("expires_range") or 0), flags)
    else:
        e = _default_expires(p, flags)
    if e == 0:
        return 0
    min_e, max_e = int(p.get("min_expires") or 0), int(p.get("max_expires") or 0)
    if min_e and e < min_e:
        e = min_e
    if max_e and e > max_e:
        e = max_e
    return e


def _apply_range(e: int, pct: int, flags: int) -> int:
    if e <= 0 or pct <= 0 or flags & SAVE_NO_RANGE:
        return e
    low = e - e * min(pct, 100) // 100
    return random.randint(low, e)


def _default_expires(p: Mapping[str, Any], flags: int) -> int:
    return _apply_range(
        int(p.get("default_expires") or 0), int(p.get("default_expires_range") or 0), flags
    )


def _header_expires(ctx: MsgContext) -> int | None:
    raw = ctx.msg.get("Expires")
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError as exc:
        raise RegError(R_PARSE_EXP) from exc
    if value < 0:
        raise RegError(R_PARSE_EXP)
    return value


def _q_of(ctx: MsgContext, c: NameAddr) -> float:
    override = ctx.extra.get("registrar.q_override")
    if override is not None:
        return float(override)
    raw = get_param(c.params, "q")
    if raw is None:
        dq = int(_p(ctx)["default_q"])
        return Q_UNSPECIFIED if dq < 0 else min(dq, 1000) / 1000.0
    try:
        q = float(raw)
    except ValueError as exc:
        raise RegError(R_INV_Q) from exc
    if not 0.0 <= q <= 1.0:
        raise RegError(R_INV_Q)
    return q


def _supports_path(ctx: MsgContext) -> bool:
    tags: list[str] = []
    for v in ctx.msg.get_all("Supported"):
        tags.extend(t.strip().lower() for t in v.split(","))
    return "path" in tags


def _path_of(ctx: MsgContext) -> tuple[str, str]:
    """(path vector, received from the first Path URI) when use_path is on."""
    p = _p(ctx)
    if not int(p.get("use_path") or 0):
        return "", ""
    values = ctx.msg.get_all("Path")
    if not values:
        return "", ""
    path = ",".join(v.strip() for v in values)
    if int(p["path_mode"]) == 2 and not _supports_path(ctx):
        raise RegError(R_PATH_UNSUP)
    received = ""
    if int(p.get("path_use_received") or 0):
        try:
            first = parse_name_addr(values[0].split(",")[0])
            received = get_param(parse_uri(first.uri).params, "received") or ""
        except SipParseError:
            received = ""
    return path, received


def _contact_header(ctx: MsgContext, contacts: list[Contact], now: int) -> str:
    rcv_param = str(_p(ctx).get("received_param") or "")
    parts = []
    for c in contacts:
        s = f"<{c.contact}>"
        if c.q != Q_UNSPECIFIED:
            s += f";q={_q_str(c.q)}"
        s += f";expires={max(0, c.expires - now) if c.expires else 0}"
        if c.received and rcv_param:
            s += f';{rcv_param}="{c.received}"'
        if c.instance:
            s += f";+sip.instance={c.instance}"
        if c.reg_id:
            s += f";reg-id={c.reg_id}"
        parts.append(s)
    return ", ".join(parts)


def _q_str(q: float) -> str:
    text = f"{q:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _send(ctx: MsgContext, code: int, headers: list[str], noreply: bool) -> None:
    reason = REASONS.get(code, "OK" if code < 300 else "Server Internal Error")
    if code >= 300:
        ctx.extra["sl_error"] = (code, reason)
    if noreply:
        ctx.extra[SAVED_REPLY] = (code, reason, headers)
        return
    # Kamailio save(): replies from the request route, on success from failure routes too
    # (in a reply route the reply's contacts are stored and nothing is sent)
    if ctx.route_type & (REQUEST_ROUTE | (FAILURE_ROUTE if code < 300 else 0)):
        _reply(ctx, code, reason, headers)


def _reply(ctx: MsgContext, code: int, reason: str, headers: list[str]) -> int:
    if not ctx.msg.is_request:
        return -1  # nothing to reply to
    saved = list(ctx.extra.get("reply_headers", ()))
    ctx.extra["reply_headers"] = saved + [h + "\r\n" for h in headers]
    try:
        return sl.send_reply(ctx, code, reason)
    finally:
        ctx.extra["reply_headers"] = saved


def _error_headers(ctx: MsgContext, err: tuple[int, str]) -> list[str]:
    headers = [f"P-Registrar-Error: {err[1]}"] if err[1] else []
    retry = int(_p(ctx).get("retry_after") or 0)
    if 500 <= err[0] < 600 and retry:
        headers.append(f"Retry-After: {retry}")
    if err is R_PATH_UNSUP:
        headers.append("Unsupported: path")
        headers.extend(f"Path: {v}" for v in ctx.msg.get_all("Path"))
    return headers


def _save(ctx: MsgContext, table: str, flags: int, uri: str) -> int:
    msg = ctx.msg
    noreply = bool(flags & SAVE_NOREPLY)
    ctx.extra.pop(SAVED_REPLY, None)
    # a reply works too (Kamailio allows save in onreply_route: the Contacts a registrar
    # returned are stored; no reply is sent from there)
    try:
        rc, contacts, path = _do_save(ctx, table, flags, uri)
    except RegError as exc:
        klog.dbg(f"registrar: save failed: {exc.err[1]}")
        _send(ctx, exc.err[0], _error_headers(ctx, exc.err), noreply)
        return exc.rc
    except StoreError as exc:
        klog.err(f"registrar: location store failed: {exc}")
        _send(ctx, 500, _error_headers(ctx, R_UL_ERR), noreply)
        return -1
    headers = []
    now = int(time.time())
    if contacts:
        headers.append("Contact: " + _contact_header(ctx, contacts, now))
    p = _p(ctx)
    if path and int(p["path_mode"]) != 0 and _supports_path(ctx):
        headers.extend(f"Path: {v}" for v in msg.get_all("Path"))
    _send(ctx, 200, headers, noreply)
    return rc


def _do_save(ctx: MsgContext, table: str, flags: int, uri: str) -> tuple[int, list[Contact], str]:
    msg = ctx.msg
    p = _p(ctx)
    if not uri:
        if msg.to_addr is None:
            raise RegError(R_TO_MISS)
        uri = msg.to_addr.uri
    aor = aor_of(ctx, uri)
    callid = msg.call_id
    if callid is None:
        raise RegError(R_CID_MISS)
    cs = msg.cseq
    if cs is None:
        raise RegError(R_CS_MISS)
    cseq = cs[0]
    try:
        parsed = msg.contacts
    except SipParseError as exc:
        raise RegError(R_PARSE_CONT) from exc
    hdr_exp = _header_expires(ctx)
    star = any(c.uri == "*" for c in parsed)
    if star:
        if hdr_exp != 0:
            raise RegError(R_STAR_EXP)
        if len(parsed) > 1:
            raise RegError(R_STAR_CONT)
    path, path_rcv = _path_of(ctx)
    store = _store(ctx)
    if star:
        store.update(table, aor, lambda cur: ([], 3))
        return 3, [], path
    if not parsed:
        return 4, store.get(table, aor), path
    now = int(time.time())
    max_size = int(p.get("contact_max_size") or 0)
    received = path_rcv or received_avp_value(ctx, str(p.get("received_avp") or ""))
    allow = ctx.msg.get_all("Allow")
    methods = methods_mask([m for v in allow for m in v.split(",")] if allow else None)
    incoming: list[tuple[NameAddr, int, float]] = []
    for c in parsed:
        if max_size and len(c.uri) > max_size:
            raise RegError(R_CONTACT_LEN)
        try:
            parse_uri(c.uri)
        except SipParseError as exc:
            raise RegError(R_PARSE_CONT) from exc
        incoming.append((c, _expires_of(ctx, c, hdr_exp, flags), _q_of(ctx, c)))
    max_contacts = int(p.get("max_contacts") or 0)
    mode = matching_mode(ctx.proc)
    socket = _socket_str(ctx)
    ua = ctx.msg.get("User-Agent") or ""

    def matches(old: Contact, new_uri: str) -> bool:
        if old.contact != new_uri:
            return False
        if mode == 1:
            return old.callid == callid
        if mode == 2:
            return old.path == path
        return True

    def apply(current: list[Contact]) -> tuple[list[Contact], int]:
        result = list(current)
        existed = bool(current)
        inserted = updated = deleted = 0
        for c, expires, q in incoming:
            old = next((o for o in result if matches(o, c.uri)), None)
            if old is not None and old.callid == callid:
                if cseq < old.cseq:
                    raise RegError(R_INV_CSEQ)
                if cseq == old.cseq:
                    continue  # retransmission: binding unchanged
            if expires == 0:
                if old is not None:
                    result.remove(old)
                    deleted += 1
                continue
            item = Contact(
                aor=aor,
                contact=c.uri,
                expires=now + expires,
                q=q,
                callid=callid,
                cseq=cseq,
                received=received,
                path=path,
                flags=0,
                cflags=ctx.bflags,
                user_agent=ua,
                socket=socket,
                methods=methods,
                instance=(
                    (get_param(c.params, "+sip.instance") or "") if int(p["gruu_enabled"]) else ""
                ),
                reg_id=_int(get_param(c.params, "reg-id")),
                last_modified=now,
                ruid=old.ruid if old is not None else new_ruid(),
            )
            if old is not None:
                result[result.index(old)] = item
                updated += 1
            else:
                result.append(item)
                inserted += 1
        if flags & SAVE_SOCKET_ONE:
            keep = {c.uri for c, e, _ in incoming if e}
            before = len(result)
            result = [o for o in result if o.contact in keep]
            deleted += before - len(result)
        if max_contacts and len(result) > max_contacts and inserted:
            raise RegError(R_TOO_MANY, rc=-2)
        if not existed:
            rc = 1
        elif deleted and not (inserted or updated):
            rc = 3
        else:
            rc = 2
        return result, rc

    rc = store.update(table, aor, apply)
    return rc, store.get(table, aor), path


def _int(text: str | None) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def save(ctx: MsgContext, table: str, flags: int) -> int:
    """Process a REGISTER: 1 inserted, 2 updated, 3 deleted, 4 returned; -1 error, -2 too many."""
    return _save(ctx, table, flags, "")


def save_uri(ctx: MsgContext, table: str, flags: int, uri: str) -> int:
    return _save(ctx, table, flags, uri)


def reg_send_reply(ctx: MsgContext) -> int:
    """Send the reply prepared by save(..., 0x02); 1, or -1 when there is none."""
    saved = ctx.extra.pop(SAVED_REPLY, None)
    if saved is None:
        return -1
    code, reason, headers = saved
    return 1 if _reply(ctx, code, reason, headers) > 0 else -1


def set_q_override(ctx: MsgContext, new_q: str) -> int:
    """q for the contacts of the next save() of this message ("0".."1")."""
    try:
        q = float(new_q)
    except ValueError:
        klog.err(f"registrar: invalid q value [{new_q}]")
        return -1
    if not 0.0 <= q <= 1.0:
        klog.err(f"registrar: q value out of range [{new_q}]")
        return -1
    ctx.extra["registrar.q_override"] = q
    return 1


def add_sock_hdr(ctx: MsgContext, hdr_name: str) -> int:
    """Add ``hdr_name: proto:ip:port`` (the receiving socket) to the request."""
    if not ctx.msg.is_request or not hdr_name:
        return -1
    try:
        ctx.msg.append_header(hdr_name, _socket_str(ctx))
    except ValueError as exc:
        klog.err(f"registrar: cannot add header {hdr_name}: {exc}")
        return -1
    return 1


# ---------------------------------------------------------------------------
# lookup


def _is_local(ctx: MsgContext, uri: str) -> bool:
    try:
        u = parse_uri(uri)
    except SipParseError:
        return False
    host = u.host.strip("[]")
    for _proto, lhost, lport in ctx.proc.listen:
        if host == lhost and (u.port is None or u.port == lport):
            return True
    return any(host == a and (pt == 0 or u.port in (None, pt)) for a, pt in ctx.proc.aliases)


def _path_uris(path: str) -> list[str]:
    out = []
    for item in _split_list(path):
        try:
            out.append(parse_name_addr(item).uri)
        except SipParseError:
            continue
    return out


def _dst_for(ctx: MsgContext, c: Contact) -> str | None:
    if c.path:
        hops = _path_uris(c.path)
        if int(_p(ctx).get("path_check_local") or 0):
            while hops and _is_local(ctx, hops[0]):
                hops.pop(0)
        if hops:
            return hops[0]
    return c.received or None


def _candidates(ctx: MsgContext, table: str, uri: str) -> list[Contact] | int:
    """Live contacts usable for the request, or a lookup error code."""
    try:
        aor = aor_of(ctx, uri)
    except RegError:
        return -1
    try:
        contacts = _store(ctx).get(table, aor)
    except StoreError as exc:
        klog.err(f"registrar: lookup failed: {exc}")
        return -3
    if not contacts:
        return -1
    msg = ctx.msg
    if int(_p(ctx).get("method_filtering") or 0) and msg.is_request and not msg.to_tag:
        method = str(msg.method)
        contacts = [c for c in contacts if method_allowed(c.methods, method)]
        if not contacts:
            return -2
    return contacts


def _add_branch(ctx: MsgContext, c: Contact) -> None:
    ctx.extra.setdefault("branches", []).append(c.contact)
    dst = _dst_for(ctx, c)
    if dst:
        ctx.extra.setdefault("branch_dst", {})[c.contact] = dst
    if c.q != Q_UNSPECIFIED:
        ctx.extra.setdefault("branch_q", {})[c.contact] = _q_str(c.q)
    if c.path:
        ctx.extra.setdefault(BRANCH_PATH, {})[c.contact] = c.path


def _set_main(ctx: MsgContext, c: Contact) -> None:
    ctx.new_uri = c.contact
    ctx.dst_uri = _dst_for(ctx, c)
    ctx.bflags = c.cflags
    # the Path becomes the Route set of the request; extra branches swap it for theirs (tm)
    ctx.extra[RURI_PATH] = c.path
    if c.path:
        prepend_route(ctx.msg, c.path)


def _lookup(ctx: MsgContext, table: str, uri: str, to_dset: bool = False) -> int:
    if not ctx.msg.is_request:
        klog.err("registrar: lookup() needs a request")
        return -3
    found = _candidates(ctx, table, uri or ctx.ruri)
    if isinstance(found, int):
        return found
    if to_dset:
        for c in found:
            _add_branch(ctx, c)
        return 1
    _set_main(ctx, found[0])
    if int(_p(ctx)["append_branches"]):
        for c in found[1:]:
            _add_branch(ctx, c)
    return 1


def lookup(ctx: MsgContext, table: str) -> int:
    """1 found (R-URI rewritten), -1 none, -2 method not supported, -3 internal error."""
    return _lookup(ctx, table, "")


def lookup_uri(ctx: MsgContext, table: str, uri: str) -> int:
    return _lookup(ctx, table, uri)


def lookup_to_dset(ctx: MsgContext, table: str, uri: str) -> int:
    """Like lookup_uri, but every contact becomes a branch and the R-URI is left alone."""
    return _lookup(ctx, table, uri, to_dset=True)


def lookup_branches(ctx: MsgContext, table: str) -> int:
    """lookup() for the R-URI and for every plain (uri-only) branch."""
    branches = list(ctx.extra.get("branches") or ())
    plain = [b for b in branches if isinstance(b, str)]
    keep = [b for b in branches if not isinstance(b, str)]
    rc = _lookup(ctx, table, "")
    extra = list(ctx.extra.get("branches") or ())[len(branches) :]
    ctx.extra["branches"] = keep + extra
    for b in plain:
        found = _candidates(ctx, table, b)
        if isinstance(found, int):
            continue
        for c in found:
            _add_branch(ctx, c)
        rc = 1 if rc < 0 else rc
    return rc


# ---------------------------------------------------------------------------
# registered / unregister / $ulc


def _default_uri(ctx: MsgContext) -> str:
    if ctx.msg.is_request:
        return ctx.ruri
    return ctx.msg.to_addr.uri if ctx.msg.to_addr is not None else ""


def _registered(ctx: MsgContext, table: str, uri: str, match: int, action: int) -> int:
    try:
        aor = aor_of(ctx, uri or _default_uri(ctx))
        contacts = _store(ctx).get(table, aor)
    except RegError:
        return -1
    except StoreError as exc:
        klog.err(f"registrar: registered() failed: {exc}")
        return -1
    for c in contacts:
        # match values: pykemi has no xavp_cfg, so they come from the current message
        if match & 1 and c.callid != (ctx.msg.call_id or ""):
            continue
        if match & 2 and c.received != f"sip:{ctx.src[0]}:{ctx.src[1]}":
            continue
        if match & 4 and c.contact not in ctx.msg.contact_uris:
            continue
        if not action & 2:
            ctx.extra["registrar.rcd"] = {
                "ruid": c.ruid,
                "contact": c.contact,
                "expires": c.expires,
                "received": c.received,
            }
        return 1
    return -1


def registered(ctx: MsgContext, table: str) -> int:
    """1 if the AOR of the R-URI (To-URI for replies) has contacts, else -1."""
    return _registered(ctx, table, "", 0, 0)


def registered_uri(ctx: MsgContext, table: str, uri: str) -> int:
    return _registered(ctx, table, uri, 0, 0)


def registered_flags(ctx: MsgContext, table: str, uri: str, match_option: int) -> int:
    return _registered(ctx, table, uri, match_option, 0)


def registered_action(
    ctx: MsgContext, table: str, uri: str, match_option: int, match_action: int
) -> int:
    return _registered(ctx, table, uri, match_option, match_action)


def _unregister(ctx: MsgContext, table: str, uri: str, ruid: str) -> int:
    store = _store(ctx)
    try:
        if not uri and ruid:
            found = store.find_ruid(table, ruid)
            if found is None:
                return -3
            aor = found.aor
        else:
            aor = aor_of(ctx, uri)
    except RegError:
        return -1
    except StoreError as exc:
        klog.err(f"registrar: unregister failed: {exc}")
        return -2

    def drop(cur: list[Contact]) -> tuple[list[Contact], int]:
        kept = [c for c in cur if ruid and c.ruid != ruid]
        return kept, (len(cur) - len(kept))

    try:
        removed = store.update(table, aor, drop)
    except StoreError as exc:
        klog.err(f"registrar: unregister failed: {exc}")
        return -2
    return 1 if removed else -3


def unregister(ctx: MsgContext, table: str, uri: str) -> int:
    """Remove every contact of the AOR of ``uri``: 1, -1 bad uri, -2 error, -3 none."""
    return _unregister(ctx, table, uri, "")


def unregister_ruid(ctx: MsgContext, table: str, uri: str, ruid: str) -> int:
    return _unregister(ctx, table, uri, ruid)


def reg_fetch_contacts(ctx: MsgContext, table: str, uri: str, profile: str) -> int:
    """Load the AOR's contacts into $ulc(profile=>...); 1 found, -1 none or error."""
    profiles: dict[str, dict[str, Any]] = ctx.proc.extra.setdefault(ULC, {})
    profiles.pop(profile, None)
    try:
        aor = aor_of(ctx, uri)
        contacts = _store(ctx).get(table, aor)
    except RegError:
        return -1
    except StoreError as exc:
        klog.err(f"registrar: reg_fetch_contacts failed: {exc}")
        return -1
    if not contacts:
        return -1
    profiles[profile] = {"aor": aor, "domain": table, "contacts": contacts}
    return 1


def reg_free_contacts(ctx: MsgContext, profile: str) -> int:
    ctx.proc.extra.setdefault(ULC, {}).pop(profile, None)
    return 1


_ULC_ATTRS = {
    "addr": "contact",
    "path": "path",
    "received": "received",
    "expires": "expires",
    "callid": "callid",
    "q": "q",
    "cseq": "cseq",
    "flags": "flags",
    "cflags": "cflags",
    "user_agent": "user_agent",
    "socket": "socket",
    "modified": "last_modified",
    "methods": "methods",
    "ruid": "ruid",
    "regid": "reg_id",
    "instance": "instance",
    "conid": "connection_id",
}


def _ulc_pv(ctx: MsgContext, spec: Any) -> str | int | None:
    name, _, attr = str(spec.inner or "").partition("=>")
    prof = ctx.proc.extra.get(ULC, {}).get(name.strip())
    if prof is None:
        return None
    attr = attr.strip()
    contacts: list[Contact] = prof["contacts"]
    if attr in ("aor", "domain"):
        return str(prof[attr])
    if attr == "aorhash":
        return hash(prof["aor"]) & 0xFFFFFFFF
    if attr == "count":
        return len(contacts)
    field = _ULC_ATTRS.get(attr)
    idx = spec.index if isinstance(spec.index, int) else 0
    if field is None or not 0 <= idx < len(contacts):
        return None
    value = getattr(contacts[idx], field)
    if field == "q":
        return _q_str(value) if value != Q_UNSPECIFIED else "-1"
    if field == "connection_id" and value < 0:
        return None
    return value if isinstance(value, int) else str(value)


def _register_pvs() -> None:
    register_pv("ulc", inner_getter=_ulc_pv)


_register_pvs()


def _startup(router: Any, values: dict[str, Any]) -> None:
    # the usrloc store must exist before the fork, even without loadmodule "usrloc.so"
    if STORE_KEY not in router.proc.extra:
        setup(router.proc)
    callback = callback_name(values.get("event_callback"))
    if callback:
        proc = router.proc
        proc.extra[ON_EXPIRED] = lambda table, c: contact_expired(proc, callback, table, c)


def contact_expired(proc: ProcessState, callback: str, table: str, contact: Contact) -> None:
    """usrloc:contact-expired (registrar's event_callback): $ulc(exp=>...) is the contact."""
    profile = {"aor": contact.aor, "domain": table, "contacts": [contact]}
    proc.extra.setdefault(ULC, {})["exp"] = profile
    run_event(proc, callback, "usrloc:contact-expired", faked_context(proc))


_params.register(MOD, after=_startup)
