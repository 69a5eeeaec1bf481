"""tm's counters (Kamailio's ``tm.stats`` RPC: same keys, same meaning).

Each worker counts its own transactions in its row of the router's shared
:class:`~pykemi.runtime.core.stats.Stats`; ``tm.stats`` in the main process sums them.
``current`` is created - freed (a transaction in its wait time is still current, as in
Kamailio), ``waiting`` the ones in their wait time. pykemi frees a transaction when it
leaves the table, never later, so ``delayed_free`` stays 0.
"""

from __future__ import annotations

from typing import Any

from ..core.stats import Stats

GROUP = "tm"
CLASSES = ("6xx", "5xx", "4xx", "3xx", "2xx")


class TmStats:
    """Column numbers of tm's counters, and the helpers the hot paths call."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        reg = stats.register
        self.created = reg("tm:created")
        self.freed = reg("tm:freed")
        self.waiting = reg("tm:waiting")
        self.total_local = reg("tm:total_local")
        self.rpl_received = reg("tm:rpl_received")
        self.rpl_generated = reg("tm:rpl_generated")
        self.rpl_sent = reg("tm:rpl_sent")
        # final replies sent upstream, by class: index code // 100 - 2
        self.by_class = [reg(f"tm:{c}xx") for c in range(2, 7)]
        self.add = stats.add

    def final(self, code: int) -> None:
        if 200 <= code <= 699:
            self.add(self.by_class[code // 100 - 2])


def rpc_stats(stats: Stats) -> dict[str, Any]:
    """The ``tm.stats`` result, in Kamailio's key order."""
    g = stats.group(GROUP)
    created, freed = g.get("created", 0), g.get("freed", 0)
    out: dict[str, Any] = {
        "current": created - freed,
        "waiting": g.get("waiting", 0),
        "total": created,
        "total_local": g.get("total_local", 0),
        "rpl_received": g.get("rpl_received", 0),
        "rpl_generated": g.get("rpl_generated", 0),
        "rpl_sent": g.get("rpl_sent", 0),
    }
    for cls in CLASSES:
        out[cls] = g.get(cls, 0)
    out["created"] = created
    out["freed"] = freed
    out["delayed_free"] = 0
    return out
