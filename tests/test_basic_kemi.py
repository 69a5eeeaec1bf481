"""Kamailio's basic KEMI configuration (Debian kamailio 5.6 examples/kemi, copied to
examples/basic-kemi/) runs on pykemi in every language: digest-authenticated REGISTER
and calls through sipp, SQLite subscribers, Redis-shared registrations, PostgreSQL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .basickemiharness import (
    BASIC,
    CFG,
    LANGS,
    basic_router,
    call,
    defines,
    init_db,
    local_copy,
    redis_server,
    register,
)
from .harness import SIPP, kemi, sipp
from .test_db import pg_url  # noqa: F401  (fixture: a throwaway PostgreSQL cluster)
from .tmharness import sipp_uas

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")

# calls per language (PYKEMI_BASIC_CALLS overrides); a steady rate well below capacity
CALLS = int(os.environ.get("PYKEMI_BASIC_CALLS", "500"))
RATE = 50


def _clean(log: str) -> None:
    assert "Traceback" not in log, log[-4000:]
    assert " ERROR: " not in log, [ln for ln in log.splitlines() if " ERROR: " in ln][:10]


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_kemi_check_each_language(lang: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kamailio.db"
    init_db(url)
    args = ["check", str(CFG)]
    for k, v in defines(lang, url, LISTEN="udp:127.0.0.1:5060").items():
        args += ["-A", f"{k}={v}"]
    res = kemi(*args, cwd=BASIC)
    assert res.returncode == 0, res.stderr
    assert f"{CFG.name}: ok" in res.stderr
    # modules pykemi does not implement are accepted, saying they cannot affect routing
    for mod in ("db_mysql", "jsonrpcs", "ctl", "cfg_rpc"):
        assert f"module '{mod}' accepted with no effect" in res.stderr, res.stderr
    assert "is not implemented in pykemi yet" not in res.stderr, res.stderr


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_basic_kemi_sqlite(lang: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kamailio.db"
    init_db(url)
    with sipp_uas("basic_uas.xml", tmp_path, CALLS, timeout=240) as uas:
        with basic_router(lang, tmp_path, url) as r:
            # bob's UAS registers its contact, alice too (digest auth, expires 300)
            for user, cport in (("bob", uas.port), ("alice", 5999)):
                res = register(user, r.port, tmp_path, cport)
                assert (res.successful, res.failed) == (1, 0), res.output
            calls = call("basic_call.xml", r.port, tmp_path, calls=CALLS, rate=RATE)
            ures = uas.wait(60)
            # negative paths of the script
            nf = call("basic_invite_404.xml", r.port, tmp_path, calls=5, rate=10, callee="carol")
            # the Ruby script has no 484 branch (has_ruri_user): its lookup answers 404
            nouser = "basic_invite_nouser_404.xml" if lang == "ruby" else "basic_invite_484.xml"
            ai = call(nouser, r.port, tmp_path, calls=5, rate=10)
            mf = sipp("basic_maxfwd0.xml", r.port, tmp_path, calls=5, rate=10)
            ka = sipp("basic_options.xml", r.port, tmp_path, calls=5, rate=10)
            log = r.log
    assert (calls.successful, calls.failed) == (CALLS, 0), calls.output
    assert (ures.successful, ures.failed) == (CALLS, 0), ures.output
    c = uas.counts()
    assert c["0_INVITE_Recv"] == CALLS and c.get("4_ACK_Recv") == CALLS, c
    for name, res in (("404", nf), ("484", ai), ("483", mf), ("keepalive", ka)):
        assert (res.successful, res.failed) == (5, 0), (name, res.output)
    _clean(log)
    # usrloc db_mode 2 and acc (WITH_ACCDB) wrote to the cfg's DBURL
    users = {row[2] for row in _db_rows(url, "location")}
    assert users == {"alice", "bob"}, users
    acc = _db_rows(url, "acc")
    assert len(acc) == 2 * CALLS, len(acc)  # INVITE and BYE of each call


def _db_rows(url: str, table: str) -> list[tuple[object, ...]]:
    from sqlalchemy import text

    from pykemi.runtime.db.engine import Database

    return [tuple(r) for r in Database(url).fetch_all(text(f"SELECT * FROM {table}"))]


def test_registrations_shared_through_redis(tmp_path: Path) -> None:
    """Two instances (Lua and Python) share usrloc through Redis: bob registers via A,
    alice reaches him via B. Subscribers and acc stay in SQLite (the cfg's DBURL)."""
    pytest.importorskip("redis")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    url = f"sqlite:///{tmp_path}/kamailio.db"
    init_db(url)
    calls = max(CALLS // 5, 20)
    with redis_server(tmp_path) as redis_url:
        # the cfg's import_file "kamailio-local.cfg": usrloc on Redis instead of DBURL
        cfg = local_copy(
            tmp_path,
            "#!undef WITH_USRLOCDB\n"
            'loadmodule "usrloc.so"\n'
            f'modparam("usrloc", "db_url", "{redis_url}")\n',
        )
        with sipp_uas("basic_uas.xml", tmp_path, calls, timeout=180) as uas:
            with basic_router("lua", tmp_path, url, cfg=cfg) as a:
                with basic_router("python", tmp_path, url, cfg=cfg) as b:
                    res = register("bob", a.port, tmp_path, uas.port)
                    assert (res.successful, res.failed) == (1, 0), res.output
                    through_b = call("basic_call.xml", b.port, tmp_path, calls=calls, rate=RATE)
                    ures = uas.wait(60)
                    log_a, log_b = a.log, b.log
    assert (through_b.successful, through_b.failed) == (calls, 0), through_b.output
    assert (ures.successful, ures.failed) == (calls, 0), ures.output
    assert _db_rows(url, "location") == []  # not in SQLite: in Redis
    _clean(log_a)
    _clean(log_b)


def test_authentication_on_postgresql(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The REGISTER + call flow once against a real PostgreSQL server (auth_db, usrloc
    db_mode 2, acc, permissions all on DBURL=postgres://...)."""
    init_db(pg_url)
    calls = 20
    with sipp_uas("basic_uas.xml", tmp_path, calls, timeout=120) as uas:
        with basic_router("lua", tmp_path, pg_url) as r:
            res = register("bob", r.port, tmp_path, uas.port)
            assert (res.successful, res.failed) == (1, 0), res.output
            done = call("basic_call.xml", r.port, tmp_path, calls=calls, rate=10)
            nf = call("basic_invite_404.xml", r.port, tmp_path, calls=2, rate=10, callee="carol")
            ures = uas.wait(60)
            log = r.log
    assert (done.successful, done.failed) == (calls, 0), done.output
    assert (ures.successful, ures.failed) == (calls, 0), ures.output
    assert (nf.successful, nf.failed) == (2, 0), nf.output
    assert [row for row in _db_rows(pg_url, "location") if "bob" in row]
    assert len(_db_rows(pg_url, "acc")) == 2 * calls  # INVITE and BYE of each call
    _clean(log)
