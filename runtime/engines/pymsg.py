"""The ``msg`` object of app_python3 (type ``Router.msg``) and the ``Router`` modules."""

from __future__ import annotations

import sys
import types
from typing import Any

from ..core import log as L
from ..core.context import MsgContext


class PyMsg:
    """What a Python route method receives as ``msg``; invalid once the callback returns."""

    __slots__ = ("_ctx", "_modf")

    def __init__(self, ctx: MsgContext, modf: Any = None) -> None:
        self._ctx: MsgContext | None = ctx
        self._modf = modf

    def _c(self) -> MsgContext:
        if self._ctx is None:
            raise RuntimeError("self->msg is NULL")
        return self._ctx

    def invalidate(self) -> None:
        self._ctx = None

    @property
    def Type(self) -> str:
        return "SIP_REQUEST" if self._c().msg.is_request else "SIP_REPLY"

    @property
    def Method(self) -> str:
        c = self._c()
        if not c.msg.is_request:
            raise RuntimeError("Not a request message - no method available.")
        return c.msg.method

    @property
    def Status(self) -> int:
        c = self._c()
        if c.msg.is_request:
            raise RuntimeError("Not a non-reply message - no status available.")
        return c.msg.status

    @property
    def RURI(self) -> str:
        c = self._c()
        if not c.msg.is_request:
            raise RuntimeError("Not a request message - no RURI available.")
        return c.ruri

    @property
    def src_address(self) -> tuple[str, int]:
        return self._c().src

    @property
    def dst_address(self) -> tuple[str, int]:
        return self._c().dst

    def copy(self) -> PyMsg:
        return PyMsg(self._c(), self._modf)

    def rewrite_ruri(self, uri: str) -> None:
        c = self._c()
        if not c.msg.is_request:
            raise RuntimeError("Not a request message - rewrite is not possible.")
        c.new_uri = str(uri)

    def set_dst_uri(self, uri: str) -> None:
        c = self._c()
        if not c.msg.is_request:
            raise RuntimeError("Not a request message - set destination is not possible.")
        c.dst_uri = str(uri)

    def getHeader(self, name: str) -> str | None:
        return self._c().msg.get(str(name))

    def call_function(self, fname: str, *params: str) -> int:
        self._c()
        if len(params) > 2:
            raise RuntimeError("call_function() takes 1 to 3 arguments")
        if self._modf is None:
            raise RuntimeError("no such function")
        result: int = self._modf(fname, *params)
        return result


def install_router_modules() -> None:
    """``import Router.Logger`` etc., as app_python3 of Kamailio 5.6 provides them."""
    router = types.ModuleType("Router", "Kamailio's legacy Router package (app_python3)")
    logger = types.ModuleType("Router.Logger")
    ranks = types.ModuleType("Router.Ranks")
    core = types.ModuleType("Router.Core")

    def gen1(level: int, msg: str) -> None:
        L.log(int(level), str(msg), "script")

    def gen2(facility: int, level: int, msg: str) -> None:
        L.log(int(level), str(msg), "script")

    logger.LM_GEN1 = gen1  # type: ignore[attr-defined]
    logger.LM_GEN2 = gen2  # type: ignore[attr-defined]
    for fname, level in (
        ("LM_ALERT", L.L_ALERT),
        ("LM_CRIT", L.L_CRIT),
        ("LM_ERR", L.L_ERR),
        ("LM_WARN", L.L_WARN),
        ("LM_NOTICE", L.L_NOTICE),
        ("LM_INFO", L.L_INFO),
        ("LM_DBG", L.L_DBG),
    ):
        setattr(logger, fname, _level_fn(level))
    for cname, value in (
        ("L_ALERT", L.L_ALERT),
        ("L_BUG", L.L_BUG),
        ("L_CRIT2", L.L_CRIT2),
        ("L_CRIT", L.L_CRIT),
        ("L_ERR", L.L_ERR),
        ("L_WARN", L.L_WARN),
        ("L_NOTICE", L.L_NOTICE),
        ("L_INFO", L.L_INFO),
        ("L_DBG", L.L_DBG),
        ("DEFAULT_FACILITY", 0),
    ):
        setattr(logger, cname, value)
    for i, rname in enumerate(
        (
            "PROC_MAIN",
            "PROC_TIMER",
            "PROC_RPC",
            "PROC_FIFO",
            "PROC_TCP_MAIN",
            "PROC_UNIXSOCK",
            "PROC_ATTENDANT",
            "PROC_INIT",
            "PROC_NOCHLDINIT",
            "PROC_SIPINIT",
            "PROC_SIPRPC",
            "PROC_MIN",
        )
    ):
        setattr(ranks, rname, -i if rname != "PROC_MIN" else -128)
    router.Logger = logger  # type: ignore[attr-defined]
    router.Ranks = ranks  # type: ignore[attr-defined]
    router.Core = core  # type: ignore[attr-defined]
    router.msg = PyMsg  # type: ignore[attr-defined]
    sys.modules.update(
        {"Router": router, "Router.Logger": logger, "Router.Ranks": ranks, "Router.Core": core}
    )


def _level_fn(level: int) -> Any:
    def fn(msg: str) -> None:
        L.log(level, str(msg), "script")

    return fn
