"""``KSR.nathelper``: NAT detection and Contact/SDP fixing (Kamailio nathelper).

Changes are made on the message at once (Kamailio uses lumps, applied when
the message is sent; the difference is only visible to later reads in the
script). NAT keepalives (``natping_interval``) are accepted but not sent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config.modparams import or_default
from ..core import log as klog
from ..core.pv import set_pv
from ..sip.message import Header, _split_list
from ..sip.nameaddr import NameAddr, SipParseError, parse_name_addr
from ..sip.uri import SipUri, parse_uri
from . import params as _params

if TYPE_CHECKING:
    from ..core.context import MsgContext

MOD = "nathelper"

# Kamailio's PROTO_* numbers, used in ;alias=ip~port~proto
PROTO_NUM = {"udp": 1, "tcp": 2, "tls": 3, "sctp": 4, "ws": 5, "wss": 6}
NUM_PROTO = {v: k for k, v in PROTO_NUM.items()}

_PRIVATE = [
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
]  # fmt: skip
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 (carrier-grade NAT)
_SDP_C = re.compile(r"^(c=IN IP[46] )([^\s/]+)", re.M)
_SDP_O = re.compile(r"^(o=\S+ \S+ \S+ IN IP[46] )(\S+)", re.M)


def _p(ctx: MsgContext) -> Mapping[str, Any]:
    return _params.params(ctx.proc, MOD)


def private_ip(text: str, mode: int = 1) -> bool:
    """RFC 1918 address (and RFC 6598 when nat_addr_mode is 1)."""
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return False
    if ip.version != 4:
        return False
    return any(ip in n for n in _PRIVATE) or (mode == 1 and ip in _SHARED)


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.strip("[]")) == ipaddress.ip_address(b.strip("[]"))
    except ValueError:
        return a.strip("[]").lower() == b.strip("[]").lower()


# ---------------------------------------------------------------------------
# Contact helpers


def _first_contact(ctx: MsgContext) -> tuple[int, list[NameAddr]] | None:
    """(index of the first Contact header, its parsed values)."""
    for i, h in enumerate(ctx.msg.headers):
        if h.key == "contact":
            try:
                values = [parse_name_addr(v) for v in _split_list(h.value)]
            except SipParseError as exc:
                klog.err(f"nathelper: bad Contact header: {exc}")
                return None
            if not values or values[0].uri == "*":
                return None
            return i, values
    return None


def _contact_uri(ctx: MsgContext) -> SipUri | None:
    found = _first_contact(ctx)
    if found is None:
        return None
    try:
        return parse_uri(found[1][0].uri)
    except SipParseError:
        return None


def _replace_contact(ctx: MsgContext, idx: int, values: list[NameAddr]) -> None:
    h = ctx.msg.headers[idx]
    ctx.msg.headers[idx] = Header(h.name, ", ".join(str(v) for v in values), h.key)
    ctx.msg.invalidate()


def _src_host(ctx: MsgContext) -> str:
    ip = ctx.src[0]
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


# ---------------------------------------------------------------------------
# nat_uac_test


def _sdp_addrs(ctx: MsgContext) -> list[str]:
    body = ctx.msg.body.decode("utf-8", "replace") if ctx.msg.body else ""
    return [m.group(2) for m in _SDP_C.finditer(body)]


def nat_uac_test(ctx: MsgContext, flags: int) -> int:
    """1 when any selected test says the UA is behind NAT, else -1.

    1 Contact is private; 2 Via address differs from the source IP; 4 top Via is
    private; 8 SDP has a private address; 16 source port differs from the Via
    port; 32 source IP is private; 64 WebSocket; 128 Contact port differs from
    the source port; 256 SDP address differs from the source IP; 512
    the destination differs from the R-URI (request: $du against the R-URI; reply: the
    2nd Via's received/rport against its host/port; a ws/wss target counts as different).
    """
    mode = int(_p(ctx)["nat_addr_mode"])
    msg = ctx.msg
    try:
        via = msg.top_via
    except SipParseError:
        via = None
    curi = _contact_uri(ctx) if flags & (1 | 128) else None
    src_ip, src_port = ctx.src
    if flags & 1 and curi is not None and private_ip(curi.host, mode):
        return 1
    if flags & 2 and via is not None and not _same_ip(via.host, src_ip):
        return 1
    if flags & 4 and via is not None and private_ip(via.host, mode):
        return 1
    if flags & 8 and any(private_ip(a, mode) for a in _sdp_addrs(ctx)):
        return 1
    if flags & 16 and via is not None and (via.port or 5060) != src_port:
        return 1
    if flags & 32 and private_ip(src_ip, mode):
        return 1
    if flags & 64 and ctx.proto in ("ws", "wss"):
        return 1
    if flags & 128 and curi is not None and curi.address()[1] != src_port:
        return 1
    if flags & 256 and any(not _same_ip(a, src_ip) for a in _sdp_addrs(ctx)):
        return 1
    if flags & 512 and _destination_differs(ctx):
        return 1
    return -1


_WS = ("ws", "wss")


def _sip_port(port: int | None, proto: str | None) -> int:
    """Kamailio's GET_SIP_PORT: the port, else 5061 for TLS, else 5060."""
    return port or (5061 if proto == "tls" else 5060)


def _destination_differs(ctx: MsgContext) -> bool:
    """Kamailio nh_test_destination() > 0: the message goes elsewhere than its R-URI (request)
    or than the 2nd Via's sent-by (reply), or to a WebSocket."""
    try:
        if not ctx.msg.is_request:
            vias = ctx.msg.vias
            if len(vias) < 2:
                return False
            via = vias[1]
            proto = via.transport.lower()
            if proto in _WS:
                return True
            rport = via.rport
            if rport and int(rport) != _sip_port(via.port, proto):
                return True
            received = via.received
            return bool(received) and _hosts_differ(str(received), via.host)
        ruri = parse_uri(ctx.ruri)
        if not ctx.dst_uri:
            return ruri.transport in _WS
        duri = parse_uri(ctx.dst_uri)
    except (SipParseError, ValueError):
        return False
    if duri.transport in _WS:
        return True
    if _sip_port(duri.port, duri.transport) != _sip_port(ruri.port, ruri.transport):
        return True
    return _hosts_differ(duri.host, ruri.host)


def _hosts_differ(dhost: str, rhost: str) -> bool:
    """IP addresses compared as addresses, names as text; an IP and a name always differ."""
    try:
        dip = ipaddress.ip_address(dhost.strip("[]"))
    except ValueError:
        dip = None
    try:
        rip = ipaddress.ip_address(rhost.strip("[]"))
    except ValueError:
        rip = None
    if dip is None and rip is None:
        return bool(rhost) and rhost != dhost
    return dip is None or rip is None or dip != rip


def is_rfc1918(ctx: MsgContext, address: str) -> int:
    """1 for an RFC 1918 (or RFC 6598) address, else -1."""
    return 1 if private_ip(address, int(_p(ctx)["nat_addr_mode"])) else -1


# ---------------------------------------------------------------------------
# Contact fixing


def fix_nated_contact(ctx: MsgContext) -> int:
    """Rewrite the first Contact URI's host:port with the source address; 1 or -1."""
    found = _first_contact(ctx)
    if found is None:
        return -1
    idx, values = found
    try:
        u = parse_uri(values[0].uri)
    except SipParseError:
        return -1
    u.host, u.port = _src_host(ctx), int(ctx.src[1])
    values[0].uri = str(u)
    _replace_contact(ctx, idx, values)
    return 1


def received_uri(ctx: MsgContext) -> str:
    uri = f"sip:{_src_host(ctx)}:{ctx.src[1]}"
    if ctx.proto != "udp":
        uri += f";transport={ctx.proto}"
    return uri


def fix_nated_register(ctx: MsgContext) -> int:
    """Store the source address as a URI in the received AVP (used by registrar.save)."""
    avp = str(_p(ctx).get("received_avp") or "")
    if not avp:
        klog.err("nathelper: fix_nated_register() needs the received_avp parameter")
        return -1
    if not ctx.msg.is_request or str(ctx.msg.method).upper() != "REGISTER":
        return -1
    return 1 if set_pv(ctx, avp, received_uri(ctx)) else -1


def _alias_value(ip: str, port: int, proto: str) -> str:
    return f"{ip}~{port}~{PROTO_NUM.get(proto.lower(), 1)}"


def _set_alias(ctx: MsgContext, ip: str, port: int, proto: str, trim: bool) -> int:
    found = _first_contact(ctx)
    if found is None:
        return -1
    idx, values = found
    try:
        u = parse_uri(values[0].uri)
    except SipParseError:
        return -1
    name = str(or_default(_p(ctx), MOD, "alias_name"))
    if trim:
        u.params = {k: v for k, v in u.params.items() if k.lower() != name}
    elif any(k.lower() == name for k in u.params):
        return 2  # already has one
    if _same_ip(u.host, ip) and u.address()[1] == port and proto == (u.transport or "udp"):
        if trim:
            values[0].uri = str(u)
            _replace_contact(ctx, idx, values)
        return 2  # not behind NAT: nothing to add
    u.params[name] = _alias_value(ip.strip("[]"), port, proto)
    values[0].uri = str(u)
    _replace_contact(ctx, idx, values)
    return 1


def set_contact_alias(ctx: MsgContext) -> int:
    """Add ;alias=ip~port~proto (source address) to the Contact URI; 1 added, 2 not needed."""
    return _set_alias(ctx, ctx.src[0], int(ctx.src[1]), ctx.proto, False)


def set_contact_alias_trim(ctx: MsgContext) -> int:
    """set_contact_alias after removing any alias already in the Contact URI."""
    return _set_alias(ctx, ctx.src[0], int(ctx.src[1]), ctx.proto, True)


def add_contact_alias(ctx: MsgContext) -> int:
    return _set_alias(ctx, ctx.src[0], int(ctx.src[1]), ctx.proto, False)


def add_contact_alias_addr(ctx: MsgContext, ip_str: str, port_str: str, proto_str: str) -> int:
    try:
        port = int(port_str)
    except ValueError:
        klog.err(f"nathelper: invalid port [{port_str}]")
        return -1
    proto = proto_str.lower() or "udp"
    if proto not in PROTO_NUM:
        klog.err(f"nathelper: invalid protocol [{proto_str}]")
        return -1
    return _set_alias(ctx, ip_str, port, proto, False)


def _parse_alias(value: str) -> str | None:
    """``ip~port~proto`` -> ``sip:ip:port;transport=proto``."""
    parts = value.split("~")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    ip, port, proto = parts
    try:
        pname = NUM_PROTO[int(proto)]
    except (ValueError, KeyError):
        return None
    host = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
    uri = f"sip:{host}:{port}"
    return uri if pname == "udp" else f"{uri};transport={pname}"


def handle_ruri_alias_mode(ctx: MsgContext, mode: int) -> int:
    """Move the R-URI's alias param to $du; 1 done, 2 no alias, -1 error.

    mode 0: only the first alias param is used and removed; 1: every alias param is removed.
    """
    if not ctx.msg.is_request:
        return -1
    name = str(or_default(_p(ctx), MOD, "alias_name"))
    try:
        u = parse_uri(ctx.ruri)
    except SipParseError:
        return -1
    keys = [k for k in u.params if k.lower() == name]
    if not keys:
        return 2
    du = _parse_alias(str(u.params.get(keys[0]) or ""))
    if du is None:
        klog.err(f"nathelper: invalid alias in R-URI [{ctx.ruri}]")
        return -1
    for k in keys if mode else keys[:1]:
        u.params.pop(k, None)
    ctx.new_uri = str(u)
    ctx.dst_uri = du
    return 1


def handle_ruri_alias(ctx: MsgContext) -> int:
    return handle_ruri_alias_mode(ctx, 0)


def set_alias_to_pv(ctx: MsgContext, uri_avp: str) -> int:
    """Write the URI of the Contact's alias param (sip:ip:port;transport=x) to a PV."""
    u = _contact_uri(ctx)
    if u is None:
        return -1
    name = str(or_default(_p(ctx), MOD, "alias_name"))
    raw = next((v for k, v in u.params.items() if k.lower() == name), None)
    du = _parse_alias(str(raw or ""))
    if du is None:
        return -1
    return 1 if set_pv(ctx, uri_avp, du) else -1


def add_rcv_param(ctx: MsgContext, flag: int) -> int:
    """Add received="sip:ip:port[;transport=x]" to each Contact (flag 1: to the URI)."""
    found = _first_contact(ctx)
    if found is None:
        return -1
    idx, values = found
    rcv = received_uri(ctx)
    for v in values:
        if flag:
            try:
                u = parse_uri(v.uri)
            except SipParseError:
                return -1
            u.params["received"] = rcv.replace(";", "%3B")
            v.uri = str(u)
        else:
            v.params["received"] = f'"{rcv}"'
    _replace_contact(ctx, idx, values)
    return 1


# ---------------------------------------------------------------------------
# SDP


def _fix_sdp(ctx: MsgContext, level: int, ip: str) -> int:
    msg = ctx.msg
    if not msg.body:
        return -1
    body = msg.body.decode("utf-8", "surrogateescape")
    new = body
    if level & 2:
        new = _SDP_C.sub(lambda m: m.group(1) + ip, new)
    if level & 8:
        new = _SDP_O.sub(lambda m: m.group(1) + ip, new)
    nl = "\r\n" if "\r\n" in body else "\n"
    if level & 1 and "a=direction:active" not in new:
        new = new.rstrip("\r\n") + nl + "a=direction:active" + nl
    nortp = str(_p(ctx).get("nortpproxy_str") or "")
    if level & 4 and nortp and nortp not in new:
        new = new.rstrip("\r\n") + nl + nortp + nl
    if new == body:
        return 1
    msg.body = new.encode("utf-8", "surrogateescape")
    msg.invalidate()
    return 1


def fix_nated_sdp(ctx: MsgContext, level: int) -> int:
    """Fix the SDP: 1 add a=direction:active, 2 c= to the source IP, 4 add nortpproxy, 8 o=."""
    return _fix_sdp(ctx, level, ctx.src[0])


def fix_nated_sdp_ip(ctx: MsgContext, level: int, ip: str) -> int:
    return _fix_sdp(ctx, level, ip)


_params.register(MOD)
