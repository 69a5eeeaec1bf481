"""State shared between a router's processes stays private to the router's user.

usrloc, htable and pike share SQLite files between the forked workers. They live in a
0700 directory created at start (under /dev/shm), so another local user can neither see
their names nor plant the ``-wal``/``-shm`` side files SQLite creates at the first
message (the reviewer's attack: create them first and keep a descriptor open).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from .harness import SIPP, router
from .modhelpers import crlf
from .otheruser import needs_root, nobody_can
from .test_hostile import ask_udp

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp is not installed"),
    pytest.mark.timeout(120, method="thread"),
]

SHM = Path("/dev/shm")

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=LISTEN
kemi.rpc_socket="none"
loadmodule "sl.so"
loadmodule "kemix.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "htable.so"
loadmodule "pike.so"
loadmodule "app_lua.so"
modparam("htable", "htable", "seen=>size=4;")
modparam("app_lua", "load", "reg.lua")
cfgengine "lua"
"""

SCRIPT = """
function ksr_request_route()
    KSR.pike.pike_check_req()
    KSR.htable.sht_seti("seen", KSR.pv.gete("$ci"), 1)
    if KSR.registrar.save("location", 0) < 0 then KSR.sl.sl_reply_error() end
end
"""


def register(port: int, n: int) -> bytes:
    return crlf(f"""REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-priv{n};rport
From: <sip:alice@example.com>;tag=p{n}
To: <sip:alice@example.com>
Call-ID: priv-{n}
CSeq: {n} REGISTER
Contact: <sip:alice@127.0.0.1:5999>
User-Agent: secret-phone/1.0
Max-Forwards: 70
Content-Length: 0

""")


def entries_of(pid: int) -> list[Path]:
    """What the router with main process ``pid`` lists directly in /dev/shm."""
    return [p for p in SHM.iterdir() if f"-{pid}-" in p.name]


def store_files(entries: list[Path]) -> list[Path]:
    files: list[Path] = []
    for e in entries:
        files += sorted(e.iterdir()) if e.is_dir() and not e.is_symlink() else [e]
    return [f for f in files if f.suffix == ".db"]


@needs_root
@pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm")
def test_shared_stores_in_a_private_directory(tmp_path: Path) -> None:
    (tmp_path / "reg.lua").write_text(SCRIPT)
    cfg = tmp_path / "k.cfg"
    cfg.write_text(CFG)
    with router(cfg, tmp_path) as r:
        entries = entries_of(r.proc.pid)
        dbs = store_files(entries)
        assert len(dbs) >= 3, entries  # usrloc, htable, pike
        # the attack: before the first message, plant the side files SQLite will open
        planted = [Path(f"{db}-wal") for db in dbs] + [Path(f"{db}-shm") for db in dbs]
        try:
            assert not any(
                nobody_can(lambda p=p: os.open(p, os.O_RDWR | os.O_CREAT)) for p in planted
            )
        finally:
            for p in planted:
                if p.exists() and p.stat().st_uid != os.geteuid():
                    p.unlink()
        # nothing of ours is a file listed in the shared directory: one 0700 directory
        assert [e.name for e in entries if not e.is_dir()] == []
        assert len(entries) == 1
        st = entries[0].lstat()
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
        assert st.st_uid == os.geteuid()
        assert not nobody_can(lambda: os.listdir(entries[0]))
        assert ask_udp(r.port, register(r.port, 1)) == 200
        assert ask_udp(r.port, register(r.port, 2)) == 200
        assert any(p.name.endswith("-wal") for p in entries[0].iterdir())
        assert not any(nobody_can(lambda p=p: open(p, "rb")) for p in entries[0].iterdir())
    assert not entries[0].exists(), "the directory is removed at exit"
