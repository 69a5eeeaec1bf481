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
