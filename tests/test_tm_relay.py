"""End to end: sipp UAC -> kemi run (the relay example, children=2) -> sipp UAS."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import SIPP, kemi, sipp
from .tmharness import RELAY, relay_router, sipp_uas

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")

CALLS = 5000
RATE = 120  # calls/s: leaves headroom for a busy 2-core machine (measured max ~250)
LANG = {"lua": "lua", "python": "python"}


def _replies_sent(c: dict[str, int]) -> int:
    """Replies a uas_200 scenario sent (first sends and retransmissions)."""
    return sum(
        v
        for k, v in c.items()
        if k.split("_")[1:2] in (["180"], ["200"]) and k.endswith(("_Sent", "_Retrans"))
    )


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_relay_5000_calls(engine: str, tmp_path: Path) -> None:
    with sipp_uas("uas_200.xml", tmp_path, CALLS, timeout=150) as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port}", "CHILDREN": "2"}
        with relay_router(RELAY / f"kamailio-{engine}.cfg", tmp_path, defines) as r:
            res = sipp("uac_call.xml", r.port, tmp_path, calls=CALLS, rate=RATE, timeout=150)
            ures = uas.wait(60)
            log = r.log
    assert (res.successful, res.failed) == (CALLS, 0), res.output
    assert (ures.successful, ures.failed) == (CALLS, 0), ures.output
    assert "dispatch" in log and "Traceback" not in log and "ERROR" not in log
    lang = LANG[engine]
    c = uas.counts()
    relayed_requests = c["0_INVITE_Recv"] + c["5_BYE_Recv"]  # ACKs are forwarded statelessly
    assert relayed_requests == 2 * CALLS
    # one branch callback per relayed request (never for retransmissions)
    assert log.count(f"===== branch route - from kamailio {lang} script") == relayed_requests
    # ksr_reply_route ran for every reply of the UAS; the onreply callback for each one
    # matched to a transaction (at least 180, 200 and the BYE's 200 of every call; late 200
    # retransmissions after the transaction ended are forwarded statelessly, as in Kamailio)
    replies = log.count(f"===== response - from kamailio {lang} script")
    assert replies == _replies_sent(c)
    onreply = log.count(f"===== onreply route - from kamailio {lang} script")
    assert 3 * CALLS <= onreply <= replies
    assert log.count(f"===== failure route - from kamailio {lang} script") == 0


def test_relay_over_tcp(tmp_path: Path) -> None:
    calls = 500
    with sipp_uas("uas_200.xml", tmp_path, calls, transport="t1") as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port};transport=tcp", "CHILDREN": "2"}
        with relay_router(RELAY / "kamailio-lua.cfg", tmp_path, defines, listen="tcp") as r:
            res = sipp("uac_call.xml", r.port, tmp_path, calls=calls, rate=200, extra=["-t", "t1"])
            ures = uas.wait(60)
            log = r.log
    assert (res.successful, res.failed) == (calls, 0), res.output
    assert (ures.successful, ures.failed) == (calls, 0), ures.output
    c = uas.counts()
    assert c.get("0_INVITE_Retrans", 0) == 0  # no retransmissions over TCP
    assert log.count("===== branch route - from kamailio lua script") == 2 * calls
    assert "Traceback" not in log and "ERROR" not in log


def test_kemi_check_accepts_relay_examples() -> None:
    for cfg in sorted(RELAY.glob("*.cfg")):
        res = kemi("check", str(cfg), cwd=cfg.parent)
        assert res.returncode == 0, res.stderr
        assert "ok" in res.stderr
