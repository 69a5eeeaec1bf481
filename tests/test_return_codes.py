"""Return codes of KEMI exports against Kamailio 5.6 (tests/fixtures/return_codes.yaml), and
the observable effects of the places where pykemi differed from it (issue 18).

Every row of the table runs in process against the real implementation, through the slot
table's invoker (as a script calls it; C exports included), on a message and a state
prepared by its ``situation``. Extend the table when a module is added; add a situation here
only when none fits.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pykemi.runtime.core.context import (
    BRANCH_ROUTE,
    CORE_ONREPLY_ROUTE,
    CURRENT,
    FAILURE_ROUTE,
    REQUEST_ROUTE,
    TM_ONREPLY_ROUTE,
    MsgContext,
)
from pykemi.runtime.core.log import LOG
from pykemi.runtime.sip.message import parse_message

from .modhelpers import crlf, lua_router
from .test_tm_unit import ME, UAC, UAS, Net, reply_to

TABLE = Path(__file__).parent / "fixtures" / "return_codes.yaml"
UAS_URI = "sip:127.0.0.1:5080"
SDP = "v=0\r\n"

SCRIPT = """
function ksr_request_route()
    if KSR.is_OPTIONS() then
        KSR.pv.sets("$du", "sip:127.0.0.1:5080")
        KSR.pv.seti("$var(fwd)", KSR.forward())
    end
end
function ksr_onsend_route()
    KSR.pv.seti("$var(onsend)", KSR.pv.geti("$var(onsend)") + 1)
    KSR.pv.sets("$var(onsend_rm)", KSR.pv.get("$rm"))
    if KSR.pv.geti("$var(dropsend)") == 1 then
        KSR.set_drop()
    end
end
"""
MODULES = (
    "tm", "tmx", "sl", "maxfwd", "textops", "usrloc", "registrar", "htable", "nathelper",
    "siputils", "kemix", "app_lua",
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    module: str
    function: str
    situation: str
    args: tuple[Any, ...]
    expected: int | bool
    source: str

    @property
    def qualname(self) -> str:
        return self.function if self.module == "core" else f"{self.module}.{self.function}"

    @property
    def id(self) -> str:
        args = ",".join(str(a) for a in self.args)
        return f"{self.qualname}({args})@{self.situation}"


def load_table() -> list[Row]:
    rows = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    return [
        Row(
            r["module"], r["function"], r["situation"], tuple(r["args"]), r["expected"], r["source"]
        )
        for r in rows
    ]


# ---------------------------------------------------------------------------
# an in-process router (no sockets: test_tm_unit.Net records what is sent)


class Env:
    """The router, its recorded sends, fresh messages (a new Call-ID each) and invokers."""

    def __init__(self, net: Net) -> None:
        self.net = net
        self.n = 100

    def next(self) -> int:
        self.n += 1
        return self.n

    def ctx(self, raw: bytes, route: int = REQUEST_ROUTE, src: tuple[str, int] = UAC) -> MsgContext:
        msg = parse_message(raw)
        proc = self.net.router.proc
        return MsgContext(msg, src, ME, "udp", self.net.reply_send, proc, route_type=route)

    def call(self, ctx: MsgContext, qualname: str, *args: Any) -> Any:
        registry = self.net.router.registry
        invoke = registry.view("str")[registry.find(qualname)]
        prev, CURRENT.ctx = CURRENT.ctx, ctx
        try:
            return invoke(*args)
        finally:
            CURRENT.ctx = prev

    def relayed(self, n: int) -> MsgContext:
        """An INVITE relayed by tm to UAS (its transaction exists); the sends are taken."""
        ctx = self.ctx(request(n=n))
        ctx.dst_uri = UAS_URI
        assert self.call(ctx, "tm.t_relay") == 1
        return ctx


def request(
    method: str = "INVITE",
    n: int = 1,
    maxfwd: str = "70",
    body: str = SDP,
    contact: str = "<sip:alice@127.0.0.1:6000>",
    to_tag: str = "",
) -> bytes:
    mf = f"Max-Forwards: {maxfwd}\n" if maxfwd else ""
    ctype = "Content-Type: application/sdp\n" if body else ""
    return crlf(f"""{method} sip:bob@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-rc-{n}
{mf}From: <sip:alice@127.0.0.1>;tag=ft{n}
To: <sip:bob@127.0.0.1>{to_tag}
Call-ID: rc-{n}
CSeq: 1 {method}
Contact: {contact}
X-A: 1
{ctype}Content-Length: {len(body)}

""") + body.encode()


def reply(vias: str, code: int = 200, cseq: str = "1 INVITE", extra: str = "") -> bytes:
    return crlf(f"""SIP/2.0 {code} Whatever
{vias}From: <sip:alice@127.0.0.1>;tag=ft0
To: <sip:bob@127.0.0.1>;tag=tt0
Call-ID: rc-reply
CSeq: {cseq}
{extra}Content-Length: 0

""")


REGISTER = """REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-reg-{n}
From: <sip:{user}@example.com>;tag=r{n}
To: <sip:{user}@example.com>
Call-ID: reg-{n}
CSeq: 1 REGISTER
Contact: <sip:{user}@127.0.0.1:7000>;expires=3600
Content-Length: 0

"""


def register_reply(env: Env, user: str = "carol") -> MsgContext:
    """The registrar's 200 OK to a REGISTER, in the tm onreply route (an edge proxy)."""
    n = env.next()
    raw = crlf(f"""SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-edge-{n}
Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-reg-{n}
From: <sip:{user}@example.com>;tag=r{n}
To: <sip:{user}@example.com>;tag=reg{n}
Call-ID: reg-{n}
CSeq: 1 REGISTER
Contact: <sip:{user}@127.0.0.1:7000>;expires=3600
Content-Length: 0

""")
    return env.ctx(raw, TM_ONREPLY_ROUTE, UAS)


# ---------------------------------------------------------------------------
# situations: name -> the context a row's export is called with


def _plain(**kw: Any) -> Callable[[Env], MsgContext]:
    return lambda env: env.ctx(request(n=env.next(), **kw))


def _routed(route: int) -> Callable[[Env], MsgContext]:
    return lambda env: env.ctx(request(n=env.next()), route)


def _with_du(env: Env) -> MsgContext:
    ctx = env.ctx(request(n=env.next()))
    ctx.dst_uri = UAS_URI
    return ctx


def _retransmission(env: Env) -> MsgContext:
    n = env.next()
    env.relayed(n)
    env.net.take()
    return env.ctx(request(n=n))


def _ack_negative(env: Env) -> MsgContext:
    n = env.next()
    env.relayed(n)
    fwd = env.net.to(UAS)[0]
    env.net.feed(reply_to(fwd, 486, "Busy Here"), UAS)
    busy = [m for m in env.net.to(UAC) if m.status == 486]
    assert busy, "tm relays the 486 upstream"
    tag = busy[0].to_tag
    return env.ctx(request("ACK", n=n, body="", to_tag=f";tag={tag}"))


def _reply_ours(route: int) -> Callable[[Env], MsgContext]:
    def build(env: Env) -> MsgContext:
        env.relayed(env.next())
        fwd = env.net.to(UAS)[0]
        return env.ctx(reply_to(fwd, 180, "Ringing"), route, UAS)

    return build


def _reply_unknown(env: Env) -> MsgContext:
    vias = (
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnot-ours\n"
        "Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-uac\n"
    )
    return env.ctx(reply(vias), CORE_ONREPLY_ROUTE, UAS)


def _reply_received_2nd_via(env: Env) -> MsgContext:
    vias = (
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnat\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-uac;received=192.0.2.7;rport=6000\n"
    )
    return env.ctx(reply(vias), CORE_ONREPLY_ROUTE, UAS)


def _htable(env: Env) -> MsgContext:
    ctx = env.ctx(request(n=env.next()))
    assert env.call(ctx, "htable.sht_sets", "t", "a", "1") == 1
    return ctx


SITUATIONS: dict[str, Callable[[Env], MsgContext]] = {
    "request": _plain(),
    "request_du": _with_du,
    "request_no_maxfwd": _plain(maxfwd="", body=""),
    "request_maxfwd_0": _plain(maxfwd="0"),
    "request_maxfwd_bad": _plain(maxfwd="7a"),
    "request_maxfwd_300": _plain(maxfwd="300"),
    "request_private_contact": _plain(contact="<sip:alice@192.168.1.5:6000>"),
    "ack": lambda env: env.ctx(request("ACK", n=env.next(), body="")),
    "cancel_unknown": lambda env: env.ctx(request("CANCEL", n=env.next(), body="")),
    "retransmission": _retransmission,
    "ack_negative": _ack_negative,
    "failure_route": _routed(FAILURE_ROUTE),
    "branch_route": _routed(BRANCH_ROUTE),
    "tm_onreply": _reply_ours(TM_ONREPLY_ROUTE),
    "reply_ours": _reply_ours(CORE_ONREPLY_ROUTE),
    "reply_unknown": _reply_unknown,
    "reply_received_2nd_via": _reply_received_2nd_via,
    "register": lambda env: env.ctx(crlf(REGISTER.format(n=env.next(), user="dave"))),
    "register_reply": register_reply,
    "htable": _htable,
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("rc")
    old_stream, old_level = LOG.stream, LOG.level
    LOG.stream = io.StringIO()
    try:
        router = lua_router(
            tmp,
            SCRIPT,
            MODULES,
            'modparam("htable", "htable", "t=>size=4;")',
            'modparam("htable", "htable", "ti=>size=4;initval=0;")',
            head=["debug=3"],
        )
        yield Env(Net(router))
    finally:
        LOG.stream, LOG.level = old_stream, old_level


@pytest.fixture
def fresh(env: Env) -> Env:
    env.net.take()
    env.net.vars.clear()
    return env


ROWS = load_table()


def test_table_names_real_exports_and_situations(env: Env) -> None:
    registry = env.net.router.registry
    for row in ROWS:
        assert row.situation in SITUATIONS, f"{row.id}: unknown situation"
        assert row.source.startswith("src/"), f"{row.id}: source names a Kamailio file"
        registry.find(row.qualname)  # KeyError: not an export of a loaded module
    covered = {r.module for r in ROWS}
    assert covered >= {"sl", "tm", "maxfwd", "textops", "registrar", "htable", "nathelper"}
    assert covered >= {"siputils", "core"}


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_return_code(fresh: Env, row: Row) -> None:
    ctx = SITUATIONS[row.situation](fresh)
    got = fresh.call(ctx, row.qualname, *row.args)
    assert got == row.expected, f"{row.id}: Kamailio returns {row.expected} ({row.source})"
    assert type(got) is type(row.expected)


# ---------------------------------------------------------------------------
# observable effects


def test_forward_runs_onsend_route_and_a_drop_stops_the_send(fresh: Env) -> None:
    net = fresh.net
    options = request("OPTIONS", n=fresh.next(), body="")
    net.feed(options)
    sent = net.to(UAS)
    assert [m.method for m in sent] == ["OPTIONS"] and net.vars["fwd"] == 1
    assert net.vars["onsend"] == 1 and net.vars["onsend_rm"] == "OPTIONS"
    net.vars["dropsend"] = 1
    net.feed(request("OPTIONS", n=fresh.next(), body=""))
    assert net.to(UAS) == [] and net.vars["fwd"] == -1  # dropped in ksr_onsend_route
    assert net.vars["onsend"] == 2


def test_stateless_reply_forwarding_runs_onsend_route(fresh: Env) -> None:
    net = fresh.net
    vias = (
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-sl-fwd\n"
        "Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-uac\n"
    )
    net.feed(reply(vias, 200, "1 OPTIONS"), UAS)
    out = net.to(UAC)
    assert [m.status for m in out] == [200] and len(out[0].vias) == 1
    assert net.vars["onsend"] == 1 and net.vars["onsend_rm"] == "OPTIONS"
    net.vars["dropsend"] = 1
    net.feed(reply(vias, 200, "1 OPTIONS"), UAS)
    assert net.to(UAC) == [] and net.vars["onsend"] == 2


def test_max_forwards_above_the_default_max_limit_becomes_70(fresh: Env) -> None:
    ctx = fresh.ctx(request(n=fresh.next(), maxfwd="200"))
    assert fresh.call(ctx, "maxfwd.process_maxfwd", 10) == 1
    assert ctx.msg.get("Max-Forwards") == "70"  # Kamailio's max_limit default
    assert b"\r\nMax-Forwards: 70\r\n" in ctx.msg.to_bytes()


def test_t_relay_of_a_retransmission_lets_the_script_continue(fresh: Env) -> None:
    """1 (not 0): ``if KSR.tm.t_relay() < 0 then sl_reply_error`` and ``== 0`` checks behave as
    in Kamailio; the retransmission gets the last reply again and no new branch."""
    ctx = SITUATIONS["retransmission"](fresh)
    assert fresh.call(ctx, "tm.t_relay") == 1
    assert [(a, m.status) for _, a, m in fresh.net.take()] == [(UAC, 100)]


def test_registrar_save_in_reply_route_stores_the_contacts(fresh: Env) -> None:
    ctx = register_reply(fresh, "erin")
    assert fresh.call(ctx, "registrar.save", "location", 0) == 1
    assert fresh.net.take() == []  # no reply is sent from a reply route
    req = fresh.ctx(request(n=fresh.next()).replace(b"INVITE sip:bob@", b"INVITE sip:erin@", 1))
    req.new_uri = "sip:erin@example.com"
    assert fresh.call(req, "registrar.lookup", "location") == 1
    assert req.ruri == "sip:erin@127.0.0.1:7000"


def test_registrar_save_replies_from_failure_route_on_success_only(fresh: Env) -> None:
    """Kamailio save.c: the reply goes out from request and failure routes; an error reply only
    from the request route."""
    ctx = fresh.ctx(crlf(REGISTER.format(n=fresh.next(), user="fay")), FAILURE_ROUTE)
    assert fresh.call(ctx, "registrar.save", "location", 0) == 1
    assert [(a, m.status) for _, a, m in fresh.net.take()] == [(UAC, 200)]
    bad = crlf(REGISTER.format(n=fresh.next(), user="fay")).replace(b"expires=3600", b"q=9")
    ctx = fresh.ctx(bad, FAILURE_ROUTE)
    assert fresh.call(ctx, "registrar.save", "location", 0) < 0
    assert fresh.net.take() == []


@pytest.mark.parametrize("route", [TM_ONREPLY_ROUTE, CORE_ONREPLY_ROUTE])
def test_t_reply_from_a_reply_route_answers_the_request(fresh: Env, route: int) -> None:
    """Kamailio ki_t_reply: in an onreply route the reply goes to the transaction's request."""
    ctx = _reply_ours(route)(fresh)
    assert fresh.call(ctx, "tm.t_reply", 480, "Gone Fishing") == 1
    assert [(a, m.status) for _, a, m in fresh.net.take() if a == UAC] == [(UAC, 480)]


def test_sl_reply_to_an_ack_sends_nothing(fresh: Env) -> None:
    ctx = SITUATIONS["ack"](fresh)
    assert fresh.call(ctx, "sl.send_reply", 200, "OK") == -1
    assert fresh.call(ctx, "sl.sl_send_reply", 200, "OK") == -1
    assert fresh.net.take() == []
