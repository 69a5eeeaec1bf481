"""Modules' parameters: registration with the Router, and reading them.

Every module with modparams calls :func:`register` at import: when a Router is built, the
module's values (``config.modparams.collect``: the spec defaults of the Router's model
overridden by the cfg) are stored in ``proc.extra`` for :func:`params` to read, and the
module's startup work runs if the cfg loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import router as _router
from ..config.modparams import PROC_KEY, collect, values

if TYPE_CHECKING:
    from ..core.context import ProcessState

HOOKS: dict[str, Callable[[Any], None]] = {}


def register(module: str, after: Callable[[Any, dict[str, Any]], None] | None = None) -> None:
    """At Router creation, put the module's parameters in ``proc.extra["modparams.<module>"]``;
    then call ``after(router, values)`` when the module is loaded (startup work)."""
    if module in HOOKS:
        return

    def hook(r: Any) -> None:
        loaded = collect(r.cfg, module, r.api)
        r.proc.extra[PROC_KEY + module] = loaded
        if after is not None and module in {lm.name for lm in r.cfg.modules}:
            after(r, loaded)

    HOOKS[module] = hook
    _router.ROUTER_INIT_HOOKS.append(hook)


def params(proc: ProcessState, module: str) -> Mapping[str, Any]:
    """The module's parameters (read only): as loaded by the Router, else its spec defaults."""
    return values(proc, module)
