"""Control socket: Kamailio-shaped JSON-RPC results, errors, and reload under load."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .harness import SIPP, kemi, router, sipp

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
    # after the reload no worker answers with the old script
    assert log.rfind("script v1") < log.find("script v2") or log.count("script reloaded") == 2
    assert log.count("script reloaded (version 1)") == 2


def test_reload_refuses_broken_script(tmp_path: Path) -> None:
    cfg, script, sock = _setup(tmp_path, "lua")
    with router(cfg, tmp_path) as r:
        script.write_text("function ksr_request_route(\n")
        res = kemi("rpc", "-s", sock, "app_lua.reload")
        assert res.returncode == 1 and "Reload Failed" in res.stderr
        ok = sipp("options.xml", r.port, tmp_path, calls=50, rate=100)
        assert (ok.successful, ok.failed) == (50, 0)


def test_kemi_rpc_unreachable_socket(tmp_path: Path) -> None:
    res = subprocess.run(
        ["kemi", "rpc", "-s", str(tmp_path / "none.sock"), "core.version"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "cannot reach" in res.stderr
