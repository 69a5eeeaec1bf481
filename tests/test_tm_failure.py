"""End to end with sipp: failure callback, serial forking, CANCEL, fr_timer 408, retransmissions."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import SIPP, sipp
from .tmharness import RELAY, relay_router, sipp_uas

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")

CALLS = 20

SERIAL_LUA = """
-- serial forking: the first UAS answers 486, the failure callback relays to the second one
function ksr_request_route()
    local uas2 = KSR.kx.get_def("UAS2_URI")
    if KSR.pv.get("$tt") ~= nil then
        -- in-dialog (ACK/BYE): the dialog is with the second UAS (no Record-Route here)
        KSR.pv.sets("$du", uas2)
        KSR.tm.t_relay()
        return
    end
    KSR.pv.sets("$du", KSR.kx.get_def("UAS_URI"))
    KSR.tm.t_on_failure("ksr_failure_serial")
    KSR.tm.t_on_branch_failure("ksr_branch_failure")
    if KSR.tm.t_relay() < 0 then
        KSR.sl.send_reply(500, "Server error")
    end
end

function ksr_branch_failure()
    KSR.info("===== branch failure " .. KSR.tm.t_get_status_code() .. "\\n")
end

function ksr_failure_serial()
    KSR.info("===== failure route " .. KSR.pv.get("$T_reply_code") .. " leg to "
        .. KSR.pv.get("$du") .. "\\n")
    if KSR.tm.t_is_canceled() > 0 then
        return
    end
    if KSR.tm.t_check_status("486|408") > 0 then
        KSR.pv.sets("$du", KSR.kx.get_def("UAS2_URI"))
        if KSR.tm.t_relay() < 0 then
            KSR.tm.t_reply(500, "Serial forking failed")
        end
    end
end
"""

SERIAL_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
auto_aliases=no
listen=LISTEN
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "kemix.so"
loadmodule "app_lua.so"
modparam("tm", "failure_reply_mode", 3)
modparam("app_lua", "load", "serial.lua")
cfgengine "lua"
"""


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_486_runs_failure_callback_once_per_call(engine: str, tmp_path: Path) -> None:
    with sipp_uas("uas_486.xml", tmp_path, CALLS) as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port}"}
        with relay_router(RELAY / f"kamailio-{engine}.cfg", tmp_path, defines) as r:
            res = sipp("uac_busy.xml", r.port, tmp_path, calls=CALLS, rate=50)
            ures = uas.wait(30)
            log = r.log
    assert (res.successful, res.failed) == (CALLS, 0), res.output
    # the UAS got our hop-by-hop ACK for each 486
    assert (ures.successful, ures.failed) == (CALLS, 0), ures.output
    assert log.count(f"===== failure route - from kamailio {engine} script") == CALLS
    assert log.count(f"===== onreply route - from kamailio {engine} script") == CALLS
    assert "Traceback" not in log


def test_serial_forking_reaches_second_uas(tmp_path: Path) -> None:
    (tmp_path / "serial.lua").write_text(SERIAL_LUA, encoding="utf-8")
    cfg = tmp_path / "serial.cfg"
    cfg.write_text(SERIAL_CFG, encoding="utf-8")
    with (
        sipp_uas("uas_486.xml", tmp_path, CALLS) as busy,
        sipp_uas("uas_200.xml", tmp_path, CALLS) as ok,
    ):
        defines = {"UAS_URI": f"sip:127.0.0.1:{busy.port}", "UAS2_URI": f"sip:127.0.0.1:{ok.port}"}
        with relay_router(cfg, tmp_path, defines) as r:
            res = sipp("uac_call.xml", r.port, tmp_path, calls=CALLS, rate=50)
            busy_res = busy.wait(30)
            ok_res = ok.wait(30)
            log = r.log
    assert (res.successful, res.failed) == (CALLS, 0), res.output + log[-2000:]
    assert (busy_res.successful, busy_res.failed) == (CALLS, 0), busy_res.output
    assert (ok_res.successful, ok_res.failed) == (CALLS, 0), ok_res.output
    assert log.count("===== failure route 486 leg to sip:127.0.0.1") == CALLS
    assert log.count("===== branch failure 486") == CALLS
    assert "Traceback" not in log and "ERROR" not in log


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_cancel_before_answer(engine: str, tmp_path: Path) -> None:
    with sipp_uas("uas_cancel.xml", tmp_path, CALLS) as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port}"}
        with relay_router(RELAY / f"kamailio-{engine}.cfg", tmp_path, defines) as r:
            res = sipp("uac_cancel.xml", r.port, tmp_path, calls=CALLS, rate=50)
            ures = uas.wait(30)
            log = r.log
    # the caller got 200 for its CANCEL and 487 for the INVITE; the UAS got the CANCEL
    assert (res.successful, res.failed) == (CALLS, 0), res.output
    assert (ures.successful, ures.failed) == (CALLS, 0), ures.output
    c = uas.counts()
    assert c["2_CANCEL_Recv"] == CALLS and c["5_ACK_Recv"] == CALLS
    assert log.count(f"===== failure route - from kamailio {engine} script") == CALLS
    assert "Traceback" not in log


def test_unanswered_invite_gets_408_after_fr_timer(tmp_path: Path) -> None:
    calls = 10
    with sipp_uas("uas_silent.xml", tmp_path, calls) as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port}", "FR_TIMER": "2000"}
        with relay_router(RELAY / "kamailio-lua.cfg", tmp_path, defines) as r:
            res = sipp(
                "uac_timeout.xml", r.port, tmp_path, calls=calls, rate=20, extra=["-trace_counts"]
            )
            ures = uas.wait(30)
            log = r.log
    assert (res.successful, res.failed) == (calls, 0), res.output
    assert ures.failed == 0, ures.output
    # the UAS saw our INVITE retransmissions (T1, 2*T1) before fr_timer ended the branch
    assert uas.counts()["0_INVITE_Retrans"] >= 2 * calls - 2
    assert log.count("===== failure route - from kamailio lua script") == calls
    assert "Traceback" not in log


def test_retransmissions_of_invite_and_200(tmp_path: Path) -> None:
    calls = 10
    with sipp_uas("uas_retrans.xml", tmp_path, calls) as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port}"}
        with relay_router(RELAY / "kamailio-python.cfg", tmp_path, defines) as r:
            res = sipp(
                "uac_slowack.xml", r.port, tmp_path, calls=calls, rate=20, extra=["-trace_counts"]
            )
            ures = uas.wait(30)
            log = r.log
    assert (res.successful, res.failed) == (calls, 0), res.output
    assert (ures.successful, ures.failed) == (calls, 0), ures.output
    uas_c = uas.counts()
    # the UAS ignored the first INVITE: the relay retransmitted it (timer A)
    assert uas_c["0_INVITE_Retrans"] >= calls
    # the caller ACKed late: the UAS retransmitted its 200 and the relay passed it on
    assert uas_c["3_200_Retrans"] >= calls
    from .tmharness import counts

    uac_c = counts(tmp_path, "uac_slowack.xml")
    assert uac_c["3_200_Retrans"] >= calls
    assert "Traceback" not in log
