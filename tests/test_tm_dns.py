"""tm's name resolution (issue 13, L6): the cache is bounded, entries (failures included)
expire, and a slow resolver stalls the worker for a bounded time only."""

from __future__ import annotations

import os
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pykemi.runtime.core.log import LOG
from pykemi.runtime.tm import TM, get_tm

from .modhelpers import lua_router

REAL_GETADDRINFO = socket.getaddrinfo


def make_tm(tmp: Path, *globals_: str) -> TM:
    modules = ("tm", "sl", "kemix", "app_lua")
    router = lua_router(tmp, "function ksr_request_route() end\n", modules, head=globals_)
    tm = get_tm(router.proc)
    assert tm is not None
    return tm


@pytest.fixture(autouse=True)
def quiet_log() -> Iterator[None]:
    old_stream, old_level = LOG.stream, LOG.level
    with open(os.devnull, "w", encoding="utf-8") as sink:  # keeps nothing in memory
        LOG.stream = sink
        try:
            yield
        finally:
            LOG.stream, LOG.level = old_stream, old_level


class FakeDns:
    """socket.getaddrinfo stand-in: ``*.ok`` names resolve to 192.0.2.1, others fail."""

    def __init__(self, delay: float = 0.0) -> None:
        self.asked: list[str] = []
        self.count = 0
        self.delay = delay

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(host, str) or not host.endswith((".ok", ".fail", ".slow")):
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        self.count += 1
        if len(host) < 40:  # long ones are only counted: keeping them would use memory
            self.asked.append(host)
        if host.endswith(".slow"):
            time.sleep(self.delay)
        if not host.endswith(".ok"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.1", 0))]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns(delay=5.0)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def grown_bytes(action: Callable[[], None]) -> int:
    """Memory still allocated after ``action`` (what it keeps), in bytes."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("suffix", ["ok", "fail"])
def test_many_distinct_names_do_not_grow_the_cache(
    tmp_path: Path, fake_dns: FakeDns, suffix: str
) -> None:
    tm = make_tm(tmp_path, "dns_cache_mem=16")  # KB
    count = 5000

    def resolve_all() -> None:
        for i in range(count):  # each name is a new string, as from a parsed message
            tm.resolve(f"{'x' * 150}-{i}.{suffix}")

    kept = grown_bytes(resolve_all)
    assert fake_dns.count == count
    # unbounded, the 5000 entries keep > 1 MB; bounded to 16 KB (+ allocator slack)
    assert kept < 200_000, kept


def test_failure_is_cached_then_expires(tmp_path: Path, fake_dns: FakeDns) -> None:
    tm = make_tm(tmp_path, "dns_cache_negative_ttl=1")
    assert tm.resolve("nowhere.fail") is None
    assert tm.resolve("nowhere.fail") is None
    assert fake_dns.asked == ["nowhere.fail"]  # the failure was cached
    time.sleep(1.2)
    assert tm.resolve("nowhere.fail") is None
    assert fake_dns.asked == ["nowhere.fail"] * 2  # expired after dns_cache_negative_ttl


def test_answer_expires_after_max_ttl(tmp_path: Path, fake_dns: FakeDns) -> None:
    tm = make_tm(tmp_path, "dns_cache_max_ttl=1")
    assert tm.resolve("proxy.ok") == "192.0.2.1"
    assert tm.resolve("PROXY.ok") == "192.0.2.1"
    assert fake_dns.asked == ["proxy.ok"]
    time.sleep(1.2)
    assert tm.resolve("proxy.ok") == "192.0.2.1"
    assert fake_dns.asked == ["proxy.ok"] * 2


def test_ip_literals_are_not_looked_up(tmp_path: Path, fake_dns: FakeDns) -> None:
    tm = make_tm(tmp_path)
    monkey_asked: list[object] = []
    socket.getaddrinfo = lambda *a, **k: monkey_asked.append(a) or []  # type: ignore[assignment]
    assert tm.resolve("192.0.2.7") == "192.0.2.7"
    assert tm.resolve("[2001:db8::1]") == "2001:db8::1"
    assert monkey_asked == []


def test_slow_resolver_stalls_the_worker_for_a_bounded_time(
    tmp_path: Path, fake_dns: FakeDns
) -> None:
    tm = make_tm(tmp_path, "dns_retr_time=1", "dns_retr_no=1")
    start = time.monotonic()
    assert tm.resolve("stuck.slow") is None  # the resolver answers after 5 s
    first = time.monotonic() - start
    start = time.monotonic()
    assert tm.resolve("stuck.slow") is None  # the failure is cached
    again = time.monotonic() - start
    assert first < 2.5 and again < 0.1, (first, again)
