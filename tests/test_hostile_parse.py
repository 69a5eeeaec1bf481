"""Hostile but small SIP at a running router (issue 13): header values that made the parser
super-linear (H1). The router must keep answering valid traffic at once."""

from __future__ import annotations

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
