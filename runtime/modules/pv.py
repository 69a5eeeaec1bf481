"""Core ``KSR.pv`` exports: get/set pseudo-variables by name (Kamailio src/core/kemi.c)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..core import log as klog
from ..core.pv import NULL_TEXT, PvValue, get_spec, parse_pv_name, set_pv

if TYPE_CHECKING:
    from ..core.context import MsgContext

_INT_RE = re.compile(r"[+-]?[0-9]+")


def _get(ctx: MsgContext, name: str) -> tuple[bool, PvValue]:
    """(valid, value) of the PV ``name``; invalid names are logged."""
    spec = parse_pv_name(name)
    if spec is None:
        klog.err(f"invalid pv [{name}]")
        return False, None
    return True, get_spec(ctx, spec)


def get(ctx: MsgContext, name: str) -> PvValue:
    """Value of the PV; None (null) when unset or invalid."""
    return _get(ctx, name)[1]


def getw(ctx: MsgContext, name: str) -> PvValue:
    """Value of the PV; ``"<null>"`` when null."""
    value = _get(ctx, name)[1]
    return NULL_TEXT if value is None else value


def gete(ctx: MsgContext, name: str) -> PvValue:
    """Value of the PV; ``""`` when null."""
    value = _get(ctx, name)[1]
    return "" if value is None else value


def geti(ctx: MsgContext, name: str) -> int:
    """Integer value of the PV: strings are converted (leading digits), null is 0."""
    value = _get(ctx, name)[1]
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    return str2sint(value)


def getvn(ctx: MsgContext, name: str, ival: int) -> PvValue:
    """Value of the PV; ``ival`` when null or invalid."""
    value = _get(ctx, name)[1]
    return ival if value is None else value


def getvs(ctx: MsgContext, name: str, sval: str) -> PvValue:
    """Value of the PV; ``sval`` when null or invalid."""
    value = _get(ctx, name)[1]
    return sval if value is None else value


def seti(ctx: MsgContext, name: str, ival: int) -> bool:
    return bool(set_pv(ctx, name, int(ival)))


def sets(ctx: MsgContext, name: str, sval: str) -> bool:
    return bool(set_pv(ctx, name, str(sval)))


def unset(ctx: MsgContext, name: str) -> bool:
    return bool(set_pv(ctx, name, None))


def is_null(ctx: MsgContext, name: str) -> bool:
    """True when the PV is null (also for invalid names, as Kamailio)."""
    valid, value = _get(ctx, name)
    return not valid or value is None


def str2sint(text: str) -> int:
    """Kamailio ``str2sint``: an optionally signed decimal number, else 0."""
    if _INT_RE.fullmatch(text) is None:
        return 0
    return int(text)
