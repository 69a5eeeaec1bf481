"""``ksr_onsend_route`` (``kemi.onsend_route_callback``) before a SIP message leaves.

Kamailio 5.6 runs it for every forwarded request (tm branches, stateless
``forward()``, ACKs relayed statelessly) and, with a KEMI engine, for every
relayed reply (tm and stateless): ``onsend_route_enabled(SIP_REPLY)`` in
src/core/onsend.h is true whenever the KEMI callback name is set. The callback
runs on the message as received ($rm, $ru), route type ONSEND_ROUTE; the
outgoing bytes and destination are in ``ctx.extra[ONSEND]``. A drop in the
callback stops that one send (honoured as in Kamailio >= 5.8).

The router installs the runner (it owns the script engine) in
``ProcessState.extra[RUNNER]``; senders in the core, the modules and tm call
:func:`onsend_ok`, which is a no-op without a router (in-process unit tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from .context import ONSEND_ROUTE, Address, MsgContext

RUNNER = "core.onsend"  # ProcessState.extra key: the router's OnsendRunner
ONSEND = "onsend"  # MsgContext.extra key in the callback: proto, ip, port, buf

# (callback name, context of the callback) -> return code of the script function
RouteRunner = Callable[[str, MsgContext], int]


class OnsendRunner:
    """Runs the configured callback when the script defines it."""

    def __init__(self, name: str, defined: Callable[[str], bool], run: RouteRunner) -> None:
        self.name = "" if name == "none" else name
        self.defined = defined
        self.run = run

    def __call__(self, ctx: MsgContext, proto: str, addr: Address, data: bytes) -> bool:
        if not self.name or not self.defined(self.name):
            return True
        info = {"proto": proto, "ip": addr[0], "port": addr[1], "buf": data}
        octx = replace(ctx, route_type=ONSEND_ROUTE, drop=False, extra={**ctx.extra, ONSEND: info})
        self.run(self.name, octx)
        return not octx.drop


def onsend_ok(ctx: MsgContext, proto: str, addr: Address, data: bytes) -> bool:
    """Run the onsend callback for ``data`` going to ``proto:addr``; False: do not send it."""
    runner = ctx.proc.extra.get(RUNNER)
    return True if runner is None else bool(runner(ctx, proto, addr, data))
