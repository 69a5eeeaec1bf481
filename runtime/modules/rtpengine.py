"""``KSR.rtpengine``: media relay control (Kamailio rtpengine) -- not available in pykemi.

pykemi does not speak the rtpengine ng protocol yet: every media function logs
"no RTP proxy available" and returns -1 (as Kamailio does when no rtpengine
of the set answers); scripts run unchanged and the SDP is left untouched.
Set selection and the parameters are accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pykemi.runtime.modules.rtpproxy import unavailable
from pykemi.runtime.usrloc import params as _params

if TYPE_CHECKING:
    from pykemi.runtime.core.context import MsgContext

MOD = "rtpengine"
DEFAULTS: dict[str, Any] = {
    "rtpengine_sock": "",
    "rtpengine_disable_tout": 60,
    "aggressive_redetection": 1,
    "rtpengine_tout_ms": 1000,
    "rtpengine_allow_op": 0,
    "queried_nodes_limit": 0,
    "rtpengine_retr": 5,
    "extra_id_pv": "",
    "setid_avp": "",
    "force_send_interface": "",
    "read_sdp_pv": "",
    "write_sdp_pv": "",
    "rtp_inst_pvar": "",
    "hash_table_size": 256,
    "hash_table_tout": 3600,
    "db_url": "",
    "table_name": "rtpengine",
    "setid_col": "setid",
    "url_col": "url",
    "weight_col": "weight",
    "disabled_col": "disabled",
    "setid_default": 0,
    "media_duration": "",
    "mos_min_pv": "",
    "mos_max_pv": "",
    "mos_average_pv": "",
    "control_cmd_tos": -1,
    "rtpengine_ping_mode": 1,
    "rtpengine_ping_interval": 0,
}
MULTI = ("rtpengine_sock",)


def _media(name: str) -> Callable[..., int]:
    def fn(ctx: MsgContext, *args: Any) -> int:
        return unavailable(MOD, ctx, name)

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


_params.register(MOD, DEFAULTS, MULTI)
