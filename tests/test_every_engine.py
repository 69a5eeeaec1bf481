"""Every cfgengine identifier runs the seed's stateless and relay examples under sipp.

For each of jsdt, lua, python, python3, ruby and sqlang: ``kemi run`` with the stateless
example of that language answers 2,000 OPTIONS (and Max-Forwards: 0 with 483), and the relay
example relays 2,000 calls (INVITE, ACK, BYE) to a sipp UAS with 0 failed calls at both ends,
the named tm callbacks of the script running once per relayed request.

The relay examples of lua and python are run with 5,000 calls by test_tm_relay.py; they are
not run a second time here (see test_relay_examples_cover_every_identifier).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .harness import ROOT, SIPP, router, sipp
from .test_tm_relay import _replies_sent
from .tmharness import RELAY, relay_router, sipp_uas

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")

STATELESS = ROOT / "examples" / "stateless"
IDENTIFIERS = ["jsdt", "lua", "python", "python3", "ruby", "sqlang"]
# the relay examples of lua and python: test_tm_relay.test_relay_5000_calls
RELAYED_ELSEWHERE = {"lua", "python"}
# the language name each relay script puts in its log lines
SCRIPT_LANG = {"jsdt": "javascript", "python3": "python3", "ruby": "ruby", "sqlang": "squirrel"}

OPTIONS_CALLS = 2_000
OPTIONS_RATE = 400  # calls/s
RELAY_CALLS = 2_000
RELAY_RATE = 90  # calls/s: ~22 s a run, with headroom on a busy 2-core machine


def _require(engine: str) -> None:
    """Skip when the interpreter behind ``engine`` is not installed here."""
    if engine == "jsdt":
        pytest.importorskip("quickjs")
    elif engine == "sqlang":
        pytest.importorskip("squirrel")
    elif engine == "ruby":
        from pykemi.runtime.engines import ruby_build

        try:
            ruby_build.ruby_flags()
        except ruby_build.RubyBuildError as exc:
            pytest.skip(f"libruby headers missing: {exc}")


def _cfgengine(cfg: Path) -> str:
    m = re.search(r'^cfgengine\s+"([^"]+)"', cfg.read_text(), re.MULTILINE)
    assert m, f"{cfg}: no cfgengine"
    return m.group(1)


@pytest.mark.parametrize("engine", IDENTIFIERS)
def test_stateless_example_2000_options(engine: str, tmp_path: Path) -> None:
    _require(engine)
    cfg = STATELESS / f"kamailio-{engine}.cfg"
    assert _cfgengine(cfg) == engine
    with router(cfg, tmp_path) as r:
        res = sipp("options.xml", r.port, tmp_path, calls=OPTIONS_CALLS, rate=OPTIONS_RATE)
        hops = sipp("options_maxfwd0.xml", r.port, tmp_path, calls=20, rate=100)
        log = r.log
    assert (res.successful, res.failed) == (OPTIONS_CALLS, 0), res.output
    assert (hops.successful, hops.failed) == (20, 0), hops.output
    # every request sipp sent (retransmissions included) was routed and logged by the script
    sent = OPTIONS_CALLS + 20 + res.retransmissions + hops.retransmissions
    assert log.count("===== request OPTIONS from 127.0.0.1") == sent
    assert "Traceback" not in log and "ERROR" not in log


@pytest.mark.parametrize("engine", sorted(set(IDENTIFIERS) - RELAYED_ELSEWHERE))
def test_relay_example_2000_calls(engine: str, tmp_path: Path) -> None:
    _require(engine)
    cfg = RELAY / f"kamailio-{engine}.cfg"
    assert _cfgengine(cfg) == engine
    with sipp_uas("uas_200.xml", tmp_path, RELAY_CALLS, timeout=120) as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port}", "CHILDREN": "2"}
        with relay_router(cfg, tmp_path, defines) as r:
            res = sipp(
                "uac_call.xml", r.port, tmp_path, calls=RELAY_CALLS, rate=RELAY_RATE, timeout=120
            )
            ures = uas.wait(60)
            log = r.log
    assert (res.successful, res.failed) == (RELAY_CALLS, 0), res.output
    assert (ures.successful, ures.failed) == (RELAY_CALLS, 0), ures.output
    assert "Traceback" not in log and "ERROR" not in log
    lang = SCRIPT_LANG[engine]
    c = uas.counts()
    relayed_requests = c["0_INVITE_Recv"] + c["5_BYE_Recv"]  # ACKs are forwarded statelessly
    assert relayed_requests == 2 * RELAY_CALLS
    # the request route ran for every request (ACKs too; more with UAC retransmissions)
    assert log.count(f"===== request - from kamailio {lang} script") >= 3 * RELAY_CALLS
    # one branch callback (named by t_on_branch) per relayed request, never for retransmissions
    assert log.count(f"===== branch route - from kamailio {lang} script") == relayed_requests
    # ksr_reply_route for every reply of the UAS; the t_on_reply callback for each one matched
    # to a transaction (at least 180, 200 and the BYE's 200 of every call)
    replies = log.count(f"===== response - from kamailio {lang} script")
    assert replies == _replies_sent(c)
    onreply = log.count(f"===== onreply route - from kamailio {lang} script")
    assert 3 * RELAY_CALLS <= onreply <= replies
    assert log.count(f"===== failure route - from kamailio {lang} script") == 0


def test_relay_examples_cover_every_identifier() -> None:
    """One relay and one stateless example per identifier; lua and python relay elsewhere."""
    for engine in IDENTIFIERS:
        assert _cfgengine(RELAY / f"kamailio-{engine}.cfg") == engine
        assert _cfgengine(STATELESS / f"kamailio-{engine}.cfg") == engine
    tm_relay = (Path(__file__).parent / "test_tm_relay.py").read_text()
    assert '@pytest.mark.parametrize("engine", ["lua", "python"])' in tm_relay
    assert "def test_relay_5000_calls" in tm_relay
