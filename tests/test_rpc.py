"""Control socket: Kamailio-shaped JSON-RPC results, errors, and reload under load."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from pykemi.runtime.control import default_socket_path
from pykemi.runtime.launch import RouterStartError

from .harness import SIPP, free_udp_port, kemi, router, sipp
from .otheruser import NOBODY, needs_root, spawn_as_nobody

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=LISTEN
kemi.rpc_socket = "RPCSOCK"
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "{engine_module}.so"
modparam("{engine_module}", "load", "{script}")
cfgengine "{engine}"
"""

LUA_V = """
function ksr_request_route()
    KSR.info("script VERSION\\n")
    KSR.sl.send_reply(200, "OK")
end
"""

PY_V = """
import KSR

def mod_init():
    return H()

class H:
    def ksr_request_route(self, msg):
        KSR.info("script VERSION\\n")
        KSR.sl.send_reply(200, "OK")
        return 1
"""


def _setup(tmp: Path, engine: str) -> tuple[Path, Path, str]:
    script = tmp / ("k.lua" if engine == "lua" else "k.py")
    script.write_text((LUA_V if engine == "lua" else PY_V).replace("VERSION", "v1"))
    sock = str(tmp / "rpc.sock")
    module = "app_lua" if engine == "lua" else "app_python3"
    cfg = tmp / "k.cfg"
    cfg.write_text(
        CFG.format(engine_module=module, script=script.name, engine=engine).replace("RPCSOCK", sock)
    )
    return cfg, script, sock


def _raw(sock: str, payload: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    result: dict[str, object] = json.loads(data)
    return result


def test_api_list_shape_and_errors(tmp_path: Path) -> None:
    cfg, _, sock = _setup(tmp_path, "lua")
    with router(cfg, tmp_path):
        mode = os.stat(sock).st_mode
        assert stat.S_IMODE(mode) == 0o600
        res = kemi("rpc", "-s", sock, "app_lua.api_list")
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        assert doc["msize"] == len(doc["methods"])
        first = doc["methods"][0]
        assert list(first) == ["func"]
        assert list(first["func"]) == ["ret", "module", "name", "params"]
        assert first["func"] == {"ret": "none", "module": "", "name": "dbg", "params": "str"}
        names = {(m["func"]["module"], m["func"]["name"]) for m in doc["methods"]}
        assert ("sl", "send_reply") in names and ("maxfwd", "process_maxfwd") in names
        assert not any(mod == "x" for mod, _ in names)  # engine-private KSR.x is not listed
        assert kemi("rpc", "-s", sock, "core.version").stdout.startswith("pykemi ")
        assert _raw(sock, b"{not json")["error"] == {"code": -32700, "message": "Parse error"}
        bad = _raw(sock, b'{"jsonrpc": "2.0", "method": "no.such", "id": 3}')
        assert bad["error"] == {"code": -32601, "message": "Method not found"} and bad["id"] == 3
        inv = _raw(sock, b'{"method": 1}')
        assert inv["error"] == {"code": -32600, "message": "Invalid Request"}


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_reload_under_load(tmp_path: Path, engine: str) -> None:
    cfg, script, sock = _setup(tmp_path, engine)
    with router(cfg, tmp_path) as r:
        results = {}

        def load() -> None:
            results["sipp"] = sipp("options.xml", r.port, tmp_path, calls=3000, rate=500)

        t = threading.Thread(target=load)
        t.start()
        time.sleep(2.0)
        script.write_text(script.read_text().replace("v1", "v2"))
        res = kemi("rpc", "-s", sock, f"{'app_lua' if engine == 'lua' else 'app_python'}.reload")
        assert res.returncode == 0, res.stderr
        if engine == "python":
            assert json.loads(res.stdout) == {"old": 0, "new": 1}
        t.join(timeout=60)
        out = results["sipp"]
        assert (out.successful, out.failed) == (3000, 0), out.output
        log = r.log
    assert log.count("script v1") > 0 and log.count("script v2") > 0
    assert log.count("script v1") + log.count("script v2") == 3000
    assert _served_by_version(log) == {"reloaded": 2, "answered": 3000}


LOG_PID = re.compile(r"^ *\d+\((\d+)\) ")


def _served_by_version(log: str) -> dict[str, int]:
    """Check each worker's log in order: v1 until its 'script reloaded', v2 after it.

    Returns how many workers reloaded and how many requests they answered; an AssertionError
    names the first line out of order.
    """
    reloaded: dict[str, bool] = {}
    answered = 0
    for n, line in enumerate(log.splitlines(), 1):
        m = LOG_PID.match(line)
        if m is None:
            continue
        pid = m.group(1)
        if "script reloaded (version 1)" in line:
            assert not reloaded.get(pid), f"log line {n}: worker {pid} reloaded twice"
            reloaded[pid] = True
        elif "script v1" in line:
            assert not reloaded.get(pid), f"log line {n}: worker {pid} ran v1 after its reload"
            answered += 1
        elif "script v2" in line:
            assert reloaded.get(pid), f"log line {n}: worker {pid} ran v2 before its reload"
            answered += 1
    return {"reloaded": sum(reloaded.values()), "answered": answered}


def test_reload_refuses_broken_script(tmp_path: Path) -> None:
    cfg, script, sock = _setup(tmp_path, "lua")
    with router(cfg, tmp_path) as r:
        script.write_text("function ksr_request_route(\n")
        res = kemi("rpc", "-s", sock, "app_lua.reload")
        assert res.returncode == 1 and "Reload Failed" in res.stderr
        ok = sipp("options.xml", r.port, tmp_path, calls=50, rate=100)
        assert (ok.successful, ok.failed) == (50, 0)


def test_kemi_rpc_unreachable_socket(tmp_path: Path) -> None:
    res = kemi("rpc", "-s", str(tmp_path / "none.sock"), "core.version")
    assert res.returncode == 2 and "cannot reach" in res.stderr


# -- who owns the control socket (M5) ---------------------------------------------------------

SIMPLE = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen={listen}
{rpc}
loadmodule "sl.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "k.lua")
cfgengine "lua"
"""


def _simple(tmp: Path, listen: str = "LISTEN", rpc: str = "") -> Path:
    tmp.mkdir(exist_ok=True)
    (tmp / "k.lua").write_text(LUA_V.replace("VERSION", "v1"))
    cfg = tmp / "kamailio.cfg"
    cfg.write_text(SIMPLE.format(listen=listen, rpc=rpc))
    return cfg


def _bound_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))  # left behind, as by a crashed process


@needs_root
def test_socket_path_controlled_by_another_user_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "planted.sock"
    _bound_socket(planted)
    os.chown(planted, NOBODY, NOBODY)
    cfg = _simple(tmp_path / "a", rpc=f'kemi.rpc_socket="{planted}"')
    with pytest.raises(RouterStartError, match=r"planted\.sock: owned by uid 65534"):
        with router(cfg, tmp_path / "a"):
            pass
    assert planted.exists() and planted.stat().st_uid == NOBODY  # not removed either
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)  # like /tmp: anybody can create names in it
    cfg = _simple(tmp_path / "b", rpc=f'kemi.rpc_socket="{shared}/rpc.sock"')
    with pytest.raises(RouterStartError, match=r"shared: mode 1777 lets other users write"):
        with router(cfg, tmp_path / "b"):
            pass


def test_live_socket_of_another_router_is_not_taken(tmp_path: Path) -> None:
    sock = tmp_path / "rpc.sock"
    _bound_socket(sock)  # ours, nobody listens: left by a router that died, replaced
    cfg = _simple(tmp_path / "a", rpc=f'kemi.rpc_socket="{sock}"')
    with router(cfg, tmp_path / "a") as first:
        with pytest.raises(RouterStartError, match=r"rpc\.sock: already in use"):
            with router(_simple(tmp_path / "b", rpc=f'kemi.rpc_socket="{sock}"'), tmp_path / "b"):
                pass
        res = kemi("rpc", "-s", str(sock), "core.ps")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)[0]["PID"] == first.proc.pid


def _forged_server(path: Path) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
        s.listen(1)
        conn, _ = s.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b'{"jsonrpc": "2.0", "result": "pykemi forged", "id": 1}\n')
    return 0


@needs_root
def test_client_refuses_a_server_of_another_user(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="pykemi-forge-"))  # short path, nobody's
    os.chown(home, NOBODY, NOBODY)
    path = home / "rpc.sock"
    pid = spawn_as_nobody(lambda: _forged_server(path))
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        res = kemi("rpc", "-s", str(path), "core.version")
        assert res.returncode == 2, (res.stdout, res.stderr)
        assert "forged" not in res.stdout
        assert "runs as uid 65534" in res.stderr, res.stderr
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        shutil.rmtree(home)


@needs_root
def test_default_sockets_per_address_in_our_directory(tmp_path: Path) -> None:
    """Two routers on one port (different addresses) keep their own default socket, which a
    planted /tmp/pykemi_rpc-<port>.sock (the old predictable name) does not disturb; ``kemi
    rpc -D`` finds each from the config."""
    port = free_udp_port()
    old_name = Path(f"/tmp/pykemi_rpc-{port}.sock")
    _bound_socket(old_name)
    os.chown(old_name, NOBODY, NOBODY)
    try:
        with ExitStack() as stack:
            pids = {}
            for host in ("127.0.0.1", "127.0.0.2"):
                work = tmp_path / host
                cfg = _simple(work)
                listen = {"LISTEN": f"udp:{host}:{port}"}
                r = stack.enter_context(router(cfg, work, defines=listen, port=port))
                pids[host] = (r.proc.pid, cfg)
            for host, (pid, cfg) in pids.items():
                res = kemi("rpc", "-c", str(cfg), "-A", f"LISTEN=udp:{host}:{port}", "core.ps")
                assert res.returncode == 0, res.stderr
                assert json.loads(res.stdout)[0]["PID"] == pid, host
                path = Path(default_socket_path(host, port))
                assert path.name == f"pykemi_rpc-{host}-{port}.sock"
                assert path.stat().st_uid == os.geteuid()
                st = path.parent.stat()
                assert st.st_uid == os.geteuid() and not st.st_mode & 0o022
    finally:
        old_name.unlink()


def test_readme_rpc_example(tmp_path: Path) -> None:
    """README: ``kemi rpc -c CFG app_lua.api_list`` with a config that does not set
    kemi.rpc_socket (the default socket of its listen address)."""
    port = free_udp_port()
    cfg = _simple(tmp_path, listen=f"udp:127.0.0.1:{port}")
    with router(cfg, tmp_path, port=port):
        res = kemi("rpc", "-c", "kamailio.cfg", "app_lua.api_list", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["msize"] > 0
