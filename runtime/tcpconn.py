"""TCP connections of the main process (dispatch mode): accept, frame, queue, connect.

Nothing here blocks: outgoing connects are non-blocking (the messages wait in the
connection's write queue until it is writable), writes go first to the socket and only
the rest is queued, and every resource a peer can make the router hold is bounded
(docs/security.md): connections (global and per source IP), pending connects, write
queues (per connection and global), time to connect, time without write progress.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config.globals import KNOWN_GLOBALS
from .core.log import L_DBG, L_ERR, L_WARN, Repeated, log
from .sip.message import MAX_MESSAGE_SIZE, SipParseError, frame_total

if TYPE_CHECKING:
    from .config.model import Config

Address = tuple[str, int]

# send flags (Kamailio's SND_F_*: set_*_no_connect, set_*_close, sl send_reply_mode)
SND_F_FORCE_CON_REUSE = 1  # use an existing connection only, never open one
SND_F_CON_CLOSE = 2  # close the connection once the message is written
# not a send: add_tcp_alias from a worker; the address is the connection's peer, the data
# the alias port (ASCII digits)
SND_F_ALIAS = 0x80
MAX_ALIASES = 12  # per connection, as Kamailio's TCP_CON_MAX_ALIASES


def _param(cfg: Config, name: str, low: int) -> int:
    """Core parameter ``name`` (default: the table in config/globals.py), at least ``low``."""
    default = KNOWN_GLOBALS[name].default
    assert isinstance(default, int)
    return max(low, cfg.get_int(name, default))


@dataclass(frozen=True)
class TcpLimits:
    """Kamailio's core parameters (pykemi's own under ``kemi.``); docs/security.md."""

    max_connections: int  # tcp_max_connections: accepted + outgoing
    max_per_ip: int  # kemi.tcp_max_connections_per_ip: accepted, per source IP
    max_pending_connects: int  # kemi.tcp_max_pending_connects: outgoing, not yet up
    lifetime: float  # tcp_connection_lifetime (s): idle connections are closed
    connect_timeout: float  # tcp_connect_timeout (s)
    send_timeout: float  # tcp_send_timeout (s): queued data without write progress
    conn_wq_max: int  # tcp_conn_wq_max (bytes): one connection's write queue
    wq_max: int  # tcp_wq_max (bytes): all write queues together
    no_connect: bool  # tcp_no_connect: never open outgoing connections

    @classmethod
    def from_cfg(cls, cfg: Config) -> TcpLimits:
        return cls(
            max_connections=_param(cfg, "tcp_max_connections", 1),
            max_per_ip=_param(cfg, "kemi.tcp_max_connections_per_ip", 1),
            max_pending_connects=_param(cfg, "kemi.tcp_max_pending_connects", 1),
            lifetime=float(_param(cfg, "tcp_connection_lifetime", 1)),
            connect_timeout=float(_param(cfg, "tcp_connect_timeout", 1)),
            send_timeout=float(_param(cfg, "tcp_send_timeout", 1)),
            conn_wq_max=_param(cfg, "tcp_conn_wq_max", 1024),
            wq_max=_param(cfg, "tcp_wq_max", 1024),
            no_connect=cfg.get_bool(
                "tcp_no_connect", bool(KNOWN_GLOBALS["tcp_no_connect"].default)
            ),
        )


class StreamFramer:
    """Splits a TCP byte stream into SIP messages in linear time: the header block is searched
    only in bytes not searched before, and once it is complete the message length is known,
    so further segments are only counted until the body is in."""

    __slots__ = ("_scanned", "_total", "buf")

    def __init__(self) -> None:
        self.buf = bytearray()
        self._scanned = 0  # no empty line starts before this offset
        self._total: int | None = None  # length of the first message, once its head is in

    def feed(self, chunk: bytes) -> list[bytes]:
        """Messages completed by ``chunk`` (keep-alive CR/LF skipped). Raises SipParseError
        (bad Content-Length, header block or message above MAX_MESSAGE_SIZE)."""
        self.buf += chunk
        out: list[bytes] = []
        while True:
            n = self._first_length()
            if n is None:
                return out
            frame = bytes(memoryview(self.buf)[:n])
            del self.buf[:n]  # from the front of a bytearray: no copy of the rest
            self._scanned, self._total = 0, None
            if frame.strip():
                out.append(frame)

    def _first_length(self) -> int | None:
        buf = self.buf
        if self._total is None:
            if not buf:
                return None
            if buf[0] in (10, 13):  # keep-alives: a frame of their own
                return frame_total(bytes(buf[:2]))
            head_end = self._head_end()
            if head_end < 0:
                if len(buf) > MAX_MESSAGE_SIZE:
                    frame_total(bytes(buf))  # raises "header block exceeds ..."
                return None
            self._total = frame_total(bytes(memoryview(buf)[:head_end]))
        total = self._total
        return total if total is not None and len(buf) >= total else None

    def _head_end(self) -> int:
        """Offset just past the first empty line (LF LF or LF CR LF), -1 when not in yet."""
        buf, start = self.buf, self._scanned
        crlf = buf.find(b"\n\r\n", start)
        lf = buf.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buf))
        if lf >= 0:
            return lf + 2
        if crlf >= 0:
            return crlf + 3
        self._scanned = max(0, len(buf) - 2)  # an empty line may straddle the next segment
        return -1


@dataclass
class TcpConn:
    cid: int
    sock: socket.socket
    peer: Address
    local: int  # index of the listen socket (for received messages)
    accepted: bool
    framer: StreamFramer = field(default_factory=StreamFramer)
    out: bytearray = field(default_factory=bytearray)
    last: float = field(default_factory=time.monotonic)  # last read or write progress
    connecting: bool = False
    deadline: float = 0.0  # connect deadline, or write-progress deadline while queued
    close_when_sent: bool = False
    aliases: list[Address] = field(default_factory=list)  # add_tcp_alias: more by_peer keys


class TcpConns:
    """The main process's TCP connections; ``deliver(conn, frame)`` gets each message."""

    def __init__(
        self,
        sel: selectors.BaseSelector,
        limits: TcpLimits,
        deliver: Callable[[TcpConn, bytes], None],
        out_local: int,
    ) -> None:
        self.sel, self.limits, self.deliver = sel, limits, deliver
        self.out_local = out_local  # listen index recorded on outgoing connections
        self.conns: dict[int, TcpConn] = {}
        self.by_peer: dict[Address, int] = {}
        self.per_ip: dict[str, int] = {}  # accepted connections per source IP
        self.pending: dict[int, TcpConn] = {}  # connects in progress
        self.queued = 0  # bytes in all write queues (tcp_wq_max)
        self._next_cid = 1
        self._idle_check = 0.0
        self._refused = Repeated(L_WARN, 10.0)
        self._dropped = Repeated(L_WARN)

    # -- connections ---------------------------------------------------------------------------

    def accept(self, sock: socket.socket, peer: Address, local: int) -> None:
        lim = self.limits
        if len(self.conns) >= lim.max_connections:
            # accept and close at once, so the backlog drains and the peer learns it
            sock.close()
            self._refused.log(
                f"tcp_max_connections ({lim.max_connections}) reached: {{n}} connection(s) "
                "refused",
                "all",
            )
            return
        if self.per_ip.get(peer[0], 0) >= lim.max_per_ip:
            sock.close()
            self._refused.log(
                f"kemi.tcp_max_connections_per_ip ({lim.max_per_ip}) reached for {peer[0]}: "
                "{n} connection(s) refused",
                peer[0],
            )
            return
        self._add(sock, peer, local, accepted=True)

    def _add(self, sock: socket.socket, peer: Address, local: int, accepted: bool) -> TcpConn:
        sock.setblocking(False)
        conn = TcpConn(self._next_cid, sock, peer, local, accepted)
        self._next_cid += 1
        self.conns[conn.cid] = conn
        self.by_peer[peer] = conn.cid
        if accepted:
            self.per_ip[peer[0]] = self.per_ip.get(peer[0], 0) + 1
        self.sel.register(sock, selectors.EVENT_READ, ("tcp", conn.cid))
        return conn

    def close(self, conn: TcpConn) -> None:
        if self.conns.pop(conn.cid, None) is None:
            return
        for key in (conn.peer, *conn.aliases):
            if self.by_peer.get(key) == conn.cid:
                del self.by_peer[key]
        if conn.accepted:
            left = self.per_ip.get(conn.peer[0], 1) - 1
            if left > 0:
                self.per_ip[conn.peer[0]] = left
            else:
                self.per_ip.pop(conn.peer[0], None)
        self.pending.pop(conn.cid, None)
        self.queued -= len(conn.out)
        conn.out.clear()
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _connect(self, addr: Address) -> TcpConn | None:
        lim, where = self.limits, f"{addr[0]}:{addr[1]}"
        if len(self.conns) >= lim.max_connections:
            log(L_ERR, f"tcp connect to {where}: tcp_max_connections reached")
            return None
        if len(self.pending) >= lim.max_pending_connects:
            self._dropped.log(
                f"tcp connect to {where}: kemi.tcp_max_pending_connects "
                f"({lim.max_pending_connects}) reached, {{n}} message(s) dropped",
                "pending",
            )
            return None
        try:
            family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
            socket.inet_pton(family, addr[0])  # a name here would mean a blocking DNS lookup
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            log(L_ERR, f"tcp connect to {where}: {exc}")
            return None
        sock.setblocking(False)
        err = sock.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            log(L_ERR, f"tcp connect to {where} failed: {errno.errorcode.get(err, err)}")
            return None
        conn = self._add(sock, addr, self.out_local, accepted=False)
        if err:
            conn.connecting = True
            conn.deadline = time.monotonic() + lim.connect_timeout
            self.pending[conn.cid] = conn
            self.sel.modify(sock, selectors.EVENT_WRITE, ("tcp", conn.cid))
        return conn

    # -- events --------------------------------------------------------------------------------

    def on_event(self, cid: int, mask: int) -> None:
        conn = self.conns.get(cid)
        if conn is None:
            return
        if conn.connecting:
            self._connected(conn)
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
        if mask & selectors.EVENT_READ and cid in self.conns:
            self._read(conn)

    def _connected(self, conn: TcpConn) -> None:
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            log(
                L_ERR,
                f"tcp connect to {conn.peer[0]}:{conn.peer[1]} failed: {errno.errorcode.get(err, err)}"
                f" ({len(conn.out)} queued byte(s) dropped)",
            )
            self.close(conn)
            return
        conn.connecting = False
        self.pending.pop(conn.cid, None)
        self._flush(conn)

    def _read(self, conn: TcpConn) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.close(conn)
            return
        if not chunk:
            self.close(conn)
            return
        conn.last = time.monotonic()
        try:
            frames = conn.framer.feed(chunk)
        except SipParseError as exc:  # bad Content-Length, header block or message > 64 KiB
            log(L_WARN, f"tcp {conn.peer}: {exc}; closing the connection")
            self.close(conn)
            return
        for frame in frames:
            self.deliver(conn, frame)

    # -- sending -------------------------------------------------------------------------------

    def send(self, cid: int, addr: Address, data: bytes, flags: int) -> bool:
        """Write ``data`` on connection ``cid`` (-1: the one to ``addr``), opening one unless
        ``flags`` or tcp_no_connect forbid it. False when the message is dropped."""
        if flags & SND_F_ALIAS:
            return self.add_alias(addr, data)
        conn = self.conns.get(cid) if cid >= 0 else None
        if conn is None:
            found = self.by_peer.get(addr)
            conn = self.conns.get(found) if found is not None else None
        if conn is None:
            if flags & SND_F_FORCE_CON_REUSE or self.limits.no_connect:
                why = "tcp_no_connect" if self.limits.no_connect else "the no-connect send flag"
                self._dropped.log(
                    f"tcp send to {addr[0]}:{addr[1]}: no connection, and {why} forbids "
                    "opening one: {n} message(s) dropped",
                    "noconn",
                )
                return False
            conn = self._connect(addr)
            if conn is None:
                return False
        if flags & SND_F_CON_CLOSE:
            conn.close_when_sent = True
        if not conn.out and not conn.connecting:
            try:
                sent = conn.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close(conn)
                return False
            data = data[sent:]
            if not data:
                conn.last = time.monotonic()
                if conn.close_when_sent:
                    self.close(conn)
                return True
        return self._enqueue(conn, data)

    def add_alias(self, peer: Address, port: bytes) -> bool:
        """Kamailio's add_tcp_alias: requests to (the peer's IP, ``port``) reuse the connection
        of ``peer`` (an alias already held by another live connection is kept)."""
        cid = self.by_peer.get(peer)
        conn = self.conns.get(cid) if cid is not None else None
        if conn is None or not port.isdigit() or not 0 < int(port) < 65536:
            log(L_ERR, f"tcp alias {port!r} for {peer[0]}:{peer[1]}: no such connection or port")
            return False
        alias = (peer[0], int(port))
        if self.by_peer.get(alias, conn.cid) != conn.cid:
            log(L_WARN, f"tcp alias {alias[0]}:{alias[1]} already points to another connection")
            return False
        if alias in conn.aliases:
            return True
        if len(conn.aliases) >= MAX_ALIASES:
            log(L_WARN, f"tcp alias {alias[1]} for {peer[0]}:{peer[1]}: {MAX_ALIASES} already")
            return False
        self.by_peer[alias] = conn.cid
        conn.aliases.append(alias)
        return True

    def _enqueue(self, conn: TcpConn, data: bytes) -> bool:
        lim, n = self.limits, len(data)
        # an empty queue takes any one message (a message may exceed tcp_conn_wq_max)
        over_conn = bool(conn.out) and len(conn.out) + n > lim.conn_wq_max
        if over_conn or self.queued + n > lim.wq_max:
            what = "tcp_conn_wq_max" if over_conn else "tcp_wq_max"
            limit = lim.conn_wq_max if over_conn else lim.wq_max
            self._dropped.log(
                f"tcp {conn.peer[0]}:{conn.peer[1]}: write queue over {what} ({limit} bytes), "
                "the peer does not read: {n} connection(s) closed",
                what,
            )
            self.close(conn)
            return False
        if not conn.out and not conn.connecting:
            conn.deadline = time.monotonic() + lim.send_timeout
        conn.out += data
        self.queued += n
        if not conn.connecting:
            self._watch(conn)
        return True

    def _watch(self, conn: TcpConn) -> None:
        """Wait for writability while data is queued; stop reading while the queue is at least
        half full (the peer does not read: its requests would only queue more replies)."""
        events = selectors.EVENT_WRITE if conn.out else 0
        if len(conn.out) < self.limits.conn_wq_max // 2:
            events |= selectors.EVENT_READ
        self.sel.modify(conn.sock, events, ("tcp", conn.cid))

    def _flush(self, conn: TcpConn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            return
        except OSError:
            self.close(conn)
            return
        if sent:
            del conn.out[:sent]
            self.queued -= sent
            conn.last = time.monotonic()
            conn.deadline = conn.last + self.limits.send_timeout
        if not conn.out and conn.close_when_sent:
            self.close(conn)
            return
        self._watch(conn)

    # -- timers --------------------------------------------------------------------------------

    def tick(self) -> float:
        """Close what timed out; the longest the main loop may sleep before the next call."""
        now = time.monotonic()
        for conn in [c for c in self.pending.values() if now > c.deadline]:
            log(
                L_ERR,
                f"tcp connect to {conn.peer[0]}:{conn.peer[1]} timed out after "
                f"{self.limits.connect_timeout:g} s ({len(conn.out)} queued byte(s) dropped)",
            )
            self.close(conn)
        if now >= self._idle_check:
            self._idle_check = now + min(1.0, self.limits.lifetime / 2)
            self._expire(now)
        return 0.2 if self.pending else 1.0

    def _expire(self, now: float) -> None:
        lim = self.limits
        for conn in list(self.conns.values()):
            if conn.connecting:
                continue
            if conn.out and now > conn.deadline:
                log(
                    L_WARN,
                    f"tcp {conn.peer[0]}:{conn.peer[1]}: no write progress for "
                    f"{lim.send_timeout:g} s (tcp_send_timeout), closing",
                )
                self.close(conn)
            elif now - conn.last > lim.lifetime:
                log(L_DBG, f"tcp {conn.peer}: idle for {lim.lifetime:g}s, closing")
                self.close(conn)
