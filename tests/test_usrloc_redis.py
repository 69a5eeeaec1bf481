"""Two router instances share registrations (and htable items) through a real Redis server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.modules import htable
from pykemi.runtime.usrloc import RedisStore, location_store
from pykemi.runtime.usrloc.kv import RedisKv

from .modhelpers import make_ctx, request
from .test_mod_registrar import make_router, register, route

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS is None, reason="redis-server is not installed (Debian package redis-server)"
)


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def redis_url(tmp_path: Path) -> Iterator[str]:
    pytest.importorskip("redis")
    port = _free_tcp_port()
    args = [str(REDIS), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(tmp_path)]  # fmt: skip
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
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_register_on_a_lookup_on_b(tmp_path: Path, redis_url: str) -> None:
    extra = f'modparam("usrloc", "db_url", "{redis_url}")'
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_router(tmp_path / "a", extra)
    b = make_router(tmp_path / "b", extra)
    assert isinstance(location_store(a.proc), RedisStore)
    assert location_store(a.proc) is not location_store(b.proc)
    assert route(b, request("INVITE", "sip:alice@example.com")).status == 404
    assert (
        route(a, register("<sip:alice@10.0.0.1:5062>;q=0.4|<sip:alice@10.0.0.7>;q=0.8")).status
        == 200
    )
    rpl = route(b, request("INVITE", "sip:alice@example.com"))
    assert rpl.status == 302
    assert rpl.get_all("Contact") == ["<sip:alice@10.0.0.7>", "<sip:alice@10.0.0.1:5062>"]
    # unregister through B, A sees it gone
    assert route(b, register("*", expires="0", cseq=2)).status == 200
    assert route(a, request("INVITE", "sip:alice@example.com")).status == 404


def test_redis_key_expires_with_the_last_contact(redis_url: str) -> None:
    import redis

    store = RedisStore(redis_url)
    now = int(time.time())
    from pykemi.runtime.usrloc import Contact

    store.update("location", "bob", lambda cur: ([Contact("bob", "sip:b@h", expires=now + 50)], 1))
    ttl = redis.Redis.from_url(redis_url).ttl("pykemi:ul:location:bob")
    assert 0 < ttl <= 51
    assert [c.contact for c in store.get("location", "bob")] == ["sip:b@h"]
    assert store.aors("location") == ["bob"]


def test_htable_shared_through_redis(redis_url: str) -> None:
    def proc_with_table() -> object:
        ctx, _ = make_ctx(request("OPTIONS"))
        values = dict(
            spec_defaults("htable"), htable=["ipban=>size=8;autoexpire=300;"], db_url=redis_url
        )
        htable.setup(ctx.proc, values)
        return ctx

    a, b = proc_with_table(), proc_with_table()
    assert isinstance(htable._state(a).store, RedisKv)  # type: ignore[arg-type]
    assert htable.sht_seti(a, "ipban", "192.0.2.1", 1) == 1  # type: ignore[arg-type]
    assert htable.sht_match_name(b, "ipban", "eq", "192.0.2.1") == 1  # type: ignore[arg-type]
    assert htable.sht_inc(b, "ipban", "192.0.2.1") == 2  # type: ignore[arg-type]
    assert htable.sht_get(a, "ipban", "192.0.2.1") == 2  # type: ignore[arg-type]
    ex = htable._pv_shtex(a, type("S", (), {"inner": "ipban=>192.0.2.1"})())  # type: ignore[arg-type]
    assert ex is not None and 290 < ex <= 300


def test_non_utf8_aor_and_contact_round_trip(tmp_path: Path, redis_url: str) -> None:
    """Message bytes that are not UTF-8 (surrogate-escaped by the parser) are kept as sent."""
    extra = f'modparam("usrloc", "db_url", "{redis_url}")'
    r = make_router(tmp_path, extra)
    odd = register("<sip:al\x01ice@10.0.0.1>", aor="sip:b\x01ob@example.com")
    assert route(r, odd.replace(b"\x01", b"\xff")).status == 200
    rpl = route(r, request("INVITE", "sip:b\x01ob@example.com").replace(b"\x01", b"\xff"))
    assert rpl.status == 302 and rpl.to_bytes().count(b"<sip:al\xffice@10.0.0.1>") == 1
    assert location_store(r.proc).aors("location") == ["b\udcffob"]  # use_domain=0
