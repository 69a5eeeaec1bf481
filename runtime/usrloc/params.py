"""Modparams of the registrar/usrloc/htable/pike/nathelper/rtp modules.

Like corex.register_params, but Kamailio's module name in ``modparam`` is a
regular expression (``modparam("nathelper|registrar", "received_avp", ...)``
sets both), so names are matched with ``re.fullmatch``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pykemi.runtime.core.context import ProcessState

HOOKS: dict[str, Callable[[Any], None]] = {}


def module_matches(pattern: str, module: str) -> bool:
    if pattern == module:
        return True
    if re.fullmatch(r"[A-Za-z0-9_]+", pattern):
        return False
    try:
        return re.fullmatch(pattern, module) is not None
    except re.error:
        return False


def collect(
    modparams: Any, module: str, defaults: dict[str, Any], multi: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``defaults`` overridden by the cfg's modparams of ``module`` (multi ones as lists)."""
    values: dict[str, Any] = dict(defaults)
    for name in multi:
        values[name] = []
    for mp in modparams:
        if mp.name not in defaults or not module_matches(mp.module, module):
            continue
        value = mp.value
        if isinstance(defaults[mp.name], int) and not isinstance(value, int):
            try:
                value = int(str(value), 0)
            except ValueError:
                continue  # the router reports the bad type
        if mp.name in multi:
            values[mp.name].append(value)
        else:
            values[mp.name] = value
    return values


def register(
    module: str,
    defaults: dict[str, Any],
    multi: tuple[str, ...] = (),
    after: Callable[[Any, dict[str, Any]], None] | None = None,
) -> None:
    """At Router creation, put the module's parameters in ``proc.extra["modparams.<module>"]``;
    then call ``after(router, values)`` when the module is loaded (startup work)."""
    if module in HOOKS:
        return
    from pykemi.runtime import router as _router

    def hook(r: Any) -> None:
        values = collect(r.cfg.modparams, module, defaults, multi)
        r.proc.extra["modparams." + module] = values
        if after is not None and module in {lm.name for lm in r.cfg.modules}:
            after(r, values)

    HOOKS[module] = hook
    _router.ROUTER_INIT_HOOKS.append(hook)


def params(proc: ProcessState, module: str, defaults: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] | None = proc.extra.get("modparams." + module)
    return defaults if values is None else values
