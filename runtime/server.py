"""Listeners and worker processes.

Two modes:

* **direct** (stateless UDP only): every worker reads the shared UDP sockets;
  the kernel spreads datagrams, nothing is in between.
* **dispatch** (tm loaded, TCP listeners, or ``kemi.dispatch=yes``): the main
  process receives all traffic and hands each message to the worker owning
  its Call-ID (see ``transport``), so transaction state stays in one worker.
  The main process owns TCP connections (``tcpconn``) and the control socket.

The main process loads the script once before forking (a broken script is a
startup error, not N crashing workers) and restarts any worker that dies.
"""

from __future__ import annotations

import errno
import os
import resource  # at import: a worker may run in a chroot= jail, with nothing to import from
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .core.context import CURRENT
from .core.events import run_event
from .core.log import L_DBG, L_ERR, L_INFO, L_NOTICE, L_WARN, LOG, Repeated, flush_repeated, log
from .core.timer import TIMERS
from .dispatch import StartupError
from .engines.base import DEFAULT_TIME_LIMIT_MS
from .launch import READY
from .privileges import drop, resolve
from .router import Router
from .tcpconn import SND_F_CON_CLOSE, SND_F_FORCE_CON_REUSE, TcpConn, TcpConns, TcpLimits
from .transport import (
    MAX_CHANNEL,
    channel_pair,
    decode_in,
    decode_out,
    encode_in,
    encode_out,
    worker_for,
)
from .usrloc.store import shared_dir

MAX_UDP = 65535
# global kemi.worker_watchdog (ms, 0 = off): a worker busy this long with one batch of
# messages is killed and restarted (engines that cannot abort a running script; long C calls)
WORKER_WATCHDOG_MS = 10000


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@dataclass
class Listen:
    proto: str
    sock: socket.socket
    addr: tuple[str, int]


def send_flags(data: bytes) -> int:
    """Send flags (SND_F_*) the message being routed set for ``data``: set_reply_* for a reply,
    set_forward_* for a request (Kamailio keeps them per message the same way)."""
    ctx = CURRENT.ctx
    if ctx is None or not ctx.extra:
        return 0
    kind = "reply" if data.startswith(b"SIP/") else "forward"
    flags = SND_F_FORCE_CON_REUSE if ctx.extra.get(f"{kind}_no_connect") else 0
    return flags | (SND_F_CON_CLOSE if ctx.extra.get(f"{kind}_close") else 0)


def worker_one_init(router: Router) -> None:
    """core:worker-one-init through kemi.event_route_callback; a drop there is an error, as
    in Kamailio (which then stops: pykemi logs it, the worker serves on)."""
    done = run_event(router.proc, router.event_callback, "core:worker-one-init")
    if done is not None and done.drop:
        log(L_ERR, "core:worker-one-init: 'drop' in the event route")


def bind_udp(host: str, port: int) -> socket.socket:
    # no SO_REUSEADDR: on UDP it would let another socket (another user, a second router)
    # bind the same port and receive our datagrams; workers share this socket by fork
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
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


def bind_tcp(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on tcp:{host}:{port}: {exc.strerror}") from exc
    return sock


class Server:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.listens: list[Listen] = []
        self.children: dict[int, int] = {}  # pid -> rank
        self.channels: list[socket.socket] = []  # main side, one per worker (dispatch mode)
        self._worker_sides: list[socket.socket] = []
        self.worker_channel: socket.socket | None = None  # worker side, in a worker
        self.tcp: TcpConns | None = None  # main process, dispatch mode
        self._stop = False
        self.sel: selectors.BaseSelector | None = None
        self.control: Any = None  # control socket server (RPC), main process
        self.dispatch = False
        self.tcp_limits = TcpLimits.from_cfg(router.cfg)
        self._overload = Repeated(L_WARN)
        # each worker's "busy since" (monotonic ns, 0 = idle) in shared memory
        self._busy = router.stats.register("core:busy_since")
        self.watchdog_ns = WORKER_WATCHDOG_MS * 1_000_000
        self._watchdog_check = 0  # monotonic ns of the next scan
        # called once the router serves (kemi run's daemon mode tells its creator: daemon.py)
        self.on_ready: Callable[[], None] | None = None
        self.privileges = resolve(router.cfg)  # user=/group=/chroot=: dropped after bind

    # -- setup ---------------------------------------------------------------------------------

    def bind(self) -> None:
        for proto, host, port in self.router.proc.listen:
            if proto in ("udp", "any"):
                sock = bind_udp(host, port)
                self.listens.append(Listen("udp", sock, sock.getsockname()[:2]))
            if proto in ("tcp", "any"):
                sock = bind_tcp(host, port)
                self.listens.append(Listen("tcp", sock, sock.getsockname()[:2]))
            if proto not in ("udp", "tcp", "any"):
                log(L_WARN, f"listen={proto}:{host}:{port}: transport not supported, ignored")
        if not self.listens:
            raise StartupError("no usable listen address")
        for lst in self.listens:
            lst.sock.setblocking(False)
        self.router.proc.send_to = self.send_to
        self.router.proc.local_addresses = [(lst.proto, *lst.addr) for lst in self.listens]

    def _udp_for(self, host: str) -> socket.socket | None:
        fam = _family(host)
        for lst in self.listens:
            if lst.proto == "udp" and lst.sock.family == fam:
                return lst.sock
        return None

    # -- sending (any process) -----------------------------------------------------------------

    def send_to(
        self,
        proto: str,
        addr: tuple[str, int],
        data: bytes,
        conn: int = -1,
        flags: int | None = None,
    ) -> bool:
        """Send a SIP message: UDP directly; TCP via the connection owner. ``flags``: SND_F_*,
        by default those the message being routed set (set_reply_* / set_forward_*)."""
        if proto == "udp":
            sock = self._udp_for(addr[0])
            if sock is None:
                log(L_ERR, f"no UDP socket for {addr[0]}")
                return False
            try:
                sock.sendto(data, addr)
                return True
            except OSError as exc:
                log(L_ERR, f"sendto {addr[0]}:{addr[1]} failed: {exc.strerror}")
                return False
        if proto == "tcp":
            if flags is None:
                flags = send_flags(data)
            if self.worker_channel is not None:
                try:
                    self.worker_channel.send(encode_out(conn, addr, data, flags))
                    return True
                except OSError as exc:
                    log(L_ERR, f"tcp send via main failed: {exc}")
                    return False
            if self.tcp is None:  # direct mode or fork=no: no process serves TCP
                log(L_ERR, f"cannot send over tcp to {addr[0]}:{addr[1]}: TCP needs dispatch mode")
                return False
            return self.tcp.send(conn, addr, data, flags)
        log(L_ERR, f"cannot send over {proto}")
        return False

    def _sender(self, proto: str, conn: int) -> Callable[[bytes, tuple[str, int]], None]:
        def send(data: bytes, addr: tuple[str, int]) -> None:
            self.send_to(proto, addr, data, conn)

        return send

    # -- worker loop ---------------------------------------------------------------------------

    def serve(
        self, rank: int, until: Callable[[], bool] | None = None, control: Any = None
    ) -> None:
        """Receive and route messages until stopped (runs in each worker); with fork=no the
        one process also answers the control socket (``control``)."""
        LOG.rank = rank
        router = self.router
        handle = router.handle
        sel = selectors.DefaultSelector()
        if control is not None:
            control.register(sel)
        if self.worker_channel is not None:
            sel.register(self.worker_channel, selectors.EVENT_READ, None)
        else:
            for i, lst in enumerate(self.listens):
                if lst.proto == "udp":
                    sel.register(lst.sock, selectors.EVENT_READ, (i, lst))
        senders = {i: self._sender("udp", -1) for i in range(len(self.listens))}
        stats, busy, clock = router.stats, self._busy, time.monotonic_ns
        while not self._stop and (until is None or not until()):
            router.before_message()
            try:
                events = sel.select(timeout=TIMERS.next_delay(0.5))
            except InterruptedError:
                continue
            stats.set(busy, clock())  # read by the main process's watchdog
            for key, mask in events:
                if key.data is None:
                    self._drain_channel(key.fileobj, handle)  # type: ignore[arg-type]
                    continue
                if key.data[0] == "ctl":
                    control.on_event(key, mask)
                    continue
                i, lst = key.data
                for _ in range(64):  # drain: fewer select calls under load
                    try:
                        data, src = lst.sock.recvfrom(MAX_UDP)
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.ECONNREFUSED, errno.EINTR):
                            log(L_ERR, f"recvfrom: {exc}")
                        break
                    handle(data, src[:2], lst.addr, "udp", senders[i])
            TIMERS.run_due()  # O(1) when nothing is due: it only looks at the heap's head
            flush_repeated()  # counts of aggregated log lines (bad datagrams)
            stats.set(busy, 0)

    def _drain_channel(self, chan: socket.socket, handle: Callable[..., None]) -> None:
        for _ in range(64):
            try:
                frame = chan.recv(MAX_CHANNEL)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    log(L_ERR, f"channel recv: {exc}")
                return
            if not frame:
                self._stop = True  # main process went away
                return
            msg = decode_in(frame)
            lst = self.listens[msg.local]
            handle(msg.data, msg.src, lst.addr, msg.proto, self._sender(msg.proto, msg.conn))

    # -- main process: dispatch mode -------------------------------------------------------

    def _main_loop(self) -> None:
        sel = self.sel = selectors.DefaultSelector()
        out_local = next((i for i, lst in enumerate(self.listens) if lst.proto == "tcp"), 0)
        tcp = self.tcp = TcpConns(sel, self.tcp_limits, self._from_tcp, out_local)
        if self.dispatch:  # in direct mode the workers read the sockets themselves
            for i, lst in enumerate(self.listens):
                sel.register(lst.sock, selectors.EVENT_READ, ("listen", i))
        for w, chan in enumerate(self.channels):
            sel.register(chan, selectors.EVENT_READ, ("chan", w))
        if self.control is not None:
            self.control.register(sel)
        wait = 1.0
        while not self._stop:
            try:
                events = sel.select(timeout=wait)
            except InterruptedError:
                continue
            for key, mask in events:
                kind, ref = key.data if isinstance(key.data, tuple) else ("ctl", key.data)
                try:
                    if kind == "listen":
                        self._on_listen(ref)
                    elif kind == "chan":
                        self._on_channel(key.fileobj)  # type: ignore[arg-type]
                    elif kind == "tcp":
                        tcp.on_event(ref, mask)
                    else:
                        self.control.on_event(key, mask)
                except Exception as exc:  # noqa: BLE001 - the main loop must survive
                    log(L_ERR, f"main loop: {exc!r}")
            self._reap()
            self._watchdog()
            wait = tcp.tick()
            flush_repeated()

    def _to_worker(
        self, proto: str, local: int, conn: int, src: tuple[str, int], data: bytes
    ) -> None:
        if not self.channels:
            return
        w = worker_for(data, len(self.channels))
        try:
            self.channels[w].send(encode_in(proto, local, conn, src, data))
        except BlockingIOError:
            self._overload.log(
                f"worker {w + 1} is overloaded: {{n}} message(s) dropped (last from {src[0]})",
                str(w),
            )
        except OSError as exc:
            log(L_ERR, f"dispatch to worker {w + 1}: {exc}")

    def _from_tcp(self, conn: TcpConn, data: bytes) -> None:
        self._to_worker("tcp", conn.local, conn.cid, conn.peer, data)

    def _on_listen(self, i: int) -> None:
        lst = self.listens[i]
        if lst.proto == "udp":
            for _ in range(64):
                try:
                    data, src = lst.sock.recvfrom(MAX_UDP)
                except BlockingIOError:
                    return
                except OSError:
                    return
                self._to_worker("udp", i, -1, src[:2], data)
            return
        try:
            sock, peer = lst.sock.accept()
        except OSError:
            return
        assert self.tcp is not None
        self.tcp.accept(sock, peer[:2], i)

    def _on_channel(self, chan: socket.socket) -> None:
        for _ in range(64):
            try:
                frame = chan.recv(MAX_CHANNEL)
            except (BlockingIOError, OSError):
                return
            if not frame:
                return
            conn, addr, data, flags = decode_out(frame)
            assert self.tcp is not None
            self.tcp.send(conn, addr, data, flags)

    # -- process management --------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.router.cfg
        children = max(1, cfg.get_int("children", 8))
        fork = cfg.get_bool("fork", True)
        self._read_limits()
        self.bind()
        self.dispatch = fork and (
            cfg.get_bool("kemi.dispatch", False)
            or self.router.needs_affinity
            or any(lst.proto == "tcp" for lst in self.listens)
        )
        addrs = ", ".join(f"{lst.proto}:{lst.addr[0]}:{lst.addr[1]}" for lst in self.listens)
        mode = "dispatch" if self.dispatch else "direct"
        log(L_NOTICE, f"pykemi listening on {addrs} with cfgengine {cfg.cfgengine} ({mode})")
        if self.router.control_factory is not None:
            self.control = self.router.control_factory(self)
        # as Kamailio: sockets bound and state made as root, then no script runs as root
        drop(self.privileges, [d for d in (shared_dir(),) if d is not None])
        if not fork:
            self._install_signals()
            self._limit_memory(1)
            self._child_init(1)
            self._announce_ready(f"1 process on {addrs}, fork=no")
            self.serve(1, control=self.control)
            if self.control is not None:
                self.control.close()
            return 0
        if self.dispatch:
            for _ in range(children):
                main_side, worker_side = channel_pair()
                main_side.setblocking(False)
                self.channels.append(main_side)
                self._worker_sides.append(worker_side)
        for rank in range(1, children + 1):
            self._spawn(rank)
        self._install_signals()
        self._announce_ready(f"{children} workers on {addrs}, {mode}")
        if self.dispatch or self.control is not None:
            self._main_loop()
        else:
            while not self._stop:
                time.sleep(0.5)
                self._reap()
                self._watchdog()
        self._terminate()
        return 0

    def _announce_ready(self, detail: str) -> None:
        print(f"{READY} ({detail})", file=sys.stderr, flush=True)
        if self.on_ready is not None:
            self.on_ready()

    def _read_limits(self) -> None:
        """Resource limits from the config (names, defaults: docs/reliability.md)."""
        cfg = self.router.cfg
        # per-callback time budget of the script (ms, 0 = none); engines without it ignore it
        limit = cfg.get_int("kemi.route_time_limit", DEFAULT_TIME_LIMIT_MS)
        setter = getattr(self.router.engine, "set_time_limit", None)
        if callable(setter):
            setter(max(0, limit))
        watchdog = max(0, cfg.get_int("kemi.worker_watchdog", WORKER_WATCHDOG_MS))
        self.watchdog_ns = watchdog * 1_000_000
        # address-space limit of each worker (MB, 0 = none), applied after fork
        self.worker_memory_limit = max(0, cfg.get_int("kemi.worker_memory_limit", 0))

    def _limit_memory(self, rank: int) -> None:
        """RLIMIT_AS for this worker: a script allocating without bound gets MemoryError
        (Python) or "not enough memory" (Lua) instead of the OOM killer."""
        if not self.worker_memory_limit:
            return
        limit = self.worker_memory_limit * 1024 * 1024
        try:
            with open(f"/proc/{os.getpid()}/statm") as fh:
                vsz = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            vsz = 0
        if vsz and limit < vsz + 32 * 1024 * 1024:
            log(
                L_ERR,
                f"kemi.worker_memory_limit={self.worker_memory_limit} MB is below worker {rank}'s "
                f"size at start ({vsz >> 20} MB + 32 MB headroom): limit not applied",
            )
            return
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError) as exc:
            log(L_ERR, f"cannot set kemi.worker_memory_limit: {exc}")

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rank = self.children.pop(pid, None)
            if rank is not None and not self._stop:
                log(L_ERR, f"worker {rank} (pid {pid}) exited with status {status}; restarting")
                self._spawn(rank)

    def _watchdog(self) -> None:
        """Kill a worker stuck in one batch of messages; _reap restarts it."""
        limit = self.watchdog_ns
        now = time.monotonic_ns()
        if not limit or now < self._watchdog_check:
            return
        self._watchdog_check = now + 200_000_000  # at most 5 scans a second
        stats, col = self.router.stats, self._busy
        for pid, rank in list(self.children.items()):
            since = stats.cell(rank, col)
            if not since or now - since <= limit:
                continue
            log(
                L_ERR,
                f"worker {rank} (pid {pid}) stuck: one batch of messages has been running for "
                f"{(now - since) / 1e9:.1f} s (kemi.worker_watchdog={limit // 1_000_000} ms); "
                "killing it, it will be restarted",
            )
            stats.reset_cell(rank, col)  # the restarted worker must not look stuck
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _child_init(self, rank: int) -> None:
        LOG.rank = rank
        self.router.stats.attach(rank)
        rc = self.router.engine.child_init(rank)
        if rc < 0:
            log(L_ERR, f"child_init({rank}) failed with {rc}")
            os._exit(1)
        if rank == 1:  # Kamailio's first SIP worker runs event_route[core:worker-one-init]
            worker_one_init(self.router)

    def _spawn(self, rank: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            code = 0
            try:
                if self.dispatch:
                    self.worker_channel = self._worker_sides[rank - 1]
                    self.worker_channel.setblocking(False)
                    for s in self.channels:
                        s.close()
                    for lst in self.listens:
                        if lst.proto == "tcp":
                            lst.sock.close()
                if self.control is not None:
                    self.control.close_in_child()
                self._limit_memory(rank)
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

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _terminate(self) -> None:
        if self.control is not None:
            self.control.close()
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
        log(L_DBG, "stopped")
