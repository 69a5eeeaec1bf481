"""Helpers for tests/test_basic_kemi.py: Kamailio's basic KEMI example (examples/basic-kemi/)
run unchanged by ``kemi run``, a subscriber database, sipp REGISTER/UAS/UAC runs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .harness import RunningRouter, SippResult, kemi, sipp
from .tmharness import relay_router

ROOT = Path(__file__).resolve().parent.parent
BASIC = ROOT / "examples" / "basic-kemi"
CFG_NAME = "kamailio-basic-kemi.cfg"
CFG = BASIC / CFG_NAME
# language -> the define that selects its engine in kamailio-basic-kemi.cfg
LANGS = {
    "lua": "WITH_CFGLUA",
    "python": "WITH_CFGPYTHON",
    "jsdt": "WITH_CFGJSDT",
    "ruby": "WITH_CFGRUBY",
    "sqlang": "WITH_CFGSQLANG",
}
DOMAIN = "127.0.0.1"  # auth realm = From host (the proxy's own address: is_myself_furi)
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
# columns the cfg's header asks to add to acc/missed_calls for its acc db_extra (WITH_ACCDB)
ACC_EXTRA = ("src_user", "src_domain", "src_ip", "dst_ouser", "dst_user", "dst_domain")


def init_db(url: str) -> None:
    """``kemi db init`` + the subscribers; the acc columns of the cfg's ACCDB_COMMENT."""
    res = kemi("db", "init", url)
    assert res.returncode == 0, res.stdout + res.stderr
    for user, pw in USERS.items():  # the cfg has calculate_ha1: the plain password is needed
        args = ("db", "add-user", url, user, DOMAIN, "--password-stdin", "--store-plaintext")
        res = kemi(*args, stdin=pw + "\n")
        assert res.returncode == 0, res.stdout + res.stderr
    from sqlalchemy import text

    from pykemi.runtime.db.engine import Database

    db = Database(url)
    for table in ("acc", "missed_calls"):
        for col in ACC_EXTRA:
            db.execute(text(f"ALTER TABLE {table} ADD COLUMN {col} VARCHAR(128) DEFAULT ''"))


def defines(lang: str, dburl: str, **extra: str) -> dict[str, str]:
    return {LANGS[lang]: "1", "DBURL": f'"{dburl}"', **extra}


@contextmanager
def basic_router(
    lang: str, tmp: Path, dburl: str, cfg: Path = CFG, **extra: str
) -> Iterator[RunningRouter]:
    """``kemi run kamailio-basic-kemi.cfg -A WITH_CFG<LANG> -A DBURL=... -A LISTEN=...``."""
    with relay_router(cfg, tmp, defines(lang, dburl, **extra), timeout=60) as r:
        yield r


def local_copy(tmp: Path, local_cfg: str) -> Path:
    """examples/basic-kemi copied to tmp with a kamailio-local.cfg (the cfg's import_file)."""
    dest = tmp / "basic-kemi"
    shutil.copytree(BASIC, dest, dirs_exist_ok=True)
    (dest / "kamailio-local.cfg").write_text(local_cfg)
    return dest / CFG_NAME


def register(user: str, port: int, tmp: Path, contact_port: int) -> SippResult:
    """REGISTER user (digest auth, Expires: 300) with its Contact on contact_port."""
    extra = ["-s", user, "-au", user, "-ap", USERS[user], "-key", "cport", str(contact_port)]
    return sipp("basic_register.xml", port, tmp, calls=1, rate=1, extra=extra, timeout=30)


def call(
    scenario: str, port: int, tmp: Path, calls: int, rate: int, callee: str = "bob"
) -> SippResult:
    """alice's UAC scenario (407, credentials) against the proxy."""
    extra = ["-s", callee, "-au", "alice", "-ap", USERS["alice"], "-key", "caller", "alice"]
    return sipp(scenario, port, tmp, calls=calls, rate=rate, extra=extra, timeout=120)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A throwaway redis-server (no persistence) on a free port: yields its redis:// URL."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed"
    port = free_tcp_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(tmp)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
