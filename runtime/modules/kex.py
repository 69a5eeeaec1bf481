"""``KSR.kex``: per-process debug level (Kamailio kex module)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import log as klog

if TYPE_CHECKING:
    from ..core.context import MsgContext

_SAVED = "kex_saved_debug"


def setdebug(ctx: MsgContext, level: int) -> int:
    """Set the debug level of this worker process; 1."""
    if _SAVED not in ctx.proc.extra:
        ctx.proc.extra[_SAVED] = (ctx.proc.debug, klog.LOG.level)
    ctx.proc.debug = level
    klog.LOG.level = level
    return 1


def resetdebug(ctx: MsgContext) -> int:
    """Restore the configured debug level of this worker process; 1."""
    saved = ctx.proc.extra.pop(_SAVED, None)
    if saved is not None:
        ctx.proc.debug, klog.LOG.level = saved
    return 1
