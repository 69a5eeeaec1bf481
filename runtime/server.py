"""Listeners and worker processes: ``children=N`` workers share the UDP sockets.

The main process binds the sockets, loads the script once (so a broken script
is a startup error, not N crashing workers), forks the workers and restarts
any that dies.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

from .core.log import L_ERR, L_INFO, L_NOTICE, LOG, log
from .dispatch import StartupError
from .router import Router

MAX_UDP = 65535


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_udp(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    except OSError:
        pass
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on udp:{host}:{port}: {exc.strerror}") from exc
    return sock


class Server:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.sockets: list[tuple[socket.socket, tuple[str, int], str]] = []
        self.children: dict[int, int] = {}  # pid -> rank
        self._stop = False

    def bind(self) -> None:
        for proto, host, port in self.router.proc.listen:
            if proto in ("udp", "any"):
                sock = bind_udp(host, port)
                sock.setblocking(False)
                self.sockets.append((sock, sock.getsockname()[:2], "udp"))
            else:
                log(L_ERR, f"listen={proto}:{host}:{port}: transport not supported yet, ignored")
        if not self.sockets:
            raise StartupError("no usable listen address (udp)")

    # -- worker loop --------------------------------------------------------------------------

    def serve(self, rank: int, until: Callable[[], bool] | None = None) -> None:
        """Receive and route messages until stopped (runs in each worker)."""
        LOG.rank = rank
        router = self.router
        sel = selectors.DefaultSelector()
        for sock, addr, proto in self.sockets:
            sel.register(sock, selectors.EVENT_READ, (sock, addr, proto, _sender(sock)))
        handle = router.handle
        while not self._stop and (until is None or not until()):
            try:
                events = sel.select(timeout=0.5)
            except InterruptedError:
                continue
            for key, _ in events:
                sock, addr, proto, send = key.data
                # drain the socket: fewer select calls under load
                for _ in range(64):
                    try:
                        data, src = sock.recvfrom(MAX_UDP)
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.ECONNREFUSED, errno.EINTR):
                            log(L_ERR, f"recvfrom: {exc}")
                        break
                    handle(data, src[:2], addr, proto, send)

    # -- process management -------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.router.cfg
        children = max(1, cfg.get_int("children", 8))
        fork = cfg.get_bool("fork", True)
        self.bind()
        addrs = ", ".join(f"{p}:{a[0]}:{a[1]}" for _, a, p in self.sockets)
        log(L_NOTICE, f"pykemi listening on {addrs} with cfgengine {cfg.cfgengine}")
        if not fork:
            self._install_signals()
            self._child_init(1)
            self.serve(1)
            return 0
        for rank in range(1, children + 1):
            self._spawn(rank)
        self._install_signals()
        print(f"pykemi: ready ({children} workers on {addrs})", file=sys.stderr, flush=True)
        while not self._stop:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            rank = self.children.pop(pid, None)
            if rank is not None and not self._stop:
                log(L_ERR, f"worker {rank} (pid {pid}) exited with status {status}; restarting")
                time.sleep(0.2)
                self._spawn(rank)
        self._terminate()
        return 0

    def _child_init(self, rank: int) -> None:
        LOG.rank = rank
        rc = self.router.engine.child_init(rank)
        if rc < 0:
            log(L_ERR, f"child_init({rank}) failed with {rc}")
            os._exit(1)

    def _spawn(self, rank: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            code = 0
            try:
                self._child_init(rank)
                self.serve(rank)
            except BaseException as exc:  # noqa: BLE001
                log(L_ERR, f"worker {rank} failed: {exc!r}")
                code = 1
            finally:
                os._exit(code)
        self.children[pid] = rank

    def _install_signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self._stop = True
            log(L_INFO, f"signal {signum}: shutting down")
            self._terminate()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _terminate(self) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                self.children.pop(pid, None)
        deadline = time.time() + 3
        while self.children and time.time() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
                continue
            self.children.pop(pid, None)
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _sender(sock: socket.socket) -> Callable[[bytes, tuple[str, int]], None]:
    def send(data: bytes, addr: tuple[str, int]) -> None:
        try:
            sock.sendto(data, addr)
        except OSError as exc:
            log(L_ERR, f"sendto {addr[0]}:{addr[1]} failed: {exc.strerror}")

    return send
