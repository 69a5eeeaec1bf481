"""tm in process: transaction matching, timers (fake clock), replies, CANCEL, callbacks, PVs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from pykemi.runtime.core.log import LOG
from pykemi.runtime.core.timer import Timers
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import SipMessage, parse_message
from pykemi.runtime.tm import TM, get_tm
from pykemi.runtime.tm.timers import TmTimers
from pykemi.runtime.tm.transaction import Branch, invite_key, server_key

from .kamailio_ref import api_list
from .modhelpers import crlf, lua_router

UAC = ("127.0.0.1", 6000)
UAS = ("127.0.0.1", 5080)
UAS2 = ("127.0.0.1", 5090)
ME = ("127.0.0.1", 5060)

SCRIPT = """
function count(name)
    KSR.pv.seti("$var(" .. name .. ")", KSR.pv.geti("$var(" .. name .. ")") + 1)
end
function ksr_request_route()
    count("req")
    if KSR.pv.get("$pr") == "tcp" then
        KSR.pv.sets("$du", "sip:127.0.0.1:5080;transport=tcp")
    else
        KSR.pv.sets("$du", "sip:127.0.0.1:5080")
    end
    KSR.tm.t_on_branch("br")
    KSR.tm.t_on_reply("onr")
    KSR.tm.t_on_failure("fail")
    KSR.tm.t_on_branch_failure("bfail")
    KSR.pv.seti("$var(relay)", KSR.tm.t_relay())
end
function br()
    count("branch")
    KSR.pv.seti("$var(is_branch)", KSR.tmx.t_is_branch_route())
    KSR.hdr.append("X-Branch: " .. KSR.pv.get("$T_branch_idx") .. "\\r\\n")
end
function onr()
    count("onreply")
    KSR.pv.seti("$var(onr_code)", KSR.pv.geti("$T_reply_code"))
    KSR.pv.seti("$var(is_reply)", KSR.tmx.t_is_reply_route())
end
function ksr_onsend_route()
    count("onsend")
    KSR.pv.sets("$var(onsend_rm)", KSR.pv.get("$rm"))
    if KSR.pv.geti("$var(dropsend)") == 1 then
        KSR.set_drop()
    end
end
function bfail()
    count("bfail")
end
function fail()
    count("failure")
    KSR.pv.seti("$var(fcode)", KSR.tm.t_get_status_code())
    KSR.pv.seti("$var(fpv)", KSR.pv.geti("$T_reply_code"))
    KSR.pv.seti("$var(frs)", KSR.pv.geti("$T_rpl($rs)"))
    KSR.pv.seti("$var(ftimeout)", KSR.tm.t_branch_timeout())
    KSR.pv.seti("$var(fis)", KSR.tmx.t_is_failure_route())
    KSR.pv.seti("$var(f486)", KSR.tm.t_check_status("486"))
    if KSR.pv.geti("$var(serial)") == 1 and KSR.tm.t_is_canceled() < 0 then
        KSR.pv.sets("$du", "sip:127.0.0.1:5090")
        KSR.pv.seti("$var(relay2)", KSR.tm.t_relay())
    end
    if KSR.pv.geti("$var(local)") == 1 then
        KSR.tm.t_reply(480, "Gone Fishing")
    end
end
"""


class Net:
    """A Router with tm whose sends are recorded and whose tm clock is fake."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.sent: list[tuple[str, tuple[str, int], SipMessage]] = []
        router.proc.send_to = self.send_to
        router.proc.local_addresses = [("udp", *ME), ("tcp", *ME)]
        tm = get_tm(router.proc)
        assert tm is not None
        self.tm: TM = tm
        self.now = 1000.0
        tm.timers = TmTimers(host=Timers())
        tm.timers.now = lambda: self.now

    @property
    def vars(self) -> dict[str, object]:
        return self.router.proc.vars

    def send_to(self, proto: str, addr: tuple[str, int], data: bytes, conn: int = -1) -> bool:
        self.sent.append((proto, addr, parse_message(data)))
        return True

    def reply_send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(("udp", addr, parse_message(data)))

    def feed(self, data: bytes, src: tuple[str, int] = UAC, proto: str = "udp") -> None:
        self.router.handle(data, src, ME, proto, self.reply_send)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.tm.timers.run_due()

    def take(self) -> list[tuple[str, tuple[str, int], SipMessage]]:
        out, self.sent = self.sent, []
        return out

    def to(self, addr: tuple[str, int]) -> list[SipMessage]:
        return [m for _, a, m in self.take() if a == addr]


def invite(n: int = 1, method: str = "INVITE", branch: str = "") -> bytes:
    b = branch or f"z9hG4bK-uac-{n}"
    return crlf(f"""{method} sip:bob@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:6000;branch={b}
From: <sip:alice@127.0.0.1>;tag=ft{n}
To: <sip:bob@127.0.0.1>
Call-ID: call-{n}
CSeq: 1 {method}
Contact: <sip:alice@127.0.0.1:6000>
Max-Forwards: 70
Content-Length: 0

""")


def reply_to(req: SipMessage, code: int, reason: str, tag: str = "uas1") -> bytes:
    vias = "".join(f"Via: {h.value}\r\n" for h in req.headers if h.key == "via")
    to = req.get("To") or ""
    if ";tag=" not in to and code > 100:
        to += f";tag={tag}"
    return (
        f"SIP/2.0 {code} {reason}\r\n{vias}From: {req.get('From')}\r\nTo: {to}\r\n"
        f"Call-ID: {req.call_id}\r\nCSeq: {req.get('CSeq')}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    old_stream, old_level = LOG.stream, LOG.level
    LOG.stream = io.StringIO()
    try:
        router = lua_router(
            tmp_path,
            SCRIPT,
            ("tm", "tmx", "sl", "kemix", "app_lua"),
            'modparam("tm", "fr_timer", 2000)',
            'modparam("tm", "fr_inv_timer", 10000)',
            head=["debug=3"],
        )
        yield Net(router)
    finally:
        LOG.stream, LOG.level = old_stream, old_level


# ---------------------------------------------------------------------------
# pure helpers


def test_server_key_matches_ack_and_separates_cancel() -> None:
    inv = parse_message(invite(1))
    ack = parse_message(invite(1, "ACK"))
    cancel = parse_message(invite(1, "CANCEL"))
    other = parse_message(invite(2))
    k = server_key(inv)
    assert k is not None and server_key(ack) == k
    ck = server_key(cancel)
    assert ck is not None and ck != k and invite_key(ck) == k
    assert server_key(other) != k
    old = parse_message(invite(1, branch="1234"))  # RFC 2543: no magic cookie
    ko = server_key(old)
    assert (
        ko is not None
        and ko[0] == "2543"
        and ko == server_key(parse_message(invite(1, "ACK", "1234")))
    )


def test_tm_timers_order_cancel_and_single_host_entry() -> None:
    host = Timers()
    t = TmTimers(host=host)
    clock = [0.0]
    t.now = lambda: clock[0]
    fired: list[str] = []
    t.call_later(2.0, lambda: fired.append("b"))
    t.call_later(1.0, lambda: fired.append("a"))
    c = t.call_later(1.5, lambda: fired.append("cancelled"))
    c.cancel()
    assert len(host) == 1  # one armed entry in the worker heap, whatever tm has pending
    clock[0] = 1.6
    t.run_due()
    assert fired == ["a"]
    clock[0] = 5
    t.run_due()
    assert fired == ["a", "b"] and t.pending() == 0


def test_tm_timers_heap_follows_live_timers() -> None:
    """Cancelled fr timers (120 s) must not pile up: the heap is compacted, order kept."""
    t = TmTimers(host=Timers())
    clock = [0.0]
    t.now = lambda: clock[0]
    fired: list[int] = []
    live = []
    for i in range(20000):
        timer = t.call_later(120.0 + i * 1e-3, lambda i=i: fired.append(i))
        if i % 10:
            timer.cancel()
            timer.cancel()  # twice: counted once
        else:
            live.append(i)
    assert t.pending() == len(live) == 2000
    assert len(t._heap) < 2 * 2000 + 1100  # not 20000
    assert t.cancelled_entries == sum(1 for _, _, x in t._heap if x.cancelled)

    # a firing timer that arms and cancels more timers compacts the heap under run_due
    def rearm() -> None:
        for _ in range(3000):
            t.call_later(1.0, lambda: None).cancel()
        t.call_later(0.5, lambda: fired.append(-1))

    t.call_later(100.0, rearm)
    clock[0] = 100.0
    t.run_due()
    clock[0] = 100.6
    t.run_due()
    assert fired == [-1]
    clock[0] = 200.0
    t.run_due()
    assert fired == [-1, *live] and t.pending() == 0 and t.cancelled_entries == 0


def test_pick_best_reply() -> None:
    from pykemi.runtime.tm.transaction import Transaction

    def br(i: int, code: int, local: bool = False) -> Branch:
        b = Branch(i, 0, "sip:x", None, "udp", ("127.0.0.1", 1), f"b{i}")
        b.final_code = code
        b.reply = None if local else SipMessage.reply(code, "x")
        return b

    txn = Transaction.__new__(Transaction)
    txn.disable_6xx = False
    pick = TM.pick
    txn.branches = [br(0, 503), br(1, 486), br(2, 408, local=True)]
    assert pick(None, txn).index == 1  # type: ignore[arg-type, union-attr]
    txn.branches = [br(0, 486), br(1, 603)]
    assert pick(None, txn).index == 1  # type: ignore[arg-type, union-attr]
    txn.branches = [br(0, 404), br(1, 407), br(2, 302)]
    assert pick(None, txn).final_code == 302  # type: ignore[arg-type, union-attr]
    txn.branches = [br(0, 404), br(1, 407)]
    assert pick(None, txn).final_code == 407  # type: ignore[arg-type, union-attr]


# ---------------------------------------------------------------------------
# through the Router and the Lua script


def test_invite_relayed_100_retransmissions_absorbed(net: Net) -> None:
    net.feed(invite(1))
    sent = net.take()
    up = [m for _, a, m in sent if a == UAC]
    down = [m for _, a, m in sent if a == UAS]
    assert [m.status for m in up] == [100]
    assert len(down) == 1 and down[0].method == "INVITE"
    fwd = down[0]
    assert fwd.vias[0].host == "127.0.0.1" and fwd.vias[0].port == 5060
    assert fwd.vias[1].branch == "z9hG4bK-uac-1"
    assert fwd.get("X-Branch") == "0" and net.vars["is_branch"] == 1
    assert net.vars["relay"] == 1 and net.vars["branch"] == 1
    # a retransmitted INVITE gets the 100 again, no new branch
    net.feed(invite(1))
    again = net.take()
    assert [(a, m.status) for _, a, m in again] == [(UAC, 100)]
    assert net.vars["branch"] == 1 and net.vars["relay"] == 1  # Kamailio t_relay_to: "done"
    # 180 and 200 relayed upstream with our Via removed; onreply ran for each
    net.feed(reply_to(fwd, 180, "Ringing"), UAS)
    net.feed(reply_to(fwd, 200, "OK"), UAS)
    up = net.to(UAC)
    assert [m.status for m in up] == [180, 200]
    assert all(len(m.vias) == 1 and m.vias[0].branch == "z9hG4bK-uac-1" for m in up)
    assert net.vars["onreply"] == 2 and net.vars["onr_code"] == 200 and net.vars["is_reply"] == 1
    # 200 retransmitted by the UAS: relayed again (ACK is end to end)
    net.feed(reply_to(fwd, 200, "OK"), UAS)
    assert [m.status for m in net.to(UAC)] == [200]


def test_timer_a_then_408_after_fr_timer_and_failure_route(net: Net) -> None:
    net.feed(invite(2))
    fwd = net.to(UAS)[0]
    net.advance(0.5)
    assert [m.method for m in net.to(UAS)] == ["INVITE"]  # timer A: T1
    net.advance(0.9)
    assert net.to(UAS) == []
    net.advance(0.2)  # 1.6 s: second retransmission at 1.5 s (2*T1)
    assert [m.method for m in net.to(UAS)] == ["INVITE"]
    net.advance(0.5)  # 2.1 s: fr_timer expired
    up = net.to(UAC)
    assert [m.status for m in up] == [408]
    assert net.vars["failure"] == 1 and net.vars["bfail"] == 1
    assert net.vars["fcode"] == 408 and net.vars["fpv"] == 408 and net.vars["ftimeout"] == 1
    assert net.vars["fis"] == 1
    tag = up[0].to_tag
    assert tag
    # no more retransmissions to the UAS; the 408 is retransmitted (timer G) until the ACK
    net.advance(0.6)
    sent = net.take()
    assert [(a, m.status) for _, a, m in sent] == [(UAC, 408)]
    ack = invite(2, "ACK").replace(
        b"To: <sip:bob@127.0.0.1>", f"To: <sip:bob@127.0.0.1>;tag={tag}".encode()
    )
    net.feed(ack)
    assert net.take() == []  # ACK absorbed, not relayed
    assert net.vars["relay"] == 1  # Kamailio t_relay_to: ACK to a negative reply, "done"
    net.advance(5)
    assert net.take() == []
    assert fwd.method == "INVITE"


def test_486_acked_hop_by_hop_failure_route_then_relayed(net: Net) -> None:
    net.feed(invite(3))
    fwd = net.to(UAS)[0]
    net.feed(reply_to(fwd, 486, "Busy Here"), UAS)
    sent = net.take()
    acks = [m for _, a, m in sent if a == UAS]
    assert len(acks) == 1 and acks[0].method == "ACK"
    assert acks[0].vias[0].branch == fwd.vias[0].branch and acks[0].to_tag == "uas1"
    assert acks[0].cseq == (1, "ACK")
    up = [m for _, a, m in sent if a == UAC]
    assert [m.status for m in up] == [486]
    assert net.vars["failure"] == 1 and net.vars["fcode"] == 486 and net.vars["frs"] == 486
    assert net.vars["f486"] == 1 and net.vars["ftimeout"] == -1
    # the UAS retransmits its 486 (our ACK lost): ACK again, nothing upstream
    net.feed(reply_to(fwd, 486, "Busy Here"), UAS)
    assert [(a, m.method) for _, a, m in net.take()] == [(UAS, "ACK")]


def test_serial_forking_from_failure_route(net: Net) -> None:
    net.vars["serial"] = 1
    net.feed(invite(4))
    fwd = net.to(UAS)[0]
    net.feed(reply_to(fwd, 486, "Busy Here"), UAS)
    sent = net.take()
    second = [m for _, a, m in sent if a == UAS2]
    assert len(second) == 1 and second[0].method == "INVITE"
    assert second[0].vias[0].branch != fwd.vias[0].branch
    assert [m.status for _, a, m in sent if a == UAC] == []  # 486 not relayed: new leg running
    assert net.vars["relay2"] == 1 and net.vars["branch"] == 2
    net.feed(reply_to(second[0], 200, "OK", tag="uas2"), UAS2)
    assert [m.status for m in net.to(UAC)] == [200]


def test_local_reply_in_failure_route(net: Net) -> None:
    net.vars["local"] = 1
    net.feed(invite(5))
    fwd = net.to(UAS)[0]
    net.feed(reply_to(fwd, 404, "Not Here"), UAS)
    up = [m for _, a, m in net.take() if a == UAC]
    assert [(m.status, m.reason) for m in up] == [(480, "Gone Fishing")]


def test_cancel_before_answer(net: Net) -> None:
    net.feed(invite(6))
    fwd = net.to(UAS)[0]
    # CANCEL before any provisional: 200 at once, our CANCEL waits for the 1xx
    net.feed(invite(6, "CANCEL"))
    up = net.take()
    assert [(a, m.status, m.cseq) for _, a, m in up] == [(UAC, 200, (1, "CANCEL"))]
    net.feed(reply_to(fwd, 180, "Ringing"), UAS)
    sent = net.take()
    cancels = [m for _, a, m in sent if a == UAS]
    assert [m.method for m in cancels] == ["CANCEL"]
    assert cancels[0].vias[0].branch == fwd.vias[0].branch and len(cancels[0].vias) == 1
    assert [m.status for _, a, m in sent if a == UAC] == []  # 180 after CANCEL not relayed upstream
    net.feed(reply_to(cancels[0], 200, "OK"), UAS)  # 200 to our CANCEL: absorbed
    assert net.take() == []
    net.feed(reply_to(fwd, 487, "Request Terminated"), UAS)
    sent = net.take()
    assert [(a, m.method or m.status) for _, a, m in sent] == [(UAS, "ACK"), (UAC, 487)]
    assert net.vars["failure"] == 1


def test_cancel_after_provisional_and_unknown_cancel(net: Net) -> None:
    net.feed(invite(7))
    fwd = net.to(UAS)[0]
    net.feed(reply_to(fwd, 180, "Ringing"), UAS)
    assert [m.status for m in net.to(UAC)] == [180]
    net.feed(invite(7, "CANCEL"))
    sent = net.take()
    assert sorted((a, m.method or str(m.status)) for _, a, m in sent) == [
        (UAS, "CANCEL"),
        (UAC, "200"),
    ]
    # a CANCEL matching nothing is relayed like any request (its own transaction)
    net.feed(invite(99, "CANCEL"))
    assert [m.method for m in net.to(UAS)] == ["CANCEL"]


def test_non_invite_timer_e_and_tcp_no_retransmission(net: Net) -> None:
    net.feed(invite(8, "BYE"))
    assert [m.method for m in net.to(UAS)] == ["BYE"]
    assert net.to(UAC) == []  # no automatic 100 for non-INVITE
    times = []
    up: list[int] = []
    for _ in range(45):
        net.advance(0.05)
        sent = net.take()
        if any(a == UAS for _, a, _ in sent):
            times.append(round(net.now - 1000.0, 2))
        up += [m.status for _, a, m in sent if a == UAC]
    # T1, then 2*T1 later; the 2.0 s fr_timer ends it (50 ms steps of the fake clock)
    assert len(times) == 2 and times[0] == pytest.approx(0.5, abs=0.06)
    assert times[1] == pytest.approx(1.5, abs=0.11)
    assert up == [408]
    # over TCP nothing is retransmitted
    net.router.handle(invite(9, "MESSAGE"), UAC, ME, "tcp", net.reply_send)
    assert [(p, m.method) for p, a, m in net.take()] == [("tcp", "MESSAGE")]
    net.advance(1.8)
    assert net.take() == []


def test_reply_matching_rejects_foreign_branch(net: Net) -> None:
    net.feed(invite(10))
    fwd = net.to(UAS)[0]
    bad = reply_to(fwd, 200, "OK").replace(fwd.vias[0].branch.encode(), b"z9hG4bKforeign", 1)
    assert net.tm.on_reply(net_ctx(bad)) is False
    wrong_method = reply_to(fwd, 200, "OK").replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")
    assert net.tm.on_reply(net_ctx(wrong_method)) is True  # ours, but absorbed
    assert net.vars.get("onreply", 0) == 0


def net_ctx(data: bytes) -> object:
    from pykemi.runtime.core.context import MsgContext, ProcessState

    return MsgContext(parse_message(data), UAS, ME, "udp", lambda d, a: None, ProcessState())


def test_bad_input_never_raises(net: Net) -> None:
    net.feed(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKzz.x\r\n\r\n", UAS)
    net.feed(b"INVITE sip:a@b SIP/2.0\r\nVia: garbage\r\nCSeq: x\r\n\r\n")
    net.feed(invite(11).replace(b"CSeq: 1 INVITE", b"CSeq: nonsense"))
    assert net.tm.table.parse_branch("z9hG4bK" + net.tm.table.tag + "zz.q") is None


def test_late_retransmission_after_wait_is_absorbed(net: Net) -> None:
    net.feed(invite(12, "BYE"))
    fwd = net.to(UAS)[0]
    net.feed(reply_to(fwd, 200, "OK"), UAS)
    assert [m.status for m in net.to(UAC)] == [200]
    net.advance(6)  # wt_timer (5 s) passed: the transaction left the table
    assert net.tm.lookup is not None and len(net.tm.table) == 0
    net.feed(invite(12, "BYE"))  # very late retransmission: last reply again, no new branch
    assert [(a, m.status) for _, a, m in net.take()] == [(UAC, 200)]
    assert net.vars["branch"] == 1
    net.advance(40)  # after 64*T1 it would be a new request
    net.feed(invite(12, "BYE"))
    assert [m.method for m in net.to(UAS)] == ["BYE"]


def test_onsend_runs_with_received_request_and_drop_is_honoured(net: Net) -> None:
    net.feed(invite(13))
    assert [m.method for m in net.to(UAS)] == ["INVITE"]
    assert net.vars["onsend"] == 1 and net.vars["onsend_rm"] == "INVITE"
    net.vars["dropsend"] = 1
    net.feed(invite(14))
    sent = net.take()
    assert [a for _, a, _ in sent if a == UAS] == []  # dropped in ksr_onsend_route (as 5.8)
    assert [m.status for _, a, m in sent if a == UAC] == [100, 477]
    assert net.vars["relay"] == -1


def test_tmx_reply_and_cancel_by_callid(net: Net) -> None:
    from pykemi.runtime.core.context import MsgContext
    from pykemi.runtime.modules import tmx

    net.feed(invite(15))
    fwd = net.to(UAS)[0]
    net.feed(reply_to(fwd, 183, "Progress"), UAS)
    net.take()
    ctx = MsgContext(parse_message(invite(99)), UAC, ME, "udp", net.reply_send, net.router.proc)
    assert tmx.t_cancel_callid(ctx, "call-15", "1", 0) == 1
    assert [(a, m.method) for _, a, m in net.take()] == [(UAS, "CANCEL")]
    assert tmx.t_reply_callid(ctx, "call-15", "1", 488, "Not Here") == 1
    assert [(a, m.status) for _, a, m in net.take()] == [(UAC, 488)]
    assert tmx.t_reply_callid(ctx, "nope", "1", 488, "x") == -1
    assert tmx.t_reply_callid(ctx, "call-15", "bad", 488, "x") == -1
    assert tmx.t_suspend(ctx) == -1


@pytest.mark.parametrize("module", ["tm", "tmx"])
def test_every_export_exists_and_survives_odd_input(net: Net, module: str) -> None:
    """All Kamailio 5.6 exports are implemented; none raises, whatever the context."""
    import importlib

    from pykemi.runtime.core.context import FAILURE_ROUTE, MsgContext

    names = [(e["name"], e["params"]) for e in api_list() if e["module"] == module]
    assert len(names) == {"tm": 54, "tmx": 16}[module]
    impl = importlib.import_module(f"pykemi.runtime.modules.{module}")
    values = {"int": [0, -1, 1, 99999], "str": ["", "x", "all", "udp:127.0.0.1:1"]}
    for route in (1, FAILURE_ROUTE):
        for name, params in names:
            fn = getattr(impl, name)
            for i in range(4):
                ctx = MsgContext(
                    parse_message(invite(200 + i)), UAC, ME, "udp", net.reply_send, net.router.proc
                )
                ctx.route_type = route
                args = [values[p][i] for p in params]
                rc = fn(ctx, *args)
                assert isinstance(rc, int), name
    net.take()
