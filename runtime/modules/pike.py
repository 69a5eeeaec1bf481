"""``KSR.pike``: flood detection per source IP (Kamailio pike).

Counters are shared by all workers (the same tmpfs SQLite store as htable,
one per router instance), so a flood spread over workers is still seen.
The rate of an IP is a sliding window over the last two sampling units
(current count + the previous unit's count weighted by the part of it still
in the window); above ``reqs_density_per_unit`` the IP is flooding. An IP is
forgotten ``remove_latency`` seconds after its last request.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..config.modparams import or_default
from ..core import log as klog
from ..core.timer import TIMERS
from ..usrloc.kv import KvStore, SqliteKv
from ..usrloc.store import StoreError, new_shared_file
from . import params as _params

if TYPE_CHECKING:
    from ..core.context import MsgContext, ProcessState

MOD = "pike"
STORE = "pike.store"
TABLE = "pike"


def setup(proc: ProcessState) -> KvStore:
    store = SqliteKv(new_shared_file("pike"))
    proc.extra[STORE] = store
    return store


def _store(proc: ProcessState) -> KvStore:
    store = proc.extra.get(STORE)
    if store is None:
        store = setup(proc)
    assert isinstance(store, KvStore)
    return store


def check(proc: ProcessState, ip: str, now: float | None = None) -> int:
    """1 not flooding, -1 flooding (already known), -2 flooding detected now."""
    p = _params.params(proc, MOD)
    unit = max(1, int(or_default(p, MOD, "sampling_time_unit")))
    density = max(1, int(or_default(p, MOD, "reqs_density_per_unit")))
    latency = max(0, int(p.get("remove_latency") or 0))
    t = time.time() if now is None else now
    slot = int(t // unit)
    out: list[int] = []

    def fn(old: tuple[str | int, int] | None) -> tuple[str | int, int]:
        cur_slot, cur, prev, blocked = slot, 0, 0, 0
        if old is not None:
            try:
                s, c, pv, b = (int(x) for x in str(old[0]).split("|"))
            except ValueError:
                s, c, pv, b = slot, 0, 0, 0
            if s == slot:
                cur, prev, blocked = c, pv, b
            elif s == slot - 1:
                cur, prev, blocked = 0, c, b
            else:
                blocked = 0
        cur += 1
        weight = 1.0 - (t - slot * unit) / unit
        rate = cur + prev * weight
        if rate > density:
            out.append(-1 if blocked else -2)
            blocked = 1
        else:
            out.append(1)
            blocked = 0
        return (f"{cur_slot}|{cur}|{prev}|{blocked}", int(t) + latency + unit)

    try:
        _store(proc).update(TABLE, ip, fn)
    except StoreError as exc:
        klog.err(f"pike: counter update failed: {exc}")
        return 1  # as Kamailio: an internal error does not block
    rc = out[0] if out else 1
    if rc == -2:
        level = int(p["pike_log_level"])
        klog.log(level, f"PIKE - BLOCKing ip {ip}", MOD)
    return rc


def pike_check_req(ctx: MsgContext) -> int:
    """Count the request for its source IP: 1 ok, -1 flooding, -2 flooding (first detection)."""
    return check(ctx.proc, ctx.src[0])


def pike_check_ip(ctx: MsgContext, strip: str) -> int:
    """As pike_check_req for the given IP address."""
    if not strip:
        return 1
    return check(ctx.proc, strip.strip().strip("[]"))


def _startup(router: Any, values: dict[str, Any]) -> None:
    store = setup(router.proc)

    def purge() -> None:
        try:
            store.purge()
        except StoreError as exc:
            klog.err(f"pike: cleanup failed: {exc}")
        TIMERS.call_later(10, purge)

    TIMERS.call_later(10, purge)


_params.register(MOD, after=_startup)
