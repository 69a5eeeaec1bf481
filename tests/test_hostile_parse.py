"""Hostile SIP at a running router (issue 13): header values that made the parser
super-linear (H1) or hid a header behind a bare CR (L5). The router must keep answering
valid traffic at once and never put a bare CR on the wire."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

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
