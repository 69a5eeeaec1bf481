"""Kamailio's command line: ``kemi run`` and ``pykemi-kamailio`` take ``-f -A -D -E -c -l -m -M
-L -P -V`` with kamailio's meaning; checked on the process tree, the pid file and the wire."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pykemi.runtime.control import default_socket_path, server_version
from pykemi.runtime.launch import READY, stop, wait_ready

from .harness import free_udp_port, kemi, sipp

KAMAILIO = [sys.executable, "-m", "pykemi.runtime.cmdline"]  # the pykemi-kamailio script
KEMI = [sys.executable, "-m", "pykemi.runtime.cli"]

# no log_stderror: a detached router then holds none of the starting shell's descriptors
CFG = """#!KAMAILIO
children=2
#!ifdef LISTEN
listen=LISTEN
#!endif
loadmodule "sl.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "ok.lua")
cfgengine "lua"
"""
SCRIPT = 'function ksr_request_route()\n    KSR.sl.send_reply(200, "OK")\nend\n'


def _cfg(tmp: Path) -> Path:
    (tmp / "ok.lua").write_text(SCRIPT)
    cfg = tmp / "kamailio.cfg"
    cfg.write_text(CFG)
    return cfg


def _run(cmd: list[str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    # the timeout is generous: a started daemon keeping our stdout/stderr open hangs here
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=120)


def _answers(port: int, tmp: Path) -> bool:
    return sipp("options.xml", port, tmp, calls=1, rate=1, timeout=20).successful == 1


def _gone(pid: int, timeout: float) -> bool:
    """The process ``pid`` (not our child: a zombie counts as gone) ended within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


@contextmanager
def _foreground(args: list[str], tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp / "router.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        wait_ready(proc, log, 60)
        yield proc, log
    finally:
        stop(proc)


@pytest.mark.parametrize(
    "how", [[*KAMAILIO, "-f"], [*KEMI, "run", "-DDD"]], ids=["kamailio", "DDD"]
)
def test_detached_router(how: list[str], tmp_path: Path) -> None:
    """``pykemi-kamailio -f CFG -P FILE`` (``kemi run -DDD``): returns once the router serves
    (with the shell's pipes closed), the daemon is in its own session, writes its pid, stops on
    SIGTERM."""
    port = free_udp_port()
    pid_file = tmp_path / "kamailio.pid"
    started = time.monotonic()
    res = _run(how, _cfg(tmp_path), "-A", f"LISTEN=udp:127.0.0.1:{port}", "-P", pid_file)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started < 60
    pid = int(pid_file.read_text())
    try:
        assert os.getsid(pid) != os.getsid(0)  # detached from our session
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] != str(
            os.getpid()
        )
        assert len(_children(pid)) == 2  # children=2 workers
        assert _answers(port, tmp_path)
    finally:
        os.kill(pid, signal.SIGTERM)
    assert _gone(pid, 15), "the daemon did not stop on SIGTERM"
    assert not pid_file.exists()


def test_kamailio_script_reports_a_failed_start(tmp_path: Path) -> None:
    """The daemon cannot bind: the starting command says why and exits 1 (not 0, not a hang)."""
    port = free_udp_port()
    pid_file = tmp_path / "k.pid"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        res = _run(
            KAMAILIO, "-f", _cfg(tmp_path), "-A", f"LISTEN=udp:127.0.0.1:{port}", "-P", pid_file
        )
    assert res.returncode == 1, res.stderr
    assert f"cannot listen on udp:127.0.0.1:{port}" in res.stderr
    assert not pid_file.exists()


def test_DD_E_stays_in_the_foreground(tmp_path: Path) -> None:
    """``-DD -E``: the started process is the router's main process; it logs to stderr,
    prints its start-up steps, writes the pid file and removes it when stopped."""
    port = free_udp_port()
    pid_file = tmp_path / "k.pid"
    args = [*KAMAILIO, "-f", str(_cfg(tmp_path)), "-DD", "-E", "-A", "WITH_AUTH"]
    args += ["-A", f"LISTEN=udp:127.0.0.1:{port}", "-P", str(pid_file)]
    with _foreground(args, tmp_path) as (proc, log):
        assert int(pid_file.read_text()) == proc.pid
        assert len(_children(proc.pid)) == 2
        assert _answers(port, tmp_path)
        text = log.read_text()
        assert "pykemi-kamailio: reading" in text and "loading 2 modules" in text
        assert f"{READY} (2 workers on udp:127.0.0.1:{port}" in text
        stop(proc)
        assert proc.returncode == 0
    assert not pid_file.exists()


def test_D_is_one_process_serving_udp_and_rpc(tmp_path: Path) -> None:
    """``kemi run -D`` (fork=no): no worker; the one process answers SIP and ``kemi rpc``;
    ``-l`` adds listen sockets (kamailio's address list), ``-q`` silences the start-up steps."""
    port = free_udp_port()
    cfg = _cfg(tmp_path)
    args = [*KEMI, "run", str(cfg), "-D", "-q", "-l", f"udp:(127.0.0.1, 127.0.0.2):{port}"]
    with _foreground(args, tmp_path) as (proc, log):
        assert f"on udp:127.0.0.1:{port}, udp:127.0.0.2:{port}, fork=no" in log.read_text()
        assert _children(proc.pid) == []
        assert _answers(port, tmp_path)
        res = kemi("rpc", "-s", default_socket_path("127.0.0.1", port), "core.ps")
        assert res.returncode == 0, res.stderr
        assert [p["PID"] for p in json.loads(res.stdout)] == [proc.pid]
        assert "kemi: reading" not in log.read_text()


def test_D_refuses_tcp_it_would_not_serve(tmp_path: Path) -> None:
    port = free_udp_port()
    res = kemi("run", str(_cfg(tmp_path)), "-D", "-A", f"LISTEN=tcp:127.0.0.1:{port}")
    assert res.returncode == 1
    assert "fork=no (-D) runs one process that serves UDP only" in res.stderr


def test_c_checks_and_binds_nothing(tmp_path: Path) -> None:
    port = free_udp_port()
    cfg = _cfg(tmp_path)
    for cmd in (
        [*KAMAILIO, "-c", "-f", str(cfg)],
        [*KEMI, "run", "-c", str(cfg)],
        [*KEMI, "check", str(cfg)],
    ):
        res = subprocess.run(
            [*cmd, "-A", f"LISTEN=udp:127.0.0.1:{port}"], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        assert f"{cfg}: ok" in res.stderr
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))  # still free
    broken = tmp_path / "broken.cfg"
    broken.write_text(CFG.replace("ok.lua", "missing.lua"))
    res = subprocess.run([*KAMAILIO, "-c", "-f", str(broken)], capture_output=True, text=True)
    assert res.returncode == 1 and "missing.lua" in res.stderr, res.stderr


def test_V_m_M_L_and_old_defines(tmp_path: Path) -> None:
    res = subprocess.run([*KAMAILIO, "-V"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout == f"version: {server_version()}\n"
    res = _run(
        KAMAILIO,
        "-m",
        "64",
        "-M",
        "8",
        "-L",
        "/usr/lib/kamailio/modules",
        "-c",
        "-f",
        _cfg(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    for note in ("-m 64: accepted, no effect", "-M 8: accepted", "-L /usr/lib/kamailio/mod"):
        assert note in res.stderr
    # pykemi's old "-D NAME=VALUE" define is refused with the new spelling, for run and rpc
    for cmd in (["run", str(_cfg(tmp_path))], ["rpc", "-c", str(_cfg(tmp_path))]):
        res = kemi(*cmd, "-D", "LISTEN=udp:127.0.0.1:5060", "core.ps")
        assert res.returncode == 2
        assert "defines are -A NAME=VALUE" in res.stderr
