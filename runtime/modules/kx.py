"""``KSR.kx``: quick accessors to message attributes (Kamailio kemix module).

``get_*`` return None (null) when the value is missing, ``gete_*`` the empty
string and ``getw_*`` the text ``"<null>"``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core.pv import (
    NULL_TEXT,
    PROTO_IDS,
    PvValue,
    body_text,
    get_pv,
    msg_method,
    msg_text,
    src_uri,
    uri_part,
)
from ..sip.message import parse_name_addr
from .pv import str2sint

if TYPE_CHECKING:
    from ..core.context import MsgContext

Getter = Callable[["MsgContext"], PvValue]


def _null(mode: str) -> PvValue:
    if mode == "e":
        return ""
    if mode == "w":
        return NULL_TEXT
    return None


def _moded(fn: Getter, mode: str) -> Getter:
    def getter(ctx: MsgContext) -> PvValue:
        try:
            value = fn(ctx)
        except ValueError:  # malformed header (SipParseError)
            value = None
        return _null(mode) if value is None or value == "" else value

    return getter


def _ruri(ctx: MsgContext) -> str | None:
    return ctx.ruri if ctx.msg.is_request else None


def _ruser(ctx: MsgContext) -> PvValue:
    return uri_part(_ruri(ctx), "user")


def _rhost(ctx: MsgContext) -> PvValue:
    return uri_part(_ruri(ctx), "host")


def _furi(ctx: MsgContext) -> PvValue:
    uri = ctx.msg.from_uri
    return str(uri) if uri else None


def _turi(ctx: MsgContext) -> PvValue:
    uri = ctx.msg.to_uri
    return str(uri) if uri else None


def _fuser(ctx: MsgContext) -> PvValue:
    return uri_part(ctx.msg.from_uri, "user")


def _fhost(ctx: MsgContext) -> PvValue:
    return uri_part(ctx.msg.from_uri, "host")


def _tuser(ctx: MsgContext) -> PvValue:
    return uri_part(ctx.msg.to_uri, "user")


def _thost(ctx: MsgContext) -> PvValue:
    return uri_part(ctx.msg.to_uri, "host")


def _duri(ctx: MsgContext) -> PvValue:
    return ctx.dst_uri or None


def _first_contact(value: str) -> str:
    depth = 0
    quoted = False
    for i, c in enumerate(value):
        if c == '"':
            quoted = not quoted
        elif not quoted and c == "<":
            depth += 1
        elif not quoted and c == ">":
            depth -= 1
        elif c == "," and not quoted and depth <= 0:
            return value[:i]
    return value


def _cturi(ctx: MsgContext) -> PvValue:
    value = ctx.msg.get("Contact")
    if value is None:
        return None
    first = _first_contact(str(value)).strip()
    if not first or first == "*":
        return None
    try:
        uri = parse_name_addr(first).uri
    except ValueError:
        return None
    return str(uri) if uri else None


def _ua(ctx: MsgContext) -> PvValue:
    value = ctx.msg.get("User-Agent")
    return None if value is None else str(value)


def _au(ctx: MsgContext) -> PvValue:
    if ctx.msg.is_request and str(ctx.msg.method).upper() in ("ACK", "CANCEL"):
        return None
    return get_pv(ctx, "$au")


def _body(ctx: MsgContext) -> PvValue:
    return body_text(ctx) or None


def _sock(proto: str, ip: str, port: int) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"{proto}:{host}:{port}"


def get_ruri(ctx: MsgContext) -> PvValue:
    return _ruri(ctx)


get_ruser = _moded(_ruser, "n")
getw_ruser = _moded(_ruser, "w")
gete_ruser = _moded(_ruser, "e")
get_rhost = _moded(_rhost, "n")
getw_rhost = _moded(_rhost, "w")
gete_rhost = _moded(_rhost, "e")


def get_ouri(ctx: MsgContext) -> PvValue:
    return str(ctx.msg.ruri) if ctx.msg.is_request else None


get_furi = _moded(_furi, "n")
get_fuser = _moded(_fuser, "n")
getw_fuser = _moded(_fuser, "w")
gete_fuser = _moded(_fuser, "e")
get_fhost = _moded(_fhost, "n")
getw_fhost = _moded(_fhost, "w")
gete_fhost = _moded(_fhost, "e")
get_turi = _moded(_turi, "n")
get_tuser = _moded(_tuser, "n")
gete_tuser = _moded(_tuser, "e")
getw_tuser = _moded(_tuser, "w")
get_thost = _moded(_thost, "n")
gete_thost = _moded(_thost, "e")
getw_thost = _moded(_thost, "w")
get_duri = _moded(_duri, "n")
gete_duri = _moded(_duri, "e")
getw_duri = _moded(_duri, "w")
get_cturi = _moded(_cturi, "n")
gete_cturi = _moded(_cturi, "e")
getw_cturi = _moded(_cturi, "w")


def get_nhuri(ctx: MsgContext) -> PvValue:
    return ctx.dst_uri or _ruri(ctx)


def get_srcuri(ctx: MsgContext) -> PvValue:
    return src_uri(ctx)


def get_srcaddr_sock(ctx: MsgContext) -> PvValue:
    return _sock(ctx.proto, ctx.src[0], ctx.src[1])


get_ua = _moded(_ua, "n")
gete_ua = _moded(_ua, "e")
getw_ua = _moded(_ua, "w")


def get_srcip(ctx: MsgContext) -> PvValue:
    return ctx.src[0]


def get_srcport(ctx: MsgContext) -> PvValue:
    return int(ctx.src[1])


def get_send_sock(ctx: MsgContext) -> PvValue:
    sock = ctx.extra.get("send_sock")
    return str(sock) if sock else None


def get_send_sock_name(ctx: MsgContext) -> PvValue:
    name = ctx.extra.get("send_sock_name")
    return str(name) if name else None


def get_send_sock_port(ctx: MsgContext) -> int:
    sock = ctx.extra.get("send_sock")
    if not sock:
        return 0
    try:
        return int(str(sock).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def get_rcvip(ctx: MsgContext) -> PvValue:
    return ctx.dst[0]


def get_rcv_sock_name(ctx: MsgContext) -> PvValue:
    name = ctx.extra.get("rcv_sock_name")
    return str(name) if name else None


def get_rcvport(ctx: MsgContext) -> PvValue:
    return int(ctx.dst[1])


def get_rcvadvip(ctx: MsgContext) -> PvValue:
    return get_pv(ctx, "$RAi")


def get_rcvadvport(ctx: MsgContext) -> PvValue:
    value = get_pv(ctx, "$RAp")
    try:
        return int(value) if value is not None else int(ctx.dst[1])
    except ValueError:
        return int(ctx.dst[1])


def get_rcvaddr_sock(ctx: MsgContext) -> PvValue:
    return _sock(ctx.proto, ctx.dst[0], ctx.dst[1])


def get_proto(ctx: MsgContext) -> PvValue:
    return ctx.proto


def get_protoid(ctx: MsgContext) -> int:
    return int(PROTO_IDS.get(ctx.proto, 0))


get_au = _moded(_au, "n")
getw_au = _moded(_au, "w")
gete_au = _moded(_au, "e")


def get_method(ctx: MsgContext) -> PvValue:
    return msg_method(ctx)


def get_status(ctx: MsgContext) -> int:
    return -1 if ctx.msg.is_request else int(ctx.msg.status)


def gets_status(ctx: MsgContext) -> PvValue:
    return None if ctx.msg.is_request else str(ctx.msg.status)


get_body = _moded(_body, "n")
getw_body = _moded(_body, "w")
gete_body = _moded(_body, "e")


def get_bodylen(ctx: MsgContext) -> int:
    return len(ctx.msg.body)


def get_timestamp(ctx: MsgContext) -> int:
    return int(time.time())


def get_callid(ctx: MsgContext) -> PvValue:
    callid = ctx.msg.call_id
    return "" if callid is None else str(callid)


def get_conid(ctx: MsgContext) -> int:
    if ctx.proto == "udp":
        return -1
    conid = ctx.extra.get("conid")
    return int(conid) if isinstance(conid, int) else -1


def get_msgbuf(ctx: MsgContext) -> PvValue:
    return msg_text(ctx)


def get_msglen(ctx: MsgContext) -> int:
    return len(ctx.msg.to_bytes())


def get_msgtype(ctx: MsgContext) -> int:
    return 1 if ctx.msg.is_request else 2


def get_def(ctx: MsgContext, name: str) -> PvValue:
    """Value of a ``#!define``; "" when not defined."""
    value = ctx.proc.defines.get(name)
    return "" if value is None else str(value)


def _str2sint(text: str) -> int:
    return int(str2sint(text))


def get_defn(ctx: MsgContext, name: str) -> int:
    value = ctx.proc.defines.get(name)
    return 0 if value is None else _str2sint(str(value))


def ifdef(ctx: MsgContext, name: str) -> bool:
    return name in ctx.proc.defines


def ifndef(ctx: MsgContext, name: str) -> bool:
    return name not in ctx.proc.defines


def get_env(ctx: MsgContext, name: str) -> PvValue:
    if not name:
        return ""
    return os.environ.get(name, "")


def get_envn(ctx: MsgContext, name: str) -> int:
    value = os.environ.get(name) if name else None
    return 0 if value is None else _str2sint(value)
