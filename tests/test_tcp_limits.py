"""The serving layer under hostile peers (security review, issue 13): outgoing TCP connects
never block the main process, reply/forward send flags, write queue limits, per-IP
connection cap, linear TCP framing, log amplification, and UDP ports that cannot be shared.

Every test runs a real router (``kemi run``) on 127.0.0.1 and observes the wire, the
clock, the router's processes or its log.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .harness import SIPP, RunningRouter, kemi
from .test_hostile import (
    CFG,
    SCRIPT,
    _closed_count,
    _open_idle,
    ask_tcp,
    ask_udp,
    closed_by_peer,
    hostile_router,
    rss_kb,
    tcp,
    valid,
)
from .tmharness import free_port

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp is not installed"),
    pytest.mark.timeout(180, method="thread"),
]

# user part of the R-URI -> what the script does (one word each, combined freely)
FLAGS_SCRIPT = """
function ksr_request_route()
    local user = KSR.pv.getw("$rU")
    if string.find(user, "slow") then for i = 1, 3000000 do end end
    if string.find(user, "replync") then KSR.set_reply_no_connect() end
    if string.find(user, "replyclose") then KSR.set_reply_close() end
    if string.find(user, "fwdnc") then KSR.set_forward_no_connect() end
    if string.find(user, "fwdclose") then KSR.set_forward_close() end
    if string.find(user, "relay") then
        KSR.pv.sets("$du", "sip:127.0.0.1:RELAY_PORT;transport=tcp")
        KSR.tm.t_relay()
        return
    end
    if KSR.is_OPTIONS() then
        KSR.sl.send_reply(200, "OK")
        return
    end
    KSR.sl.send_reply(404, "Not Found")
end
"""
TM = 'loadmodule "tm.so"\nmodparam("tm", "fr_timer", 20000)\n'


def request(user: str, n: int, proto: str = "UDP") -> bytes:
    return valid(n, proto).replace(b"sip:probe@", f"sip:{user}@".encode(), 1)


@contextmanager
def flags_router(tmp: Path, relay_port: int = 9, extra: str = "") -> Iterator[RunningRouter]:
    script = FLAGS_SCRIPT.replace("RELAY_PORT", str(relay_port))
    with hostile_router(tmp, "dispatch", TM + extra, script) as r:
        yield r


def reuse_port_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return s


@contextmanager
def blackhole() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that drops SYNs: it listens with a full backlog, never accepts."""
    lst = reuse_port_socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = int(lst.getsockname()[1])
    fillers = []
    for _ in range(3):  # backlog 0 holds one connection; the next SYNs are dropped
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    time.sleep(0.1)
    try:
        yield port
    finally:
        for f in fillers:
            f.close()
        lst.close()


@contextmanager
def listener() -> Iterator[socket.socket]:
    """An accepting TCP server on 127.0.0.1 (SO_REUSEPORT: a client may share its port)."""
    lst = reuse_port_socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    try:
        yield lst
    finally:
        lst.close()


def client_from(port: int, router_port: int) -> socket.socket:
    """A TCP client whose source address is 127.0.0.1:port (where a listener may wait)."""
    s = reuse_port_socket()
    s.bind(("127.0.0.1", port))
    s.connect(("127.0.0.1", router_port))
    return s


def accepted(lst: socket.socket, timeout: float) -> bytes | None:
    """What the first connection made to ``lst`` within ``timeout`` carries; None: no connect."""
    lst.settimeout(timeout)
    try:
        conn, _ = lst.accept()
    except TimeoutError:
        return None
    with conn:
        conn.settimeout(3)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        return data


def probe_delay(port: int) -> float:
    start = time.monotonic()
    assert ask_udp(port, valid(424_242), timeout=10) == 200
    return time.monotonic() - start


# -- H2: outgoing connects never block the main process --------------------------------------


def test_relay_to_unresponsive_tcp_does_not_stall_udp(tmp_path: Path) -> None:
    with blackhole() as bh, flags_router(tmp_path, bh, "tcp_connect_timeout=2") as r:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for n in range(3):
                s.sendto(request("relay", n), ("127.0.0.1", r.port))
        time.sleep(0.3)  # the main process is connecting now
        assert probe_delay(r.port) < 0.5
        deadline = time.monotonic() + 6
        while f"tcp connect to 127.0.0.1:{bh} timed out" not in r.log:
            assert time.monotonic() < deadline, r.log[-2000:]
            time.sleep(0.1)
        assert r.log.count(f"tcp connect to 127.0.0.1:{bh} timed out") == 1  # one shared connect
        assert probe_delay(r.port) < 0.5


def test_reply_to_closed_connection_does_not_stall_udp(tmp_path: Path) -> None:
    with blackhole() as bh, flags_router(tmp_path) as r:
        for n in range(2):  # the reply goes back to 127.0.0.1:bh, which drops SYNs
            with client_from(bh, r.port) as c:
                c.sendall(request("slow", n, "TCP"))
            time.sleep(0.05)
        time.sleep(0.3)
        assert probe_delay(r.port) < 0.5


def test_reply_connects_back_by_default(tmp_path: Path) -> None:
    """RFC 3261 18.2.2 (and Kamailio): the connection is gone, open a new one for the reply."""
    with listener() as lst, flags_router(tmp_path) as r:
        port = lst.getsockname()[1]
        with client_from(port, r.port) as c:
            c.sendall(request("slow", 1, "TCP"))
        data = accepted(lst, 5)
        assert data is not None and data.startswith(b"SIP/2.0 200 OK"), data


@pytest.mark.parametrize("how", ["set_reply_no_connect", "tcp_no_connect"])
def test_reply_no_connect(tmp_path: Path, how: str) -> None:
    user, extra = (
        ("slow-replync", "") if how == "set_reply_no_connect" else ("slow", "tcp_no_connect=yes")
    )
    with listener() as lst, flags_router(tmp_path, extra=extra) as r:
        port = lst.getsockname()[1]
        with client_from(port, r.port) as c:
            c.sendall(request(user, 1, "TCP"))
        assert accepted(lst, 1.5) is None
        assert "no connection" in r.log, r.log[-2000:]


def test_reply_close(tmp_path: Path) -> None:
    with flags_router(tmp_path) as r, tcp(r.port) as s:
        assert ask_tcp(s, request("replyclose", 1, "TCP")) == 200
        assert closed_by_peer(s, 3)
    with flags_router(tmp_path) as r, tcp(r.port) as s:  # without the flag it stays open
        assert ask_tcp(s, request("plain", 1, "TCP")) == 200
        assert not closed_by_peer(s, 1)


def test_forward_close_and_no_connect(tmp_path: Path) -> None:
    with listener() as lst:
        port = lst.getsockname()[1]
        with flags_router(tmp_path, port) as r:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(request("relay-fwdnc", 1), ("127.0.0.1", r.port))
                assert accepted(lst, 1.5) is None  # no connection to open: not sent
                s.sendto(request("relay-fwdclose", 2), ("127.0.0.1", r.port))
                lst.settimeout(5)
                conn, _ = lst.accept()
                with conn:
                    assert closed_by_peer(conn, 3)  # the request, then the router closes


# -- M2: write queue limits ------------------------------------------------------------------


def big_request(n: int) -> bytes:
    """An OPTIONS whose 200 reply is ~50 KB (the reply copies every Via)."""
    vias = "".join(
        f"Via: SIP/2.0/TCP 127.0.0.{i % 200 + 1}:5999;branch=z9hG4bK-{n}-{i}-{'x' * 900}\r\n"
        for i in range(50)
    )
    return request("plain", n, "TCP").replace(b"Max-Forwards", vias.encode() + b"Max-Forwards", 1)


def test_client_that_never_reads_is_closed(tmp_path: Path) -> None:
    with flags_router(tmp_path) as r:
        main = r.proc.pid
        before = rss_kb(main)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", r.port))
        s.settimeout(15)
        try:
            for n in range(600):  # ~30 MB of replies, never read
                s.sendall(big_request(n))
        except OSError:
            pass  # closed by the router: expected
        time.sleep(1.0)
        grown = rss_kb(main) - before
        assert closed_by_peer(s, 10)
        s.close()
        assert grown < 10 * 1024, grown
        assert r.log.count("tcp_conn_wq_max") == 1, r.log[-3000:]
        assert probe_delay(r.port) < 0.5


# -- L2: per-source connection cap -----------------------------------------------------------


def test_tcp_connections_per_ip_cap(tmp_path: Path) -> None:
    with hostile_router(tmp_path, "dispatch", "kemi.tcp_max_connections_per_ip=20") as r:
        socks = _open_idle(r.port, 30)
        try:
            time.sleep(0.5)
            assert _closed_count(socks) == 10
            other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            other.bind(("127.0.0.2", 0))  # another host still gets a slot
            other.connect(("127.0.0.1", r.port))
            with other:
                assert ask_tcp(other, valid(1, "TCP")) == 200
        finally:
            for s in socks:
                s.close()
        assert "kemi.tcp_max_connections_per_ip (20) reached for 127.0.0.1" in r.log


# -- L1: linear TCP framing ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


def trickle_cpu(r: RunningRouter, head: bytes, segments: int) -> float:
    """Main-process CPU seconds spent on ``segments`` one-byte segments sent after ``head``."""
    with tcp(r.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head)
        time.sleep(0.3)
        start = cpu_seconds(r.proc.pid)
        for _ in range(segments):
            s.send(b"a")
            time.sleep(0.0001)
        time.sleep(0.3)
        used = cpu_seconds(r.proc.pid) - start
        s.sendall(b"\r\n\r\n")
        assert ask_tcp(s, b"") == 200
    return used


def test_tcp_one_byte_segments_onto_a_big_head(tmp_path: Path) -> None:
    """The cost of a segment does not grow with the bytes already buffered (48 KB vs 0)."""
    head = request("plain", 1, "TCP")[:-2] + b"X-Pad: "
    big = head[:-7] + (b"X-Pad: " + b"p" * 1000 + b"\r\n") * 48 + b"X-Pad: "
    with hostile_router(tmp_path, "dispatch") as r:
        small_cpu = trickle_cpu(r, head, 12000)
        big_cpu = trickle_cpu(r, big, 12000)
    assert big_cpu < 1.5 * small_cpu + 0.15, (small_cpu, big_cpu)


# -- L3: log amplification -------------------------------------------------------------------


def test_junk_is_logged_briefly(tmp_path: Path) -> None:
    with hostile_router(tmp_path, "dispatch") as r:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"X" * 65000, ("127.0.0.1", r.port))
            s.sendto(b"INVITE " + b"y" * 65000 + b" SIP/2.0\r\n\r\n", ("127.0.0.1", r.port))
        assert probe_delay(r.port) < 1
        time.sleep(0.2)
        longest = max(len(line) for line in r.log.splitlines())
        assert "dropping bad SIP" in r.log
        assert longest < 1024, longest


def test_overload_drops_are_aggregated(tmp_path: Path) -> None:
    extra = "children=1\n"
    with hostile_router(tmp_path, "dispatch", TM + extra, FLAGS_SCRIPT) as r:
        pad = b"X-Pad: " + b"p" * 60000 + b"\r\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
            for n in range(400):
                data = request("slow", n).replace(b"Max-Forwards", pad + b"Max-Forwards", 1)
                s.sendto(data, ("127.0.0.1", r.port))
        deadline = time.monotonic() + 15
        while True:  # the first drop is logged at once, the others in one line 5 s later
            dropped = [ln for ln in r.log.splitlines() if "overloaded" in ln]
            counts = [int(n) for ln in dropped for n in re.findall(r"(\d+) message\(s\)", ln)]
            if sum(counts) > 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert 2 <= len(dropped) <= 3 and sum(counts) > 10, dropped


# -- M4: UDP ports are not shared ------------------------------------------------------------


def test_udp_port_in_use_is_a_startup_error(tmp_path: Path) -> None:
    (tmp_path / "hostile.lua").write_text(SCRIPT)
    cfg = tmp_path / "hostile.cfg"
    cfg.write_text(CFG.format(extra=""))
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        res = kemi("run", str(cfg), "-A", f"LISTEN=udp:127.0.0.1:{port}", cwd=tmp_path, timeout=60)
    assert res.returncode != 0, res.stderr[-2000:]
    assert f"cannot listen on udp:127.0.0.1:{port}" in res.stderr + res.stdout


def test_running_udp_port_cannot_be_taken(tmp_path: Path) -> None:
    with hostile_router(tmp_path, "direct") as r:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as thief:
            thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                thief.bind(("127.0.0.1", r.port))
        assert ask_udp(r.port, valid(1)) == 200


def test_stream_framer_matches_frame_length_for_any_segmentation() -> None:
    """The incremental framer cuts a stream exactly where frame_length does, however it is
    split into segments (keep-alives, LF-only heads, bodies, an empty line across segments)."""
    from pykemi.runtime.sip.message import frame_length
    from pykemi.runtime.tcpconn import StreamFramer

    body = b"v=0\r\n"
    msgs = [
        request("a", 1, "TCP"),
        b"\r\n\r\n",
        request("b", 2, "TCP").replace(b"\r\n", b"\n"),
        request("c", 3, "TCP").replace(b"Content-Length: 0", b"Content-Length: 5") + body,
        b"\n",
        request("d", 4, "TCP").replace(b"Content-Length: 0", b"l: 5") + body,
    ]
    stream = b"".join(msgs)
    expected = []
    rest = stream
    while (n := frame_length(rest)) is not None:
        if rest[:n].strip():
            expected.append(rest[:n])
        rest = rest[n:]
    assert len(expected) == 4 and not rest
    for size in (1, 2, 3, 7, 64, len(stream)):
        framer = StreamFramer()
        got = []
        for i in range(0, len(stream), size):
            got.extend(framer.feed(stream[i : i + size]))
        assert got == expected, size
        assert not framer.buf
