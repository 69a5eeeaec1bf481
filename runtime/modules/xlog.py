"""``KSR.xlog``: log messages with pseudo-variables expanded (Kamailio xlog module)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import log as klog
from ..core.pv import format_pv

if TYPE_CHECKING:
    from ..core.context import MsgContext

LEVELS: dict[str, int] = {
    "l_alert": klog.L_ALERT,
    "l_bug": klog.L_BUG,
    "l_crit2": klog.L_CRIT2,
    "l_crit": klog.L_CRIT,
    "l_err": klog.L_ERR,
    "l_warn": klog.L_WARN,
    "l_notice": klog.L_NOTICE,
    "l_info": klog.L_INFO,
    "l_dbg": klog.L_DBG,
}


def _xlog(ctx: MsgContext, level: int, fmt: str) -> int:
    if klog.LOG.enabled(level):
        klog.log(level, format_pv(ctx, fmt), origin="script")
    return 1


def level_of(name: str) -> int:
    """Level for ``L_INFO``-style names (also ``info``, ``err``, ... and numbers); else L_ERR."""
    lname = name.strip().lower()
    level = LEVELS.get(lname)
    if level is None:
        level = klog.NAMED_LEVELS.get(lname)
    if level is None:
        try:
            level = int(lname)
        except ValueError:
            klog.err(f"unknown log level [{name}] - using L_ERR")
            level = klog.L_ERR
    return level


def xlog(ctx: MsgContext, level: str, fmt: str) -> int:
    return _xlog(ctx, level_of(level), fmt)


def xdbg(ctx: MsgContext, fmt: str) -> int:
    return _xlog(ctx, klog.L_DBG, fmt)


def xinfo(ctx: MsgContext, fmt: str) -> int:
    return _xlog(ctx, klog.L_INFO, fmt)


def xnotice(ctx: MsgContext, fmt: str) -> int:
    return _xlog(ctx, klog.L_NOTICE, fmt)


def xwarn(ctx: MsgContext, fmt: str) -> int:
    return _xlog(ctx, klog.L_WARN, fmt)


def xerr(ctx: MsgContext, fmt: str) -> int:
    return _xlog(ctx, klog.L_ERR, fmt)


def xalert(ctx: MsgContext, fmt: str) -> int:
    return _xlog(ctx, klog.L_ALERT, fmt)


def xcrit(ctx: MsgContext, fmt: str) -> int:
    return _xlog(ctx, klog.L_CRIT, fmt)
