"""Event routes (docs/callbacks.md), each observed through a real router (``kemi run``) in Lua
and Python: the callback named by the core's ``kemi.*_callback`` or a module's
``event_callback`` runs with the event name Kamailio 5.6 passes, and what it does (log, drop,
header) shows in the log or on the wire."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pykemi.runtime.sip.message import parse_message
from pykemi.runtime.sip.reply import make_reply

from .harness import RunningRouter, router
from .modhelpers import crlf

ENGINES = ("lua", "python")
ENGINE_MODULE = {"lua": "app_lua", "python": "app_python3"}
SCRIPT = {"lua": "script.lua", "python": "script.py"}


def _cfg(
    tmp: Path, engine: str, script: str, lines: list[str], modules: tuple[str, ...] = ()
) -> Path:
    (tmp / SCRIPT[engine]).write_text(script, encoding="utf-8")
    mod = ENGINE_MODULE[engine]
    text = "\n".join(
        [
            "#!KAMAILIO",
            "children=2",
            "listen=LISTEN",
            *[f'loadmodule "{m}.so"' for m in ("sl", "kemix", *modules, mod)],
            f'modparam("{mod}", "load", "{SCRIPT[engine]}")',
            *lines,
            f'cfgengine "{engine}"',
            "",
        ]
    )
    cfg = tmp / "kamailio.cfg"
    cfg.write_text(text, encoding="utf-8")
    return cfg


@contextmanager
def running(
    tmp: Path, engine: str, script: str, lines: list[str], modules: tuple[str, ...] = ()
) -> Iterator[RunningRouter]:
    with router(_cfg(tmp, engine, script, lines, modules), tmp) as r:
        yield r


def request(method: str, ruri: str, extra: str = "") -> bytes:
    """A request whose reply comes back to the sending socket (rport)."""
    return crlf(f"""{method} {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{method.lower()}{time.monotonic_ns()};rport
From: <sip:alice@127.0.0.1>;tag=f1
To: <sip:bob@127.0.0.1>
Call-ID: ev-{method}-{time.monotonic_ns()}
CSeq: 1 {method}
Max-Forwards: 70
{extra}Content-Length: 0

""")


def ask(port: int, data: bytes, wait: float = 2.0) -> bytes | None:
    """Send one datagram to the router; the first datagram back, None if none in ``wait``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(wait)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recvfrom(65535)[0]
        except TimeoutError:
            return None


def wait_log(r: RunningRouter, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in r.log and time.monotonic() < deadline:
        time.sleep(0.05)
    return r.log


# ---- core: worker-one-init, receive-parse-error, pre-routing, msg-received -------------------

CORE_LUA = """
function ksr_request_route()
    KSR.sl.send_reply(200, "OK")
end
function ksr_core_event(evname)
    KSR.err("EVENT " .. evname .. " from " .. KSR.pv.get("$si") .. "\\n")
end
function ksr_pre_routing(evname)
    KSR.err("PRE " .. evname .. " " .. KSR.pv.get("$rm") .. "\\n")
    if KSR.hdr.is_present("X-Drop-Pre") > 0 then KSR.x.drop() end
end
function ksr_received()
    KSR.err("RECEIVED " .. KSR.pv.get("$rcv(len)") .. "\\n")
    if string.find(KSR.pv.get("$rcv(buf)"), "X-Drop-Rcv", 1, true) then KSR.x.drop() end
end
"""

CORE_PY = """
import KSR

def mod_init():
    return Handler()

class Handler:
    def ksr_request_route(self, msg):
        KSR.sl.send_reply(200, "OK")
        return 1

    def ksr_core_event(self, msg, evname):
        KSR.err("EVENT " + evname + " from " + KSR.pv.get("$si") + "\\n")
        return 1

    def ksr_pre_routing(self, msg, evname):
        KSR.err("PRE " + evname + " " + KSR.pv.get("$rm") + "\\n")
        if KSR.hdr.is_present("X-Drop-Pre") > 0:
            KSR.x.drop()
        return 1

    def ksr_received(self, msg):
        KSR.err("RECEIVED " + str(KSR.pv.get("$rcv(len)")) + "\\n")
        if "X-Drop-Rcv" in KSR.pv.get("$rcv(buf)"):
            KSR.x.drop()
        return 1
"""

CORE_CFG = [
    'kemi.event_route_callback="ksr_core_event"',
    'kemi.pre_routing_callback="ksr_pre_routing"',
    'kemi.received_route_callback="ksr_received"',
    "received_route_mode=1",
]


@pytest.mark.parametrize("engine", ENGINES)
def test_core_event_routes(tmp_path: Path, engine: str) -> None:
    script = CORE_LUA if engine == "lua" else CORE_PY
    with running(tmp_path, engine, script, CORE_CFG) as r:
        # core:worker-one-init: once, in worker 1, on the faked message
        assert "EVENT core:worker-one-init from 127.0.0.1" in wait_log(r, "worker-one-init")
        # a message that passes both: pre-routing and msg-received ran, the route replied
        ok = request("OPTIONS", "sip:a@127.0.0.1")
        reply = ask(r.port, ok)
        assert reply is not None and reply.startswith(b"SIP/2.0 200 OK")
        log = wait_log(r, "PRE core:pre-routing OPTIONS")
        assert "PRE core:pre-routing OPTIONS" in log and f"RECEIVED {len(ok)}" in log
        # core:pre-routing dropping: no reply
        assert ask(r.port, request("OPTIONS", "sip:a@127.0.0.1", "X-Drop-Pre: 1\n")) is None
        assert r.count("PRE core:pre-routing OPTIONS") == 2
        # core:msg-received dropping: not parsed, not routed (no pre-routing line for it)
        dropped = request("INFO", "sip:a@127.0.0.1", "X-Drop-Rcv: 1\n")
        assert ask(r.port, dropped) is None
        assert "PRE core:pre-routing INFO" not in r.log
        assert "bad SIP" not in r.log
        # core:receive-parse-error: junk that reaches parsing
        assert ask(r.port, b"this is not SIP\r\n\r\n", wait=0.5) is None
        log = wait_log(r, "EVENT core:receive-parse-error")
        assert "EVENT core:receive-parse-error from 127.0.0.1" in log
        assert r.count("core:worker-one-init") == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_msg_received_needs_received_route_mode(tmp_path: Path, engine: str) -> None:
    """As in Kamailio, kemi.received_route_callback runs only with received_route_mode=1."""
    script = CORE_LUA if engine == "lua" else CORE_PY
    lines = ['kemi.received_route_callback="ksr_received"']
    with running(tmp_path, engine, script, lines) as r:
        reply = ask(r.port, request("INFO", "sip:a@127.0.0.1", "X-Drop-Rcv: 1\n"))
        assert reply is not None and reply.startswith(b"SIP/2.0 200 OK")
        assert "RECEIVED" not in r.log


# ---- sl: sl:local-response ------------------------------------------------------------------

SL_LUA = """
function ksr_request_route()
    KSR.sl.send_reply(200, "OK")
end
function ksr_sl_event(evname)
    KSR.err("SLRESP " .. evname .. " " .. KSR.pv.get("$rm") .. "\\n")
end
"""

SL_PY = """
import KSR

def mod_init():
    return Handler()

class Handler:
    def ksr_request_route(self, msg):
        KSR.sl.send_reply(200, "OK")
        return 1

    def ksr_sl_event(self, msg, evname):
        KSR.err("SLRESP " + evname + " " + KSR.pv.get("$rm") + "\\n")
        return 1
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_sl_local_response(tmp_path: Path, engine: str) -> None:
    """sl's event_callback_lres_sent runs after each stateless reply, on the request."""
    script = SL_LUA if engine == "lua" else SL_PY
    lines = ['modparam("sl", "event_callback_lres_sent", "ksr_sl_event")']
    with running(tmp_path, engine, script, lines) as r:
        reply = ask(r.port, request("OPTIONS", "sip:a@127.0.0.1"))
        assert reply is not None and reply.startswith(b"SIP/2.0 200 OK")
        assert "SLRESP sl:local-response OPTIONS" in wait_log(r, "SLRESP")


# ---- htable: htable:expired:<table> ---------------------------------------------------------

HT_LUA = """
function ksr_request_route()
    KSR.htable.sht_sets("short", "k1", "v1")
    KSR.sl.send_reply(200, "OK")
end
function ksr_htable_event(evname)
    if evname == "htable:mod-init" then return end
    KSR.err("HTEXP " .. evname .. " " .. KSR.pv.get("$shtrecord(key)") .. "="
        .. KSR.pv.get("$shtrecord(value)") .. "\\n")
end
"""

HT_PY = """
import KSR

def mod_init():
    return Handler()

class Handler:
    def ksr_request_route(self, msg):
        KSR.htable.sht_sets("short", "k1", "v1")
        KSR.sl.send_reply(200, "OK")
        return 1

    def ksr_htable_event(self, msg, evname):
        if evname != "htable:mod-init":
            KSR.err("HTEXP " + evname + " " + KSR.pv.get("$shtrecord(key)") + "="
                    + KSR.pv.get("$shtrecord(value)") + "\\n")
        return 1
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_htable_expired(tmp_path: Path, engine: str) -> None:
    """An item that expires runs the event_callback once (whichever worker purges), with
    "htable:expired:<table>" and the item in $shtrecord(key)/$shtrecord(value)."""
    script = HT_LUA if engine == "lua" else HT_PY
    lines = [
        'modparam("htable", "htable", "short=>size=4;autoexpire=1;")',
        'modparam("htable", "timer_interval", 1)',
        'modparam("htable", "event_callback", "ksr_htable_event")',
    ]
    with running(tmp_path, engine, script, lines, ("htable",)) as r:
        reply = ask(r.port, request("OPTIONS", "sip:a@127.0.0.1"))
        assert reply is not None and reply.startswith(b"SIP/2.0 200 OK")
        assert "HTEXP htable:expired:short k1=v1" in wait_log(r, "HTEXP")
        time.sleep(2.5)  # every worker's purge timer has run again: still one event
        assert r.count("HTEXP") == 1


# ---- tm: tm:local-request, tm:local-response-sent, t_on_branch_failure ------------------------

TM_LUA = """
function ksr_request_route()
    if KSR.pv.get("$rm") == "MESSAGE" then
        KSR.tm.t_uac_send("OPTIONS", KSR.pv.get("$hdr(X-Target)"), "", "", "X-Uac: 1\\r\\n", "")
        KSR.sl.send_reply(200, "Sent")
    elseif KSR.hdr.is_present("X-Busy") > 0 then
        KSR.tm.t_newtran()
        KSR.tm.t_reply(486, "Busy Here")
    else
        KSR.tm.t_on_branch_failure("ksr_branch_failure")
        KSR.tm.t_relay()
    end
end
function ksr_tm_event(evname)
    KSR.err("TMREQ " .. evname .. " " .. KSR.pv.get("$rm") .. " " .. KSR.pv.get("$ru") .. "\\n")
    if string.find(KSR.pv.get("$ru"), "drop", 1, true) then KSR.x.drop() end
    KSR.hdr.append("X-Event: " .. evname .. "\\r\\n")
end
function ksr_tm_lres(evname)
    KSR.err("TMRESP " .. evname .. " " .. KSR.pv.get("$rs") .. "\\n")
end
function ksr_branch_failure(...)
    KSR.err("BF args=" .. select("#", ...) .. " " .. KSR.pv.get("$T_reply_code") .. "\\n")
end
"""

TM_PY = """
import KSR

def mod_init():
    return Handler()

class Handler:
    def ksr_request_route(self, msg):
        if KSR.pv.get("$rm") == "MESSAGE":
            KSR.tm.t_uac_send("OPTIONS", KSR.pv.get("$hdr(X-Target)"), "", "", "X-Uac: 1\\r\\n", "")
            KSR.sl.send_reply(200, "Sent")
        elif KSR.hdr.is_present("X-Busy") > 0:
            KSR.tm.t_newtran()
            KSR.tm.t_reply(486, "Busy Here")
        else:
            KSR.tm.t_on_branch_failure("ksr_branch_failure")
            KSR.tm.t_relay()
        return 1

    def ksr_tm_event(self, msg, evname):
        KSR.err("TMREQ " + evname + " " + KSR.pv.get("$rm") + " " + KSR.pv.get("$ru") + "\\n")
        if "drop" in KSR.pv.get("$ru"):
            KSR.x.drop()
        KSR.hdr.append("X-Event: " + evname + "\\r\\n")
        return 1

    def ksr_tm_lres(self, msg, evname):
        KSR.err("TMRESP " + evname + " " + str(KSR.pv.get("$rs")) + "\\n")
        return 1

    def ksr_branch_failure(self, msg, *args):
        KSR.err("BF args=" + str(len(args)) + " " + str(KSR.pv.get("$T_reply_code")) + "\\n")
        return 1
"""

TM_CFG = ['modparam("tm", "event_callback", "ksr_tm_event")']
LRES_CFG = ['modparam("tm", "event_callback_lres_sent", "ksr_tm_lres")']


def receive(sock: socket.socket, wait: float = 3.0) -> bytes | None:
    sock.settimeout(wait)
    try:
        return sock.recvfrom(65535)[0]
    except TimeoutError:
        return None


@contextmanager
def tm_router(
    tmp: Path, engine: str, lines: list[str]
) -> Iterator[tuple[RunningRouter, socket.socket]]:
    """A router with tm and a UAS socket (the second item) to send requests to."""
    script = TM_LUA if engine == "lua" else TM_PY
    with (
        running(tmp, engine, script, lines, ("tm",)) as r,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as uas,
    ):
        uas.bind(("127.0.0.1", 0))
        yield r, uas


@pytest.mark.parametrize("engine", ENGINES)
def test_tm_local_request(tmp_path: Path, engine: str) -> None:
    """tm's event_callback sees each request t_uac_send sends, as "tm:local-request": the
    header it appends is on the wire; a drop there sends nothing."""
    with tm_router(tmp_path, engine, TM_CFG) as (r, uas):
        uas_port = uas.getsockname()[1]
        target = f"X-Target: sip:uas@127.0.0.1:{uas_port}\n"
        reply = ask(r.port, request("MESSAGE", "sip:a@127.0.0.1", target))
        assert reply is not None and reply.startswith(b"SIP/2.0 200 Sent")
        sent = receive(uas)
        assert sent is not None and sent.startswith(b"OPTIONS sip:uas@")
        assert b"\r\nX-Event: tm:local-request\r\n" in sent and b"X-Uac: 1" in sent
        assert "TMREQ tm:local-request OPTIONS" in r.log
        ok = make_reply(parse_message(sent), 200, "OK", to_tag="t0")  # no retransmissions
        uas.sendto(ok.to_bytes(), ("127.0.0.1", r.port))
        target = f"X-Target: sip:drop@127.0.0.1:{uas_port}\n"
        assert ask(r.port, request("MESSAGE", "sip:a@127.0.0.1", target)) is not None
        assert "TMREQ tm:local-request OPTIONS" in wait_log(r, "sip:drop@")
        while (late := receive(uas, wait=1.0)) is not None:
            assert b"sip:drop@" not in late


@pytest.mark.parametrize("engine", ENGINES)
def test_tm_local_response_sent(tmp_path: Path, engine: str) -> None:
    """tm's event_callback_lres_sent gets each reply tm generated, after sending it, with
    "tm:local-response-sent" (Kamailio's KEMI name of event_route[tm:local-response])."""
    with (
        tm_router(tmp_path, engine, LRES_CFG) as (r, _uas),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as uac,
    ):
        uac.bind(("127.0.0.1", 0))
        uac.sendto(request("INVITE", "sip:a@127.0.0.1", "X-Busy: 1\n"), ("127.0.0.1", r.port))
        codes = [receive(uac), receive(uac)]
        assert [c[:11] if c else None for c in codes] == [b"SIP/2.0 100", b"SIP/2.0 486"]
        log = wait_log(r, "TMRESP tm:local-response-sent 486")
        assert log.count("TMRESP tm:local-response-sent 100") == 1
        assert log.count("TMRESP tm:local-response-sent 486") == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_tm_branch_failure(tmp_path: Path, engine: str) -> None:
    """The function named by t_on_branch_failure runs when a branch gets a negative reply;
    Kamailio passes it no event name (its native name is event_route[tm:branch-failure:<n>])."""
    with (
        tm_router(tmp_path, engine, []) as (r, uas),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as uac,
    ):
        uac.bind(("127.0.0.1", 0))
        uas_uri = f"sip:uas@127.0.0.1:{uas.getsockname()[1]}"
        uac.sendto(request("INVITE", uas_uri), ("127.0.0.1", r.port))
        invite = receive(uas)
        assert invite is not None and invite.startswith(b"INVITE ")
        busy = make_reply(parse_message(invite), 404, "Not Found", to_tag="t1")
        uas.sendto(busy.to_bytes(), ("127.0.0.1", r.port))
        final = [receive(uac) for _ in range(2)]
        assert any(f is not None and f.startswith(b"SIP/2.0 404") for f in final)
        assert "BF args=0 404" in wait_log(r, "BF args")


# ---- registrar/usrloc: usrloc:contact-expired -----------------------------------------------

UL_LUA = """
function ksr_request_route()
    KSR.registrar.save("location", 0)
end
function ksr_reg_event(evname)
    KSR.err("ULEXP " .. evname .. " " .. KSR.pv.get("$ulc(exp=>aor)") .. " "
        .. KSR.pv.get("$ulc(exp=>addr)") .. "\\n")
end
"""

UL_PY = """
import KSR

def mod_init():
    return Handler()

class Handler:
    def ksr_request_route(self, msg):
        KSR.registrar.save("location", 0)
        return 1

    def ksr_reg_event(self, msg, evname):
        KSR.err("ULEXP " + evname + " " + KSR.pv.get("$ulc(exp=>aor)") + " "
                + KSR.pv.get("$ulc(exp=>addr)") + "\\n")
        return 1
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_usrloc_contact_expired(tmp_path: Path, engine: str) -> None:
    """registrar's event_callback runs once per expired contact with "usrloc:contact-expired",
    the contact in $ulc(exp=>...)."""
    script = UL_LUA if engine == "lua" else UL_PY
    lines = [
        'modparam("usrloc", "timer_interval", 1)',
        'modparam("registrar", "min_expires", 0)',
        'modparam("registrar", "event_callback", "ksr_reg_event")',
    ]
    contact = "Contact: <sip:alice@127.0.0.1:5999>;expires=1\n"
    with running(tmp_path, engine, script, lines, ("usrloc", "registrar")) as r:
        reply = ask(r.port, request("REGISTER", "sip:127.0.0.1", contact))
        assert reply is not None and reply.startswith(b"SIP/2.0 200")
        log = wait_log(r, "ULEXP")
        assert "ULEXP usrloc:contact-expired bob sip:alice@127.0.0.1:5999" in log
        time.sleep(2.5)  # every worker's timer has run again: still one event
        assert r.count("ULEXP") == 1
