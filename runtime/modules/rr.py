"""``KSR.rr``: record-routing and Route processing (Kamailio rr module, RFC 3261 16.4/16.6/16.12).

Record-Route headers are inserted at once (Kamailio uses lumps filled at send
time), at the top of the header list like Kamailio, as
``<sip:IP[:PORT][;transport=X][;r2=on];lr;ftag=TAG[;params]>`` with the
address the request arrived on (or the advertised address); ``:5060`` and
``;transport=udp`` are left out as Kamailio does. The headers added are
remembered in ``ctx.extra`` so ``add_rr_param`` can extend and
``remove_record_route`` remove them. Double record-routing happens when
the next hop known at record_route() time ($du / R-URI transport or a
forced send socket) needs another transport than the incoming one.

loose_route() return codes as Kamailio: 1 routed by the Route set, -1 no
Route (or an error), -3 preloaded Route to us only (an initial request with
a single local Route: it is removed, route it like an out-of-dialog request).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..core import log as klog
from ..core.pv import get_pv
from ..sip.message import Header
from ..sip.nameaddr import (
    SipParseError,
    format_params,
    has_param,
    parse_name_addr,
    split_unquoted,
)
from ..sip.uri import SipUri, parse_uri
from . import params as _params
from .core import check_self
from .textops import compile_re

if TYPE_CHECKING:
    from ..core.context import MsgContext

MODULE = "rr"
_params.register(MODULE)

RR_DRIVEN = 1
NOT_RR_DRIVEN = -1
RR_ERROR = -1
RR_PRELOADED = -3
E_CFG = -6

# ctx.extra keys
_ADDED = "rr.added"  # record-route done for this message
_HEADERS = "rr.headers"  # Header objects we inserted
_PENDING = "rr.params"  # add_rr_param() text given before record_route()
_ROUTED = "rr.routed_params"  # params (";a=b;lr") of our Route URI, set by loose_route
_ROUTE_ADDR = "rr.route_addr"  # next hop taken from a Route header (rr_next_hop_route)
_DIRECTION = "rr.direction"


def _p(ctx: MsgContext, name: str) -> Any:
    return _params.params(ctx.proc, MODULE)[name]


# ---------------------------------------------------------------------------
# local addresses


def is_myself_uri(ctx: MsgContext, u: SipUri) -> bool:
    """Is the URI ours (listen address, bound address or alias)? GRUUs never are."""
    if not u.host or u.scheme == "tel":
        return False
    if has_param(u.params, "gr"):
        return False
    port = u.port or 5060  # Kamailio compares with SIP_PORT when the URI has none
    if check_self(ctx, u.host, port):
        return True
    host = u.host.strip("[]").lower()
    return any(
        ip.strip("[]").lower() == host and lport == port
        for _proto, ip, lport in ctx.proc.local_addresses
    )


# ---------------------------------------------------------------------------
# Route header set


class RouteSet:
    """The Route values of a message, edited in place (header lines keep their grouping)."""

    def __init__(self, ctx: MsgContext) -> None:
        self.ctx = ctx
        self.entries: list[tuple[Header, list[str]]] = []
        for h in ctx.msg.headers:
            if h.key == "route":
                items = [x.strip() for x in split_unquoted(h.value, ",") if x.strip()]
                self.entries.append((h, items))

    def values(self) -> list[str]:
        return [v for _h, items in self.entries for v in items]

    def __len__(self) -> int:
        return sum(len(items) for _h, items in self.entries)

    def first(self) -> str | None:
        vals = self.values()
        return vals[0] if vals else None

    def pop_first(self) -> None:
        for _h, items in self.entries:
            if items:
                items.pop(0)
                return

    def pop_last(self) -> None:
        for _h, items in reversed(self.entries):
            if items:
                items.pop()
                return

    def commit(self, append: str | None = None) -> None:
        """Write the changes back; ``append`` adds a Route value after the last one."""
        msg = self.ctx.msg
        drop = {id(h) for h, items in self.entries if not items}
        for h, items in self.entries:
            if items:
                h.value = ", ".join(items)
        msg.headers[:] = [h for h in msg.headers if id(h) not in drop]
        if append is not None:
            last = -1
            for i, h in enumerate(msg.headers):
                if h.key == "route":
                    last = i
            new = Header("Route", append)
            if last >= 0:
                msg.headers.insert(last + 1, new)
            else:
                msg.headers.append(new)
        msg.invalidate()


def _route_uri(value: str) -> SipUri:
    """The URI of a Route value (SipParseError if it is not a parseable name-addr/URI)."""
    return parse_uri(parse_name_addr(value).uri)


def _params_text(u: SipUri) -> str:
    return str(format_params(u.params))


def _next_hop(u: SipUri) -> str:
    """The URI to send to for a loose-routing Route: its maddr, when present, replaces the host."""
    maddr = u.params.get("maddr")
    if not maddr:
        return str(u)
    v = SipUri(u.scheme, maddr, user=u.user, port=u.port, params=dict(u.params))
    v.params.pop("maddr", None)
    return str(v)


def _is_strict(u: SipUri) -> bool:
    return not has_param(u.params, "lr")


def _is_2rr(u: SipUri) -> bool:
    return bool(has_param(u.params, "r2"))


# ---------------------------------------------------------------------------
# loose_route


def _after_loose(ctx: MsgContext, routes: RouteSet, preloaded: bool) -> int:
    first = routes.first()
    assert first is not None
    try:
        puri = _route_uri(first)
    except SipParseError as exc:
        klog.err(f"rr: failed to parse the first route URI ({first}): {exc}")
        return RR_ERROR
    status = RR_DRIVEN
    nxt = puri
    if is_myself_uri(ctx, puri):
        ctx.extra[_ROUTED] = _params_text(puri)
        routes.pop_first()
        if _p(ctx, "enable_double_rr") and _is_2rr(puri) and len(routes):
            routes.pop_first()  # the second Record-Route of a double record-route
        value = routes.first()
        if value is None:
            routes.commit()
            return RR_PRELOADED if preloaded else RR_DRIVEN
        try:
            nxt = _route_uri(value)
        except SipParseError as exc:
            klog.err(f"rr: failed to parse the next route URI ({value}): {exc}")
            return RR_ERROR
        ctx.extra[_ROUTE_ADDR] = True
    else:
        ctx.extra.pop(_ROUTED, None)
    if _is_strict(nxt):
        # next hop is a strict router (16.6 step 6): it goes to the R-URI, the old R-URI
        # becomes the last Route
        old_ruri = ctx.ruri
        routes.pop_first()
        routes.commit(append=f"<{old_ruri}>")
        ctx.new_uri = str(nxt)
    else:
        routes.commit()
        ctx.dst_uri = _next_hop(nxt)
    return status


def _after_strict(ctx: MsgContext, routes: RouteSet) -> int:
    """The R-URI is ours: the previous hop was a strict router (16.4)."""
    first = routes.first()
    assert first is not None
    try:
        puri = _route_uri(first)
    except SipParseError as exc:
        klog.err(f"rr: failed to parse the first route URI ({first}): {exc}")
        return RR_ERROR
    if _p(ctx, "enable_double_rr") and _is_2rr(puri) and is_myself_uri(ctx, puri):
        routes.pop_first()
        value = routes.first()
        if value is None:
            routes.commit()
            return NOT_RR_DRIVEN
        try:
            puri = _route_uri(value)
        except SipParseError as exc:
            klog.err(f"rr: failed to parse the route URI ({value}): {exc}")
            return RR_ERROR
    try:
        ctx.extra[_ROUTED] = _params_text(parse_uri(ctx.ruri))
    except SipParseError:
        ctx.extra.pop(_ROUTED, None)
    if _is_strict(puri):
        # the next hop is strict too: behave as a strict router
        routes.pop_first()
        routes.commit()
        ctx.new_uri = str(puri)
        return RR_DRIVEN
    ctx.dst_uri = _next_hop(puri)
    # recover from the strict routing: the last Route is the remote target
    values = routes.values()
    if not values:
        return RR_ERROR
    try:
        target = parse_name_addr(values[-1]).uri
        parse_uri(target)
    except SipParseError as exc:
        klog.err(f"rr: failed to parse the last route URI: {exc}")
        return RR_ERROR
    routes.pop_last()
    routes.commit()
    ctx.new_uri = target
    return RR_DRIVEN


def loose_route_mode(ctx: MsgContext, vmode: int) -> int:
    """loose_route(); with vmode 1 an R-URI of ours does not mean strict routing."""
    msg = ctx.msg
    if not msg.is_request:
        return NOT_RR_DRIVEN
    ctx.extra.pop(_ROUTE_ADDR, None)
    ctx.extra.pop(_DIRECTION, None)
    routes = RouteSet(ctx)
    if not len(routes):
        klog.dbg("rr: there is no Route HF")
        return NOT_RR_DRIVEN
    try:
        ruri = parse_uri(ctx.ruri)
        preloaded = msg.to_tag is None
    except SipParseError as exc:
        klog.err(f"rr: failed to parse the message: {exc}")
        return RR_ERROR
    if preloaded:
        return _after_loose(ctx, routes, True)
    if vmode == 0 and is_myself_uri(ctx, ruri):
        return _after_strict(ctx, routes)
    return _after_loose(ctx, routes, False)


def loose_route(ctx: MsgContext) -> int:
    """Route by the Route headers (RFC 3261 16.4, 16.12); 1 routed, -1 none, -3 preloaded local."""
    return loose_route_mode(ctx, 0)


def loose_route_preloaded(ctx: MsgContext) -> int:
    """loose_route() returning 1 only for a preloaded Route to us (initial request), else -1."""
    return 1 if loose_route_mode(ctx, 0) == RR_PRELOADED else -1


def next_hop_route(ctx: MsgContext) -> int:
    """1 when loose_route() took the next hop from a Route header after removing ours."""
    return 1 if ctx.extra.get(_ROUTE_ADDR) else -1


# ---------------------------------------------------------------------------
# routed parameters


def _routed_params(ctx: MsgContext) -> str | None:
    """Params of our Route URI: from loose_route(), else from a top Route that is ours."""
    if _ROUTED in ctx.extra:
        return str(ctx.extra[_ROUTED])
    if not ctx.msg.is_request:
        return None
    value = RouteSet(ctx).first()
    if value is None:
        return None
    try:
        u = _route_uri(value)
    except SipParseError:
        return None
    return _params_text(u) if is_myself_uri(ctx, u) else None


def check_route_param(ctx: MsgContext, sre: str) -> int:
    """Match ``sre`` against the parameters (";a=b;...") of our Route URI."""
    rx = compile_re(sre)
    if rx is None:
        return -1
    params = _routed_params(ctx)
    if not params:
        return -1
    return 1 if rx.search(params) else -1


def _direction(ctx: MsgContext) -> str:
    cached = ctx.extra.get(_DIRECTION)
    if cached:
        return str(cached)
    direction = "downstream"
    params = _routed_params(ctx)
    m = re.search(r"(?i);ftag=([^;]*)", params or "")
    if m and m.group(1):
        try:
            ftag = ctx.msg.from_tag
        except SipParseError:
            ftag = None
        if ftag and ftag != m.group(1):
            direction = "upstream"
    ctx.extra[_DIRECTION] = direction
    return direction


def is_direction(ctx: MsgContext, direction: str) -> int:
    """``downstream`` (caller to callee) or ``upstream``, from the ftag of our Route."""
    if not _p(ctx, "append_fromtag"):
        klog.err('rr: is_direction() requires the parameter "append_fromtag" enabled')
        return E_CFG
    want = direction.strip().lower()
    if want not in ("downstream", "upstream"):
        klog.err(f"rr: unknown direction '{direction}' - use 'downstream' or 'upstream'")
        return -1
    return 1 if _direction(ctx) == want else -1


# ---------------------------------------------------------------------------
# record-routing


def _check_params(text: str) -> bool:
    if "\r" in text or "\n" in text or ">" in text or "<" in text:
        klog.err(f"rr: invalid Record-Route parameters [{text}]")
        return False
    return True


def _scheme(ctx: MsgContext) -> str:
    if _p(ctx, "ignore_sips"):
        return "sip"
    return "sips" if ctx.ruri[:5].lower() == "sips:" else "sip"


def _user(ctx: MsgContext) -> str:
    if not _p(ctx, "add_username"):
        return ""
    avp = _p(ctx, "custom_user_avp")
    user: Any = None
    if avp:
        user = get_pv(ctx, str(avp))
    if not user:
        try:
            user = parse_uri(ctx.ruri).user
        except SipParseError:
            user = None
    return f"{user}@" if user else ""


def _tag(ctx: MsgContext) -> str:
    if not _p(ctx, "append_fromtag"):
        return ""
    tag: str | None
    try:
        if ctx.msg.to_tag is not None and _direction(ctx) == "upstream":
            tag = ctx.msg.to_tag
        else:
            tag = ctx.msg.from_tag
    except SipParseError:
        return ""
    return f";ftag={tag}" if tag else ""


def _lr(ctx: MsgContext) -> str:
    return ";lr=on" if _p(ctx, "enable_full_lr") else ";lr"


def _hostport(host: str, port: int | str | None) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port and str(port) != "5060":
        return f"{host}:{port}"
    return host


def _transport(proto: str, always: bool) -> str:
    if proto == "udp" and not always:
        return ""
    return f";transport={proto}"


def _outbound(ctx: MsgContext) -> tuple[str, str, int] | None:
    """The (proto, ip, port) the request will leave from, when it is known now."""
    forced = ctx.extra.get("force_send_socket")
    if forced:
        proto, ip, port = forced
        return str(proto), str(ip), int(port)
    try:
        u = parse_uri(ctx.dst_uri or ctx.ruri)
    except SipParseError:
        return None
    proto = u.transport or ("tls" if u.scheme == "sips" else "udp")
    if proto == ctx.proto:
        return ctx.proto, ctx.dst[0], ctx.dst[1]
    for lproto, ip, port in ctx.proc.listen:
        if lproto == proto:
            return lproto, ip, port
    return None


def _insert(ctx: MsgContext, values: list[str]) -> None:
    # Kamailio anchors Record-Route before the first header: it ends up on top
    headers = [Header("Record-Route", v) for v in values]
    ctx.msg.headers[0:0] = headers
    ctx.msg.invalidate()
    ctx.extra.setdefault(_HEADERS, []).extend(headers)
    ctx.extra[_ADDED] = True


def _pending(ctx: MsgContext) -> str:
    return str(ctx.extra.pop(_PENDING, ""))


def _build(ctx: MsgContext, hostport: str, extra: str, r2: bool) -> str:
    r2p = ";r2=on" if r2 else ""
    return f"<{_scheme(ctx)}:{_user(ctx)}{hostport}{r2p}{_lr(ctx)}{_tag(ctx)}{extra}>"


def _record_route(ctx: MsgContext, params: str, advertised: str | None) -> int:
    if not ctx.msg.is_request:
        klog.err("rr: cannot record-route a reply")
        return -1
    if ctx.extra.get(_ADDED):
        klog.err("rr: double attempt to record-route")
        return -1
    if params and not params.startswith(";"):
        params = ";" + params
    if not _check_params(params):
        return -1
    extra = params + _pending(ctx)
    if advertised is not None:
        in_addr = advertised
        out_addr = advertised
    else:
        ip = str(ctx.extra.get("advertised_address") or ctx.dst[0])
        port = ctx.extra.get("advertised_port") or ctx.dst[1]
        in_addr = _hostport(ip, port)
        out_addr = ""
    mode = int(_p(ctx, "enable_double_rr"))
    out = _outbound(ctx) if mode else None
    double = (
        bool(mode)
        and out is not None
        and (mode == 2 or out[0] != ctx.proto or (out[1], out[2]) != tuple(ctx.dst))
    )
    if not double:
        _insert(ctx, [_build(ctx, in_addr + _transport(ctx.proto, False), extra, False)])
        return 1
    assert out is not None
    always = mode == 2
    if advertised is None:
        out_addr = _hostport(out[1], out[2])
    values = [
        _build(ctx, out_addr + _transport(out[0], always), extra, True),
        _build(ctx, in_addr + _transport(ctx.proto, always), extra, True),
    ]
    _insert(ctx, values)
    return 1


def record_route(ctx: MsgContext) -> int:
    """Add a Record-Route header for this proxy; 1, or -1 (error or already done)."""
    return _record_route(ctx, "", None)


def record_route_params(ctx: MsgContext, sparams: str) -> int:
    """record_route() with URI parameters (";name=value") appended."""
    return _record_route(ctx, sparams, None)


def record_route_advertised_address(ctx: MsgContext, addr: str) -> int:
    """record_route() with ``addr`` (host[:port]) instead of the local address."""
    if not addr or not _check_params(addr):
        klog.err("rr: invalid advertised address")
        return -1
    return _record_route(ctx, "", addr)


def _preset_value(ctx: MsgContext, addr: str) -> str:
    if addr[:4].lower() == "sip:" or addr[:5].lower() == "sips:":
        addr = addr.split(":", 1)[1]  # the scheme is ours to add
    return f"<{_scheme(ctx)}:{_user(ctx)}{addr}{_lr(ctx)}{_tag(ctx)}"


def record_route_preset(ctx: MsgContext, addr1: str, addr2: str) -> int:
    """Record-Route with the given address(es) ("host:port;params"); the 2nd is the inbound one."""
    if not ctx.msg.is_request:
        return -1
    if ctx.extra.get(_ADDED):
        klog.err("rr: double attempt to record-route")
        return -1
    if addr2 and not _p(ctx, "enable_double_rr"):
        klog.err("rr: attempt to double record-route while 'enable_double_rr' is disabled")
        return -1
    if not addr1 or not _check_params(addr1) or (addr2 and not _check_params(addr2)):
        klog.err("rr: invalid preset address")
        return -1
    extra = _pending(ctx)
    values = [_preset_value(ctx, addr1) + extra + ">"]
    if addr2:
        values.append(_preset_value(ctx, addr2) + extra + ">")
    _insert(ctx, values)
    return 1


def record_route_preset_one(ctx: MsgContext, addr1: str) -> int:
    return record_route_preset(ctx, addr1, "")


def remove_record_route(ctx: MsgContext) -> int:
    """Remove the Record-Route headers added for this message; 1."""
    ours = {id(h) for h in ctx.extra.pop(_HEADERS, [])}
    if ours:
        ctx.msg.headers[:] = [h for h in ctx.msg.headers if id(h) not in ours]
        ctx.msg.invalidate()
    ctx.extra.pop(_ADDED, None)
    ctx.extra.pop(_PENDING, None)
    return 1


def add_rr_param(ctx: MsgContext, sparam: str) -> int:
    """Add ";name=value" to our Record-Route URI (before or after record_route())."""
    if not sparam or not _check_params(sparam):
        return -1
    if not sparam.startswith(";"):
        sparam = ";" + sparam
    headers: list[Header] = ctx.extra.get(_HEADERS, [])
    live = [h for h in headers if any(h is x for x in ctx.msg.headers)]
    if not live:
        ctx.extra[_PENDING] = str(ctx.extra.get(_PENDING, "")) + sparam
        return 1
    for h in live:
        end = h.value.rfind(">")
        h.value = h.value[:end] + sparam + h.value[end:] if end >= 0 else h.value + sparam
    ctx.msg.invalidate()
    return 1
