"""Event routes: the one dispatcher every module and the core call.

Kamailio's native ``event_route[module:event]`` blocks are, for KEMI, one script
function named by a parameter (a module's ``event_callback``, the core's
``kemi.event_route_callback`` ...), called with the event name as its argument
(docs/callbacks.md lists the events). Events without a SIP message of their own
(startup, timers) run on Kamailio's faked message (``KSR.corex.is_faked_msg``).
"""

from __future__ import annotations

import socket

from ..sip.message import parse_message
from .context import EVENT_ROUTE, REQUEST_ROUTE, Address, MsgContext, ProcessState
from .log import L_ERR, log
from .pv import PROTO_IDS, PvSpec, PvValue, register_pv

# Kamailio's faked_msg: the message event routes without a real one see
FAKED_REQUEST = (
    b"OPTIONS sip:you@kamailio.org SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKdummy\r\n"
    b"From: <sip:you@kamailio.org>;tag=123\r\nTo: <sip:you@kamailio.org>\r\n"
    b"Call-ID: 123\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
_FAKED = parse_message(FAKED_REQUEST)  # parsed once; each event gets a copy to change
_LOCAL: Address = ("127.0.0.1", 5060)
RCV_BUF = "core.rcv_buf"  # ctx.extra: the received bytes, in event_route[core:msg-received]


def callback_name(value: object) -> str:
    """A callback parameter's function name; "" when unset or "none" (Kamailio's off value)."""
    name = value.strip() if isinstance(value, str) else ""
    return "" if name.lower() == "none" else name


def faked_context(
    proc: ProcessState,
    src: Address = _LOCAL,
    dst: Address = _LOCAL,
    proto: str = "udp",
) -> MsgContext:
    """A context on the faked message (addresses of the real event when there is one)."""
    ctx = MsgContext(_FAKED.copy(), src, dst, proto, _no_send, proc, route_type=EVENT_ROUTE)
    ctx.extra["faked"] = True
    return ctx


def _no_send(data: bytes, addr: Address) -> None:
    """Sending from a faked message goes nowhere (it has no transport)."""


def run_event(
    proc: ProcessState,
    callback: str,
    evname: str | None,
    ctx: MsgContext | None = None,
    route_type: int = EVENT_ROUTE,
) -> MsgContext | None:
    """Run ``callback`` for event ``evname`` (None: Kamailio passes no name) on ``ctx`` (the
    faked message by default). Returns the context (``.drop`` = the script dropped it), or
    None when no callback is set or the script cannot run."""
    run = proc.run_route
    if not callback or run is None:
        return None
    if ctx is None:
        ctx = faked_context(proc)
    saved = ctx.route_type
    ctx.route_type = route_type
    args = () if evname is None else (evname,)
    try:
        run(callback, ctx, *args)
    except Exception as exc:  # noqa: BLE001 - a failing event route must not stop its caller
        log(L_ERR, f"event route {evname or callback}: callback {callback} failed: {exc!r}")
        return None
    finally:
        ctx.route_type = saved
    return ctx


def msg_received(
    proc: ProcessState, callback: str, data: bytes, src: Address, dst: Address, proto: str
) -> bool:
    """core:msg-received (received_route_mode=1): the callback sees the raw bytes as
    $rcv(buf), on the faked message, before parsing; False = it dropped them. Kamailio
    passes no event name to this callback."""
    ctx = faked_context(proc, src, dst, proto)
    ctx.extra[RCV_BUF] = data
    done = run_event(proc, callback, None, ctx, REQUEST_ROUTE)
    return done is None or not done.drop


def _pv_rcv(ctx: MsgContext, spec: PvSpec) -> PvValue:
    """$rcv(key): what was received, in event_route[core:msg-received] (Kamailio's keys)."""
    data = ctx.extra.get(RCV_BUF)
    if not isinstance(data, bytes):
        return None
    values: dict[str, PvValue] = {
        "buf": data.decode("utf-8", "surrogateescape"),
        "len": len(data),
        "srcip": ctx.src[0],
        "srcport": ctx.src[1],
        "rcvip": ctx.dst[0],
        "rcvport": ctx.dst[1],
        "proto": PROTO_IDS.get(ctx.proto, 0),
        "sproto": ctx.proto,
        "af": socket.AF_INET6 if ":" in ctx.src[0] else socket.AF_INET,
    }
    return values.get(str(spec.inner))


register_pv("rcv", inner_getter=_pv_rcv)
