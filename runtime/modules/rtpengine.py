"""``KSR.rtpengine``: media relay control (Kamailio rtpengine) -- not available in pykemi.

pykemi does not speak the rtpengine ng protocol yet: every media function logs
"no RTP proxy available" and returns -1 (as Kamailio does when no rtpengine
of the set answers); scripts run unchanged and the SDP is left untouched.
Set selection and the parameters are accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import params as _params
from .rtpproxy import unavailable

if TYPE_CHECKING:
    from ..core.context import MsgContext

MOD = "rtpengine"
SOCKETS = "rtpengine_sock"  # the modparam listing the proxies


def _media(name: str) -> Callable[..., int]:
    def fn(ctx: MsgContext, *args: Any) -> int:
        return unavailable(MOD, SOCKETS, ctx, name)

    fn.__name__ = name
    fn.__doc__ = "No RTP proxy available in pykemi: logs and returns -1."
    return fn


rtpengine_manage0 = rtpengine_manage = _media("rtpengine_manage")
rtpengine_offer0 = rtpengine_offer = _media("rtpengine_offer")
rtpengine_answer0 = rtpengine_answer = _media("rtpengine_answer")
rtpengine_delete0 = rtpengine_delete = _media("rtpengine_delete")
start_recording = _media("start_recording")
stop_recording = _media("stop_recording")
block_media0 = block_media = _media("block_media")
unblock_media0 = unblock_media = _media("unblock_media")
silence_media0 = silence_media = _media("silence_media")
unsilence_media0 = unsilence_media = _media("unsilence_media")
block_dtmf0 = block_dtmf = _media("block_dtmf")
unblock_dtmf0 = unblock_dtmf = _media("unblock_dtmf")
play_media = _media("play_media")
stop_media0 = stop_media = _media("stop_media")
rtpengine_query0 = rtpengine_query = _media("rtpengine_query")
rtpengine_query_v = _media("rtpengine_query_v")


def set_rtpengine_set(ctx: MsgContext, r1: int) -> int:
    """Select the rtpengine set for the next media function (recorded); 1."""
    ctx.extra["rtpengine.set"] = (int(r1), None)
    return 1


def set_rtpengine_set2(ctx: MsgContext, r1: int, r2: int) -> int:
    """Select the sets for offer and answer (recorded); 1."""
    ctx.extra["rtpengine.set"] = (int(r1), int(r2))
    return 1


_params.register(MOD)
