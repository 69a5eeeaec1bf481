"""Hostile traffic at a running ``kemi run`` (direct and dispatch modes): truncated,
oversized, garbage and lying messages, endless TCP headers, thousands of idle TCP
connections. The router must stay up, keep memory bounded, and answer the valid
traffic sent at the same time (sipp OPTIONS, 0 failures).

The long variants run with PYKEMI_SLOW=1 (``nox -s stress`` sets it).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pykemi.runtime.sip.message import parse_message

from .harness import SIPP, RunningRouter, sipp
from .tmharness import relay_router

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp is not installed"),
    pytest.mark.timeout(300, method="thread"),
]
SLOW = os.environ.get("PYKEMI_SLOW") == "1"
slow = pytest.mark.skipif(not SLOW, reason="long test: set PYKEMI_SLOW=1")

SCRIPT = """
function ksr_request_route()
    if KSR.is_OPTIONS() then
        KSR.sl.send_reply(200, "OK")
        return
    end
    if KSR.is_ACK() then return end
    KSR.sl.send_reply(404, "Not Found")
end
"""

CFG = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=2
listen=LISTEN
#!ifdef LISTEN2
listen=LISTEN2
#!endif
{extra}
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kemix.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "hostile.lua")
cfgengine "lua"
"""

VALID = (
    "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/{proto} 127.0.0.1:5999;branch=z9hG4bK-{n};rport\r\n"
    "From: <sip:probe@127.0.0.1>;tag={n}\r\n"
    "To: <sip:probe@127.0.0.1>\r\n"
    "Call-ID: probe-{n}@127.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)
INVITE = (
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-inv;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@127.0.0.1>;tag=1928301774\r\n'
    b"To: <sip:bob@127.0.0.1>\r\n"
    b"Call-ID: a84b4c76e66710@127.0.0.1\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@127.0.0.1:5999>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 31\r\n\r\n"
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
)
UDP_MAX = 65507  # the largest datagram the kernel sends over IPv4


def valid(n: int, proto: str = "UDP") -> bytes:
    return VALID.format(n=n, proto=proto).encode()


# -- the router under test -------------------------------------------------------------------


@contextmanager
def hostile_router(
    tmp: Path, mode: str, extra: str = "", script: str = SCRIPT
) -> Iterator[RunningRouter]:
    """``mode``: direct (UDP, workers read the socket), dispatch (UDP + TCP via the main)."""
    (tmp / "hostile.lua").write_text(script)
    cfg = tmp / "hostile.cfg"
    cfg.write_text(CFG.format(extra=extra))
    with relay_router(cfg, tmp, listen="udp" if mode == "direct" else "both") as r:
        expected = "(direct)" if mode == "direct" else "(dispatch)"
        assert expected in r.log, r.log
        yield r


def pids(r: RunningRouter) -> list[int]:
    """Main process and its workers."""
    main = r.proc.pid
    try:
        kids = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    except OSError:
        kids = []
    return [main, *(int(k) for k in kids)]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def rss(r: RunningRouter) -> dict[int, int]:
    return {pid: rss_kb(pid) for pid in pids(r)}


def assert_healthy(r: RunningRouter, before: dict[int, int], slack_mb: int = 40) -> None:
    """Still running, same processes (no worker restarted), memory bounded, answering."""
    assert r.proc.poll() is None, r.log[-3000:]
    log = r.log
    assert "exited with status" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    after = rss(r)
    assert sorted(after) == sorted(before), (before, after)
    for pid, kb in after.items():
        assert kb - before[pid] < slack_mb * 1024, (pid, before[pid], kb)
    assert ask_udp(r.port, valid(999_999)) == 200


def ask_udp(port: int, data: bytes, timeout: float = 3.0) -> int | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        try:
            reply, _ = s.recvfrom(65535)
        except TimeoutError:
            return None
    return parse_message(reply).status


def ask_tcp(sock: socket.socket, data: bytes, timeout: float = 3.0) -> int | None:
    sock.settimeout(timeout)
    sock.sendall(data)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65535)
            if not chunk:
                return None
            buf += chunk
    except (TimeoutError, ConnectionError):
        return None
    return parse_message(buf[: buf.index(b"\r\n\r\n") + 4]).status


def tcp(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True when the router closes the connection within ``timeout`` (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def with_traffic(
    r: RunningRouter, tmp: Path, attack: Callable[[], None], calls: int = 300, rate: int = 150
) -> None:
    """Run ``attack`` in a thread while sipp sends OPTIONS; sipp must see 0 failures."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            attack()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    res = sipp("options.xml", r.port, tmp, calls=calls, rate=rate, timeout=60)
    t.join(timeout=120)
    assert not errors, errors
    assert res.failed == 0 and res.successful == calls, res.output


# -- UDP -----------------------------------------------------------------------------------


def udp_garbage(seed: int, rounds: int) -> list[bytes]:
    rnd = random.Random(seed)
    out: list[bytes] = [b"", b"\r\n", b"\x00" * 100, b"\xff" * 1000]
    for i in range(1, len(INVITE)):  # every truncation of a valid INVITE
        out.append(INVITE[:i])
    out.append(INVITE.replace(b"Content-Length: 31", b"Content-Length: 5000"))  # lies (UDP)
    out.append(INVITE.replace(b"Content-Length: 31", b"Content-Length: -1"))
    out.append(INVITE.replace(b"Content-Length: 31", b"Content-Length: 99999999999999"))
    out.append(INVITE.replace(b"Content-Length: 31", b"Content-Length: 1\r\nl: 2"))
    head = valid(1)[:-2]
    out.append(head + b"X-Pad: " + b"a" * (UDP_MAX - len(head) - 11) + b"\r\n\r\n")  # max size
    out.append(b"X" * UDP_MAX)
    out.append(head + b"X: y\r\n" * 2000 + b"\r\n")  # too many headers
    out.append(head + b"X: y\r\n" + b" z\r\n" * 8000 + b"\r\n")  # endless folding
    out.append(valid(2).replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/UDP [::1"))
    out.append(valid(3).replace(b"CSeq: 1 OPTIONS", b"CSeq: 99999999999 OPTIONS"))
    out.append(valid(4).replace(b"From: <sip:", b'From: "\\' * 2000 + b"<sip:"))
    for _ in range(rounds):
        n = rnd.choice((1, 10, 100, 1400, 9000, 60000))
        out.append(rnd.randbytes(n))
        msg = bytearray(INVITE)
        for _ in range(rnd.randint(1, 20)):
            msg[rnd.randrange(len(msg))] = rnd.randrange(256)
        out.append(bytes(msg))
    return out


def send_udp(port: int, datagrams: list[bytes], pause_every: int = 50) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for i, d in enumerate(datagrams):
            s.sendto(d, ("127.0.0.1", port))
            if i % pause_every == 0:
                time.sleep(0.002)  # do not just overflow the receive buffer


@pytest.mark.parametrize("mode", ["direct", "dispatch"])
def test_udp_hostile_datagrams(tmp_path: Path, mode: str) -> None:
    with hostile_router(tmp_path, mode) as r:
        before = rss(r)
        datagrams = udp_garbage(seed=1, rounds=300)
        with_traffic(r, tmp_path, lambda: send_udp(r.port, datagrams))
        assert_healthy(r, before)
        log = r.log
        assert "dropping bad SIP" in log
        assert "larger than body" in log  # wrong Content-Length over UDP: rejected
        assert "too many header" in log


@slow
@pytest.mark.parametrize("mode", ["direct", "dispatch"])
def test_udp_hostile_flood_long(tmp_path: Path, mode: str) -> None:
    with hostile_router(tmp_path, mode) as r:
        before = rss(r)
        datagrams = udp_garbage(seed=2, rounds=5000)
        with_traffic(r, tmp_path, lambda: send_udp(r.port, datagrams * 2), calls=6000, rate=200)
        assert_healthy(r, before)


# -- TCP (dispatch mode: the main process owns the connections) -------------------------------


def test_tcp_one_megabyte_of_headers_is_cut(tmp_path: Path) -> None:
    with hostile_router(tmp_path, "dispatch") as r:
        before = rss(r)
        sent = 0

        def attack() -> None:
            nonlocal sent
            with tcp(r.port) as s:
                s.sendall(valid(1, "TCP")[:-2])
                line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
                try:
                    while sent < 1 << 20:
                        s.sendall(line)
                        sent += len(line)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                assert closed_by_peer(s, 10)

        with_traffic(r, tmp_path, attack)
        assert "closing the connection" in r.log
        assert_healthy(r, before)
        with tcp(r.port) as s:  # a new connection is served
            assert ask_tcp(s, valid(2, "TCP")) == 200


def test_tcp_endless_header_line_is_cut(tmp_path: Path) -> None:
    with hostile_router(tmp_path, "dispatch") as r:
        with tcp(r.port) as s:
            s.sendall(b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nX: ")
            try:
                for _ in range(200):  # 200 KiB, no CRLF at all
                    s.sendall(b"b" * 1024)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert closed_by_peer(s, 10)
        assert "header block exceeds" in r.log
        with tcp(r.port) as s:
            assert ask_tcp(s, valid(3, "TCP")) == 200


def test_tcp_content_length_too_large(tmp_path: Path) -> None:
    extra = "tcp_connection_lifetime=2"
    with hostile_router(tmp_path, "dispatch", extra) as r:
        head = valid(4, "TCP").replace(b"Content-Length: 0", b"Content-Length: 5000")
        with tcp(r.port) as s:  # promises 5000 bytes, sends 10: waits, then idle close
            s.sendall(head + b"0123456789")
            start = time.monotonic()
            assert closed_by_peer(s, 8)
            assert 1.5 <= time.monotonic() - start < 6
        huge = valid(5, "TCP").replace(b"Content-Length: 0", b"Content-Length: 10000000")
        with tcp(r.port) as s:  # beyond the message size limit: closed at once
            s.sendall(huge)
            assert closed_by_peer(s, 3)
        assert "message too large" in r.log
        with tcp(r.port) as s:
            assert ask_tcp(s, valid(6, "TCP")) == 200


def test_tcp_garbage_then_valid_on_the_same_connection(tmp_path: Path) -> None:
    with hostile_router(tmp_path, "dispatch") as r:
        rnd = random.Random(3)
        with tcp(r.port) as s:
            for _ in range(20):
                junk = rnd.randbytes(rnd.randint(1, 3000)).replace(b"\r\n\r\n", b"")
                s.sendall(junk.replace(b"\n", b"") + b"\r\n\r\n")
            s.sendall(b"\r\n\r\n\r\n")  # keep-alives
            assert ask_tcp(s, valid(7, "TCP")) == 200  # framing recovered
        assert "dropping bad SIP" in r.log


def _open_idle(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    time.sleep(0.5)
    return socks


def _closed_count(socks: list[socket.socket]) -> int:
    closed = 0
    for s in socks:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def _half_open(tmp: Path, n: int, limit: int) -> None:
    extra = f"tcp_max_connections={limit}\nkemi.tcp_max_connections_per_ip={limit}"
    with hostile_router(tmp, "dispatch", extra) as r:
        before = rss(r)
        with tcp(r.port) as early:  # established before the flood: must stay served
            assert ask_tcp(early, valid(10, "TCP")) == 200
            socks: list[socket.socket] = []
            try:
                with_traffic(r, tmp, lambda: socks.extend(_open_idle(r.port, n)))
                time.sleep(1.0)
                refused = _closed_count(socks)
                assert refused == max(0, n + 1 - limit), (refused, n, limit)
                assert ask_tcp(early, valid(11, "TCP")) == 200
                if n + 1 < limit:
                    with tcp(r.port) as late:
                        assert ask_tcp(late, valid(12, "TCP")) == 200
                else:
                    assert f"tcp_max_connections ({limit}) reached" in r.log
                assert_healthy(r, before)
                open_fds = len(os.listdir(f"/proc/{r.proc.pid}/fd"))
                assert open_fds < limit + 100, open_fds
            finally:
                for s in socks:
                    s.close()


def test_tcp_2000_half_open_connections(tmp_path: Path) -> None:
    _half_open(tmp_path, 2000, 2048)


def test_tcp_max_connections_enforced(tmp_path: Path) -> None:
    _half_open(tmp_path, 600, 300)


@slow
def test_tcp_10000_half_open_connections(tmp_path: Path) -> None:
    _half_open(tmp_path, 10000, 2048)


def test_tcp_idle_connections_are_closed(tmp_path: Path) -> None:
    with hostile_router(tmp_path, "dispatch", "tcp_connection_lifetime=2") as r:
        socks = _open_idle(r.port, 100)
        try:
            deadline = time.monotonic() + 8
            while _closed_count(socks) < 100 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _closed_count(socks) == 100
        finally:
            for s in socks:
                s.close()
        assert len(os.listdir(f"/proc/{r.proc.pid}/fd")) < 50
