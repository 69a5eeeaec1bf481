"""KSR.htable: items, expiry, matching, iterators, locks, sharing between processes, mod-init."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.config.parser import parse_config_text
from pykemi.runtime.core.context import MsgContext
from pykemi.runtime.core.pv import get_pv
from pykemi.runtime.modules import htable as ht
from pykemi.runtime.router import Router

from .enginehelpers import InProcess, make_router
from .modhelpers import make_ctx, request
from .test_usrloc_redis import REDIS, redis_url  # noqa: F401 - the Redis server fixture


def new_ctx(*defs: str) -> MsgContext:
    ctx, _ = make_ctx(request("OPTIONS"))
    values = dict(
        spec_defaults("htable"),
        htable=list(defs) or ["t=>size=4;", "ipban=>size=8;autoexpire=300;"],
    )
    ctx.proc.extra["modparams.htable"] = values
    ht.setup(ctx.proc, values)
    return ctx


def test_definitions() -> None:
    t = ht.parse_definition("ipban=>size=8;autoexpire=300;initval=5")
    assert (t.name, t.size, t.autoexpire, t.initval) == ("ipban", 8, 300, 5)
    with pytest.raises(ValueError):
        ht.parse_definition("broken")


def test_get_set_variants_and_types() -> None:
    ctx = new_ctx()
    assert ht.sht_get(ctx, "t", "a") is None
    assert ht.sht_gete(ctx, "t", "a") == ""
    assert ht.sht_getw(ctx, "t", "a") == "<null>"
    assert ht.sht_is_null(ctx, "t", "a") == 1
    assert ht.sht_sets(ctx, "t", "a", "x") == 1
    assert ht.sht_seti(ctx, "t", "n", 41) == 1
    assert ht.sht_get(ctx, "t", "a") == "x" and ht.sht_get(ctx, "t", "n") == 41
    assert ht.sht_is_null(ctx, "t", "a") == -1
    assert ht.sht_inc(ctx, "t", "n") == 42 and ht.sht_dec(ctx, "t", "n") == 41
    assert ht.sht_inc(ctx, "t", "new") == 1
    assert ht.sht_inc(ctx, "t", "a") == ht.ERR_INC  # a string
    assert ht.sht_get(ctx, "nope", "a") is None and ht.sht_sets(ctx, "nope", "a", "x") == -1
    assert get_pv(ctx, "$sht(t=>n)") == 41
    assert ht.sht_rm(ctx, "t", "a") == 1 and ht.sht_get(ctx, "t", "a") is None


def test_autoexpire_and_explicit_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    ctx = new_ctx()
    ht.sht_seti(ctx, "ipban", "192.0.2.1", 1)
    ht.sht_setxs(ctx, "t", "short", "v", 10)
    assert get_pv(ctx, "$shtex(ipban=>192.0.2.1)") == 300
    now[0] += 11
    assert ht.sht_get(ctx, "t", "short") is None
    assert ht.sht_match_name(ctx, "ipban", "eq", "192.0.2.1") == 1
    assert ht.sht_setex(ctx, "ipban", "192.0.2.1", 5) == 1
    now[0] += 6
    assert ht.sht_match_name(ctx, "ipban", "eq", "192.0.2.1") == -1
    assert ht.sht_setex(ctx, "ipban", "192.0.2.1", 5) == -1  # gone


def test_match_and_remove() -> None:
    ctx = new_ctx()
    for k, v in (("a1", "red"), ("a2", "blue"), ("b1", "red")):
        ht.sht_sets(ctx, "t", k, v)
    assert ht.sht_match_name(ctx, "t", "sw", "a") == 1
    assert ht.sht_match_name(ctx, "t", "re", "^c") == -1
    assert ht.sht_match_name(ctx, "t", "re", "^A[[:digit:]]$") == 1  # REG_ICASE, POSIX class
    assert ht.sht_match_name(ctx, "t", "re", "(a)\\1") == -1  # not ERE: refused, logged
    assert ht.sht_match_str_value(ctx, "t", "eq", "blue") == 1
    assert ht.sht_match_name(ctx, "t", "bogus", "x") == -1
    assert get_pv(ctx, "$shtcn(t=>~~^a)") == 2
    assert get_pv(ctx, "$shtcv(t=>==red)") == 2
    assert ht.sht_rm_value_re(ctx, "t", "^re") == 1
    assert [k for k, _v, _e in ht._state(ctx).store.items("t")] == ["a2"]
    ht.sht_sets(ctx, "t", "zz", "x")
    assert ht.sht_rm_name_re(ctx, "t", "z+") == 1
    assert ht.sht_rm_name(ctx, "t", "eq", "a2") == 1
    assert ht._state(ctx).store.items("t") == []
    ht.sht_sets(ctx, "t", "q", "1")
    assert ht.sht_reset(ctx, "t") == 1 and ht.sht_get(ctx, "t", "q") is None


def test_iterator() -> None:
    ctx = new_ctx()
    for i in range(3):
        ht.sht_seti(ctx, "t", f"k{i}", i)
    assert ht.sht_iterator_start(ctx, "it", "t") == 1
    seen: list[Any] = []
    while ht.sht_iterator_next(ctx, "it") > 0:
        seen.append((get_pv(ctx, "$shtitkey(it)"), get_pv(ctx, "$shtitval(it)")))
        if get_pv(ctx, "$shtitkey(it)") == "k1":
            assert ht.sht_iterator_seti(ctx, "it", 10) == 1
        if get_pv(ctx, "$shtitkey(it)") == "k2":
            assert ht.sht_iterator_rm(ctx, "it") == 1
    assert seen == [("k0", 0), ("k1", 1), ("k2", 2)]
    assert ht.sht_iterator_end(ctx, "it") == 1
    assert ht.sht_iterator_next(ctx, "it") == -1
    assert ht.sht_get(ctx, "t", "k1") == 10 and ht.sht_get(ctx, "t", "k2") is None


def test_items_and_locks_are_shared_with_forked_workers() -> None:
    ctx = new_ctx()
    assert ht.sht_lock(ctx, "t", "k") == 1
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: blocks on the lock until the parent unlocks
        code = 1
        try:
            os.write(w, b"s")
            ht.sht_lock(ctx, "t", "k")
            code = 0 if ht.sht_get(ctx, "t", "k") == "parent" else 2
            ht.sht_seti(ctx, "t", "child", 7)
            ht.sht_unlock(ctx, "t", "k")
        finally:
            os._exit(code)
    os.read(r, 1)
    time.sleep(0.2)
    ht.sht_sets(ctx, "t", "k", "parent")  # the child is still waiting for the lock
    assert ht.sht_get(ctx, "t", "child") is None
    assert ht.sht_unlock(ctx, "t", "k") == 1
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert ht.sht_get(ctx, "t", "child") == 7


LUA = """
function ksr_htable_event(evname)
    KSR.htable.sht_sets("cfg", "event", evname)
    return 1
end
function ksr_request_route()
    KSR.sl.sl_send_reply(200, KSR.htable.sht_gete("cfg", "event"))
end
"""


def test_mod_init_event_callback(tmp_path: Path) -> None:
    (tmp_path / "script.lua").write_text(LUA, encoding="utf-8")
    text = "\n".join(
        [
            "#!KAMAILIO",
            "listen=udp:127.0.0.1:5060",
            *[f'loadmodule "{m}.so"' for m in ("sl", "kemix", "htable", "app_lua")],
            'modparam("htable", "htable", "cfg=>size=4;")',
            'modparam("htable", "htable", "ipban=>size=8;autoexpire=300;")',
            'modparam("htable", "event_callback", "ksr_htable_event")',
            'modparam("app_lua", "load", "script.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    router = Router(parse_config_text(text, str(tmp_path / "kamailio.cfg")))
    sent: list[bytes] = []
    router.handle(request("OPTIONS"), ("127.0.0.1", 5070), ("127.0.0.1", 5060), "udp",
                  lambda d, a: sent.append(d))  # fmt: skip
    assert sent and b" 200 htable:mod-init\r\n" in sent[0]


# ---- L4: bytes that are not UTF-8 (0xff in a header) as keys and values ----------------------

BINARY_SCRIPTS = {
    "lua": """
function ksr_request_route()
    local k = KSR.pv.get("$hdr(X-Key)")
    local v = KSR.pv.get("$hdr(X-Val)")
    local r = {KSR.htable.sht_sets("t", k, v), KSR.htable.sht_match_name("t", "eq", k),
               KSR.htable.sht_match_str_value("t", "re", "^" .. v .. "$")}
    KSR.hdr.append_to_reply("X-Got: " .. KSR.htable.sht_gete("t", k) .. "\\r\\n")
    KSR.htable.sht_iterator_start("i", "t")
    KSR.htable.sht_iterator_next("i")
    KSR.hdr.append_to_reply("X-It: " .. KSR.pv.get("$shtitkey(i)") .. "\\r\\n")
    KSR.htable.sht_iterator_end("i")
    r[#r + 1] = KSR.htable.sht_rm("t", k)
    r[#r + 1] = KSR.htable.sht_is_null("t", k)
    KSR.sl.send_reply(200, "R " .. table.concat(r, " "))
end
""",
    "python": """
import KSR


def ksr_request_route(msg):
    k = KSR.pv.get("$hdr(X-Key)")
    v = KSR.pv.get("$hdr(X-Val)")
    r = [KSR.htable.sht_sets("t", k, v), KSR.htable.sht_match_name("t", "eq", k),
         KSR.htable.sht_match_str_value("t", "re", "^" + v + "$")]
    KSR.hdr.append_to_reply("X-Got: " + KSR.htable.sht_gete("t", k) + "\\r\\n")
    KSR.htable.sht_iterator_start("i", "t")
    KSR.htable.sht_iterator_next("i")
    KSR.hdr.append_to_reply("X-It: " + KSR.pv.get("$shtitkey(i)") + "\\r\\n")
    KSR.htable.sht_iterator_end("i")
    r += [KSR.htable.sht_rm("t", k), KSR.htable.sht_is_null("t", k)]
    KSR.sl.send_reply(200, "R " + " ".join(str(x) for x in r))
""",
}


BINARY_OPTIONS = request("OPTIONS").replace(
    b"Content-Length", b"X-Key: k\xff\xfe1\r\nX-Val: v\xff2\r\nContent-Length"
)


@pytest.mark.parametrize(
    ("engine", "backend"), [("lua", "sqlite"), ("python", "sqlite"), ("lua", "redis")]
)
def test_non_utf8_keys_and_values_round_trip(
    tmp_path: Path, engine: str, backend: str, request: pytest.FixtureRequest
) -> None:
    cfg = 'modparam("htable", "htable", "t=>size=4;")'
    if backend == "redis":
        if REDIS is None:
            pytest.skip("redis-server is not installed")
        cfg += f'\nmodparam("htable", "db_url", "{request.getfixturevalue("redis_url")}")'
    router = make_router(
        tmp_path, engine, BINARY_SCRIPTS[engine], modules=("htable", "textops"), extra_cfg=cfg
    )
    r = InProcess(router, io.StringIO())
    r.handle(BINARY_OPTIONS)
    assert r.sent, "no reply: the script failed"
    data = r.sent[-1][0]
    assert b" 200 R 1 1 1 1 1\r\n" in data, data
    assert b"\r\nX-Got: v\xff2\r\n" in data and b"\r\nX-It: k\xff\xfe1\r\n" in data, data
