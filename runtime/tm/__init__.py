"""Stateful transactions (Kamailio's tm): table, server/client transactions, timers.

Importing this package (done by ``runtime.modules.tm`` when module tm is
loaded) registers a Router init hook: every Router that loaded tm gets one
:class:`TM` in ``router.proc.extra["tm"]`` and its reply hook. The ``$T_*``
pseudo-variables are registered at the same time.
"""

from __future__ import annotations

from .. import router as _router
from . import pvs
from .core import EXTRA_BRANCH, EXTRA_REPLY, EXTRA_T, TM, TM_KEY, current, get_tm
from .stats import rpc_stats
from .transaction import Branch, Transaction

__all__ = [
    "EXTRA_BRANCH",
    "EXTRA_REPLY",
    "EXTRA_T",
    "TM",
    "Branch",
    "Transaction",
    "current",
    "get_tm",
    "install",
]


def init_router(router: _router.Router) -> None:
    if "tm" not in router.registry.bases:
        return
    tm = TM(router)
    router.proc.extra[TM_KEY] = tm
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
    _router.ROUTER_INIT_HOOKS.append(init_router)
    pvs.register()


install()
