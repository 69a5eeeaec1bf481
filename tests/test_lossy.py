"""Faults on the wire: a UDP path that drops and reorders packets, a UAS that vanishes.

``LossyRelay`` is a small UDP proxy on 127.0.0.1 put between sipp and the router (and
between the router and the sipp UAS): it drops a share of the datagrams in each
direction and swaps some neighbours. Transactions must still complete through
retransmissions; with the UAS gone, fr_timer ends every transaction (408) and the
transaction table of the worker drains to 0 (read through a probe request answered by
the script with the table size).
"""

from __future__ import annotations

import os
import random
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pykemi.runtime.sip.message import parse_message

from .harness import SIPP, sipp
from .tmharness import relay_router, sipp_uas

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp is not installed"),
    pytest.mark.timeout(300, method="thread"),
]
SLOW = os.environ.get("PYKEMI_SLOW") == "1"
slow = pytest.mark.skipif(not SLOW, reason="long test: set PYKEMI_SLOW=1")


@dataclass
class LossyRelay:
    """UDP relay: datagrams to ``port`` go to ``target``; answers go back to the last sender.

    Each datagram is dropped with probability ``loss``; with probability ``reorder`` it is
    held back and sent after the next one of the same direction (or after 50 ms).
    """

    target: tuple[str, int]
    loss: float = 0.1
    reorder: float = 0.1
    seed: int = 1
    forwarded: int = 0
    dropped: int = 0
    reordered: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.rnd = random.Random(self.seed)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = int(self.front.getsockname()[1])
        self.client: tuple[str, int] | None = None
        # direction -> (held datagram, its destination, release time)
        self.held: dict[str, tuple[bytes, tuple[str, int], float] | None] = {"up": None, "dn": None}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _send(self, way: str, data: bytes, dest: tuple[str, int]) -> None:
        sock = self.back if way == "up" else self.front
        held = self.held[way]
        if self.rnd.random() < self.loss:
            self.dropped += 1
            return
        if held is None and self.rnd.random() < self.reorder:
            self.held[way] = (data, dest, time.monotonic() + 0.05)
            self.reordered += 1
            return
        sock.sendto(data, dest)
        self.forwarded += 1
        if held is not None:  # the held one goes out after this one: swapped
            self.held[way] = None
            sock.sendto(held[0], held[1])
            self.forwarded += 1

    def _release(self) -> None:
        now = time.monotonic()
        for way, held in self.held.items():
            if held is not None and held[2] <= now:
                self.held[way] = None
                (self.back if way == "up" else self.front).sendto(held[0], held[1])
                self.forwarded += 1

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.front, selectors.EVENT_READ, "up")
        sel.register(self.back, selectors.EVENT_READ, "dn")
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.02):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data, src = sock.recvfrom(65535)
                except OSError:
                    continue
                if key.data == "up":
                    self.client = src
                    self._send("up", data, self.target)
                elif self.client is not None:
                    self._send("dn", data, self.client)
            self._release()
        sel.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.front.close()
        self.back.close()


@contextmanager
def lossy(target: tuple[str, int], **kw: float) -> Iterator[LossyRelay]:
    relay = LossyRelay(target, **kw)  # type: ignore[arg-type]
    try:
        yield relay
    finally:
        relay.close()


# -- stateless over a lossy path ---------------------------------------------------------------

STATELESS_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=2
listen=LISTEN
loadmodule "sl.so"
loadmodule "kemix.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "s.lua")
cfgengine "lua"
"""
STATELESS_LUA = """
function ksr_request_route()
    if KSR.is_OPTIONS() then KSR.sl.send_reply(200, "OK") return end
    KSR.sl.send_reply(404, "Not Found")
end
"""


def test_stateless_options_over_a_lossy_path(tmp_path: Path) -> None:
    (tmp_path / "s.lua").write_text(STATELESS_LUA)
    cfg = tmp_path / "s.cfg"
    cfg.write_text(STATELESS_CFG)
    calls = 150
    with relay_router(cfg, tmp_path) as r, lossy(("127.0.0.1", r.port)) as relay:
        # options.xml has rport in its Via: the replies come back through the relay too
        res = sipp("options.xml", relay.port, tmp_path, calls=calls, rate=100, timeout=60)
    assert (res.successful, res.failed) == (calls, 0), res.output
    assert relay.dropped > 0 and relay.reordered > 0
    assert res.retransmissions > 0  # the drops were repaired by sipp's retransmissions


# -- stateful (tm) over lossy paths on both sides ------------------------------------------------

TM_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
auto_aliases=no
listen=LISTEN
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "kemix.so"
loadmodule "app_python3.so"
modparam("tm", "fr_timer", FR_TIMER)
modparam("tm", "wt_timer", 1000)
modparam("app_python3", "load", "relay.py")
cfgengine "python"
"""
# the probe (X-Probe header) answers with the size of this worker's transaction table
TM_PY = """
import KSR


def ksr_request_route(msg):
    if KSR.hdr.is_present("X-Probe") > 0:
        from pykemi.runtime.core.context import CURRENT
        from pykemi.runtime.tm import get_tm

        tm = get_tm(CURRENT.ctx.proc)
        KSR.sl.send_reply(200, "txns=%d" % (len(tm.table) if tm is not None else -1))
        return
    KSR.pv.sets("$du", KSR.kx.get_def("UAS_URI"))
    KSR.tm.t_on_failure("ksr_failure")
    if KSR.tm.t_relay() < 0:
        KSR.sl.send_reply(500, "Server error")


def ksr_failure(msg):
    KSR.info("===== failure %s\\n" % KSR.pv.get("$T_reply_code"))
"""


def _probe(port: int) -> int:
    data = (
        "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-probe-{time.monotonic_ns()};rport\r\n"
        "From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:probe@127.0.0.1>\r\n"
        f"Call-ID: probe@127.0.0.1\r\nCSeq: {time.monotonic_ns()} OPTIONS\r\nX-Probe: 1\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        s.sendto(data.encode(), ("127.0.0.1", port))
        reply = parse_message(s.recvfrom(65535)[0])
    assert reply.status == 200 and reply.reason.startswith("txns="), reply.first_line
    return int(reply.reason[5:])


def _wait_drained(port: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    n = _probe(port)
    while n and time.monotonic() < deadline:
        time.sleep(0.5)
        n = _probe(port)
    return n


def _tm_files(tmp: Path) -> Path:
    (tmp / "relay.py").write_text(TM_PY)
    cfg = tmp / "relay.cfg"
    cfg.write_text(TM_CFG)
    return cfg


@pytest.mark.parametrize("calls", [30, pytest.param(300, marks=slow)])
def test_tm_calls_over_a_lossy_path(tmp_path: Path, calls: int) -> None:
    # The loss is on the caller side (INVITE, ACK, BYE and their retransmissions; the
    # replies go straight to sipp, uac_call.xml's Via has no rport). A lossy path to the
    # sipp UAS makes sipp itself fail calls (it aborts on an ACK or INVITE retransmission
    # it does not expect), so that side stays clean.
    cfg = _tm_files(tmp_path)
    # -m 2*calls: an INVITE retransmission arriving after its call ended is a new call to
    # the sipp UAS; it must not stop early and leave the last call unanswered
    with sipp_uas("uas_200.xml", tmp_path, 2 * calls) as uas:
        defines = {"UAS_URI": f"sip:127.0.0.1:{uas.port}", "FR_TIMER": "30000"}
        with relay_router(cfg, tmp_path, defines) as r:
            with lossy(("127.0.0.1", r.port), loss=0.1, reorder=0.1, seed=3) as up:
                res = sipp("uac_call.xml", up.port, tmp_path, calls=calls, rate=10, timeout=120)
            left = _wait_drained(r.port, 40)  # wt_timer 1 s, then the tombstones expire
            log = r.log
    assert (res.successful, res.failed) == (calls, 0), res.output
    assert up.dropped > 0 and up.reordered > 0
    assert left == 0, f"{left} transactions still in the table"
    assert "Traceback" not in log


def test_vanished_uas_times_out_and_table_drains(tmp_path: Path) -> None:
    cfg = _tm_files(tmp_path)
    calls = 10
    # the "UAS" is a relay to a port where nobody listens: every request vanishes
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))
        dead = ("127.0.0.1", int(hole.getsockname()[1]))
    with lossy(dead, loss=1.0, reorder=0.0) as down:
        defines = {"UAS_URI": f"sip:127.0.0.1:{down.port}", "FR_TIMER": "2000"}
        with relay_router(cfg, tmp_path, defines) as r:
            res = sipp("uac_timeout.xml", r.port, tmp_path, calls=calls, rate=20, timeout=60)
            assert _probe(r.port) >= 0
            left = _wait_drained(r.port, 30)
            log = r.log
    assert (res.successful, res.failed) == (calls, 0), res.output  # each call got its 408
    assert log.count("===== failure 408") == calls
    assert down.dropped >= calls  # INVITEs and their retransmissions went nowhere
    assert left == 0, f"{left} transactions still in the table"
