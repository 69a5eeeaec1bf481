"""``KSR.corex``: core extensions (Kamailio corex module).

Branches added here go to ``ctx.extra["branches"]`` (a list of URI strings,
consumed by tm and by sl for 3xx Contacts); their q values, when given, are
kept in ``ctx.extra["branch_q"]`` (URI -> q string). Socket selections are
recorded in ``ctx.extra`` for the forwarding code ("force_send_socket":
``(proto, ip, port)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core import log as klog
from ..sip.nameaddr import SipParseError
from ..sip.uri import parse_uri
from . import params as _params

if TYPE_CHECKING:
    from ..core.context import MsgContext

MAX_XFLAG = 63  # Kamailio has 64 extended flags (KSR_XFLAGS_SIZE)

_params.register("corex")

# ---------------------------------------------------------------------------
# branches


def _branches(ctx: MsgContext) -> list[str]:
    branches: list[str] = ctx.extra.setdefault("branches", [])
    return branches


def _add_branch(ctx: MsgContext, uri: str, q: str = "") -> int:
    if not uri:
        klog.err("corex: empty branch uri")
        return -1
    try:
        parse_uri(uri)
    except SipParseError as exc:
        klog.err(f"corex: invalid branch uri [{uri}]: {exc}")
        return -1
    if q:
        try:
            qv = float(q)
        except ValueError:
            klog.err(f"corex: invalid q value [{q}]")
            return -1
        if not 0.0 <= qv <= 1.0:
            klog.err(f"corex: q value out of range [{q}]")
            return -1
        ctx.extra.setdefault("branch_q", {})[uri] = q
    _branches(ctx).append(uri)
    return 1


def append_branch(ctx: MsgContext) -> int:
    """Add the current R-URI ($ru; $du goes along in ctx.extra) as a new branch."""
    if not ctx.msg.is_request:
        klog.err("corex: append_branch() needs a request")
        return -1
    rc = _add_branch(ctx, ctx.ruri)
    if rc > 0 and ctx.dst_uri:
        ctx.extra.setdefault("branch_dst", {})[ctx.ruri] = ctx.dst_uri
    return rc


def append_branch_uri(ctx: MsgContext, uri: str) -> int:
    return _add_branch(ctx, uri)


def append_branch_uri_q(ctx: MsgContext, uri: str, q: str) -> int:
    return _add_branch(ctx, uri, q)


# ---------------------------------------------------------------------------
# extended flags


def _xflag_ok(flag: int) -> bool:
    if 0 <= flag <= MAX_XFLAG:
        return True
    klog.err(f"corex: invalid xflag {flag}")
    return False


def setxflag(ctx: MsgContext, flag: int) -> int:
    if not _xflag_ok(flag):
        return -1
    ctx.extra["xflags"] = int(ctx.extra.get("xflags", 0)) | (1 << flag)
    return 1


def resetxflag(ctx: MsgContext, flag: int) -> int:
    if not _xflag_ok(flag):
        return -1
    ctx.extra["xflags"] = int(ctx.extra.get("xflags", 0)) & ~(1 << flag)
    return 1


def isxflagset(ctx: MsgContext, flag: int) -> int:
    if not _xflag_ok(flag):
        return -1
    return 1 if int(ctx.extra.get("xflags", 0)) & (1 << flag) else -1


# ---------------------------------------------------------------------------
# sockets


def parse_socket(text: str) -> tuple[str, str, int] | None:
    """``[proto:]host[:port]`` -> (proto, host, port); None when malformed."""
    s = text.strip()
    proto = ""
    head, sep, rest = s.partition(":")
    if sep and head.lower() in ("udp", "tcp", "tls", "sctp", "ws", "wss"):
        proto, s = head.lower(), rest
    port = 0
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            return None
        host, tail = s[1:end], s[end + 1 :]
        if tail.startswith(":"):
            tail = tail[1:]
        elif tail:
            return None
    else:
        host, _, tail = s.partition(":")
    if tail:
        if not tail.isdigit() or not 0 < int(tail) < 65536:
            return None
        port = int(tail)
    if not host:
        return None
    return proto, host, port


def _find_local(ctx: MsgContext, proto: str, host: str, port: int) -> tuple[str, str, int] | None:
    sockets = list(ctx.proc.listen) + list(ctx.proc.local_addresses)
    for lproto, lhost, lport in sockets:
        if lhost.strip("[]").lower() != host.strip("[]").lower():
            continue
        if proto and lproto != proto:
            continue
        if port and lport != port:
            continue
        return lproto, lhost, lport
    return None


def set_send_socket(ctx: MsgContext, ssock: str) -> int:
    """Force the local socket used to send the request: ``proto:ip:port``."""
    parsed = parse_socket(ssock)
    if parsed is None:
        klog.err(f"corex: invalid socket [{ssock}]")
        return -1
    found = _find_local(ctx, *parsed)
    if found is None:
        klog.err(f"corex: no local socket matching [{ssock}]")
        return -1
    ctx.extra["force_send_socket"] = found
    return 1


def _socket_names(ctx: MsgContext) -> dict[str, tuple[str, str, int]]:
    names: dict[str, tuple[str, str, int]] = ctx.proc.extra.get("socket_names", {})
    return names


def set_send_socket_name(ctx: MsgContext, sname: str) -> int:
    found = _socket_names(ctx).get(sname)
    if found is None:
        klog.err(f"corex: no socket with name [{sname}]")
        return -1
    ctx.extra["force_send_socket"] = found
    return 1


def set_recv_socket(ctx: MsgContext, ssock: str) -> int:
    """Pretend the message arrived on another local socket (changes $Ri/$Rp/$pr)."""
    parsed = parse_socket(ssock)
    if parsed is None:
        klog.err(f"corex: invalid socket [{ssock}]")
        return -1
    found = _find_local(ctx, *parsed)
    if found is None:
        klog.err(f"corex: no local socket matching [{ssock}]")
        return -1
    ctx.proto, ctx.dst = found[0], (found[1], found[2])
    return 1


def set_recv_socket_name(ctx: MsgContext, sname: str) -> int:
    found = _socket_names(ctx).get(sname)
    if found is None:
        klog.err(f"corex: no socket with name [{sname}]")
        return -1
    ctx.proto, ctx.dst = found[0], (found[1], found[2])
    return 1


def set_source_address(ctx: MsgContext, saddr: str) -> int:
    """Change the source address of the message: ``[proto:]ip:port``."""
    parsed = parse_socket(saddr)
    if parsed is None or not parsed[2]:
        klog.err(f"corex: invalid source address [{saddr}]")
        return -1
    proto, host, port = parsed
    ctx.src = (host, port)
    if proto:
        ctx.proto = proto
    return 1


def is_socket_name(ctx: MsgContext, sockname: str) -> int:
    return 1 if sockname in _socket_names(ctx) else -1


# ---------------------------------------------------------------------------
# Via tuning (flags kept for the forwarding code; no effect of their own here)


def _via_flag(name: str) -> Callable[[MsgContext, int], int]:
    def fn(ctx: MsgContext, fval: int) -> int:
        ctx.extra[name] = bool(fval)
        klog.dbg(f"corex: {name} set to {bool(fval)}")
        return 1

    fn.__name__ = name
    return fn


via_add_srvid = _via_flag("via_add_srvid")
via_add_xavp_params = _via_flag("via_add_xavp_params")
via_use_xavp_fields = _via_flag("via_use_xavp_fields")


# ---------------------------------------------------------------------------
# message checks


def has_ruri_user(ctx: MsgContext) -> int:
    if not ctx.msg.is_request:
        return -1
    try:
        user = parse_uri(ctx.ruri).user
    except SipParseError as exc:
        klog.err(f"corex: failed to parse the R-URI: {exc}")
        return -1
    return 1 if user else -1


def has_user_agent(ctx: MsgContext) -> int:
    value = ctx.msg.get("user-agent")
    return 1 if value else -1


def is_faked_msg(ctx: MsgContext) -> int:
    return 1 if ctx.extra.get("faked") else -1


# ---------------------------------------------------------------------------
# sending raw data


def _send(ctx: MsgContext, uri: str, data: str, proto_hint: str = "") -> int:
    try:
        u = parse_uri(uri)
    except SipParseError as exc:
        klog.err(f"corex: invalid destination uri [{uri}]: {exc}")
        return -1
    if not u.host:
        klog.err(f"corex: destination uri without host [{uri}]")
        return -1
    proto = proto_hint or u.transport or ("tls" if u.scheme == "sips" else "udp")
    addr = u.address()
    payload = data.encode("utf-8", "surrogateescape")
    try:
        if ctx.proc.send_to is not None:
            if not ctx.proc.send_to(proto, addr, payload):
                klog.err(f"corex: failed to send data to {addr[0]}:{addr[1]}")
                return -1
        else:
            ctx.send(payload, addr)
    except OSError as exc:
        klog.err(f"corex: failed to send data to {addr[0]}:{addr[1]}: {exc}")
        return -1
    return 1


def send_data(ctx: MsgContext, uri: str, data: str) -> int:
    """Send ``data`` as-is to the address of the SIP ``uri`` (transport from the URI)."""
    return _send(ctx, uri, data)


def sendx(ctx: MsgContext, uri: str, sock: str, data: str) -> int:
    """send_data from the local socket ``sock`` (``proto:ip:port``, "" for any)."""
    proto = ""
    if sock:
        parsed = parse_socket(sock)
        if parsed is None or _find_local(ctx, *parsed) is None:
            klog.err(f"corex: invalid send socket [{sock}]")
            return -1
        proto = parsed[0]
    return _send(ctx, uri, data, proto)


# ---------------------------------------------------------------------------
# files


def file_read(ctx: MsgContext, fname: str) -> str | None:
    """Content of the file (null on error)."""
    try:
        with open(fname, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        klog.err(f"corex: cannot read file [{fname}]: {exc}")
        return None


def file_write(ctx: MsgContext, fname: str, content: str) -> int:
    """Write (truncate) the file with ``content``."""
    try:
        with open(fname, "wb") as fh:
            fh.write(content.encode("utf-8", "surrogateescape"))
    except OSError as exc:
        klog.err(f"corex: cannot write file [{fname}]: {exc}")
        return -1
    return 1
