"""Hostile SIP at a running router (issue 13): header values that made the parser
super-linear (H1), hid a header behind a bare CR (L5) or carried an out-of-range port (L4).
The router must keep answering valid traffic at once and never put a bare CR on the wire."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from .fuzz.fuzz_sip import h1_message
from .test_hostile import ask_udp, hostile_router, pytestmark, valid

__all__ = ["pytestmark"]  # sipp required, generous per-test timeout (as test_hostile)

UDP_SIZE = 65000  # under the 65507 bytes of one IPv4 datagram


def test_h1_datagrams_do_not_delay_valid_traffic(tmp_path: Path) -> None:
    # before the fix each of these took the worker 1-2 s in top_via: four of them delayed a
    # valid OPTIONS by ~4 s (2 workers); now each costs milliseconds
    shapes = ("via_semicolons", "via_commas", "via_semicolons", "via_commas")
    with hostile_router(tmp_path, "direct") as r:
        assert ask_udp(r.port, valid(1)) == 200
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for shape in shapes:
                s.sendto(h1_message(shape, UDP_SIZE), ("127.0.0.1", r.port))
        start = time.monotonic()
        status = ask_udp(r.port, valid(2), timeout=10.0)
        elapsed = time.monotonic() - start
        assert status == 200, r.log[-3000:]
        assert elapsed < 1.0, f"valid OPTIONS answered after {elapsed:.1f} s"
        assert r.proc.poll() is None and "Traceback" not in r.log, r.log[-3000:]


def _exchange(port: int, data: bytes, timeout: float) -> bytes | None:
    """Send one datagram; the raw reply, or None when none comes within ``timeout``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recvfrom(65535)[0]
        except TimeoutError:
            return None


def test_l5_bare_cr_is_never_forwarded(tmp_path: Path) -> None:
    # a CR without LF is a line end to some parsers only: "To: ...\rX-Smuggled: 1" was copied
    # into the reply as is, one header here and two for a CR-splitting peer
    smuggled = valid(3).replace(
        b"To: <sip:probe@127.0.0.1>\r\n", b"To: <sip:probe@127.0.0.1>\rX-Smuggled: 1\r\n"
    )
    assert smuggled != valid(3)
    with hostile_router(tmp_path, "direct") as r:
        reply = _exchange(r.port, smuggled, timeout=1.5)
        if reply is not None:
            assert re.search(rb"\r(?!\n)", reply) is None, reply
        assert ask_udp(r.port, valid(4)) == 200
        assert "bare CR" in r.log, r.log[-3000:]


REPLY = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{router};branch=z9hG4bK-ours\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{uac};branch=z9hG4bK-uac;rport={rport}\r\n"
    "From: <sip:a@127.0.0.1>;tag=1\r\n"
    "To: <sip:b@127.0.0.1>;tag=2\r\n"
    "Call-ID: rport-{rport}@127.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize("rport", ["99999", "0", "abc"])
def test_l4_bad_rport_falls_back_to_the_via_port(tmp_path: Path, rport: str) -> None:
    # a relayed reply goes to the 2nd Via; a bad rport value is ignored (Kamailio: the Via
    # port is used) instead of raising in the send (port 99999: OverflowError, reply lost)
    with hostile_router(tmp_path, "direct") as r:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as uac:
            uac.bind(("127.0.0.1", 0))
            uac.settimeout(3.0)
            data = REPLY.format(router=r.port, uac=uac.getsockname()[1], rport=rport)
            uac.sendto(data.encode(), ("127.0.0.1", r.port))
            try:
                relayed = uac.recvfrom(65535)[0]
            except TimeoutError:
                relayed = b""
        assert relayed.startswith(b"SIP/2.0 200 OK\r\n"), r.log[-3000:]
        assert b"z9hG4bK-ours" not in relayed and b"z9hG4bK-uac" in relayed
        assert "Traceback" not in r.log and "error processing" not in r.log, r.log[-3000:]
