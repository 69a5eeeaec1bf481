"""JSON-RPC 2.0 control socket (Kamailio's jsonrpcs method names and result shapes).

A Unix stream socket owned by the main process, created with mode 0600. A
client writes one request object and half-closes; the server answers and
closes. Methods that act on workers (reload) bump a counter in shared memory
that every worker checks between messages.
"""

from __future__ import annotations

import json
import mmap
import os
import platform
import re
import selectors
import socket
import stat
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config.model import DEFAULT_LISTEN, Config
from .core.fsperm import UnsafePathError, trusted_dir, user_runtime_dir
from .core.log import L_ERR, L_INFO, log
from .dispatch import StartupError
from .engines.base import ScriptError

VERSION = "0.1.0"


def server_version() -> str:
    """core.version and ``kemi run -V``: Kamailio's shape, ``kamailio 5.6.3 (x86_64/linux)``."""
    return f"pykemi {VERSION} ({platform.machine()}/{os.uname().sysname.lower()})"


MAX_REQUEST = 1 << 20

Method = Callable[[list[Any]], Any]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Kamailio keeps its control sockets in /run/kamailio; pykemi in /run/pykemi when this user
# owns it (root), else in the per-user runtime directory.
SYSTEM_RUNTIME_DIR = Path("/run/pykemi")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._:-]")


class UntrustedServerError(OSError):
    """The process behind a control socket runs as another (non-root) user."""


def default_socket_path(address: str, port: int) -> str:
    """The control socket of the router whose first listen address is ``address:port``: the
    address is in the name so routers on one port but different addresses keep their own."""
    try:
        base = trusted_dir(SYSTEM_RUNTIME_DIR)
    except OSError:
        base = user_runtime_dir()
    name = _UNSAFE_NAME_CHARS.sub("_", address)
    return str(base / f"pykemi_rpc-{name}-{port}.sock")


def socket_path(cfg: Config) -> str | None:
    """The control socket of the router ``cfg`` describes: ``kemi.rpc_socket``, else the
    default of its first listen address; None when it is disabled (``"none"``)."""
    configured = cfg.get("kemi.rpc_socket")
    if configured == "none":
        return None
    if isinstance(configured, str) and configured:
        return configured
    host, port = (cfg.listen[0].host, cfg.listen[0].port) if cfg.listen else DEFAULT_LISTEN[1:]
    return default_socket_path(host, port)


def _claim(path: Path) -> None:
    """Make ``path`` free for our socket: its directory must be ours and not writable by
    others; an existing socket must be ours and dead (a live router keeps its socket)."""
    trusted_dir(path.parent)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise UnsafePathError(f"{path}: exists and is not a socket")
    if st.st_uid != os.geteuid():
        raise UnsafePathError(
            f"{path}: owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            os.unlink(path)  # nobody listens: left behind by a router that died
            return
        except OSError as exc:  # e.g. a live router too busy to accept: keep its socket
            raise StartupError(f"control socket {path}: exists and is not free ({exc})") from None
    raise StartupError(f"control socket {path}: already in use by a running router")


class ReloadCounter:
    """A version number in shared memory (created before fork, read by every worker)."""

    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, 8)
        self._mem[:8] = struct.pack("q", 0)

    @property
    def value(self) -> int:
        return int(struct.unpack("q", self._mem[:8])[0])

    def bump(self) -> int:
        new = self.value + 1
        self._mem[:8] = struct.pack("q", new)
        return new


class Control:
    """The control socket and its methods; lives in the main process."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.router = server.router
        try:
            path = socket_path(self.router.cfg)
        except OSError as exc:
            raise StartupError(f"control socket: {exc}") from None
        if path is None:
            raise StartupError('control socket: kemi.rpc_socket is "none"')
        self.path = path
        self.started = time.time()
        self.reload_counter = ReloadCounter()
        self._seen_version = 0
        self.router.before_message_hooks.append(self._check_reload)
        self.methods: dict[str, Method] = {}
        self._register_core()
        self.sock, self._inode = self._listen()
        self.clients: dict[int, tuple[socket.socket, bytearray]] = {}
        self.sel: selectors.BaseSelector | None = None
        log(L_INFO, f"control socket on {self.path}")

    # -- socket ----------------------------------------------------------------------------

    def _listen(self) -> tuple[socket.socket, int]:
        """The listening socket (0600: local root/owner only) and its inode."""
        try:
            _claim(Path(self.path))
        except OSError as exc:
            raise StartupError(f"control socket: {exc}") from None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
            inode = os.stat(self.path).st_ino
        except OSError as exc:
            sock.close()
            raise StartupError(f"control socket {self.path}: {exc}") from None
        finally:
            os.umask(old)
        sock.listen(64)
        sock.setblocking(False)
        return sock, inode

    def register(self, sel: selectors.BaseSelector) -> None:
        self.sel = sel
        sel.register(self.sock, selectors.EVENT_READ, ("ctl", None))

    def on_event(self, key: selectors.SelectorKey, mask: int) -> None:
        assert self.sel is not None
        sock: socket.socket = key.fileobj  # type: ignore[assignment]
        if sock is self.sock:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setblocking(False)
            self.clients[conn.fileno()] = (conn, bytearray())
            self.sel.register(conn, selectors.EVENT_READ, ("ctl", conn.fileno()))
            return
        entry = self.clients.get(sock.fileno())
        if entry is None:
            return
        conn, buf = entry
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            buf += chunk
            if len(buf) > MAX_REQUEST:
                self._reply(conn, _error(None, -32600, "Request too large"))
                return
            if not _complete(buf):
                return
        self._reply(conn, self.handle_bytes(bytes(buf)))

    def _reply(self, conn: socket.socket, data: bytes) -> None:
        assert self.sel is not None
        self.clients.pop(conn.fileno(), None)
        try:
            self.sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        try:
            conn.setblocking(True)
            conn.settimeout(2.0)
            conn.sendall(data)
        except OSError:
            pass
        conn.close()

    def close_in_child(self) -> None:
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
        try:
            if os.stat(self.path).st_ino == self._inode:  # still ours
                os.unlink(self.path)
        except OSError:
            pass

    # -- protocol ----------------------------------------------------------------------------

    def handle_bytes(self, data: bytes) -> bytes:
        try:
            req = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _error(None, -32700, "Parse error")
        if isinstance(req, list):
            if not req:
                return _error(None, -32600, "Invalid Request")
            answers = [self.handle(r) for r in req]
            return ("[" + ",".join(a for a in answers if a) + "]\n").encode()
        return (self.handle(req) or "").encode()

    def handle(self, req: Any) -> str:
        if (
            not isinstance(req, dict)
            or req.get("jsonrpc") != "2.0"
            or not isinstance(req.get("method"), str)
        ):
            return _error(None, -32600, "Invalid Request").decode()
        rid = req.get("id")
        params = req.get("params", [])
        if isinstance(params, dict):
            params = list(params.values())
        if not isinstance(params, list):
            return _error(rid, -32602, "Invalid params").decode()
        method = self.methods.get(req["method"])
        if method is None:
            return _error(rid, -32601, "Method not found").decode()
        try:
            result = method(params)
        except RpcError as exc:
            return _error(rid, exc.code, exc.message).decode()
        except Exception as exc:  # noqa: BLE001 - an RPC must never take the server down
            log(L_ERR, f"rpc {req['method']} failed: {exc!r}")
            return _error(rid, 500, f"Internal error: {exc}").decode()
        if "id" not in req:
            return ""  # notification
        return json.dumps({"jsonrpc": "2.0", "result": result, "id": rid}) + "\n"

    # -- methods -----------------------------------------------------------------------------

    def _register_core(self) -> None:
        eng = self.router.engine
        prefix = eng.rpc_prefix
        m = self.methods
        m["core.version"] = lambda p: server_version()
        m["core.uptime"] = self._uptime
        m["core.ps"] = self._ps
        m["core.echo"] = lambda p: p
        m.update(self.router.rpc_methods)  # modules' methods (tm.stats)
        m["system.listMethods"] = lambda p: sorted(self.methods)
        m[f"{prefix}.api_list"] = lambda p: self.router.registry.api_list()
        m[f"{prefix}.reload"] = self._reload
        if prefix == "app_lua":
            m["app_lua.list"] = lambda p: f"0: [{eng.script}]"

    def _uptime(self, params: list[Any]) -> dict[str, Any]:
        now = time.time()
        return {
            "now": time.ctime(now),
            "up_since": time.ctime(self.started),
            "uptime": int(now - self.started),
        }

    def _ps(self, params: list[Any]) -> list[dict[str, Any]]:
        out = [{"IDX": 0, "PID": os.getpid(), "DSC": "main process - attendant"}]
        for pid, rank in sorted(self.server.children.items(), key=lambda kv: kv[1]):
            out.append(
                {"IDX": rank, "PID": pid, "DSC": f"worker {rank} ({self.router.cfg.cfgengine})"}
            )
        return out

    def _reload(self, params: list[Any]) -> Any:
        eng = self.router.engine
        if eng.script is None or not eng.script.exists():
            raise RpcError(500, "No script file")
        # check the new script in the main process first: a broken script is refused
        try:
            eng.reload()
        except ScriptError as exc:
            raise RpcError(500, f"Reload Failed: {exc}") from None
        old = self.reload_counter.value
        new = self.reload_counter.bump()
        log(L_INFO, f"{eng.rpc_prefix}: script reload requested ({old} -> {new})")
        if eng.rpc_prefix == "app_lua":
            return None
        return {"old": old, "new": new}

    def _check_reload(self) -> None:
        version = self.reload_counter.value
        if version == self._seen_version:
            return
        self._seen_version = version
        try:
            self.router.engine.reload()
            log(L_INFO, f"script reloaded (version {version})")
        except ScriptError as exc:
            log(L_ERR, f"script reload failed, keeping the previous one: {exc}")


def _complete(buf: bytearray) -> bool:
    """Has a client that does not half-close sent a whole request? (else wait for EOF)"""
    if not bytes(buf).rstrip().endswith((b"}", b"]")):
        return False  # cheap: no JSON document ends otherwise
    try:
        json.loads(bytes(buf).decode("utf-8"))
        return True
    except RecursionError:
        return False  # too deep to tell: wait for EOF, then answer a parse error
    except (UnicodeDecodeError, ValueError):
        return False


def _error(rid: Any, code: int, message: str) -> bytes:
    return (
        json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": rid})
        + "\n"
    ).encode()


def call(path: str, method: str, params: list[Any], timeout: float = 10.0) -> Any:
    """Client side (``kemi rpc``): returns the decoded response object."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        _check_server(s, path)
        s.sendall(
            json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
        )
        s.shutdown(socket.SHUT_WR)
        data = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.decode("utf-8"))


def _check_server(s: socket.socket, path: str) -> None:
    """Talk only to a router of this user or root: a socket another user planted at the
    expected path would receive our requests and could forge the answers."""
    creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    euid = os.geteuid()
    if uid not in (euid, 0):
        raise UntrustedServerError(
            f"{path}: the server (pid {pid}) runs as uid {uid}, not as this user "
            f"(uid {euid}) or root; refusing to talk to it"
        )
