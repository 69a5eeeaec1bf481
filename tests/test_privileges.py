"""``user=``/``group=``/``chroot=`` (and ``-u``/``-g``/``-t``) drop root as Kamailio does:
the sockets are bound and the control socket made as root, then every process (the main one
and the workers, before they run a script) runs as the user, inside the chroot when asked.

Tests run as root and read each router process's /proc/<pid>/status and /proc/<pid>/root.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
from pathlib import Path

import pytest

from pykemi.runtime import launch

from .harness import SIPP, kemi
from .test_hostile import CFG, ask_udp, hostile_router, pids, valid
from .tmharness import free_port

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root"),
    pytest.mark.skipif(SIPP is None, reason="sipp is not installed"),
    pytest.mark.timeout(180, method="thread"),
]
NOBODY = pwd.getpwnam("nobody")


def ids(pid: int) -> tuple[int, int, list[int]]:
    """(effective uid, effective gid, supplementary groups) of a process."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    groups = [int(g) for g in fields["Groups"].split()]
    return int(fields["Uid"].split()[1]), int(fields["Gid"].split()[1]), groups


def assert_all_nobody(main: int) -> list[int]:
    procs = pids_of(main)
    assert len(procs) == 3, procs  # the main process and children=2 workers
    for pid in procs:
        uid, gid, groups = ids(pid)
        assert (uid, gid) == (NOBODY.pw_uid, NOBODY.pw_gid), (pid, uid, gid)
        assert set(groups) <= set(os.getgrouplist("nobody", NOBODY.pw_gid)), groups
    return procs


def pids_of(main: int) -> list[int]:
    kids = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    return [main, *(int(k) for k in kids)]


def test_user_nobody_runs_every_process_as_nobody(tmp_path: Path) -> None:
    port_sock = tmp_path / "ctl.sock"
    extra = f'user="nobody"\nkemi.rpc_socket="{port_sock}"'
    with hostile_router(tmp_path, "dispatch", extra) as r:
        assert_all_nobody(r.proc.pid)
        assert ask_udp(r.port, valid(1)) == 200
        # the control socket was made by root before the drop (0600, root's): root's kemi
        # rpc reaches the main process, which serves it as nobody
        res = kemi("rpc", "-s", str(port_sock), "core.ps")
        assert res.returncode == 0, res.stderr
        assert {p["PID"] for p in json.loads(res.stdout)} == set(pids(r))


def test_registrations_are_shared_by_workers_running_as_nobody(tmp_path: Path) -> None:
    """The shared state files (usrloc's SQLite file, made as root before the drop) are
    handed to the user: a REGISTER saved by one worker is found by the others."""
    script = """
function ksr_request_route()
    if KSR.is_REGISTER() then
        if KSR.registrar.save("location", 0) < 0 then KSR.sl.sl_reply_error() end
        return
    end
    if KSR.registrar.lookup("location") < 0 then KSR.sl.send_reply(404, "Not Found") return end
    KSR.sl.send_reply(302, "Moved Temporarily")
end
"""
    extra = (
        'user="nobody"\nkemi.rpc_socket="none"\nloadmodule "usrloc.so"\nloadmodule "registrar.so"\n'
    )
    reg = valid(1).replace(b"OPTIONS sip:probe@127.0.0.1", b"REGISTER sip:127.0.0.1")
    reg = reg.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 REGISTER")
    reg = reg.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nContact: <sip:p@10.1.1.1>\r\n")
    with hostile_router(tmp_path, "direct", extra, script) as r:
        assert_all_nobody(r.proc.pid)
        assert ask_udp(r.port, reg) == 200
        for n in range(2, 8):  # the kernel spreads these over both workers
            assert ask_udp(r.port, valid(n)) == 302
        assert "ERROR" not in r.log, r.log


def test_chroot_and_group(tmp_path: Path) -> None:
    """Every process's root is the jail; the workers start there (they cannot import from
    the filesystem any more) and answer."""
    jail = tmp_path / "jail"
    jail.mkdir()
    extra = f'user="nobody"\ngroup="nogroup"\nchroot="{jail}"\nkemi.rpc_socket="none"\n'
    extra += "kemi.worker_memory_limit=4000"  # what a worker imports after fork must be loaded
    with hostile_router(tmp_path, "direct", extra) as r:
        assert_all_nobody(r.proc.pid)
        for pid in pids(r):
            assert os.readlink(f"/proc/{pid}/root") == str(jail)
        assert ask_udp(r.port, valid(1)) == 200


def test_command_line_u_g(tmp_path: Path) -> None:
    """kamailio's -u/-g (given as names here; numbers work too) override the config."""
    (tmp_path / "hostile.lua").write_text(
        'function ksr_request_route() KSR.sl.send_reply(200, "OK") end\n'
    )
    cfg = tmp_path / "hostile.cfg"
    cfg.write_text(CFG.format(extra='user="root"\nkemi.rpc_socket="none"'))
    port = free_port()
    args = launch.kemi_run_args(cfg, {"LISTEN": f"udp:127.0.0.1:{port}"})
    args += ["-u", str(NOBODY.pw_uid), "-g", "nogroup"]
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        launch.wait_ready(proc, log, 30)
        assert_all_nobody(proc.pid)
        assert ask_udp(port, valid(1)) == 200
    finally:
        launch.stop(proc)


@pytest.mark.parametrize("param", ['user="no-such-user-e3"', 'group="no-such-group-e3"'])
def test_unknown_user_or_group_is_a_startup_error(tmp_path: Path, param: str) -> None:
    (tmp_path / "hostile.lua").write_text("function ksr_request_route() end\n")
    cfg = tmp_path / "hostile.cfg"
    cfg.write_text(CFG.format(extra=param))
    port = free_port()
    args = launch.kemi_run_args(cfg, {"LISTEN": f"udp:127.0.0.1:{port}"})
    try:
        run = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{param}: the router started anyway")
    name = param.split("=")[1].strip('"')
    assert run.returncode == 1, run.stderr
    assert name in run.stderr and "cannot start" in run.stderr, run.stderr
    check = kemi("check", "-A", f"LISTEN=udp:127.0.0.1:{port}", str(cfg))
    assert check.returncode != 0 and name in check.stderr, check.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # nothing left bound
        s.bind(("127.0.0.1", port))


def test_numeric_uid_without_passwd_entry_and_no_supplementary_groups(tmp_path: Path) -> None:
    """Kamailio's user2uid takes any number; root's supplementary groups are dropped too."""
    uid = 54321
    assert uid not in {u.pw_uid for u in pwd.getpwall()}
    extra = f'user="{uid}"\ngroup="nogroup"\nkemi.rpc_socket="none"'
    with hostile_router(tmp_path, "direct", extra) as r:
        for pid in pids(r):
            assert ids(pid) == (uid, NOBODY.pw_gid, [NOBODY.pw_gid]), pid
        assert ask_udp(r.port, valid(1)) == 200
