"""A minimal SIP-over-UDP client on 127.0.0.1: readiness probes and timed requests."""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Callable

_SEQ = itertools.count(1)


def options(
    port: int, local_port: int, user: str = "ping", headers: str = "", max_forwards: int = 70
) -> bytes:
    n = next(_SEQ)
    tag = f"{os.getpid()}-{n}"
    return (
        f"OPTIONS sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK-bench-{tag};rport\r\n"
        f"From: <sip:bench@127.0.0.1>;tag={tag}\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\n"
        f"Call-ID: bench-{tag}@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"{headers}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def status_of(data: bytes) -> int:
    parts = data.split(b" ", 2)
    if len(parts) >= 2 and parts[0] == b"SIP/2.0" and parts[1].isdigit():
        return int(parts[1])
    return 0


class Client:
    """One UDP socket; ``request`` sends an OPTIONS and waits for its final reply."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        port: int,
        user: str = "ping",
        headers: str = "",
        timeout: float = 5.0,
        max_forwards: int = 70,
    ) -> tuple[int, float, bytes]:
        """(status, seconds from send to the final reply, reply); status 0 on timeout."""
        self._drain()
        data = options(port, self.port, user, headers, max_forwards)
        call_id = data.split(b"Call-ID: ", 1)[1].split(b"\r\n", 1)[0]
        t0 = time.perf_counter()
        self.sock.sendto(data, ("127.0.0.1", port))
        deadline = t0 + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return 0, time.perf_counter() - t0, b""
            self.sock.settimeout(left)
            try:
                reply, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:  # ICMP port unreachable: nobody listening yet
                return 0, time.perf_counter() - t0, b""
            code = status_of(reply)
            if code >= 200 and call_id in reply:
                return code, time.perf_counter() - t0, reply

    def _drain(self) -> None:
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recvfrom(65535)
        except (BlockingIOError, OSError):
            pass
        finally:
            self.sock.setblocking(True)


def wait_ready(
    port: int, timeout: float, alive: Callable[[], bool], max_forwards: int = 70
) -> float | None:
    """perf_counter() at the first final reply to an OPTIONS, probing every 5 ms.

    ``max_forwards=0`` makes a relaying script answer 483 itself instead of forwarding.
    """
    deadline = time.perf_counter() + timeout
    with Client() as c:
        while time.perf_counter() < deadline:
            if not alive():
                return None
            code, took, _ = c.request(port, timeout=0.005, max_forwards=max_forwards)
            if code:
                return time.perf_counter()
            if took < 0.005:  # refused at once (nothing bound yet): keep the 5 ms pace
                time.sleep(0.005 - took)
    return None
