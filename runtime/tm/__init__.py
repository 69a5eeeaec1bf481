"""Stateful transactions (Kamailio's tm): table, server/client transactions, timers.

Importing this package (done by ``runtime.modules.tm`` when module tm is
loaded) registers a Router init hook: every Router that loaded tm gets one
:class:`TM` in ``router.proc.extra["tm"]`` and its reply hook. The ``$T_*``
pseudo-variables are registered at the same time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core import EXTRA_BRANCH, EXTRA_REPLY, EXTRA_T, TM
from .stats import rpc_stats
from .transaction import Branch, Transaction

if TYPE_CHECKING:
    from pykemi.runtime.core.context import MsgContext, ProcessState
    from pykemi.runtime.router import Router

__all__ = [
    "EXTRA_BRANCH",
    "EXTRA_REPLY",
    "EXTRA_T",
    "TM",
    "Branch",
    "Transaction",
    "get_tm",
    "install",
]

PROC_KEY = "tm"


def get_tm(proc: ProcessState) -> TM | None:
    tm = proc.extra.get(PROC_KEY)
    return tm if isinstance(tm, TM) else None


def current(ctx: MsgContext) -> Transaction | None:
    txn = ctx.extra.get(EXTRA_T)
    return txn if isinstance(txn, Transaction) else None


def init_router(router: Router) -> None:
    if "tm" not in router.registry.bases:
        return
    tm = TM(router)
    router.proc.extra[PROC_KEY] = tm
    router.reply_hooks.append(tm.on_reply)
    stats = router.stats
    router.rpc_methods["tm.stats"] = lambda params: rpc_stats(stats)


_INSTALLED = False


def install() -> None:
    """Register the Router hook and the $T_* PVs (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    from pykemi.runtime import router as _router

    from . import pvs

    _router.ROUTER_INIT_HOOKS.append(init_router)
    pvs.register()


install()
