"""Core KEMI exports (``KSR.<fn>``, sub-module ``""``), as Kamailio's src/core/kemi.c."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import TYPE_CHECKING, Any

from ..core import log as klog
from ..core.onsend import onsend_ok
from ..core.pv import msg_method, src_uri, uri_replace
from ..sip.message import SipMessage, Via
from ..sip.reply import relayed_reply_address
from ..sip.uri import parse_uri
from ..tcpconn import SND_F_ALIAS

if TYPE_CHECKING:
    from ..core.context import MsgContext

MAX_FLAG = 31

STANDARD_METHODS = frozenset(
    "INVITE CANCEL ACK BYE INFO REGISTER SUBSCRIBE NOTIFY MESSAGE OPTIONS PRACK UPDATE REFER "
    "PUBLISH KDMQ GET POST PUT DELETE".split()
)

# is_method_in() letters (Kamailio kemi.c)
METHOD_LETTERS = {
    "I": "INVITE",
    "A": "ACK",
    "B": "BYE",
    "C": "CANCEL",
    "M": "MESSAGE",
    "R": "REGISTER",
    "E": "PRACK",
    "P": "PUBLISH",
    "S": "SUBSCRIBE",
    "N": "NOTIFY",
    "O": "OPTIONS",
    "F": "REFER",
    "G": "GET",
    "U": "UPDATE",
    "K": "KDMQ",
    "D": "DELETE",
    "T": "POST",
    "V": "PUT",
}

# is_proto() letters
PROTO_LETTERS = {"E": "tls", "S": "sctp", "T": "tcp", "U": "udp", "V": "ws", "W": "wss"}


# ---------------------------------------------------------------------------
# logging


def dbg(ctx: MsgContext, text: str) -> None:
    klog.log(klog.L_DBG, text, origin="script")


def err(ctx: MsgContext, text: str) -> None:
    klog.log(klog.L_ERR, text, origin="script")


def info(ctx: MsgContext, text: str) -> None:
    klog.log(klog.L_INFO, text, origin="script")


def warn(ctx: MsgContext, text: str) -> None:
    klog.log(klog.L_WARN, text, origin="script")


def notice(ctx: MsgContext, text: str) -> None:
    klog.log(klog.L_NOTICE, text, origin="script")


def crit(ctx: MsgContext, text: str) -> None:
    klog.log(klog.L_CRIT, text, origin="script")


_LOG_LEVELS = {
    "dbg": klog.L_DBG,
    "info": klog.L_INFO,
    "notice": klog.L_NOTICE,
    "warn": klog.L_WARN,
    "err": klog.L_ERR,
    "crit": klog.L_CRIT,
}


def log(ctx: MsgContext, level: str, text: str) -> None:
    """``KSR.log(level, text)``: level dbg|info|notice|warn|err|crit, anything else is err."""
    klog.log(_LOG_LEVELS.get(level.lower(), klog.L_ERR), text, origin="script")


def set_drop(ctx: MsgContext) -> None:
    ctx.drop = True


def drop(ctx: MsgContext) -> None:
    ctx.drop = True


# ---------------------------------------------------------------------------
# is_myself


def _uri(text: str) -> Any:
    try:
        return parse_uri(text)
    except ValueError as exc:
        klog.err(f"failed to parse uri [{text}]: {exc}")
        return None


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").lower()


def check_self(ctx: MsgContext, host: str, port: int) -> bool:
    """Is ``host[:port]`` one of our listen addresses or aliases (port 0 = any port)?"""
    h = _norm_host(host)
    if not h:
        return False
    addrs = [(ip, lport) for _proto, ip, lport in ctx.proc.listen]
    addrs.append(ctx.dst)
    for ip, lport in addrs:
        if _norm_host(ip) == h and (port == 0 or port == lport):
            return True
    for ahost, aport in ctx.proc.aliases:
        if _norm_host(ahost) == h and (port == 0 or aport == 0 or aport == port):
            return True
    return False


def is_myself(ctx: MsgContext, uri: str) -> bool:
    if uri.startswith(("sip:", "sips:")) and len(uri) > 4:
        u = _uri(uri)
        if u is None:
            return False
        port = getattr(u, "port", None)
        return check_self(ctx, str(u.host), int(port) if port else 0)
    return check_self(ctx, uri, 0)


def is_myself_ruri(ctx: MsgContext) -> bool:
    if not ctx.msg.is_request:
        return False
    return is_myself(ctx, ctx.ruri)


def is_myself_duri(ctx: MsgContext) -> bool:
    if not ctx.dst_uri:
        return False
    return is_myself(ctx, ctx.dst_uri)


def is_myself_nhuri(ctx: MsgContext) -> bool:
    if ctx.dst_uri:
        return is_myself(ctx, ctx.dst_uri)
    return is_myself_ruri(ctx)


def is_myself_furi(ctx: MsgContext) -> bool:
    try:
        uri = ctx.msg.from_uri
    except ValueError:
        klog.err("cannot parse From header")
        return False
    return bool(uri) and is_myself(ctx, str(uri))


def is_myself_turi(ctx: MsgContext) -> bool:
    try:
        uri = ctx.msg.to_uri
    except ValueError:
        klog.err("cannot parse To header")
        return False
    return bool(uri) and is_myself(ctx, str(uri))


def is_myself_suri(ctx: MsgContext) -> bool:
    return is_myself(ctx, src_uri(ctx))


def is_myself_srcip(ctx: MsgContext) -> bool:
    return check_self(ctx, ctx.src[0], 0)


# ---------------------------------------------------------------------------
# flags


def _flag_ok(flag: int) -> bool:
    if 0 <= flag <= MAX_FLAG:
        return True
    klog.err(f"invalid flag parameter {flag}")
    return False


def setflag(ctx: MsgContext, flag: int) -> bool:
    if not _flag_ok(flag):
        return False
    ctx.flags |= 1 << flag
    return True


def resetflag(ctx: MsgContext, flag: int) -> bool:
    if not _flag_ok(flag):
        return False
    ctx.flags &= ~(1 << flag)
    return True


def isflagset(ctx: MsgContext, flag: int) -> bool:
    if not _flag_ok(flag):
        return False
    return bool(ctx.flags & (1 << flag))


def _get_bflags(ctx: MsgContext, branch: int) -> int:
    if branch == 0:
        return int(ctx.bflags)
    flags: dict[int, int] = ctx.extra.get("branch_flags", {})
    return flags.get(branch, 0)


def _put_bflags(ctx: MsgContext, branch: int, value: int) -> None:
    if branch == 0:
        ctx.bflags = value
    else:
        ctx.extra.setdefault("branch_flags", {})[branch] = value


def setbiflag(ctx: MsgContext, flag: int, branch: int) -> bool:
    if not _flag_ok(flag) or branch < 0:
        return False
    _put_bflags(ctx, branch, _get_bflags(ctx, branch) | (1 << flag))
    return True


def resetbiflag(ctx: MsgContext, flag: int, branch: int) -> bool:
    if not _flag_ok(flag) or branch < 0:
        return False
    _put_bflags(ctx, branch, _get_bflags(ctx, branch) & ~(1 << flag))
    return True


def isbiflagset(ctx: MsgContext, flag: int, branch: int) -> bool:
    if not _flag_ok(flag) or branch < 0:
        return False
    return bool(_get_bflags(ctx, branch) & (1 << flag))


def setbflag(ctx: MsgContext, flag: int) -> bool:
    return setbiflag(ctx, flag, 0)


def resetbflag(ctx: MsgContext, flag: int) -> bool:
    return resetbiflag(ctx, flag, 0)


def isbflagset(ctx: MsgContext, flag: int) -> bool:
    return isbiflagset(ctx, flag, 0)


def setsflag(ctx: MsgContext, flag: int) -> bool:
    if not _flag_ok(flag):
        return False
    ctx.proc.extra["sflags"] = int(ctx.proc.extra.get("sflags", 0)) | (1 << flag)
    return True


def resetsflag(ctx: MsgContext, flag: int) -> bool:
    if not _flag_ok(flag):
        return False
    ctx.proc.extra["sflags"] = int(ctx.proc.extra.get("sflags", 0)) & ~(1 << flag)
    return True


def issflagset(ctx: MsgContext, flag: int) -> bool:
    if not _flag_ok(flag):
        return False
    return bool(int(ctx.proc.extra.get("sflags", 0)) & (1 << flag))


# ---------------------------------------------------------------------------
# R-URI and destination URI


def seturi(ctx: MsgContext, uri: str) -> bool:
    if not ctx.msg.is_request:
        klog.err("cannot set the r-uri of a reply")
        return False
    if not uri or _uri(uri) is None:
        klog.err("updating r-uri failed")
        return False
    ctx.new_uri = uri
    return True


def setuser(ctx: MsgContext, user: str) -> bool:
    if not ctx.msg.is_request:
        return False
    updated = uri_replace(ctx.ruri, user=user or None)
    if updated is None:
        klog.err("do action failed")
        return False
    ctx.new_uri = updated
    return True


def sethost(ctx: MsgContext, host: str) -> bool:
    if not ctx.msg.is_request or not host:
        return False
    updated = uri_replace(ctx.ruri, host=host)
    if updated is None:
        klog.err("do action failed")
        return False
    ctx.new_uri = updated
    return True


def setdsturi(ctx: MsgContext, uri: str) -> bool:
    if not uri or _uri(uri) is None:
        klog.err("setting dst uri failed")
        return True  # as Kamailio
    ctx.dst_uri = uri
    return True


def resetdsturi(ctx: MsgContext) -> bool:
    ctx.dst_uri = None
    return True


def isdsturiset(ctx: MsgContext) -> bool:
    return bool(ctx.dst_uri)


def force_rport(ctx: MsgContext) -> bool:
    ctx.force_rport = True
    return True


def add_local_rport(ctx: MsgContext) -> bool:
    ctx.extra["add_local_rport"] = True
    return True


# ---------------------------------------------------------------------------
# methods


def is_method(ctx: MsgContext, method: str) -> bool:
    """Compare the method (CSeq method for replies); ``A|B|C`` lists standard methods."""
    if not method:
        klog.warn("invalid parameters")
        return False
    current = msg_method(ctx)
    if current is None:
        return False
    cur = current.upper()
    if cur not in STANDARD_METHODS or "|" not in method:
        return bool(cur == method.upper())
    wanted = {m.strip().upper() for m in method.split("|") if m.strip()}
    if not wanted or not wanted <= STANDARD_METHODS:
        klog.err(f"unknown method in list [{method}] - use only standard SIP methods")
        return False
    return cur in wanted


def is_method_in(ctx: MsgContext, methods: str) -> bool:
    """Method (CSeq method for replies) is one of the letters in ``methods``."""
    if not methods:
        klog.warn("invalid parameters")
        return False
    current = msg_method(ctx)
    if current is None or current.upper() not in STANDARD_METHODS:
        return False
    cur = current.upper()
    for letter in methods:
        name = METHOD_LETTERS.get(letter.upper())
        if name is None:
            klog.warn(f"unsupported method flag: {letter}")
            continue
        if name == cur:
            return True
    return False


def _is_method_type(ctx: MsgContext, name: str) -> bool:
    current = msg_method(ctx)
    return current is not None and current.upper() == name


def is_method_invite(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "INVITE")


def is_method_ack(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "ACK")


def is_method_bye(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "BYE")


def is_method_cancel(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "CANCEL")


def is_method_register(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "REGISTER")


def is_method_options(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "OPTIONS")


def is_method_subscribe(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "SUBSCRIBE")


def is_method_publish(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "PUBLISH")


def is_method_notify(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "NOTIFY")


def is_method_refer(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "REFER")


def is_method_info(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "INFO")


def is_method_update(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "UPDATE")


def is_method_prack(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "PRACK")


def is_method_message(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "MESSAGE")


def is_method_kdmq(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "KDMQ")


def is_method_get(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "GET")


def is_method_post(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "POST")


def is_method_put(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "PUT")


def is_method_delete(ctx: MsgContext) -> bool:
    return _is_method_type(ctx, "DELETE")


# ---------------------------------------------------------------------------
# received protocol / address family / ports


def is_proto_udp(ctx: MsgContext) -> bool:
    return bool(ctx.proto == "udp")


def is_proto_tcp(ctx: MsgContext) -> bool:
    return bool(ctx.proto == "tcp")


def is_proto_tls(ctx: MsgContext) -> bool:
    return bool(ctx.proto == "tls")


def is_proto_ws(ctx: MsgContext) -> bool:
    return bool(ctx.proto == "ws")


def is_proto_wss(ctx: MsgContext) -> bool:
    return bool(ctx.proto == "wss")


def is_proto_wsx(ctx: MsgContext) -> bool:
    return ctx.proto in ("ws", "wss")


def is_proto_sctp(ctx: MsgContext) -> bool:
    return bool(ctx.proto == "sctp")


def is_proto(ctx: MsgContext, protos: str) -> bool:
    """Received over one of the protocols given as letters (e=tls s=sctp t=tcp u=udp v=ws w=wss)."""
    return any(PROTO_LETTERS.get(c.upper()) == ctx.proto for c in protos)


def _family(ip: str) -> int:
    try:
        return ipaddress.ip_address(_norm_host(ip)).version
    except ValueError:
        return 0


def is_af_ipv4(ctx: MsgContext) -> bool:
    return _family(ctx.dst[0] or ctx.src[0]) == 4


def is_af_ipv6(ctx: MsgContext) -> bool:
    return _family(ctx.dst[0] or ctx.src[0]) == 6


def _second_via(ctx: MsgContext) -> Any:
    vias = ctx.msg.vias
    return vias[1] if len(vias) > 1 else None


def _next_hop_uri(ctx: MsgContext) -> Any:
    return _uri(ctx.dst_uri or ctx.ruri)


def _uri_proto(u: Any) -> str:
    params = {str(k).lower(): v for k, v in (getattr(u, "params", None) or {}).items()}
    transport = params.get("transport")
    if transport:
        return str(transport).lower()
    if str(getattr(u, "scheme", "")).lower() == "sips":
        return "tls"
    return "udp"


def _to_proto(ctx: MsgContext) -> str | None:
    if not ctx.msg.is_request:
        via = _second_via(ctx)
        return None if via is None else str(via.transport).lower()
    u = _next_hop_uri(ctx)
    return None if u is None else _uri_proto(u)


def _to_af(ctx: MsgContext) -> int:
    if not ctx.msg.is_request:
        via = _second_via(ctx)
        if via is None:
            return -1
        host = via.received or via.host
    else:
        u = _next_hop_uri(ctx)
        if u is None:
            return -1
        host = u.host
    return _family(str(host or ""))


def to_proto_udp(ctx: MsgContext) -> bool:
    return _to_proto(ctx) == "udp"


def to_proto_tcp(ctx: MsgContext) -> bool:
    return _to_proto(ctx) == "tcp"


def to_proto_tls(ctx: MsgContext) -> bool:
    return _to_proto(ctx) == "tls"


def to_proto_sctp(ctx: MsgContext) -> bool:
    return _to_proto(ctx) == "sctp"


def to_proto_ws(ctx: MsgContext) -> bool:
    return _to_proto(ctx) == "ws"


def to_proto_wss(ctx: MsgContext) -> bool:
    return _to_proto(ctx) == "wss"


def to_proto_wsx(ctx: MsgContext) -> bool:
    return _to_proto(ctx) in ("ws", "wss")


def to_af_ipv4(ctx: MsgContext) -> bool:
    return _to_af(ctx) == 4


def to_af_ipv6(ctx: MsgContext) -> bool:
    return _to_af(ctx) == 6


def is_src_port(ctx: MsgContext, port: int) -> bool:
    return bool(port == ctx.src[1])


def is_dst_port(ctx: MsgContext, port: int) -> bool:
    return bool(port == ctx.dst[1])


# ---------------------------------------------------------------------------
# send flags, advertised address, tcp aliases


def set_forward_close(ctx: MsgContext) -> bool:
    ctx.extra["forward_close"] = True
    return True


def set_forward_no_connect(ctx: MsgContext) -> bool:
    ctx.extra["forward_no_connect"] = True
    return True


def set_reply_close(ctx: MsgContext) -> bool:
    ctx.extra["reply_close"] = True
    return True


def set_reply_no_connect(ctx: MsgContext) -> bool:
    ctx.extra["reply_no_connect"] = True
    return True


def set_advertised_address(ctx: MsgContext, addr: str) -> int:
    if len(addr) >= 128:
        klog.err("addr parameter is too large")
        return 0
    ctx.extra["advertised_address"] = addr
    return 1


def set_advertised_port(ctx: MsgContext, port: str) -> int:
    if len(port) >= 8:
        klog.err("port parameter is too large")
        return 0
    ctx.extra["advertised_port"] = port
    return 1


def add_tcp_alias(ctx: MsgContext, port: int) -> int:
    """Requests to (the peer's IP, ``port``) reuse the connection this message came on (the
    main process owns the connections: the alias goes there like a send); 1, -1 when it
    cannot be sent there. Not a connection-oriented message: nothing to do, 1 (Kamailio)."""
    if ctx.proto not in ("tcp", "tls"):
        return 1
    send = ctx.proc.send_to
    if send is None or not send(ctx.proto, ctx.src, str(port).encode(), -1, SND_F_ALIAS):
        klog.err(f"adding tcp alias {port} failed")
        return -1
    return 1


def add_tcp_alias_via(ctx: MsgContext) -> int:
    """add_tcp_alias with the port of the top Via (5060 when it has none)."""
    via = ctx.msg.top_via
    return add_tcp_alias(ctx, via.port if via is not None and via.port else 5060)


# ---------------------------------------------------------------------------
# stateless forwarding


def _resolve(ctx: MsgContext, host: str, port: int) -> tuple[str, int] | None:
    # the process's bounded DNS cache: a bounded wait, failures cached (dns_cache_* globals)
    ip = ctx.proc.dns.resolve(_norm_host(host))
    if ip is None:
        klog.err(f"cannot resolve [{host}]")
        return None
    return ip, port


def _local_sent_by(ctx: MsgContext) -> str:
    ip = str(ctx.extra.get("advertised_address") or ctx.dst[0])
    port = str(ctx.extra.get("advertised_port") or ctx.dst[1])
    if ":" in ip and not ip.startswith("["):
        ip = f"[{ip}]"
    return f"{ip}:{port}"


def _branch(ctx: MsgContext, uri: str) -> str:
    msg = ctx.msg
    top = msg.top_via
    cseq = msg.cseq
    parts = [
        str(msg.from_tag or ""),
        str(msg.to_tag or ""),
        str(msg.call_id or ""),
        uri,
        "" if cseq is None else str(cseq[0]),
        "" if top is None else str(top.branch or ""),
    ]
    digest = hashlib.md5("\x00".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    return "z9hG4bK" + digest + ".0"


def _fix_top_via(ctx: MsgContext, out: SipMessage) -> None:
    """Add ``received``/``rport`` to the top Via of the outgoing copy, as Kamailio does."""
    via = out.top_via
    if via is None:
        return
    src_ip, src_port = ctx.src
    want_rport = via.rport is not None or ctx.force_rport
    add_received = _norm_host(via.host) != _norm_host(src_ip) or want_rport
    if not add_received:
        return
    params = {k: v for k, v in via.params.items() if k.lower() not in ("received", "rport")}
    params["received"] = _norm_host(src_ip)
    if want_rport:
        params["rport"] = str(src_port)
    out.replace_top_via(Via(via.protocol, via.host, via.port, params))


def forward_uri(ctx: MsgContext, uri: str) -> int:
    """Forward statelessly to ``uri`` ("" = $du, else the R-URI); 1 on success, -1 on error."""
    if not ctx.msg.is_request:
        return forward_reply(ctx)
    target = uri or ctx.dst_uri or ctx.ruri
    u = _uri(target)
    if u is None:
        klog.err("forward - bad_uri dropping packet")
        return -1
    proto = _uri_proto(u)
    port = int(u.port) if getattr(u, "port", None) else (5061 if proto == "tls" else 5060)
    addr = _resolve(ctx, str(u.host), port)
    if addr is None:
        return -1
    try:
        out = ctx.msg.copy()
        out.ruri = ctx.ruri
        _fix_top_via(ctx, out)
        via = f"SIP/2.0/{proto.upper()} {_local_sent_by(ctx)};branch={_branch(ctx, ctx.ruri)}"
        if ctx.extra.get("add_local_rport"):
            via += ";rport"
        out.insert_header("Via", via)
        data = out.to_bytes()
        if not onsend_ok(ctx, proto, addr, data):
            klog.info(f"request to {addr[0]}:{addr[1]} dropped (onsend_route)")
            return -1
        ctx.send(data, addr)
    except (OSError, ValueError) as exc:
        klog.err(f"forward to {addr[0]}:{addr[1]} failed: {exc}")
        return -1
    return 1


def forward(ctx: MsgContext) -> int:
    return forward_uri(ctx, "")


def forward_reply(ctx: MsgContext, code: int = 0, reason: str = "") -> int:
    """Send a received reply to the address in its second Via (our Via removed)."""
    addr = relayed_reply_address(ctx.msg, ctx.proc.dns.peek)
    if addr is None:
        return -1
    try:
        out = ctx.msg.copy()
        out.remove_top_via()
        if code:
            out.status = code
        if reason:
            out.reason = reason
        data = out.to_bytes()
        if not onsend_ok(ctx, ctx.proto, addr, data):
            klog.err(f"reply to {addr[0]}:{addr[1]} dropped (onsend_route)")
            return -1
        ctx.send(data, addr)
    except (OSError, ValueError, AttributeError) as exc:
        klog.err(f"reply forwarding failed: {exc}")
        return -1
    return 1


# ---------------------------------------------------------------------------
# misc


def get_debug(ctx: MsgContext) -> int:
    return int(ctx.proc.debug)


def route(ctx: MsgContext, name: str) -> int:
    """Run the script function ``name`` as a sub-route; its return code, -1 if unavailable."""
    runner = ctx.proc.run_route
    if runner is None:
        klog.err(f"cannot run route [{name}]: no script engine")
        return -1
    return int(runner(name, ctx))
