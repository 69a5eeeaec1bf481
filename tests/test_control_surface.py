"""The control surface: the RPC socket (local, 0600, proper JSON-RPC error objects for any
bad request, never stuck) and ``kemi check`` / ``kemi generate --spec`` (bad configs and
specs are refused with file:line messages, via the CLI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .harness import RunningRouter, kemi, router

pytestmark = pytest.mark.timeout(180, method="thread")

BADSPEC = Path(__file__).resolve().parent / "fixtures" / "badspec"

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
listen=LISTEN
kemi.rpc_socket="{sock}"
loadmodule "sl.so"
loadmodule "kemix.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "s.lua")
cfgengine "lua"
"""
LUA = 'function ksr_request_route() KSR.sl.send_reply(200, "OK") end\n'


@contextmanager
def rpc_router(tmp: Path) -> Iterator[tuple[RunningRouter, str]]:
    home = tempfile.mkdtemp(prefix="pykemi-cs-")  # short (sun_path limit) and ours (0700)
    sock = f"{home}/rpc.sock"
    (tmp / "s.lua").write_text(LUA)
    cfg = tmp / "k.cfg"
    cfg.write_text(CFG.format(sock=sock))
    try:
        with router(cfg, tmp) as r:
            deadline = time.monotonic() + 10
            while not os.path.exists(sock) and time.monotonic() < deadline:
                time.sleep(0.05)
            yield r, sock
    finally:
        shutil.rmtree(home, ignore_errors=True)


def raw(path: str, data: bytes, half_close: bool = True, timeout: float = 5) -> Any:
    """Send raw bytes, read the answer (JSON)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf.decode("utf-8"))


def req(method: Any = "core.version", params: Any = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 7, **extra}
    if params is not None:
        body["params"] = params
    return json.dumps(body).encode()


# (name, request bytes, expected error code)
BAD_REQUESTS: list[tuple[str, bytes, int]] = [
    ("not json", b"hello", -32700),
    ("truncated json", b'{"jsonrpc": "2.0", "method": "core.ver', -32700),
    ("non-utf8", b'{"jsonrpc": "2.0", "method": "\xff\xfe", "id": 1}', -32700),
    ("empty", b"", -32700),
    ("wrong version", req(jsonrpc="1.0"), -32600),
    ("no version", json.dumps({"method": "core.version", "id": 1}).encode(), -32600),
    ("method not a string", req(method=5), -32600),
    ("no method", json.dumps({"jsonrpc": "2.0", "id": 1}).encode(), -32600),
    ("json scalar", b"42", -32600),
    ("json string", b'"core.version"', -32600),
    ("json null", b"null", -32600),
    ("params a string", req(params="abc"), -32602),
    ("params a number", req(params=5), -32602),
    (
        "params null",
        b'{"jsonrpc": "2.0", "method": "core.version", "params": null, "id": 1}',
        -32602,
    ),
    ("unknown method", req(method="no.such.method"), -32601),
    ("empty batch", b"[]", -32600),
]


def test_rpc_socket_is_local_and_0600(tmp_path: Path) -> None:
    with rpc_router(tmp_path) as (_r, path):
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)  # AF_UNIX: no network listener for the control
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.getuid()
        assert raw(path, req())["result"].startswith("pykemi")


def test_rpc_rejects_bad_requests_with_error_objects(tmp_path: Path) -> None:
    with rpc_router(tmp_path) as (r, path):
        for name, data, code in BAD_REQUESTS:
            answer = raw(path, data)
            assert answer.get("jsonrpc") == "2.0", (name, answer)
            assert "result" not in answer, (name, answer)
            assert answer["error"]["code"] == code, (name, answer)
            assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]
        # a batch answers each element; bad elements get their own error object
        batch = b"[" + req() + b"," + req(jsonrpc="1.0") + b", 17]"
        answers = raw(path, batch)
        assert isinstance(answers, list) and len(answers) == 3
        assert answers[0]["result"].startswith("pykemi")
        assert [a["error"]["code"] for a in answers[1:]] == [-32600, -32600]
        # dict params are accepted (by position)
        assert raw(path, req("core.echo", {"a": 1}))["result"] == [1]
        # still serving, no crash
        assert raw(path, req())["result"].startswith("pykemi")
        assert r.proc.poll() is None
        assert "Traceback" not in r.log


def test_rpc_huge_request_is_refused(tmp_path: Path) -> None:
    with rpc_router(tmp_path) as (_r, path):
        big = b'{"jsonrpc": "2.0", "method": "core.echo", "params": ["' + b"a" * (2 << 20)
        try:
            answer = raw(path, big + b'"], "id": 1}', timeout=10)
        except (BrokenPipeError, ConnectionResetError):
            answer = None  # closed while we were still writing: refused too
        if answer is not None:
            assert answer["error"]["code"] == -32600, answer
        assert raw(path, req())["result"].startswith("pykemi")


def test_rpc_deeply_nested_json(tmp_path: Path) -> None:
    with rpc_router(tmp_path) as (_r, path):
        try:
            answer = raw(path, b"[" * 200_000 + b"]" * 200_000, timeout=2)
        except TimeoutError:
            answer = None
        assert raw(path, req())["result"].startswith("pykemi")  # the server is not stuck
        assert answer is not None and "error" in answer, answer
        assert answer["error"]["code"] in (-32700, -32600)


def test_rpc_idle_and_slow_clients_do_not_block_others(tmp_path: Path) -> None:
    with rpc_router(tmp_path) as (_r, path):
        idle = []
        for _ in range(20):  # connected, never write
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            idle.append(s)
        try:
            slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            slow.connect(path)
            slow.sendall(req()[:10])  # half a request, never finished
            assert raw(path, req())["result"].startswith("pykemi")
            # a request without the half-close is answered as soon as it is complete JSON
            assert raw(path, req(), half_close=False)["result"].startswith("pykemi")
            slow.close()
        finally:
            for s in idle:
                s.close()
        assert raw(path, req())["result"].startswith("pykemi")


# -- kemi check: bad configs -----------------------------------------------------------------

GOOD_LUA = "function ksr_request_route() KSR.sl.send_reply(200, 'OK') end\n"
BASE = """#!KAMAILIO
debug=2
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "{engmod}.so"
modparam("{engmod}", "load", "{script}")
cfgengine "{engine}"
"""

# (name, cfg text, script name, script text, expected in stderr, exit code)
BAD_CONFIGS: list[tuple[str, str, str, str, str, int]] = [
    (
        "syntax error",
        BASE + "children 4\n",
        "s.lua",
        GOOD_LUA,
        "k.cfg:8: unknown statement 'children'",
        2,
    ),
    (
        "unterminated string",
        BASE + 'server_header="abc\n',
        "s.lua",
        GOOD_LUA,
        "k.cfg:8: unterminated string",
        2,
    ),
    (
        "unknown engine",
        BASE.replace('cfgengine "{engine}"', 'cfgengine "cobol"'),
        "s.lua",
        GOOD_LUA,
        "k.cfg:7: unknown cfgengine 'cobol'",
        2,
    ),
    ("missing script", BASE, "other.lua", GOOD_LUA, "script not found", 1),
    (
        "lua syntax error",
        BASE,
        "s.lua",
        "function ksr_request_route(\n  x = = 1\nend\n",
        "s.lua:2:",
        1,
    ),
    (
        "python syntax error",
        BASE.replace("app_lua", "app_python3").replace('"lua"', '"python"'),
        "s.py",
        "def ksr_request_route(msg):\n    return (\n",
        "s.py",
        1,
    ),
    (
        "missing ksr_request_route",
        BASE,
        "s.lua",
        "function other() end\n",
        "required function 'ksr_request_route' is not defined",
        1,
    ),
    (
        "lua runtime error at load",
        BASE,
        "s.lua",
        "local x = nil\nx.y = 1\nfunction ksr_request_route() end\n",
        "s.lua:2:",
        1,
    ),
    (
        "engine module not loaded",
        BASE.replace('loadmodule "{engmod}.so"\n', ""),
        "s.lua",
        GOOD_LUA,
        'needs loadmodule "app_lua.so"',
        1,
    ),
    (
        "bad modparam type",
        BASE + 'loadmodule "maxfwd.so"\nmodparam("maxfwd", "max_limit", "lots")\n',
        "s.lua",
        GOOD_LUA,
        "k.cfg:9: modparam maxfwd.max_limit expects an integer",
        1,
    ),
]


def _cfg_case(tmp: Path, cfg: str, script: str, text: str) -> Path:
    engmod, engine, sname = "app_lua", "lua", "s.lua"
    if script.endswith(".py"):
        engmod, engine, sname = "app_python3", "python", "s.py"
    (tmp / script).write_text(text)
    path = tmp / "k.cfg"
    path.write_text(cfg.format(engmod=engmod, engine=engine, script=sname))
    return path


@pytest.fixture(scope="module")
def checked(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """``kemi check`` of every BAD_CONFIGS case, run in parallel (one CLI process each)."""

    def one(case: tuple[str, str, str, str, str, int]) -> subprocess.CompletedProcess[str]:
        name, cfg, script, text = case[:4]
        tmp = tmp_path_factory.mktemp(name.replace(" ", "_"))
        return kemi("check", str(_cfg_case(tmp, cfg, script, text)), cwd=tmp)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip([c[0] for c in BAD_CONFIGS], pool.map(one, BAD_CONFIGS), strict=True))


@pytest.mark.parametrize(
    ("name", "expected", "code"),
    [(c[0], c[4], c[5]) for c in BAD_CONFIGS],
    ids=[c[0] for c in BAD_CONFIGS],
)
def test_kemi_check_rejects_bad_configs(
    checked: dict[str, subprocess.CompletedProcess[str]], name: str, expected: str, code: int
) -> None:
    run = checked[name]
    assert run.returncode == code, (run.returncode, run.stderr)
    assert expected in run.stderr, run.stderr
    assert "Traceback" not in run.stderr.split("error loading Python script")[0]


def test_kemi_check_unknown_module_is_a_located_warning(tmp_path: Path) -> None:
    path = _cfg_case(tmp_path, BASE + 'loadmodule "no_such_mod.so"\n', "s.lua", GOOD_LUA)
    run = kemi("check", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr  # as Kamailio would fail; pykemi warns and goes on
    assert "k.cfg:8: module 'no_such_mod' is not implemented in pykemi yet" in run.stderr


def test_kemi_check_accepts_the_good_config(tmp_path: Path) -> None:
    path = _cfg_case(tmp_path, BASE, "s.lua", GOOD_LUA)
    run = kemi("check", str(path), cwd=tmp_path)
    assert run.returncode == 0 and "ok" in run.stderr, run.stderr


# -- kemi generate --spec: bad specs ---------------------------------------------------------


def _badspecs() -> list[str]:
    return sorted(
        {p.stem for p in BADSPEC.glob("*.yaml")} | {p.name for p in BADSPEC.iterdir() if p.is_dir()}
    )


def _basenames(text: str) -> str:
    return re.sub(r"[\w./-]*/([\w.-]+\.yaml)", r"\1", text)


@pytest.fixture(scope="module")
def generated(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """``kemi generate --spec DIR --out OUT`` of every bad spec fixture, in parallel."""

    def one(name: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        tmp = tmp_path_factory.mktemp(name)
        spec = tmp / "spec"
        src = BADSPEC / name
        if src.is_dir():
            shutil.copytree(src, spec)
        else:
            spec.mkdir()
            shutil.copy(BADSPEC / f"{name}.yaml", spec / f"{name}.yaml")
        out = tmp / "out"
        return kemi("generate", "--spec", str(spec), "--out", str(out), cwd=tmp), out

    names = _badspecs()
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


@pytest.mark.parametrize("name", _badspecs())
def test_kemi_generate_rejects_bad_specs(
    generated: dict[str, tuple[subprocess.CompletedProcess[str], Path]], name: str
) -> None:
    run, out = generated[name]
    assert run.returncode != 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    # the same file:line: field: message lines as the golden, paths reduced to file names
    golden = _basenames((BADSPEC / f"{name}.err").read_text()).splitlines()
    got = _basenames(run.stderr)
    for line in golden:
        assert line in got, (line, run.stderr)
    assert not any(out.rglob("*.lua")), "nothing is generated from a bad spec"
