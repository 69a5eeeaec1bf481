"""Implementations of KSR.hello.*: ``fn(ctx, *params)``, as built-in Python exports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pykemi.runtime.extensions import param

if TYPE_CHECKING:
    from pykemi.runtime.core.context import MsgContext

MODULE = "hello"
_count = 0  # per worker process, like a static in a Kamailio module


def hello(ctx: MsgContext, name: str) -> str:
    """xval: "<greeting>, <name>" and modparam exclaim times "!"."""
    greeting = param(ctx, MODULE, "greeting")
    return f"{greeting}, {name}" + "!" * int(param(ctx, MODULE, "exclaim"))


def add(ctx: MsgContext, a: int, b: int) -> int:
    return a + b


def greet(ctx: MsgContext, name: str, times: int) -> str | None:
    """xval: "hi <name>" ``times`` times; the null value when times < 1."""
    if times < 1:
        return None
    return " ".join([f"hi {name}"] * times)


def counter(ctx: MsgContext) -> int:
    global _count
    _count += 1
    return _count


def header_len(ctx: MsgContext, hname: str) -> int:
    """Length of the first ``hname`` header's value; -1 when the message has none."""
    value = ctx.msg.get(hname)
    return -1 if value is None else len(value)
