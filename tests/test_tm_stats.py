"""Shared counters across forked workers, and tm.stats over the control socket."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pykemi.runtime.control import call, default_socket_path
from pykemi.runtime.core.stats import Stats, StatsError

from .harness import SIPP, kemi, sipp
from .tmharness import RELAY, relay_router, sipp_uas

TM_KEYS = [
    "current", "waiting", "total", "total_local", "rpl_received", "rpl_generated", "rpl_sent",
    "6xx", "5xx", "4xx", "3xx", "2xx", "created", "freed", "delayed_free",
]  # fmt: skip


def test_rows_written_by_forked_processes_are_summed() -> None:
    stats = Stats(3)
    hits = stats.register("m:hits")
    gauge = stats.register("m:open")
    assert stats.register("m:hits") == hits  # same name, same column
    pids = []
    for rank, n in ((1, 5), (2, 7)):
        pid = os.fork()
        if pid == 0:
            stats.attach(rank)
            for _ in range(n):
                stats.add(hits)
            stats.add(gauge, 3)
            stats.add(gauge, -1)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    stats.add(hits, 100)  # the main process writes row 0
    assert stats.total("m:hits") == 112
    assert stats.group("m") == {"hits": 112, "open": 4}
    assert stats.total("m:unknown") == 0


def test_attach_zeroes_the_row_and_freezes_the_layout() -> None:
    stats = Stats(2, counters=2)
    col = stats.register("a:x")
    stats.attach(1)
    stats.add(col, 9)
    stats.attach(1)  # a restarted worker starts from zero
    assert stats.total("a:x") == 0
    with pytest.raises(StatsError, match="after the workers started"):
        stats.register("a:late")
    with pytest.raises(StatsError, match=r"outside 0\.\.1"):
        stats.attach(2)
    full = Stats(1, counters=1)
    full.register("a:one")
    with pytest.raises(StatsError, match="more than 1 counters"):
        full.register("a:two")


def _tm_stats(port: int) -> dict[str, Any]:
    reply = call(default_socket_path("127.0.0.1", port), "tm.stats", [])
    result = reply.get("result")
    assert isinstance(result, dict), reply
    return result


@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")
def test_tm_stats_count_relayed_calls_and_drain(tmp_path: Path) -> None:
    calls = 200
    with sipp_uas("uas_200.xml", tmp_path, calls) as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port}", "CHILDREN": "2"}
        with relay_router(RELAY / "kamailio-lua.cfg", tmp_path, defines) as r:
            before = _tm_stats(r.port)
            res = sipp("uac_call.xml", r.port, tmp_path, calls=calls, rate=100)
            uas.wait(60)
            busy = _tm_stats(r.port)
            deadline = time.time() + 20  # wt_timer 5 s after the last final reply
            after = busy
            while (after["current"] or after["waiting"]) and time.time() < deadline:
                time.sleep(0.5)
                after = _tm_stats(r.port)
            cli = kemi("rpc", "-s", default_socket_path("127.0.0.1", r.port), "tm.stats")
    assert (res.successful, res.failed) == (calls, 0), res.output
    assert list(before) == TM_KEYS
    assert all(v == 0 for v in before.values()), before
    # INVITE and BYE of each call are transactions; the ACK for 2xx is not
    assert after["total"] == after["created"] == 2 * calls
    assert after["2xx"] == 2 * calls
    assert after["rpl_generated"] == calls  # the automatic 100 Trying of each INVITE
    assert after["rpl_received"] >= 3 * calls  # 180 + 200 + the BYE's 200 at least
    assert after["rpl_sent"] >= 4 * calls  # 100, 180, 200 and the BYE's 200
    assert after["total_local"] == after["delayed_free"] == 0
    assert after["3xx"] == after["4xx"] == after["5xx"] == after["6xx"] == 0
    assert busy["current"] == busy["created"] - busy["freed"]
    assert (after["current"], after["waiting"], after["freed"]) == (0, 0, 2 * calls), after
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == after  # kamcmd-style access from the shell


@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")
def test_tm_stats_counts_local_failures(tmp_path: Path) -> None:
    """A UAS that never answers: every INVITE ends with tm's own 408 (a 4xx, generated)."""
    calls = 5
    with sipp_uas("uas_silent.xml", tmp_path, calls, timeout=60) as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port}", "FR_TIMER": "1000"}
        with relay_router(RELAY / "kamailio-lua.cfg", tmp_path, defines) as r:
            sipp("uac_timeout.xml", r.port, tmp_path, calls=calls, rate=10, timeout=60)
            deadline = time.time() + 30
            st = _tm_stats(r.port)
            while st["current"] and time.time() < deadline:
                time.sleep(0.5)
                st = _tm_stats(r.port)
    assert st["4xx"] == calls and st["2xx"] == 0, json.dumps(st)
    assert st["rpl_generated"] == 2 * calls  # 100 Trying + 408 per INVITE
    assert st["current"] == 0 and st["freed"] == st["created"] == calls
