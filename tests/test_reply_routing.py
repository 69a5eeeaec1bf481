"""Where replies go (issue 13, M1), over real sockets.

A locally generated reply (sl and tm) goes to the source IP of the request; the port is the
source port when the top Via has rport (or force_rport), else the Via port. A ``received`` or
``maddr`` written by the sender is never followed; ``reply_to_via=1`` sends to the Via host
(IP literals only: no name is resolved on the reply path). A relayed reply goes to the
received/rport of the second Via (written by us), and a name there is not resolved either.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pykemi.runtime.sip.message import parse_message

from .harness import RunningRouter
from .tmharness import free_port, relay_router

SCRIPT = """
function ksr_request_route()
    if KSR.is_ACK() then return end
    if KSR.is_OPTIONS() then
        KSR.sl.send_reply(200, "SL")
        return
    end
    KSR.tm.t_newtran()
    KSR.tm.t_reply(200, "TM")
end
"""

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
listen=LISTEN
{extra}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kemix.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "replies.lua")
cfgengine "lua"
"""

WAIT = 1.5  # a reply that is sent arrives within milliseconds on loopback


def request(method: str, via: str, n: int) -> bytes:
    return (
        f"{method} sip:probe@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via}\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=f{n}\r\n"
        "To: <sip:probe@127.0.0.1>\r\n"
        f"Call-ID: reply-routing-{method}-{n}@127.0.0.1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@contextmanager
def replies_router(tmp: Path, extra: str = "") -> Iterator[RunningRouter]:
    (tmp / "replies.lua").write_text(SCRIPT)
    cfg = tmp / "replies.cfg"
    cfg.write_text(CFG.format(extra=extra))
    with relay_router(cfg, tmp) as r:
        yield r


def udp(ip: str = "127.0.0.1", port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.settimeout(WAIT)
    return s


def received(sock: socket.socket, timeout: float = WAIT) -> bytes | None:
    sock.settimeout(timeout)
    try:
        return sock.recv(65535)
    except TimeoutError:
        return None


def exchange(
    r: RunningRouter, method: str, via: str, n: int, sinks: dict[str, socket.socket]
) -> dict[str, int | None]:
    """Send from ``sinks['src']``; the status each sink received (None = nothing)."""
    sinks["src"].sendto(request(method, via, n), ("127.0.0.1", r.port))
    out: dict[str, int | None] = {}
    for i, (name, sock) in enumerate(sinks.items()):
        data = received(sock, WAIT if i == 0 else 0.3)
        out[name] = None if data is None else parse_message(data).status
    return out


# sent-by / received / maddr pointing at OTHER (127.0.0.2:PORT), with rport: reply to the source
HOSTILE_VIAS = [
    "127.0.0.2:{port};branch=z9hG4bK-r{n};received=127.0.0.2;rport={port}",
    "127.0.0.2:{port};branch=z9hG4bK-r{n};maddr=127.0.0.2;rport",
    "127.0.0.2:{port};branch=z9hG4bK-r{n};received=127.0.0.2;rport",
    "127.0.0.2:{port};branch=z9hG4bK-r{n};maddr=localhost;rport",
]


@pytest.mark.parametrize("method", ["OPTIONS", "MESSAGE"])  # sl, tm
def test_reply_goes_to_source_not_to_sender_written_address(tmp_path: Path, method: str) -> None:
    port = free_port()
    with (
        replies_router(tmp_path) as r,
        udp() as src,
        udp("127.0.0.2", port) as other,
        udp("127.0.0.1", port) as same_ip,
    ):
        for n, template in enumerate(HOSTILE_VIAS):
            via = template.format(port=port, n=n)
            got = exchange(r, method, via, n, {"src": src, "other": other, "same_ip": same_ip})
            assert got == {"src": 200, "other": None, "same_ip": None}, (via, got, r.log)


def test_reply_without_rport_goes_to_source_ip_and_via_port(tmp_path: Path) -> None:
    port = free_port()
    with (
        replies_router(tmp_path) as r,
        udp() as src,
        udp("127.0.0.2", port) as other,
        udp("127.0.0.1", port) as via_port,
    ):
        for n, method in enumerate(("OPTIONS", "MESSAGE")):
            via = f"127.0.0.2:{port};branch=z9hG4bK-p{n};received=127.0.0.2;maddr=127.0.0.2"
            got = exchange(r, method, via, n, {"via_port": via_port, "src": src, "other": other})
            assert got == {"via_port": 200, "src": None, "other": None}, (via, got, r.log)


def test_reply_to_via_sends_to_via_host_literal_only(tmp_path: Path) -> None:
    port = free_port()
    with (
        replies_router(tmp_path, "reply_to_via=1") as r,
        udp() as src,
        udp("127.0.0.2", port) as via_host,
        udp("127.0.0.3", port) as rcvd,
    ):
        for n, method in enumerate(("OPTIONS", "MESSAGE")):
            # the Via host (not received, not maddr); no rport: the Via port
            via = f"127.0.0.2:{port};branch=z9hG4bK-v{n};received=127.0.0.3;maddr=127.0.0.3"
            got = exchange(r, method, via, n, {"via": via_host, "src": src, "rcvd": rcvd})
            assert got == {"via": 200, "src": None, "rcvd": None}, (via, got, r.log)
            # a name is not resolved on the reply path: back to the source
            via = f"localhost:{port};branch=z9hG4bK-h{n};rport"
            got = exchange(r, method, via, 10 + n, {"src": src, "via": via_host})
            assert got == {"src": 200, "via": None}, (via, got, r.log)


def test_relayed_reply_follows_our_received_but_resolves_no_name(tmp_path: Path) -> None:
    port = free_port()
    with replies_router(tmp_path) as r, udp() as downstream, udp("127.0.0.1", port) as upstream:
        top = f"SIP/2.0/UDP 127.0.0.1:{r.port};branch=z9hG4bK-ours"

        def relay(second_via: str, n: int) -> bytes | None:
            reply = (
                f"SIP/2.0 180 Ringing\r\nVia: {top}\r\nVia: SIP/2.0/UDP {second_via}\r\n"
                f"From: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:b@127.0.0.1>;tag=b\r\n"
                f"Call-ID: relayed-{n}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            downstream.sendto(reply, ("127.0.0.1", r.port))
            return received(upstream)

        # received/rport of the second Via (we wrote them when forwarding the request)
        assert relay(f"192.0.2.1:5060;branch=z9hG4bK-1;received=127.0.0.1;rport={port}", 1)
        assert relay(f"127.0.0.1:{port};branch=z9hG4bK-2", 2)
        # a name is not resolved by the worker: not in the DNS cache, not relayed
        assert relay(f"localhost:{port};branch=z9hG4bK-3", 3) is None, r.log
