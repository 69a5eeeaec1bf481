"""What the generated Python ``KSR`` package binds to at import time.

``SLOTS`` is the Python engine's view of the slot table (one invoker per
slot); generated functions index it with their precomputed slot.
"""

from __future__ import annotations

from typing import Any

from ..core.context import CURRENT
from ..dispatch import MISSING, Invoker, Registry, check_args
from .base import KemiExit, modf

SLOTS: list[Invoker] = []
_registry: Registry | None = None

__all__ = ["MISSING", "SLOTS", "base", "bind", "check", "verify", "x_drop", "x_exit", "x_modf"]


def bind(registry: Registry) -> None:
    """Point the generated package at ``registry`` (in place: modules hold SLOTS)."""
    global _registry
    _registry = registry
    SLOTS[:] = registry.view("str")


def _reg() -> Registry:
    if _registry is None:
        raise ImportError("KSR can only be imported by a script that pykemi runs")
    return _registry


def base(module: str) -> int:
    return _reg().base(module)


def check(slot: int, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return check_args(_reg().exports[slot], args)


def verify(spec_hash: str) -> None:
    """Load-time contract check: the KSR package and the runtime's api.json must agree."""
    expected = _reg().api.spec_hash
    if spec_hash != expected:
        raise ImportError(
            f"generated KSR package (spec {spec_hash}) does not match the runtime "
            f"(spec {expected}); regenerate with `kemi generate`"
        )


def x_exit() -> None:
    raise KemiExit()


def x_drop() -> None:
    if CURRENT.ctx is not None:
        CURRENT.ctx.drop = True
    raise KemiExit()


def x_modf(fname: str, *params: str) -> int:
    reg = _reg()
    return modf(reg, reg.view("str"), fname, params)
