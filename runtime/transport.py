"""Transport plumbing shared by the main process and the workers.

In *dispatch* mode the main process receives everything (UDP datagrams and
TCP streams), picks the worker that owns the message's Call-ID and passes it
over a Unix datagram channel; workers send UDP directly and hand TCP sends
back to the main process, which owns the connections. Every message of a
transaction and of a dialog carries the same Call-ID, so replies,
retransmissions, CANCEL and ACK always reach the worker that owns the state.
"""

from __future__ import annotations

import socket
import struct
import zlib
from dataclasses import dataclass

# worker <- main: a received message
_IN = struct.Struct("!cBBiH")  # kind, proto, local index, conn id, src port; then ip len + ip
# worker -> main: a TCP send
_OUT = struct.Struct("!ciHB")  # kind, conn id (-1: by address), dst port, send flags; ip len + ip

PROTOS = ("udp", "tcp", "tls", "ws", "wss", "sctp")
PROTO_ID = {p: i for i, p in enumerate(PROTOS)}

MAX_CHANNEL = 262144


@dataclass(frozen=True)
class Received:
    proto: str
    local: int  # index of the listen socket
    conn: int  # TCP connection id, -1 for UDP
    src: tuple[str, int]
    data: bytes


def encode_in(proto: str, local: int, conn: int, src: tuple[str, int], data: bytes) -> bytes:
    ip = src[0].encode()
    return _IN.pack(b"M", PROTO_ID[proto], local, conn, src[1]) + bytes((len(ip),)) + ip + data


def decode_in(frame: bytes) -> Received:
    _kind, proto, local, conn, port = _IN.unpack_from(frame)
    n = frame[_IN.size]
    start = _IN.size + 1
    ip = frame[start : start + n].decode()
    return Received(PROTOS[proto], local, conn, (ip, port), frame[start + n :])


def encode_out(conn: int, dst: tuple[str, int], data: bytes, flags: int = 0) -> bytes:
    """``flags``: the send flags (tcpconn.SND_F_*)."""
    ip = dst[0].encode()
    return _OUT.pack(b"S", conn, dst[1], flags) + bytes((len(ip),)) + ip + data


def decode_out(frame: bytes) -> tuple[int, tuple[str, int], bytes, int]:
    _kind, conn, port, flags = _OUT.unpack_from(frame)
    n = frame[_OUT.size]
    start = _OUT.size + 1
    ip = frame[start : start + n].decode()
    return conn, (ip, port), frame[start + n :], flags


def call_id_of(data: bytes) -> bytes:
    """The Call-ID value, found without parsing (long or compact form); b"" when absent."""
    head = data[:4096].lower()
    for marker in (b"\ncall-id", b"\ni"):
        pos = 0
        while True:
            pos = head.find(marker, pos)
            if pos < 0:
                break
            j = pos + len(marker)
            while j < len(head) and head[j] in b" \t":
                j += 1
            if head[j : j + 1] == b":":
                end = head.find(b"\n", j)
                return data[j + 1 : end if end >= 0 else len(head)].strip()
            pos = j
    return b""


def worker_for(data: bytes, workers: int) -> int:
    """Index of the worker that owns this message (stable per Call-ID)."""
    if workers <= 1:
        return 0
    return zlib.crc32(call_id_of(data)) % workers


def channel_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    return a, b
