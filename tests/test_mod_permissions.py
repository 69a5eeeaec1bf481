"""permissions: address groups and trusted peers from SQLite, loaded at start-up, reloadable."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, insert

from pykemi.runtime.config import parse_config_text
from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.core.context import ProcessState
from pykemi.runtime.core.log import LOG
from pykemi.runtime.core.pv import get_pv
from pykemi.runtime.db import admin, schema
from pykemi.runtime.db.engine import Database
from pykemi.runtime.modules import permissions as perm
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import parse_message

from .modhelpers import INVITE, make_ctx, request


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path}/perm.db"
    admin.init_db(url, ["address", "trusted"])
    admin.add_address(url, 1, "192.0.2.7", 32, 0, "peer-a")
    admin.add_address(url, 2, "192.0.2.8", 32, 5060)
    admin.add_address(url, 3, "10.0.0.0", 8, 0, "lan")
    admin.add_address(url, 4, "2001:db8::1", 128, 0)
    admin.add_address(url, 5, "2001:db8:1::", 48, 5070)
    db = Database(url)
    db.execute(insert(schema.address).values(grp=6, ip_addr="gw.example.com", mask=32, port=0))
    db.execute(
        insert(schema.trusted).values(
            [
                {"src_ip": "192.0.2.7", "proto": "udp", "from_pattern": "^sip:alice@",
                 "ruri_pattern": None, "tag": "t-alice", "priority": 5},
                {"src_ip": "192.0.2.7", "proto": "any", "from_pattern": None,
                 "ruri_pattern": "^sip:carol@", "tag": "t-carol", "priority": 1},
                {"src_ip": "192.0.2.9", "proto": "tcp", "from_pattern": None,
                 "ruri_pattern": None, "tag": "t-tcp", "priority": 0},
            ]
        )
    )  # fmt: skip
    return url


def proc_with(db_url: str, **params: object) -> ProcessState:
    proc = ProcessState()
    proc.extra["modparams.permissions"] = dict(
        spec_defaults("permissions"), db_url=db_url, **params
    )
    assert perm.reload(proc) or not db_url
    return proc


def ctx_from(proc: ProcessState, src: tuple[str, int], raw: bytes = INVITE, proto: str = "udp"):  # type: ignore[no-untyped-def]
    return make_ctx(raw, src=src, proc=proc, proto=proto)[0]


def test_allow_source_address_exact_subnet_port(db_url: str) -> None:
    proc = proc_with(db_url, peer_tag_avp="$avp(tag)")
    ctx = ctx_from(proc, ("192.0.2.7", 6000))
    assert perm.allow_source_address(ctx, 1) == 1
    assert get_pv(ctx, "$avp(tag)") == "peer-a"
    assert perm.allow_source_address(ctx, 2) == -1
    assert perm.allow_source_address_group(ctx) == 1
    ctx = ctx_from(proc, ("192.0.2.8", 5060))
    assert perm.allow_source_address(ctx, 2) == 1
    assert perm.allow_source_address(ctx_from(proc, ("192.0.2.8", 5061)), 2) == -1  # port
    assert perm.allow_source_address_group(ctx_from(proc, ("10.20.30.40", 1234))) == 3
    assert perm.allow_source_address_group(ctx_from(proc, ("198.51.100.1", 5060))) == -1


def test_allow_address_ipv6_names_and_groups(db_url: str) -> None:
    proc = proc_with(db_url)
    ctx = ctx_from(proc, ("192.0.2.1", 5060))
    assert perm.allow_address(ctx, 4, "2001:db8::1", 5060) == 1
    assert perm.allow_address(ctx, 4, "[2001:db8::1]", 1) == 1
    assert perm.allow_address(ctx, 5, "2001:db8:1:2::9", 5070) == 1
    assert perm.allow_address(ctx, 5, "2001:db8:1:2::9", 5071) == -1
    assert perm.allow_address(ctx, 3, "10.255.0.1", 0) == 1
    assert perm.allow_address(ctx, 3, "11.0.0.1", 0) == -1
    assert perm.allow_address(ctx, 6, "GW.example.com", 5060) == 1
    assert perm.allow_address_group(ctx, "gw.example.com", 1) == 6
    assert perm.allow_address_group(ctx, "2001:db8::1", 9) == 4
    assert perm.allow_address_group(ctx, "garbage", 9) == -1


def test_allow_trusted(db_url: str) -> None:
    for mode in (0, 1):
        proc = proc_with(db_url, db_mode=mode, peer_tag_avp="$avp(peer)")
        ctx = ctx_from(proc, ("192.0.2.7", 5060))  # From alice, R-URI bob, udp
        assert perm.allow_trusted(ctx) == 1
        assert get_pv(ctx, "$avp(peer)") == "t-alice"
        carol = request("INVITE", "sip:carol@example.com").replace(b"alice", b"dave")
        ctx = ctx_from(proc, ("192.0.2.7", 5060), carol, proto="tcp")
        assert perm.allow_trusted(ctx) == 1 and get_pv(ctx, "$avp(peer)") == "t-carol"
        assert (
            perm.allow_trusted(
                ctx_from(proc, ("192.0.2.7", 5060), request("INVITE").replace(b"alice", b"dave"))
            )
            == -1
        )
        assert perm.allow_trusted(ctx_from(proc, ("192.0.2.9", 5060), proto="udp")) == -1
        assert perm.allow_trusted(ctx_from(proc, ("192.0.2.9", 5060), proto="tcp")) == 1
    # peer_tag_mode 1: every matching row adds its tag
    proc = proc_with(db_url, db_mode=1, peer_tag_avp="$avp(peer)", peer_tag_mode=1)
    raw = request("INVITE", "sip:carol@example.com")
    ctx = ctx_from(proc, ("192.0.2.7", 5060), raw)
    assert perm.allow_trusted(ctx) == 1
    # the script sees both tags, newest first, and $avp(peer) is the last one added
    assert get_pv(ctx, "$(avp(peer)[*])") == "t-carol,t-alice"
    assert get_pv(ctx, "$avp(peer)") == "t-carol"


def test_trusted_patterns_are_linear_time_and_bad_ones_skipped(db_url: str) -> None:
    """M6: a backtracking pattern in the trusted table cannot stall the worker (RE2)."""
    log = io.StringIO()
    old, LOG.stream = LOG.stream, log
    rows = [("^sip:(a|aa)+@x$", None), (None, "(a*)*b$"), ("(a)\\1", None)]
    Database(db_url).execute(
        insert(schema.trusted).values(
            [
                {"src_ip": "192.0.2.50", "proto": "any", "from_pattern": f, "ruri_pattern": r,
                 "tag": f"t{i}", "priority": 9 - i}
                for i, (f, r) in enumerate(rows)
            ]
        )
    )  # fmt: skip
    aaa = "a" * 40
    raw = request("INVITE", f"sip:{aaa}@example.com").replace(
        b"sip:alice@atlanta.example.com", f"sip:{aaa}@y".encode()
    )
    try:
        for mode in (0, 1):
            proc = proc_with(db_url, db_mode=mode)
            start = time.monotonic()
            assert perm.allow_trusted(ctx_from(proc, ("192.0.2.50", 5060), raw)) == -1
            assert time.monotonic() - start < 0.5  # Python's re needed minutes
    finally:
        LOG.stream = old
    assert "invalid from_pattern: bad regular expression [(a)\\1]" in log.getvalue()


def test_reload_picks_up_changes(db_url: str) -> None:
    proc = proc_with(db_url, reload_delta=0)
    ctx = ctx_from(proc, ("203.0.113.5", 5060))
    assert perm.allow_source_address(ctx, 7) == -1
    admin.add_address(db_url, 7, "203.0.113.5")
    assert perm.allow_source_address(ctx, 7) == -1  # cached until a reload
    assert perm.request_reload(proc)
    assert perm.allow_source_address(ctx, 7) == 1
    Database(db_url).execute(delete(schema.address).where(schema.address.c.grp == 7))
    proc.extra["modparams.permissions"]["reload_delta"] = 3600
    assert not perm.request_reload(proc)  # too soon
    assert perm.allow_source_address(ctx, 7) == 1


def test_without_db_or_with_db_errors_minus_one(tmp_path: Path) -> None:
    log = io.StringIO()
    old = LOG.stream
    LOG.stream = log
    try:
        proc = proc_with("")
        ctx = ctx_from(proc, ("192.0.2.7", 5060))
        assert perm.allow_source_address(ctx, 1) == -1
        assert perm.allow_source_address_group(ctx) == -1
        assert perm.allow_trusted(ctx) == -1
        assert "db_url is not set" in log.getvalue()
        empty = f"sqlite://{tmp_path}/empty.db"  # no tables
        proc = ProcessState()
        proc.extra["modparams.permissions"] = dict(spec_defaults("permissions"), db_url=empty)
        assert perm.reload(proc) is False
        ctx = ctx_from(proc, ("192.0.2.7", 5060))
        assert perm.allow_address(ctx, 1, "192.0.2.7", 0) == -1
        assert perm.allow_trusted(ctx) == -1
        assert "cannot load the permissions tables" in log.getvalue()
    finally:
        LOG.stream = old


# ---- through the Router: loaded before fork, shared reload counter, Lua bindings ---------------

LUA = """
function ksr_request_route()
    if KSR.permissions.allow_source_address(1) > 0 then
        KSR.sl.sl_send_reply(200, "Trusted " .. KSR.permissions.allow_source_address_group())
        return
    end
    KSR.sl.sl_send_reply(403, "Forbidden")
end
"""


@pytest.fixture
def router(tmp_path: Path, db_url: str) -> Iterator[Router]:
    (tmp_path / "perm.lua").write_text(LUA, encoding="utf-8")
    cfg = "\n".join(
        [
            "#!KAMAILIO",
            "listen=udp:127.0.0.1:5060",
            *[f'loadmodule "{m}.so"' for m in ("sl", "permissions", "app_lua")],
            f'modparam("permissions", "db_url", "{db_url}")',
            'modparam("permissions", "db_mode", 1)',
            'modparam("permissions", "reload_delta", 0)',
            'modparam("app_lua", "load", "perm.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    yield Router(parse_config_text(cfg, str(tmp_path / "kamailio.cfg")))


def test_router_lua_and_worker_reload(router: Router, db_url: str) -> None:
    def status(src: tuple[str, int]) -> tuple[int, str]:
        sent: list[bytes] = []
        router.before_message()
        router.handle(INVITE, src, ("127.0.0.1", 5060), "udp", lambda d, a: sent.append(d))
        rpl = parse_message(sent[0])
        return rpl.status, rpl.reason

    assert status(("192.0.2.7", 6000)) == (200, "Trusted 1")
    assert status(("192.0.2.99", 6000)) == (403, "Forbidden")
    st = router.proc.extra[perm.STATE_KEY]
    assert st.address is not None and st.counter is not None
    admin.add_address(db_url, 1, "192.0.2.99")
    # a worker sees the bump of the shared counter before its next message
    import struct

    st.counter[:8] = struct.pack("q", 42)
    assert status(("192.0.2.99", 6000)) == (200, "Trusted 1")
    assert st.seen == 42
