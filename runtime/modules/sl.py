"""``KSR.sl``: stateless replies (Kamailio sl module).

A reply copies Via, From, To (plus a To-tag that is the same for every
retransmission), Call-ID and CSeq from the request, then gets the Server
header and the lines queued with ``KSR.hdr.append_to_reply``; it is sent to
the source address of the request (``local_reply_address``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config.modparams import values as modparams
from ..core import log as klog
from ..core.events import callback_name, run_event
from ..core.local_reply import local_reply_address, reply_body, reply_headers
from ..sip.reply import make_reply
from .core import forward_reply

if TYPE_CHECKING:
    from ..core.context import MsgContext

# set by tm (ctx.extra[TM_REPLY_HOOK]) when the request has a transaction: send_reply uses it
TM_REPLY_HOOK = "tm_reply"

DEFAULT_ERROR = (500, "I'm terribly sorry, server error occurred (1/SL)")


def reply(ctx: MsgContext, code: int, reason: str) -> int:
    """Build and send a stateless reply to the current request; 1 or -1."""
    msg = ctx.msg
    if not msg.is_request:
        klog.err("cannot send a reply to a reply")
        return -1
    if str(msg.method).upper() == "ACK":
        klog.dbg("ACK received - reply ignored")
        return -1  # Kamailio sl_reply_helper(): an ACK is never replied, an error
    if not 100 <= code <= 699:
        klog.err(f"invalid reply code {code}")
        return -1
    try:
        rpl = make_reply(
            msg,
            code,
            reason,
            extra_headers=reply_headers(ctx, code),
            body=reply_body(ctx),
            server=ctx.proc.server_header or None,
        )
        ctx.send(rpl.to_bytes(), local_reply_address(ctx))
    except (OSError, ValueError) as exc:
        klog.err(f"failed to send reply {code} {reason}: {exc}")
        return -1
    ctx.replied = code
    # event_route[sl:local-response]: Kamailio hands the callback the request, after sending
    callback = callback_name(modparams(ctx.proc, "sl").get("event_callback_lres_sent"))
    if callback:
        run_event(ctx.proc, callback, "sl:local-response", ctx)
    return 1


def sl_send_reply(ctx: MsgContext, code: int, reason: str) -> int:
    return reply(ctx, code, reason)


def send_reply(ctx: MsgContext, code: int, reason: str) -> int:
    """Reply through tm when the request has a transaction, else statelessly."""
    hook = ctx.extra.get(TM_REPLY_HOOK)
    if callable(hook):
        tm_reply: Callable[[int, str], int] = hook
        return int(tm_reply(code, reason))
    return reply(ctx, code, reason)


def send_reply_mode(ctx: MsgContext, code: int, reason: str, mode: int) -> int:
    """send_reply with send flags: 1 = do not open a new connection, 2 = close it after."""
    if mode & 1:
        ctx.extra["reply_no_connect"] = True
    if mode & 2:
        ctx.extra["reply_close"] = True
    return send_reply(ctx, code, reason)


def sl_reply_error(ctx: MsgContext) -> int:
    """Reply with the error of the last failed internal operation (500 by default)."""
    code, reason = ctx.extra.get("sl_error", DEFAULT_ERROR)
    reply(ctx, int(code), str(reason))
    return 1  # Kamailio sl_reply_error(): 1 once the error reply was attempted


def sl_forward_reply(ctx: MsgContext, code: str, reason: str) -> int:
    """Forward the received reply statelessly; optional new code (same class) and reason."""
    if ctx.msg.is_request:
        klog.err("sl_forward_reply can only forward replies")
        return -1
    new_code = 0
    if code:
        try:
            new_code = int(code)
        except ValueError:
            klog.err(f"invalid reply code [{code}]")
            return -1
        if new_code // 100 != int(ctx.msg.status) // 100 or not 100 <= new_code <= 699:
            klog.err(f"new code {new_code} is not in the class of {ctx.msg.status}")
            return -1
    return int(forward_reply(ctx, new_code, reason))
