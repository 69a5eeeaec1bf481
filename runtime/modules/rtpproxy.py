"""``KSR.rtpproxy``: media relay control (Kamailio rtpproxy) -- not available in pykemi.

pykemi does not speak the RTPProxy control protocol yet: every media function
logs "no RTP proxy available" and returns -1 (as Kamailio does when no proxy
of the set answers), so scripts that relay media run unchanged and simply
leave the SDP untouched. Set selection and the parameters are accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core import log as klog
from . import params as _params

if TYPE_CHECKING:
    from ..core.context import MsgContext

MOD = "rtpproxy"
SOCKETS = "rtpproxy_sock"  # the modparam listing the proxies


def unavailable(module: str, sockets_param: str, ctx: MsgContext, what: str) -> int:
    sockets = _params.params(ctx.proc, module)[sockets_param]
    where = f" (configured: {', '.join(map(str, sockets))}; control protocol not supported)"
    klog.err(f"{module}: {what}: no RTP proxy available" + (where if sockets else ""), module)
    return -1


def _media(name: str) -> Callable[..., int]:
    def fn(ctx: MsgContext, *args: Any) -> int:
        return unavailable(MOD, SOCKETS, ctx, name)

    fn.__name__ = name
    fn.__doc__ = "No RTP proxy available in pykemi: logs and returns -1."
    return fn


rtpproxy_manage0 = _media("rtpproxy_manage")
rtpproxy_manage = _media("rtpproxy_manage")
rtpproxy_manage_ip = _media("rtpproxy_manage")
rtpproxy_destroy0 = _media("rtpproxy_destroy")
rtpproxy_destroy = _media("rtpproxy_destroy")
start_recording = _media("start_recording")
rtpproxy_offer0 = _media("rtpproxy_offer")
rtpproxy_offer = _media("rtpproxy_offer")
rtpproxy_offer_ip = _media("rtpproxy_offer")
rtpproxy_answer0 = _media("rtpproxy_answer")
rtpproxy_answer = _media("rtpproxy_answer")
rtpproxy_answer_ip = _media("rtpproxy_answer")
rtpproxy_stream2uac = _media("rtpproxy_stream2uac")
rtpproxy_stream2uas = _media("rtpproxy_stream2uas")
rtpproxy_stop_stream2uac = _media("rtpproxy_stop_stream2uac")
rtpproxy_stop_stream2uas = _media("rtpproxy_stop_stream2uas")


def set_rtpproxy_set(ctx: MsgContext, rset: int) -> int:
    """Select the proxy set for the next media function (recorded); 1."""
    ctx.extra["rtpproxy.set"] = int(rset)
    return 1


_params.register(MOD)
